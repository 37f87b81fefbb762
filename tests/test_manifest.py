import pandas as pd
import pyarrow.parquet as pq
import pytest

from robust_deepfake.manifest import (MEDIA_COLUMNS, read_manifest, read_shard, shard_count, shard_digests,
                                      shard_of, write_manifest)


def media(ids, n_shards=4):
    return pd.DataFrame({
        "media_id": ids, "dataset": "t", "path": [f"/d/{i}" for i in ids], "kind": "video", "label": 0,
        "method": "real", "source_id": None, "target_id": None, "identity": ids, "official_split": None,
        "shard": [shard_of(i, n_shards) for i in ids]})


def test_shard_of_is_stable_and_in_range():
    # a fixed value: shards must not move between runs, machines or Python versions
    assert shard_of("original_sequences/youtube/c23/videos/000.mp4", 64) == shard_of(
        "original_sequences/youtube/c23/videos/000.mp4", 64)
    assert shard_of("a", 1000) == int.from_bytes(__import__("hashlib").sha1(b"a").digest()[:8], "big") % 1000
    assert {shard_of(str(i), 8) for i in range(200)} == set(range(8))


def test_write_manifest_types_and_atomicity(tmp_path):
    out = tmp_path / "m.parquet"
    write_manifest(media(["a", "b"]), out, MEDIA_COLUMNS)
    schema = pq.read_schema(out)
    assert str(schema.field("label").type) == "int8" and str(schema.field("shard").type) == "int32"
    assert [p.name for p in tmp_path.iterdir()] == ["m.parquet"]  # no temp file left behind
    assert read_manifest(out)["media_id"].tolist() == ["a", "b"]


def test_unknown_column_is_refused(tmp_path):
    df = media(["a"]).assign(surprise=1)
    with pytest.raises(KeyError, match="surprise"):
        write_manifest(df, tmp_path / "m.parquet")


def test_missing_manifest_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        read_manifest(tmp_path / "nope.parquet")


def test_adding_media_changes_only_its_shard_digest(tmp_path):
    ids = [f"v{i:03d}.mp4" for i in range(40)]
    write_manifest(media(ids), tmp_path / "a.parquet", MEDIA_COLUMNS)
    write_manifest(media(ids + ["new.mp4"]), tmp_path / "b.parquet", MEDIA_COLUMNS)
    before, after = shard_digests(tmp_path / "a.parquet"), shard_digests(tmp_path / "b.parquet")
    changed = {s for s in after if before.get(s) != after[s]}
    assert changed == {shard_of("new.mp4", 4)}


def test_read_shard_gives_exactly_that_shards_media_with_the_manifests_types(tmp_path):
    ids = [f"v{i:03d}.mp4" for i in range(40)]
    write_manifest(media(ids), tmp_path / "m.parquet", MEDIA_COLUMNS)
    whole = read_manifest(tmp_path / "m.parquet")
    for shard in range(4):
        expected = whole[whole["shard"] == shard].reset_index(drop=True)
        assert len(expected) and read_shard(tmp_path / "m.parquet", shard).equals(expected)
    empty = read_shard(tmp_path / "m.parquet", 9)
    assert empty.empty and (empty.dtypes == whole.dtypes).all()
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        read_shard(tmp_path / "nope.parquet", 0)


def test_atomic_outputs_get_normal_permissions(tmp_path):
    import os
    write_manifest(media(["a"]), tmp_path / "m.parquet", MEDIA_COLUMNS)
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "m.parquet").stat().st_mode & 0o777 == 0o666 & ~mask


def test_shard_count_is_a_capped_power_of_two_of_the_media_count():
    assert [shard_count(n, 64, 16) for n in (0, 1, 7, 16, 17, 33, 60, 64, 65, 1000, 10 ** 6)] == \
        [1, 1, 1, 1, 2, 4, 4, 4, 8, 64, 64]
    assert shard_count(7, 64, 1) == 8 and shard_count(100_000, 1024, 1) == 1024
