"""Dataset adapters on small synthetic trees (empty files: nothing is decoded) and on the shared
FaceForensics++ sample."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from robust_deepfake import datasets
from robust_deepfake.datasets import ADAPTER_COLUMNS, DatasetLayoutError


def touch(root: Path, *rels: str) -> None:
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def by_id(df: pd.DataFrame) -> dict[str, dict]:
    return {row["media_id"]: row for row in df.to_dict("records")}


def check_common(df: pd.DataFrame, root: Path) -> None:
    """Invariants every adapter promises."""
    assert list(df.columns[: len(ADAPTER_COLUMNS)]) == ADAPTER_COLUMNS
    assert df["media_id"].tolist() == sorted(df["media_id"])
    assert df["media_id"].is_unique
    for row in df.to_dict("records"):
        assert Path(row["path"]).is_absolute()
        assert Path(row["path"]) == root / row["media_id"]
    assert df["identity"].notna().all()


# ---------------------------------------------------------------- faceforensics

FF_FILES = [
    "original_sequences/youtube/c23/videos/000.mp4",
    "original_sequences/youtube/c23/videos/003.mp4",
    "original_sequences/youtube/c23/videos/010.mp4",
    "original_sequences/youtube/c40/videos/000.mp4",
    "original_sequences/actors/c23/videos/01__walking_outside_cafe_disgusted.mp4",
    "manipulated_sequences/Deepfakes/c23/videos/000_003.mp4",
    "manipulated_sequences/Deepfakes/c23/videos/003_000.mp4",
    "manipulated_sequences/Deepfakes/c23/videos/notes.txt",
    "manipulated_sequences/Deepfakes/masks/videos/000_003.mp4",
    "manipulated_sequences/FaceSwap/c23/videos/010_005.mp4",
    "manipulated_sequences/FaceSwap/c23/videos/badname.mp4",
    "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__meeting_serious__YVGY8LOK.mp4",
]


@pytest.fixture
def ff_root(tmp_path: Path) -> Path:
    touch(tmp_path, *FF_FILES)
    (tmp_path / "train.json").write_text(json.dumps([["000", "003"]]))
    (tmp_path / "test.json").write_text(json.dumps([["005", "010"]]))
    return tmp_path


def test_faceforensics_rows(ff_root: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        df = datasets.list_media("faceforensics", ff_root)
    check_common(df, ff_root)
    rows = by_id(df)
    assert len(df) == 8  # c40, masks, notes.txt and badname.mp4 are not read
    assert (df["label"] == 0).sum() == 4 and (df["label"] == 1).sum() == 4
    real = rows["original_sequences/youtube/c23/videos/003.mp4"]
    assert (real["label"], real["method"], real["identity"], real["official_split"]) == (0, "real", "003", "train")
    assert pd.isna(real["source_id"]) and pd.isna(real["target_id"])
    fake = rows["manipulated_sequences/Deepfakes/c23/videos/003_000.mp4"]
    assert (fake["label"], fake["method"], fake["target_id"], fake["source_id"], fake["identity"]) == \
        (1, "Deepfakes", "003", "000", "003")
    assert fake["official_split"] == "train"  # the pair is listed in the other order
    swap = rows["manipulated_sequences/FaceSwap/c23/videos/010_005.mp4"]
    assert (swap["target_id"], swap["source_id"], swap["official_split"]) == ("010", "005", "test")
    dfd = rows["manipulated_sequences/DeepFakeDetection/c23/videos/01_02__meeting_serious__YVGY8LOK.mp4"]
    assert (dfd["target_id"], dfd["source_id"], dfd["identity"]) == ("actors:01", "actors:02", "actors:01")
    actor = rows["original_sequences/actors/c23/videos/01__walking_outside_cafe_disgusted.mp4"]
    assert actor["identity"] == "actors:01" and pd.isna(actor["official_split"])
    assert "ignored 1 files not named <target>_<source>" in caplog.text
    # requested by default but absent on disk: logged, not fatal
    assert "not found at compression c23: ['Face2Face', 'FaceShifter', 'NeuralTextures']" in caplog.text


def test_faceforensics_methods_compression_and_split_dir(ff_root: Path, tmp_path_factory) -> None:
    df = datasets.list_media("faceforensics", ff_root, methods=["FaceSwap", "Face2Face"])
    assert sorted(df.loc[df["label"] == 1, "method"].unique()) == ["FaceSwap"]
    touch(ff_root, "manipulated_sequences/Deepfakes/c40/videos/000_003.mp4")
    c40 = datasets.list_media("faceforensics", ff_root, compression="c40")
    assert c40["media_id"].tolist() == ["manipulated_sequences/Deepfakes/c40/videos/000_003.mp4",
                                        "original_sequences/youtube/c40/videos/000.mp4"]
    splits = tmp_path_factory.mktemp("splits")
    (splits / "val.json").write_text(json.dumps([["003", "000"]]))
    df = datasets.list_media("faceforensics", ff_root, split_dir=splits)
    assert set(df.loc[df["identity"].isin(["000", "003"]), "official_split"]) == {"val"}
    assert df.loc[df["identity"] == "010", "official_split"].isna().all()


def test_faceforensics_layout_errors(ff_root: Path, tmp_path_factory) -> None:
    with pytest.raises(DatasetLayoutError, match="original_sequences/youtube/c99/videos.*c23"):
        datasets.list_media("faceforensics", ff_root, compression="c99")
    with pytest.raises(DatasetLayoutError, match="none of the methods"):
        datasets.list_media("faceforensics", ff_root, methods=["Face2Face"])
    (ff_root / "val.json").write_text(json.dumps([["000", "999"]]))
    with pytest.raises(DatasetLayoutError, match="val.json.*also in train.json"):
        datasets.list_media("faceforensics", ff_root)
    (ff_root / "val.json").write_text(json.dumps({"000": "003"}))
    with pytest.raises(DatasetLayoutError, match="val.json: expected a JSON list"):
        datasets.list_media("faceforensics", ff_root)
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(DatasetLayoutError, match=f"{empty}.*original_sequences"):
        datasets.list_media("faceforensics", empty)


def test_shared_faceforensics_sample(shared_data: Path) -> None:
    root = shared_data / "faceforensics_c23"
    df = datasets.list_media("faceforensics", root)
    check_common(df, root)
    assert (df["label"] == 0).sum() == 3 and (df["label"] == 1).sum() == 4
    fakes = df[df["label"] == 1].set_index("method")
    assert sorted(fakes.index) == ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]
    assert [(fakes.loc[m, "target_id"], fakes.loc[m, "source_id"]) for m in sorted(fakes.index)] == \
        [("519", "515"), ("750", "743"), ("634", "660"), ("004", "982")]
    assert (fakes["identity"] == fakes["target_id"]).all()
    assert sorted(df.loc[df["label"] == 0, "identity"]) == ["004", "519", "634"]
    assert (df["kind"] == "video").all() and df["official_split"].isna().all()


# ---------------------------------------------------------------- dispatcher


def test_dispatcher_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match=f"{tmp_path / 'nope'} does not exist"):
        datasets.list_media("celebdf", tmp_path / "nope")
    with pytest.raises(ValueError, match="unknown dataset layout 'ffpp'"):
        datasets.list_media("ffpp", tmp_path)
    with pytest.raises(ValueError, match=r"takes options \[\], not \['compression'\]"):
        datasets.list_media("celeba", tmp_path, compression="c23")
    assert datasets.layout_options("faceforensics") == ["compression", "methods", "split_dir"]


def test_hidden_files_are_skipped(tmp_path: Path) -> None:
    touch(tmp_path, "real/a.mp4", "real/._a.mp4", "real/.cache/b.mp4")
    assert datasets.list_media("folders", tmp_path)["media_id"].tolist() == ["real/a.mp4"]


# ---------------------------------------------------------------- celebdf


def test_celebdf(tmp_path: Path) -> None:
    touch(tmp_path, "Celeb-real/id0_0000.mp4", "Celeb-real/id1_0003.mp4", "YouTube-real/00170.mp4",
          "Celeb-synthesis/id0_id1_0000.mp4", "Celeb-synthesis/id1_id0_0003.mp4", "Celeb-synthesis/odd.mp4")
    (tmp_path / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00170.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4\n1 Celeb-real/id9_0000.mp4\n\n")
    df = datasets.list_media("celebdf", tmp_path)
    check_common(df, tmp_path)
    rows = by_id(df)
    assert len(df) == 5
    assert rows["Celeb-real/id1_0003.mp4"]["identity"] == "id1"
    assert rows["YouTube-real/00170.mp4"]["identity"] == "youtube:00170"
    fake = rows["Celeb-synthesis/id0_id1_0000.mp4"]
    assert (fake["label"], fake["method"], fake["target_id"], fake["source_id"], fake["identity"]) == \
        (1, "Celeb-synthesis", "id0", "id1", "id0")
    assert {m for m, r in rows.items() if r["official_split"] == "test"} == \
        {"YouTube-real/00170.mp4", "Celeb-synthesis/id0_id1_0000.mp4"}
    assert (df["official_split"] != "test").sum() == 3 and df["official_split"].isin(["train", "test"]).all()


def test_celebdf_errors(tmp_path: Path) -> None:
    touch(tmp_path, "Celeb-real/id0_0000.mp4")
    with pytest.raises(DatasetLayoutError, match="Celeb-synthesis/"):
        datasets.list_media("celebdf", tmp_path)
    touch(tmp_path, "Celeb-synthesis/id0_id1_0000.mp4")
    (tmp_path / "List_of_testing_videos.txt").write_text("0 Celeb-real/id0_0000.mp4\n")
    with pytest.raises(DatasetLayoutError, match=":1: label 0 contradicts"):
        datasets.list_media("celebdf", tmp_path)


# ---------------------------------------------------------------- dfdc


def test_dfdc(tmp_path: Path) -> None:
    touch(tmp_path, "dfdc_train_part_0/aaa.mp4", "dfdc_train_part_0/bbb.mp4", "dfdc_train_part_1/ccc.mp4",
          "dfdc_train_part_1/extra.mp4", "test/t1.mp4", "test/t2.mp4")
    (tmp_path / "dfdc_train_part_0/metadata.json").write_text(json.dumps({
        "aaa.mp4": {"label": "REAL", "original": None, "split": "train"},
        "bbb.mp4": {"label": "FAKE", "original": "aaa.mp4", "split": "train"},
        "gone.mp4": {"label": "REAL", "original": None, "split": "train"}}))
    (tmp_path / "dfdc_train_part_1/metadata.json").write_text(json.dumps({
        "ccc.mp4": {"label": "FAKE", "original": "aaa.mp4", "split": "train"}}))
    (tmp_path / "test/labels.csv").write_text("filename,label\nt1.mp4,1\nt2.mp4,0\nt3.mp4,1\n")
    df = datasets.list_media("dfdc", tmp_path)
    check_common(df, tmp_path)
    rows = by_id(df)
    assert sorted(rows) == ["dfdc_train_part_0/aaa.mp4", "dfdc_train_part_0/bbb.mp4",
                            "dfdc_train_part_1/ccc.mp4", "test/t1.mp4", "test/t2.mp4"]
    real, fake, other_part = (rows[f"dfdc_train_part_{p}/{n}.mp4"] for p, n in ((0, "aaa"), (0, "bbb"), (1, "ccc")))
    assert (real["label"], real["method"], real["identity"]) == (0, "real", "dfdc_train_part_0/aaa.mp4")
    assert (fake["label"], fake["method"], fake["target_id"], fake["identity"]) == \
        (1, "dfdc", "dfdc_train_part_0/aaa.mp4", "dfdc_train_part_0/aaa.mp4")
    assert other_part["identity"] == "dfdc_train_part_0/aaa.mp4"
    assert (rows["test/t1.mp4"]["label"], rows["test/t1.mp4"]["official_split"]) == (1, "test")
    assert rows["test/t2.mp4"]["label"] == 0 and rows["test/t2.mp4"]["identity"] == "test/t2.mp4"
    assert real["official_split"] == "train"


def test_dfdc_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match="dfdc_train_part_"):
        datasets.list_media("dfdc", tmp_path)
    touch(tmp_path, "dfdc_train_part_3/a.mp4")
    with pytest.raises(DatasetLayoutError, match="dfdc_train_part_3: metadata.json is missing"):
        datasets.list_media("dfdc", tmp_path)
    (tmp_path / "dfdc_train_part_3/metadata.json").write_text(json.dumps({"a.mp4": {"label": "fake"}}))
    with pytest.raises(DatasetLayoutError, match="'a.mp4' has no label"):
        datasets.list_media("dfdc", tmp_path)


# ---------------------------------------------------------------- celeba

ATTR_NAMES = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Smiling"]


def write_celeba(root: Path, names=("000001.jpg", "000002.jpg", "000003.jpg"), count: int = 3) -> None:
    touch(root, *(f"img_align_celeba/{n}" for n in names))
    (root / "list_attr_celeba.txt").write_text(
        f"{count}\n" + " ".join(ATTR_NAMES) + " \n"
        "000001.jpg  1 -1 -1\n"
        "000002.jpg -1  1 -1\n"
        "000003.jpg -1 -1  1 \n")


def test_celeba_attributes_align(tmp_path: Path) -> None:
    write_celeba(tmp_path)
    (tmp_path / "identity_CelebA.txt").write_text("000001.jpg 7\n000002.jpg 9\n000003.jpg 7\n")
    (tmp_path / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 1\n000003.jpg 2\n")
    df = datasets.list_media("celeba", tmp_path)
    check_common(df, tmp_path)
    assert list(df.columns[len(ADAPTER_COLUMNS):]) == [f"attr_{n}" for n in ATTR_NAMES]
    assert all(df[f"attr_{n}"].dtype == "int8" for n in ATTR_NAMES)
    # image k (1-based) has +1 exactly in attribute k
    for k, row in enumerate(df.to_dict("records"), start=1):
        assert row["media_id"] == f"img_align_celeba/00000{k}.jpg"
        assert [row[f"attr_{n}"] for n in ATTR_NAMES] == [1 if i == k else -1 for i in (1, 2, 3)]
    assert df["identity"].tolist() == ["celeba:7", "celeba:9", "celeba:7"]
    assert df["official_split"].tolist() == ["train", "val", "test"]
    assert set(df["label"]) == {0} and set(df["method"]) == {"real"} and set(df["kind"]) == {"image"}


def test_celeba_subset_without_identity_file(tmp_path: Path, caplog) -> None:
    write_celeba(tmp_path, names=("000003.jpg", "000002.jpg"))
    with caplog.at_level(logging.WARNING):
        df = datasets.list_media("celeba", tmp_path)
    assert df["identity"].tolist() == ["000002", "000003"]
    assert df["attr_Smiling"].tolist() == [-1, 1] and df["attr_Arched_Eyebrows"].tolist() == [1, -1]
    assert df["official_split"].isna().all()
    assert "identity_CelebA.txt not found" in caplog.text
    assert "ignored 1 list_attr_celeba.txt rows without an image" in caplog.text


def test_celeba_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match="img_align_celeba/"):
        datasets.list_media("celeba", tmp_path)
    write_celeba(tmp_path, count=4)
    with pytest.raises(DatasetLayoutError, match="line 1 says 4 images, the file lists 3"):
        datasets.list_media("celeba", tmp_path)
    (tmp_path / "list_attr_celeba.txt").write_text("1\n" + " ".join(ATTR_NAMES) + "\n000001.jpg 1 -1\n")
    with pytest.raises(DatasetLayoutError, match="rows have 2 values for 3 attribute names"):
        datasets.list_media("celeba", tmp_path)


# ---------------------------------------------------------------- deepfakeface


def test_deepfakeface(tmp_path: Path) -> None:
    touch(tmp_path, "wiki/00/alice_1.jpg", "wiki/01/bob_2.jpg", "inpainting/00/alice_1.png",
          "insight/01/bob_2.jpg", "text2img/00/alice_1.jpg", "text2img/02/nobody.jpg", "wiki/readme.txt")
    df = datasets.list_media("deepfakeface", tmp_path)
    check_common(df, tmp_path)
    rows = by_id(df)
    assert len(df) == 6 and (df["label"] == 1).sum() == 4
    assert rows["wiki/00/alice_1.jpg"]["identity"] == "00/alice_1"
    fake = rows["inpainting/00/alice_1.png"]
    assert (fake["method"], fake["identity"], fake["source_id"]) == ("inpainting", "00/alice_1", "wiki/00/alice_1.jpg")
    assert rows["insight/01/bob_2.jpg"]["source_id"] == "wiki/01/bob_2.jpg"
    assert pd.isna(rows["text2img/02/nobody.jpg"]["source_id"])
    with pytest.raises(DatasetLayoutError, match="wiki/"):
        datasets.list_media("deepfakeface", tmp_path / "inpainting")


# ---------------------------------------------------------------- folders


def test_folders(tmp_path: Path) -> None:
    touch(tmp_path, "real/alice/clip1.mp4", "real/alice/day2/clip2.mp4", "real/solo.jpg",
          "fake/faceswap/alice/x.mp4", "fake/faceswap/y.png", "fake/z.mp4", "fake/notes.md", "masks/m.png")
    df = datasets.list_media("folders", tmp_path)
    check_common(df, tmp_path)
    got = {r["media_id"]: (r["label"], r["kind"], r["method"], r["identity"]) for r in df.to_dict("records")}
    assert got == {
        "real/alice/clip1.mp4": (0, "video", "real", "alice"),
        "real/alice/day2/clip2.mp4": (0, "video", "real", "alice"),
        "real/solo.jpg": (0, "image", "real", "solo"),
        "fake/faceswap/alice/x.mp4": (1, "video", "faceswap", "alice"),
        "fake/faceswap/y.png": (1, "image", "faceswap", "y"),
        "fake/z.mp4": (1, "video", "fake", "z"),
    }
    with pytest.raises(DatasetLayoutError, match="real/ or fake/"):
        datasets.list_media("folders", tmp_path / "masks")


def test_folders_only_real(tmp_path: Path) -> None:
    touch(tmp_path, "real/a.png")
    assert datasets.list_media("folders", tmp_path)["label"].tolist() == [0]


def test_listed_files_missing_on_disk_are_named_on_the_console(tmp_path: Path, caplog) -> None:
    part = tmp_path / "dfdc_train_part_0"
    part.mkdir()
    entries = {f"gone_{k}.mp4": {"label": "REAL"} for k in range(5)} | {"here.mp4": {"label": "FAKE"}}
    (part / "metadata.json").write_text(json.dumps(entries))
    (part / "here.mp4").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="robust_deepfake.console"):
        datasets.list_media("dfdc", tmp_path)
    assert [r.getMessage() for r in caplog.records if r.name == "robust_deepfake.console"] == [
        f"{part}: ignored 5 metadata.json entries without a video on disk, e.g. gone_0.mp4, gone_1.mp4, gone_2.mp4",
        f"{part}: ignored 1 fakes whose original is not listed (identity = the fake itself)"]


def test_console_records_reach_the_terminal_as_well_as_the_job_log(tmp_path: Path) -> None:
    """A job's stderr goes to its log file: a warning meant for the user must reach the terminal."""
    script = ("from robust_deepfake.logs import console, log_to_file\n"
              f"log_to_file({str(tmp_path / 'job.log')!r})\n"
              "import logging\n"
              "logging.getLogger('robust_deepfake.x').warning('only in the log')\n"
              "console.warning('missing: real_0.mp4')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "WARNING (job.log): missing: real_0.mp4" in done.stderr and "only in the log" not in done.stderr
    log = (tmp_path / "job.log").read_text()
    assert "missing: real_0.mp4" in log and "only in the log" in log
