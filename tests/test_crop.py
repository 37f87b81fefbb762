"""Square crops: the shift-inside rule, landmark mapping, and the crop stage on real detections
(it decodes the frames with a face again from the media)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from robust_deepfake.faces.cropping import center_box, crop_face, square_box
from robust_deepfake.stages.crop import crop_faces
from robust_deepfake.stages.face_detection import detect_faces
from robust_deepfake.paths import media_slug
from robust_deepfake.manifest import CROP_COLUMNS, DETECT_COLUMNS, MEDIA_COLUMNS, read_manifest, write_manifest
from robust_deepfake.video import frame_indices, read_video_frames

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cfg() -> dict:
    with open(REPO / "config" / "config.yaml") as f:
        return yaml.safe_load(f)


def side(b) -> int:
    assert b[2] - b[0] == b[3] - b[1], f"not square: {b}"
    return b[2] - b[0]


def inside(b, w, h) -> bool:
    return 0 <= b[0] and 0 <= b[1] and b[2] <= w and b[3] <= h


def test_square_box_is_centred_square_enlarged_by_margin():
    b = square_box((100, 100, 150, 180), 0.3, 640, 480)
    assert side(b) == 104  # max(50, 80) * 1.3
    assert (b[0] + b[2]) / 2 == pytest.approx(125, abs=1) and (b[1] + b[3]) / 2 == pytest.approx(140, abs=1)
    assert inside(b, 640, 480)


def test_margin_zero_gives_the_longer_box_side():
    assert side(square_box((10.0, 20.0, 70.0, 110.0), 0.0, 640, 480)) == 90
    assert side(square_box((10.0, 20.0, 130.0, 50.0), 0.0, 640, 480)) == 120


@pytest.mark.parametrize("box, expect_x1, expect_y1", [
    ((-10, 5, 40, 60), 0, 0),            # off the top-left corner
    ((600, 420, 660, 490), 549, 389),    # off the bottom-right corner (side 91 in 640x480)
])
def test_square_box_is_shifted_not_clipped_at_borders(box, expect_x1, expect_y1):
    b = square_box(box, 0.3, 640, 480)
    w, h = box[2] - box[0], box[3] - box[1]
    assert side(b) == round(max(w, h) * 1.3)  # full size kept: the crop is not squeezed
    assert inside(b, 640, 480)
    assert (b[0], b[1]) == (expect_x1, expect_y1)


def test_square_box_larger_than_frame_becomes_the_shorter_side():
    b = square_box((20, 10, 180, 390), 0.3, 200, 400)
    assert side(b) == 200
    assert b == (0, b[1], 200, b[1] + 200) and inside(b, 200, 400)
    assert 10 <= (b[1] + b[3]) / 2 <= 390  # still centred on the face vertically


def test_square_box_rule_holds_for_random_boxes():
    rng = np.random.default_rng(0)
    for _ in range(500):
        fw, fh = (int(v) for v in rng.integers(50, 2000, 2))
        x1, y1 = rng.uniform(-50, fw), rng.uniform(-50, fh)
        bw, bh = rng.uniform(1, fw), rng.uniform(1, fh)
        margin = float(rng.uniform(0, 1))
        b = square_box((x1, y1, x1 + bw, y1 + bh), margin, fw, fh)
        assert inside(b, fw, fh)
        assert side(b) == max(1, round(min(max(bw, bh) * (1 + margin), fw, fh)))


@pytest.mark.parametrize("face_side, size", [(60, 128), (300, 128), (128, 128)])
def test_crop_face_maps_landmarks_onto_the_crop(face_side, size):
    """Bright dots drawn at the landmarks must be found at the mapped crop landmarks."""
    image = np.zeros((480, 640, 3), np.uint8)
    x1, y1 = 200.0, 100.0
    box = (x1, y1, x1 + face_side, y1 + face_side)
    rel = np.array([[0.3, 0.35], [0.7, 0.35], [0.5, 0.55], [0.35, 0.75], [0.65, 0.75]])
    points = (np.array([x1, y1]) + rel * face_side).astype(np.float32)
    for x, y in points:
        cv2.circle(image, (int(x), int(y)), max(2, face_side // 30), (255, 255, 255), -1)
    crop, crop_box, crop_points = crop_face(image, box, points.reshape(10), 0.3, size)
    assert crop.shape == (size, size, 3)
    assert crop_box == square_box(box, 0.3, 640, 480)
    assert crop_points.dtype == np.float32 and crop_points.shape == (10,)
    tolerance = 1.5 + size / side(crop_box)  # one source pixel plus rounding of the drawn dots
    grey = crop[..., 0].astype(float)
    for x, y in crop_points.reshape(5, 2):
        ys, xs = (slice(max(0, int(v) - 6), int(v) + 7) for v in (y, x))
        yy, xx = np.nonzero(grey[ys, xs] > 128)
        assert len(yy), f"no dot near crop landmark {(x, y)}"
        cy, cx = yy.mean() + ys.start, xx.mean() + xs.start
        assert abs(cx - x) <= tolerance and abs(cy - y) <= tolerance


def detections_table(tmp_path: Path) -> pd.DataFrame:
    """A hand-made detections manifest: one face, one frame without a face, one vanished frame."""
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[60:180, 100:220] = 200
    cv2.imwrite(str(tmp_path / "f.png"), frame)
    base = {c: None for c in DETECT_COLUMNS}
    rows = []
    cases = [("f.png", True, None), ("f.png", False, "no face above confidence 0.9"), ("gone.png", True, None)]
    for k, (name, has_face, error) in enumerate(cases):
        r = dict(base, media_id=f"vid/clip {k}.png", dataset="t", kind="image", label=1, frame_idx=0,
                 path=str(tmp_path / name), has_face=has_face, error=error,
                 n_faces=1 if has_face else 0, confidence=0.99 if has_face else np.nan)
        if has_face:
            r["box"] = np.array([100, 60, 220, 180], np.float32)
            r["landmarks"] = np.array([130, 100, 190, 100, 160, 125, 135, 150, 185, 150], np.float32)
        rows.append(r)
    return pd.DataFrame(rows, columns=DETECT_COLUMNS)


def test_two_media_whose_names_flatten_alike_keep_both_peoples_faces(tmp_path):
    """real/alice/clip and real/alice__clip are two people; in one shard the second overwrote the
    first's crops in real__alice__clip, and the split then trained on a face it also tested on."""
    table = detections_table(tmp_path).iloc[[0, 0]].reset_index(drop=True)
    table["media_id"] = ["real/alice/clip.png", "real/alice__clip.png"]
    other = np.zeros((240, 320, 3), np.uint8)
    other[60:180, 100:220] = 90  # another person: other pixels
    cv2.imwrite(str(tmp_path / "g.png"), other)
    table.loc[1, "path"] = str(tmp_path / "g.png")
    out = crop_faces(table, tmp_path / "faces", margin=0.3, size=64, image_format="png")
    assert out["face_path"].notna().all() and out["face_path"].nunique() == 2
    means = [cv2.imread(p).mean() for p in out["face_path"]]
    assert means[0] > means[1] + 50  # each folder holds its own person's face


