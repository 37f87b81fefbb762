import pandas as pd
import pytest

from robust_deepfake.manifest import CROP_COLUMNS

from robust_deepfake.stages.split import SplitError, check_disjoint, identity_groups, split_faces, split_media


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
    from robust_deepfake.stages.ingest import build_media_table

    media = build_media_table("faceforensics", shared_data / "faceforensics_c23", "ffpp", 4, 16, {}, None, 0)
    out = split_media(media, {"A": 0.7, "B": 0.2, "C": 0.1}, seed=0)
    check_disjoint(out)
    # every fake sits with both of its persons' real videos (when present)
    for fake in out[out.label == 1].itertuples():
        for person in (fake.target_id, fake.source_id):
            reals = out[(out.label == 0) & (out.identity == person)]
            assert (reals["part"] == fake.part).all()
    for part in "ABC":  # three groups hold real media and four fakes: every part gets both
        assert set(out.loc[out["part"] == part, "label"]) == {0, 1}, part


def few_groups(real_only: int, fake_only: int, both: int) -> pd.DataFrame:
    """Groups of one person each (fakes of a person's own target id): some with real media only,
    some with fakes only, some with both, of varied sizes."""
    rows, person = [], 0
    for kind, count in (("real", real_only), ("fake", fake_only), ("both", both)):
        for k in range(count):
            pid = f"p{person:02d}"
            person += 1
            for j in range(1 + (person * 7) % 4):  # 1..4 media of each label
                if kind in ("real", "both"):
                    rows.append(dict(media_id=f"real/{pid}_{j}", label=0, identity=pid, source_id=None,
                                     target_id=None, official_split=None))
                if kind in ("fake", "both"):
                    rows.append(dict(media_id=f"fake/{pid}_{j}", label=1, identity=pid, source_id=pid,
                                     target_id=pid, official_split=None))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("real_only, fake_only, both", [
    (0, 1, 3),    # the shared FaceForensics++ c23 tree: three real+fake groups and one fake-only group
    (10, 5, 0),   # five groups carry every fake (the c40 tree gave C none)
    (2, 2, 1), (1, 1, 2), (0, 0, 3), (6, 3, 0), (3, 3, 0), (20, 1, 2)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_split_of_few_groups_gives_every_part_both_labels(real_only, fake_only, both, seed):
    media = few_groups(real_only, fake_only, both)
    out = split_media(media, {"A": 0.7, "B": 0.2, "C": 0.1}, seed=seed)
    check_disjoint(out)
    for part in "ABC":
        assert set(out.loc[out["part"] == part, "label"]) == {0, 1}, (part, out.groupby(["part", "label"]).size())


def faces_of(media: pd.DataFrame) -> pd.DataFrame:
    """A crop manifest of `media`: one face each."""
    faces = media.assign(face_path=[f"/crops/{m}.png" for m in media["media_id"]], frame_idx=0, error=None)
    for column in CROP_COLUMNS:
        if column not in faces:
            faces[column] = None
    return faces


def split_of(media: pd.DataFrame = None, faces: pd.DataFrame = None):
    return split_faces(faces_of(media) if faces is None else faces, {"A": 0.7, "B": 0.2, "C": 0.1}, seed=0,
                       use_official_test=False, official_overlap="drop")


def test_the_summary_says_when_a_part_cannot_have_both_labels():
    tables, summary = split_of(few_groups(real_only=6, fake_only=0, both=2))  # two groups hold fakes
    lacking = [p for p in "ABC" if not (tables[p]["label"] == 1).any()]
    assert len(lacking) == 1
    notes = summary[summary["part"].str.startswith("missing:")]["part"].tolist()
    assert notes == [f"missing: {lacking[0]} has no fake media (2 identity groups of the dataset hold fake media; "
                     "every part gets both labels when at least 3 do)"]

    # a dataset of reals only (the demo, CelebA: fakes are made later) lacks nothing
    _, summary = split_of(few_groups(real_only=12, fake_only=0, both=0))
    assert not summary["part"].str.startswith("missing:").any()


def test_each_part_keeps_its_own_number_of_evenly_spaced_frames():
    media = ffpp_like(40)
    faces = pd.concat([media.assign(frame_idx=f, face_path=[f"/crops/{m}/{f}.png" for m in media["media_id"]],
                                    error=None) for f in range(0, 50, 5)], ignore_index=True)  # 10 frames each
    for column in CROP_COLUMNS:
        if column not in faces:
            faces[column] = None
    tables, summary = split_faces(faces, {"A": 0.7, "B": 0.2, "C": 0.1}, seed=0, use_official_test=False,
                                  official_overlap="drop", frames_per_video={"B": 5, "C": 4})
    per_media = {p: tables[p].groupby("media_id")["frame_idx"].apply(list) for p in "ABC"}
    assert all(len(frames) == 10 for frames in per_media["A"])  # A: every extracted frame
    assert all(frames == [0, 10, 20, 35, 45] for frames in per_media["B"])  # 5 of 10: positions 0 2 4 7 9
    assert all(frames == [0, 15, 30, 45] for frames in per_media["C"])
    counted = summary[summary["part"].isin(["B", "C"])].groupby("part")["faces"].sum()
    assert counted["B"] == 5 * len(per_media["B"]) and counted["C"] == 4 * len(per_media["C"])


@pytest.mark.parametrize("real_only, fake_only, both, words", [
    (0, 4, 0, "the dataset's manifest lists no real media (label 0) at all"),
    (2, 4, 0, "its real media that kept a face belong to 2 identity group(s), and each of A, B, C needs one"),
])
def test_a_part_without_real_media_stops_the_split_saying_why(real_only, fake_only, both, words):
    """B's reals are what is poisoned and made into fakes, A's train the defences, C's are half of
    every AUC: a part without them failed later, in a model's training, hours of face detection on."""
    with pytest.raises(SplitError) as error:
        split_of(few_groups(real_only, fake_only, both))
    assert "would hold no real media: " + words in str(error.value)


def test_reals_without_a_usable_face_are_named_as_the_cause():
    faces = faces_of(few_groups(real_only=4, fake_only=4, both=0))
    faces.loc[faces["label"] == 0, "face_path"] = None
    faces.loc[faces["label"] == 0, "error"] = ["/d/x.mp4: not a readable video: Invalid data"] * 2 + [None] * 8
    with pytest.raises(SplitError, match="none of its 10 real media kept a usable face \\(8 no usable face, "
                                         "2 not a readable video\\)"):
        split_of(faces=faces)


def test_the_split_tells_the_console_what_it_lost(caplog):
    media = few_groups(real_only=6, fake_only=0, both=3)
    faces = faces_of(media)
    faces.loc[[0, 1], ["face_path", "error"]] = [None, "/data/x.mp4: not a readable video: Invalid data"]
    faces.loc[2, "face_path"] = None
    with caplog.at_level("WARNING", logger="robust_deepfake.console"):
        split_of(faces=faces)
    lines = [r.getMessage() for r in caplog.records if r.name == "robust_deepfake.console"]
    assert any(f"split: 3 of {media['media_id'].nunique()} media lost before the split (1 no usable face, "
               "2 not a readable video)" in line for line in lines), lines
