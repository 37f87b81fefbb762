"""Ingest: the media manifest built from a dataset root, and the listing fingerprint."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest

from robust_deepfake.stages import ingest
from robust_deepfake.datasets import DatasetLayoutError
from robust_deepfake.manifest import MEDIA_COLUMNS, read_manifest, shard_of


def make_folders(root: Path, n_real: int, n_fake: int) -> Path:
    for label, n in (("real", n_real), ("fake", n_fake)):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (folder / f"{label}_{i:03d}.mp4").write_bytes(b"")
    return root


def build(root: Path, max_per_label=None, seed=0, max_shards=4, media_per_shard=1, layout="folders",
          options=None) -> pd.DataFrame:
    return ingest.build_media_table(layout, root, "toy", max_shards, media_per_shard, options or {}, max_per_label,
                                    seed)


def test_build_media_table_columns_and_shards(tmp_path: Path) -> None:
    df = build(make_folders(tmp_path, 20, 30), max_shards=3)
    assert list(df.columns) == MEDIA_COLUMNS
    assert len(df) == 50 and set(df["dataset"]) == {"toy"}
    assert df["shard"].between(0, 2).all() and df["shard"].nunique() == 3
    assert df["shard"].tolist() == [shard_of(m, 3) for m in df["media_id"]]
    # a new file does not move the others between shards
    (tmp_path / "real" / "new.mp4").write_bytes(b"")
    again = build(tmp_path, max_shards=3).set_index("media_id")
    assert (again.loc[df["media_id"], "shard"].to_numpy() == df["shard"].to_numpy()).all()


def test_the_shard_count_follows_the_media_count_up_to_the_cap(tmp_path: Path) -> None:
    """A preset's 64 shards must not make 64 jobs a stage for 7 videos: the count is sized from
    the media (about media_per_shard each, a power of two), the config value is its cap."""
    make_folders(tmp_path, 3, 4)
    assert build(tmp_path, max_shards=64, media_per_shard=16)["shard"].eq(0).all()  # 7 media: one shard
    df = build(tmp_path, max_shards=64, media_per_shard=2)  # 7 / 2 -> 4 shards
    assert df["shard"].tolist() == [shard_of(m, 4) for m in df["media_id"]]
    assert build(tmp_path, max_shards=2, media_per_shard=1)["shard"].max() == 1  # the cap wins


def test_max_per_label_is_seeded_and_deterministic(tmp_path: Path) -> None:
    make_folders(tmp_path, 20, 30)
    first = build(tmp_path, max_per_label=5, seed=1)
    assert first["label"].value_counts().to_dict() == {0: 5, 1: 5}
    assert first.equals(build(tmp_path, max_per_label=5, seed=1))
    assert first["media_id"].tolist() == sorted(first["media_id"])
    assert set(build(tmp_path, max_per_label=5, seed=2)["media_id"]) != set(first["media_id"])
    few = build(tmp_path, max_per_label=25, seed=1)
    assert few["label"].value_counts().to_dict() == {0: 20, 1: 25}


def test_empty_and_duplicate_errors(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "real").mkdir()
    with pytest.raises(DatasetLayoutError, match=f"{tmp_path}: the folders layout found no media"):
        build(tmp_path)
    make_folders(tmp_path, 2, 1)
    listed = ingest.datasets.list_media("folders", tmp_path)
    doubled = pd.concat([listed, listed.iloc[[0]]], ignore_index=True)
    monkeypatch.setattr(ingest.datasets, "list_media", lambda *a, **k: doubled)
    with pytest.raises(ValueError, match="1 duplicate media ids, e.g. \\['fake/fake_000.mp4'\\]"):
        build(tmp_path)


def test_ingest_writes_manifest_with_attributes(tmp_path: Path) -> None:
    root = tmp_path / "celeba"
    (root / "img_align_celeba").mkdir(parents=True)
    for name in ("000001.jpg", "000002.jpg"):
        (root / "img_align_celeba" / name).write_bytes(b"")
    (root / "list_attr_celeba.txt").write_text("2\nSmiling Young\n000001.jpg 1 -1\n000002.jpg -1 1\n")
    out = tmp_path / "out" / "media.parquet"
    ingest.ingest("celeba", root, "celeba", 2, 16, {}, None, 0, out)
    back = read_manifest(out)
    assert list(back.columns) == MEDIA_COLUMNS + ["attr_Smiling", "attr_Young"]
    assert back["attr_Smiling"].tolist() == [1, -1] and str(back["attr_Young"].dtype) == "int8"
    assert str(back["label"].dtype) == "int8" and back["source_id"].isna().all()


def test_options_from_config() -> None:
    config = {"name": "x", "layout": "faceforensics", "compression": "c40", "methods": ["FaceSwap"],
              "max_per_label": None}
    assert ingest.options_from_config("faceforensics", config) == {"compression": "c40", "methods": ["FaceSwap"]}
    assert ingest.options_from_config("celebdf", config) == {}


def test_shared_faceforensics_ingest(shared_data: Path, tmp_path: Path) -> None:
    df = ingest.ingest("faceforensics", shared_data / "faceforensics_c23", "ffpp", 4, 16,
                       {"methods": ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]}, None, 0,
                       tmp_path / "media.parquet")
    assert df["label"].value_counts().to_dict() == {0: 3, 1: 4}
    assert read_manifest(tmp_path / "media.parquet")["media_id"].tolist() == df["media_id"].tolist()


def test_listing_fingerprint_tracks_files(tmp_path: Path) -> None:
    make_folders(tmp_path, 3, 3)
    first = ingest.listing_fingerprint(tmp_path)
    assert len(first) == 16 and int(first, 16) >= 0
    assert ingest.listing_fingerprint(tmp_path) == first
    (tmp_path / "fake" / "new.mp4").write_bytes(b"")
    added = ingest.listing_fingerprint(tmp_path)
    assert added != first
    (tmp_path / "fake" / "new.mp4").write_bytes(b"more")
    assert ingest.listing_fingerprint(tmp_path) != added
    (tmp_path / "fake" / "new.mp4").unlink()
    assert ingest.listing_fingerprint(tmp_path) == first
    stat = (tmp_path / "real" / "real_000.mp4").stat()
    os.utime(tmp_path / "real" / "real_000.mp4", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert ingest.listing_fingerprint(tmp_path) != first
    with pytest.raises(FileNotFoundError, match="nope"):
        ingest.listing_fingerprint(tmp_path / "nope")


def test_listing_fingerprint_is_fast(tmp_path: Path) -> None:
    """1 000 files take about 15 ms (100 000 about 1 s); the bound leaves room for a busy machine
    and still catches a walk that grows faster than linearly."""
    for d in range(2):
        folder = tmp_path / f"d{d:02d}"
        folder.mkdir()
        for i in range(500):
            (folder / f"{i:04d}.mp4").write_bytes(b"")
    start = time.perf_counter()
    ingest.listing_fingerprint(tmp_path)
    assert time.perf_counter() - start < 0.5


def test_a_dataset_without_real_media_stops_ingest(tmp_path: Path) -> None:
    make_folders(tmp_path, 0, 3)
    with pytest.raises(DatasetLayoutError, match="the folders layout found 3 media and none is real \\(label 0\\)"):
        build(tmp_path)