def test_a_crop_that_cannot_be_written_is_an_error_row_and_the_shard_goes_on(tmp_path):
    """One media's folder name the file system refuses (the name too long before folders were
    shortened) removed the whole shard's crops; now its rows carry the error."""
    table = detections_table(tmp_path).iloc[[0, 0]].reset_index(drop=True)
    table["media_id"] = ["vid/good.png", "vid/blocked.png"]
    (tmp_path / "faces").mkdir()
    (tmp_path / "faces" / media_slug("vid/blocked.png")).write_text("a file where the folder should go")
    out = crop_faces(table, tmp_path / "faces", margin=0.3, size=64, image_format="png")
    good, blocked = out.iloc[0], out.iloc[1]
    assert cv2.imread(good["face_path"]).shape == (64, 64, 3) and good["error"] is None
    assert blocked["face_path"] is None and "face crop could not be written to" in blocked["error"]


def test_crop_faces_writes_crops_and_passes_other_rows_through(tmp_path):
    out = crop_faces(detections_table(tmp_path), tmp_path / "faces", margin=0.3, size=64, image_format="png")
    assert list(out.columns) == CROP_COLUMNS
    face, noface, gone = (out.iloc[k] for k in range(3))
    assert face["face_path"] == str(tmp_path / "faces" / media_slug("vid/clip 0.png") / "000000.png")
    assert cv2.imread(face["face_path"]).shape == (64, 64, 3)
    assert tuple(face["crop_box"]) == (82, 42, 238, 198) and face["crop_box"].dtype == np.int32
    assert noface["face_path"] is None and noface["crop_box"] is None
    assert noface["error"] == "no face above confidence 0.9"
    assert gone["face_path"] is None and gone["has_face"]
    assert gone["error"] == f"frame 0 could not be decoded again for cropping: {tmp_path / 'gone.png'}: file not found"
    assert sorted(p.name for p in (tmp_path / "faces").rglob("*") if p.is_file()) == ["000000.png"]


def media_table(paths: list[Path]) -> pd.DataFrame:
    """A media manifest of photos, as ingest writes it."""
    base = {c: None for c in MEDIA_COLUMNS}
    rows = [dict(base, media_id=f"{p.parent.name}/{p.name}", dataset="test", path=str(p), kind="image", label=0,
                 method="real", identity=p.parent.name, shard=0) for p in paths]
    return pd.DataFrame(rows, columns=MEDIA_COLUMNS)


