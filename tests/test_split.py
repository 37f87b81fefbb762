import pandas as pd
import pytest

from robust_deepfake.split import check_disjoint, identity_groups, split_media


def ffpp_like(n_ids=60, seed=0):
    """Reals 000..n-1 and fakes <target>_<source> pairing id i with id i+1 (a chain every 3)."""
    rows = [dict(media_id=f"real/{i:03d}", label=0, identity=f"{i:03d}", source_id=None, target_id=None,
                 official_split=None) for i in range(n_ids)]
    for i in range(0, n_ids - 1, 2):
        t, s = f"{i:03d}", f"{i + 1:03d}"
        for method in ("Deepfakes", "FaceSwap"):
            rows.append(dict(media_id=f"{method}/{t}_{s}", label=1, identity=t, source_id=s, target_id=t,
                             official_split=None))
    return pd.DataFrame(rows)


def test_fake_links_target_and_source_into_one_group():
    groups = identity_groups(ffpp_like(6))
    df = ffpp_like(6).assign(group=groups)
    assert df.loc[df.media_id == "real/000", "group"].item() == df.loc[df.media_id == "real/001", "group"].item()
    assert df.loc[df.media_id == "real/000", "group"].item() != df.loc[df.media_id == "real/002", "group"].item()


def test_split_is_identity_disjoint_stratified_and_deterministic():
    media = ffpp_like(100)
    a = split_media(media, {"A": 0.7, "B": 0.2, "C": 0.1}, seed=3)
    check_disjoint(a)
    counts = a.groupby(["part", "label"]).size()
    for label in (0, 1):
        total = counts.xs(label, level="label").sum()
        for part, frac in (("A", 0.7), ("B", 0.2), ("C", 0.1)):
            assert abs(counts[(part, label)] / total - frac) < 0.05
    pd.testing.assert_frame_equal(a, split_media(media, {"A": 0.7, "B": 0.2, "C": 0.1}, seed=3))
    other = split_media(media, {"A": 0.7, "B": 0.2, "C": 0.1}, seed=4)
    assert not a["part"].equals(other["part"])


def test_check_disjoint_catches_leak():
    df = ffpp_like(4).assign(part="A")
    df.loc[df.media_id == "real/001", "part"] = "B"  # 001 is also the source of fakes in A
    with pytest.raises(AssertionError, match="'001'"):
        check_disjoint(df)


@pytest.mark.parametrize("policy", ["drop", "move"])
def test_official_test_list_becomes_c(policy):
    media = ffpp_like(40)
    test_ids = {"real/010", "real/011", "Deepfakes/010_011"}
    media.loc[media.media_id.isin(test_ids), "official_split"] = "test"
    out = split_media(media, {"A": 0.7, "B": 0.2, "C": 0.1}, seed=0, official_overlap=policy)
    check_disjoint(out)
    assert set(out.loc[out.media_id.isin(test_ids), "part"]) == {"C"}
    leftover = out.media_id == "FaceSwap/010_011"  # shares persons with the test list
    assert (out.loc[leftover, "part"].isna().all() if policy == "drop" else (out.loc[leftover, "part"] == "C").all())
    if policy == "drop":
        assert set(out.loc[out.part == "C", "media_id"]) == test_ids
    assert {"A", "B"} <= set(out["part"].dropna())


def test_shared_faceforensics_tree_split_is_identity_disjoint(shared_data):
    from robust_deepfake.ingest import build_media_table

    media = build_media_table("faceforensics", shared_data / "faceforensics_c23", "ffpp", 4, {}, None, 0)
    out = split_media(media, {"A": 0.7, "B": 0.2, "C": 0.1}, seed=0)
    check_disjoint(out)
    # every fake sits with both of its persons' real videos (when present)
    for fake in out[out.label == 1].itertuples():
        for person in (fake.target_id, fake.source_id):
            reals = out[(out.label == 0) & (out.identity == person)]
            assert (reals["part"] == fake.part).all()
