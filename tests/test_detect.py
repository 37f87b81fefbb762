"""Face detection on real photos and a real video with the default config: rate, error rows,
coordinates, keep rule; the stage decodes the sampled frames itself."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from skimage import data as skdata

from facenet_pytorch import MTCNN

from robust_deepfake.faces.detection import build_detector, detect_batch, planar
from robust_deepfake.stages.face_detection import detect_faces
from robust_deepfake.devices import resolve_device
from robust_deepfake.manifest import DETECT_COLUMNS, MEDIA_COLUMNS, read_manifest, write_manifest
from robust_deepfake.video import frame_indices, read_video_frames

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def faces_cfg() -> dict:
    """The shipped defaults: the rate asserted below is the rate users get."""
    with open(REPO / "config" / "config.yaml") as f:
        return yaml.safe_load(f)["faces"]


@pytest.fixture(scope="module")
def detector(faces_cfg):
    return build_detector("cpu", faces_cfg["min_face_size"], faces_cfg["thresholds"], faces_cfg["scale_factor"],
                          faces_cfg["skip_levels"])


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def media_table(paths: list[Path]) -> pd.DataFrame:
    """A media manifest as ingest writes it: photos are images, .mp4 files videos."""
    rows = [{"media_id": f"{p.parent.name}/{p.name}", "dataset": "test", "path": str(p),
             "kind": "video" if p.suffix == ".mp4" else "image", "label": 0, "method": "real", "source_id": None,
             "target_id": None, "identity": p.parent.name, "official_split": None, "shard": k % 4}
            for k, p in enumerate(paths)]
    return pd.DataFrame(rows, columns=MEDIA_COLUMNS)


FRAMES_PER_VIDEO = 3
SAMPLE = partial(frame_indices, mode="linspace", per_video=FRAMES_PER_VIDEO, stride=1, max_per_video=1)


@pytest.fixture(scope="module")
def identity_photos(shared_data) -> list[Path]:
    photos = sorted((shared_data / "face_photos" / "identities").glob("*/*"))
    assert len(photos) >= 50, "expected the ~59 identity photos of ../shared/data"
    return photos


@pytest.fixture(scope="module")
def big_photo(identity_photos) -> Path:
    """A photo far above max_side, so downscaling and rescaling really happen."""
    return next(p for p in identity_photos if max(cv2.imread(str(p)).shape[:2]) > 1500)


@pytest.fixture(scope="module")
def talking_head(shared_data) -> Path:
    return shared_data / "real_videos" / "WDA_KatieHill_000.mp4"


@pytest.fixture(scope="module")
def detected(identity_photos, talking_head, faces_cfg, tmp_path_factory) -> pd.DataFrame:
    """One detect_faces run over the identity photos and a video, mixed with bad inputs, shared by
    the tests."""
    bad = tmp_path_factory.mktemp("bad")
    cv2.imwrite(str(bad / "coffee.png"), cv2.cvtColor(skdata.coffee(), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(bad / "flat.png"), np.full((240, 320, 3), 127, np.uint8))
    (bad / "garbage.jpg").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    extra = [bad / "coffee.png", bad / "flat.png", bad / "garbage.jpg", bad / "missing.png"]
    paths = extra[:2] + identity_photos[:5] + [talking_head] + extra[2:] + identity_photos[5:]
    media = media_table(paths)
    media["attr_Smiling"] = np.int8(1)
    return detect_faces(media, SAMPLE, device="cpu", batch_size=faces_cfg["batch_size"],
                        min_face_size=faces_cfg["min_face_size"], skip_levels=faces_cfg["skip_levels"],
                        thresholds=faces_cfg["thresholds"],
                        scale_factor=faces_cfg["scale_factor"], max_side=faces_cfg["max_side"],
                        min_confidence=faces_cfg["min_confidence"], keep=faces_cfg["keep"])


def row(detected: pd.DataFrame, name: str) -> pd.Series:
    return detected[detected["media_id"].str.endswith("/" + name)].iloc[0]


def test_finds_a_face_in_95_percent_of_identity_photos(detected, identity_photos):
    people = detected[detected["media_id"].isin({f"{p.parent.name}/{p.name}" for p in identity_photos})]
    assert len(people) == len(identity_photos)
    rate = people["has_face"].mean()
    missed = list(people.loc[~people["has_face"], "media_id"])
    assert rate >= 0.95, f"face found in {rate:.1%} of identity photos; missed: {missed}"


def test_face_rows_carry_box_landmarks_and_confidence(detected, faces_cfg):
    faces = detected[detected["has_face"]]
    assert len(faces) > 0
    for _, r in faces.iterrows():
        assert r["error"] is None
        assert r["box"].dtype == np.float32 and r["box"].shape == (4,)
        assert r["landmarks"].dtype == np.float32 and r["landmarks"].shape == (10,)
        x1, y1, x2, y2 = r["box"]
        assert x2 > x1 and y2 > y1
        pts = r["landmarks"].reshape(5, 2)
        slack = 0.1 * (x2 - x1)
        assert (pts[:, 0] > x1 - slack).all() and (pts[:, 0] < x2 + slack).all()
        assert (pts[:, 1] > y1 - slack).all() and (pts[:, 1] < y2 + slack).all()
        assert r["confidence"] >= faces_cfg["min_confidence"]
        assert r["n_faces"] >= 1


def test_photos_without_a_face_become_error_rows(detected, faces_cfg):
    for name in ("coffee.png", "flat.png"):
        r = row(detected, name)
        assert not r["has_face"]
        assert r["error"] == f"no face above confidence {faces_cfg['min_confidence']}"
        assert r["n_faces"] == 0
        assert r["box"] is None and r["landmarks"] is None and np.isnan(r["confidence"])


@pytest.mark.parametrize("name, reason", [("garbage.jpg", "unreadable image"), ("missing.png", "file not found")])
def test_media_that_cannot_be_read_become_error_rows(detected, name, reason):
    r = row(detected, name)
    assert not r["has_face"] and r["error"].endswith(f"{name}: {reason}")
    assert pd.isna(r["n_faces"]) and pd.isna(r["frame_idx"]) and r["box"] is None


def test_a_video_gives_one_row_per_sampled_frame_with_the_face_of_that_frame(detected, talking_head, detector,
                                                                             faces_cfg):
    """The stage decodes the frames it samples (no frame images between stages): its boxes are
    those of the very frames the sampled reader gives."""
    rows = detected[detected["media_id"] == f"real_videos/{talking_head.name}"]
    frames, info = read_video_frames(talking_head, SAMPLE)
    assert rows["frame_idx"].tolist() == sorted(frames) and len(frames) == FRAMES_PER_VIDEO
    assert (rows["frame_count"] == info["frame_count"]).all() and rows["has_face"].all()
    assert (rows["width"] == 512).all() and (rows["height"] == 512).all()
    alone = detect_batch(detector, [frames[i] for i in sorted(frames)], faces_cfg["max_side"],
                         faces_cfg["min_confidence"], faces_cfg["keep"])
    for box, face in zip(rows["box"], alone):
        np.testing.assert_allclose(box, face["box"], atol=1e-3)


def test_output_has_manifest_columns_and_round_trips(detected, tmp_path):
    assert list(detected.columns) == DETECT_COLUMNS + ["attr_Smiling"]
    write_manifest(detected, tmp_path / "detect.parquet")
    back = read_manifest(tmp_path / "detect.parquet")
    assert list(back.columns) == list(detected.columns)
    assert back["has_face"].tolist() == detected["has_face"].tolist()
    face = detected.index[detected["has_face"]][0]
    np.testing.assert_array_equal(np.asarray(back.at[face, "box"]), detected.at[face, "box"])
    np.testing.assert_array_equal(np.asarray(back.at[face, "landmarks"]), detected.at[face, "landmarks"])
    assert back["box"].isna().sum() == (~detected["has_face"]).sum()


def test_boxes_come_back_in_full_frame_pixels(detector, big_photo):
    image = read_rgb(big_photo)
    small_run, full_run = (detect_batch(detector, [image], max_side, 0.9, "largest")[0] for max_side in (320, None))
    assert iou(small_run["box"], full_run["box"]) > 0.9
    assert np.abs(small_run["landmarks"] - full_run["landmarks"]).max() < 0.05 * max(image.shape[:2])


def test_mixed_sizes_are_grouped_without_mixing_up_results(detector, identity_photos, big_photo):
    photos = [identity_photos[0], big_photo, identity_photos[1]]
    images = [read_rgb(p) for p in photos]
    together = detect_batch(detector, images, 640, 0.9, "largest")
    alone = [detect_batch(detector, [im], 640, 0.9, "largest")[0] for im in images]
    for t, a in zip(together, alone):
        np.testing.assert_allclose(t["box"], a["box"], atol=0.5)


def test_frame_smaller_than_min_face_size_has_no_face(detector):
    assert detect_batch(detector, [np.full((30, 30, 3), 200, np.uint8)], 640, 0.9, "largest") == [None]


def test_keep_largest_and_most_confident_pick_different_faces(detector, shared_data):
    image = read_rgb(shared_data / "face_photos" / "group_photos" / "multiface.jpg")
    largest = detect_batch(detector, [image], 640, 0.9, "largest")[0]
    confident = detect_batch(detector, [image], 640, 0.9, "most_confident")[0]
    assert largest["n_faces"] == confident["n_faces"] >= 2

    def area(b):
        return (b[2] - b[0]) * (b[3] - b[1])

    assert area(largest["box"]) > area(confident["box"])
    assert confident["confidence"] > largest["confidence"]
    assert iou(largest["box"], confident["box"]) == 0.0


def test_unknown_keep_rule_is_refused(detector):
    with pytest.raises(ValueError, match="keep must be one of"):
        detect_batch(detector, [np.zeros((64, 64, 3), np.uint8)], 640, 0.9, "first")


def test_auto_device_falls_back_to_what_exists():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"


def test_skipping_pyramid_levels_keeps_the_default_calls_boxes(detector, shared_data):
    """The shipped settings search the default call's pyramid without its two finest levels: on real
    frames the kept face is the one `MTCNN()` finds largest, in the same box; downscaling the
    frame first (max_side) moves the boxes (bench/bench_faces.py measures both)."""
    reference = MTCNN(device="cpu")
    frames = []
    for name in ("short_hamilton_clip.mp4", "WDA_KatieHill_000.mp4"):
        got, _ = read_video_frames(shared_data / "real_videos" / name, [0, 90, 180])
        frames += [got[i] for i in sorted(got)]
    ours = detect_batch(detector, frames, None, 0.0, "largest")
    for frame, face in zip(frames, ours):
        boxes, _ = reference.detect(frame)
        largest = max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
        assert iou(face["box"], largest) > 0.99, (face["box"], largest)


def test_memory_layout_changes_no_box(shared_data):
    """Channels-last networks and planar frames are for speed only: with no level skipped, every
    box, probability and landmark equals the default call's to float rounding."""
    ours = build_detector("cpu", 20, [0.6, 0.7, 0.7], 0.709, skip_levels=0)
    reference = MTCNN(device="cpu", keep_all=True, select_largest=False)
    got, _ = read_video_frames(shared_data / "real_videos" / "short_hamilton_clip.mp4", [0, 120])
    batch = np.stack([got[i] for i in sorted(got)])
    with torch.no_grad():
        expected = reference.detect(batch, landmarks=True)
        found = ours.detect(planar(batch), landmarks=True)
    for want, have in zip(expected, found):
        for w, h in zip(want, have):
            np.testing.assert_allclose(np.asarray(h, np.float64), np.asarray(w, np.float64), atol=1e-3)
    assert planar(batch).permute(0, 3, 1, 2).is_contiguous()