def test_crops_of_a_video_are_cut_from_the_frames_the_sampled_reader_gives(shared_data, tmp_path):
    """No frame images between the stages: cropping decodes the frames with a face again, and
    its crops are those of the very frames detection saw."""
    video = shared_data / "real_videos" / "WDA_AlexandriaOcasioCortez_000.mp4"
    base = {c: None for c in DETECT_COLUMNS}
    box = np.array([150, 100, 350, 330], np.float32)
    points = np.array([200, 180, 300, 180, 250, 230, 210, 280, 290, 280], np.float32)
    rows = [dict(base, media_id="real/aoc.mp4", path=str(video), kind="video", label=0, frame_idx=idx,
                 has_face=idx != 50, box=box if idx != 50 else None, landmarks=points if idx != 50 else None)
            for idx in (7, 50, 120, 199)]
    out = crop_faces(pd.DataFrame(rows, columns=DETECT_COLUMNS), tmp_path, margin=0.3, size=96, image_format="png")
    frames, _ = read_video_frames(video, [7, 120, 199])
    for idx, path in zip(out["frame_idx"], out["face_path"]):
        if idx == 50:
            assert path is None
            continue
        expected, _, _ = crop_face(cv2.cvtColor(frames[idx], cv2.COLOR_RGB2BGR), box, points, 0.3, 96)
        assert np.array_equal(cv2.imread(path), expected), idx


def test_crop_faces_creates_the_output_folder_when_no_frame_has_a_face(tmp_path):
    detections = detections_table(tmp_path).iloc[[1]]
    out = crop_faces(detections, tmp_path / "empty", margin=0.3, size=64, image_format="jpg")
    assert (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())
    assert out["face_path"].isna().all() and list(out.columns) == CROP_COLUMNS


def test_crop_faces_on_real_detections(shared_data, cfg, tmp_path):
    """Detection then cropping with the shipped defaults, one photo per identity."""
    photos = [sorted(d.iterdir())[0] for d in sorted((shared_data / "face_photos" / "identities").iterdir())]
    faces_cfg, crop_cfg = cfg["faces"], cfg["crop"]
    sample = partial(frame_indices, mode="linspace", per_video=1, stride=1, max_per_video=1)
    detections = detect_faces(media_table(photos), sample, device="cpu", batch_size=faces_cfg["batch_size"],
                              min_face_size=faces_cfg["min_face_size"], skip_levels=faces_cfg["skip_levels"],
                              thresholds=faces_cfg["thresholds"],
                              scale_factor=faces_cfg["scale_factor"], max_side=faces_cfg["max_side"],
                              min_confidence=faces_cfg["min_confidence"], keep=faces_cfg["keep"])
    assert detections["has_face"].all()
    size = crop_cfg["size"]
    out = crop_faces(detections, tmp_path, crop_cfg["margin"], size, crop_cfg["image_format"])
    for _, r in out.iterrows():
        crop = cv2.imread(r["face_path"])
        assert crop.shape == (size, size, 3)
        assert r["face_path"].endswith(f"/000000.{crop_cfg['image_format']}")
        pts = r["crop_landmarks"].reshape(5, 2)
        assert ((pts >= 0) & (pts < size)).all(), f"{r['media_id']}: landmark outside the crop {pts}"
        frame_h, frame_w = cv2.imread(r["path"]).shape[:2]
        assert inside(r["crop_box"], frame_w, frame_h) and side(r["crop_box"]) > 0
    write_manifest(out, tmp_path / "crop.parquet")
    back = read_manifest(tmp_path / "crop.parquet")
    np.testing.assert_array_equal(np.stack(back["crop_box"]), np.stack(out["crop_box"]))


def test_the_centre_crop_of_a_celeba_image_is_stargans():
    """An aligned CelebA image is 178 x 218: StarGAN's CenterCrop(178) keeps rows 20..197, all
    columns, whatever the detected box; torchvision's own crop of the same image agrees."""
    import torch
    from torchvision.transforms import v2

    assert center_box(178, 178, 218) == (0, 20, 178, 198)
    assert center_box(178, 120, 100) == (10, 0, 110, 100)  # capped at the shorter side, centred
    image = np.random.default_rng(0).integers(0, 256, (218, 178, 3), dtype=np.uint8)
    points = np.array([60, 100, 118, 100, 89, 125, 66, 150, 112, 150], np.float32)
    crop, box, crop_points = crop_face(image, (50, 70, 130, 170), points, 0.3, 178, mode="center")
    assert box == (0, 20, 178, 198)
    reference = v2.CenterCrop(178)(torch.from_numpy(image).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    assert np.array_equal(crop, reference)
    assert crop_points.reshape(5, 2)[0].tolist() == [60, 80]  # landmarks follow the crop
    small, _, _ = crop_face(image, (50, 70, 130, 170), points, 0.3, 128, mode="center")
    assert small.shape == (128, 128, 3)
    with pytest.raises(ValueError, match="unknown crop mode 'middle'"):
        crop_face(image, (50, 70, 130, 170), points, 0.3, 128, mode="middle")


def test_whole_mode_resizes_the_whole_frame_and_scales_landmarks_per_axis():
    image = np.random.default_rng(0).integers(0, 256, (100, 200, 3), dtype=np.uint8)
    points = np.array([50, 25, 150, 25, 100, 50, 50, 75, 150, 75], np.float32)
    crop, region, crop_points = crop_face(image, (80, 20, 120, 80), points, 0.3, 64, mode="whole")
    assert region == (0, 0, 200, 100) and crop.shape == (64, 64, 3)
    assert np.array_equal(crop, cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA))
    assert crop_points.reshape(5, 2)[4].tolist() == [48, 48]  # x by 64/200, y by 64/100
