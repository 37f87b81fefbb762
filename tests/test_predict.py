"""`robust-deepfake predict` as a user runs it: a shared real video, a face-less image, a folder,
whole images, the input a checkpoint records, and the errors for a missing checkpoint or path."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from robust_deepfake.detectors.network import DeepfakeDetector, DetectorConfig, save_detector
from robust_deepfake.predict import detector_input
from robust_deepfake.faces.cropping import DetectorInput
from robust_deepfake.faces.detection import DEFAULT_CALL

FACE_CROPS = {"mode": "mtcnn", "size": 64, "margin": 0.3, "center_size": None}


def _checkpoint(path, **extra):
    torch.manual_seed(0)
    save_detector(DeepfakeDetector(DetectorConfig(image_size=32)), path, extra={"threshold": 0.25, **extra})
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("detector") / "model.pt", input=FACE_CROPS)


def predict(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robust_deepfake.cli", "predict", *args], capture_output=True,
                          text=True, timeout=300)


def test_predict_scores_each_face_of_a_real_video_and_the_video(shared_data, checkpoint):
    video = shared_data / "real_videos" / "WDA_KatieHill_000.mp4"
    proc = predict(str(video), "--checkpoint", str(checkpoint), "--frames", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    (media,) = json.loads(proc.stdout)["media"]
    assert media["kind"] == "video" and media["error"] is None
    assert 1 <= len(media["faces"]) <= 4
    probabilities = [f["probability"] for f in media["faces"]]
    assert all(0 <= p <= 1 for p in probabilities)
    assert media["probability_fake"] == pytest.approx(np.mean(probabilities))
    # the verdict is taken at the threshold the detector's training calibrated, stored in the checkpoint
    assert media["threshold"] == 0.25 and media["verdict"] == ("fake" if media["probability_fake"] >= 0.25 else "real")
    text = predict(str(video), "--checkpoint", str(checkpoint), "--frames", "4")
    assert f"{video}: probability of fake" in text.stdout and "frame" in text.stdout
    assert f"{media['verdict']} at the detector's threshold 0.250" in text.stdout


def test_predict_says_clearly_when_an_image_has_no_face(tmp_path, checkpoint):
    image = tmp_path / "wall.png"
    cv2.imwrite(str(image), np.tile(np.linspace(0, 255, 200, dtype=np.uint8)[None, :, None], (150, 1, 3)))
    proc = predict(str(image), "--checkpoint", str(checkpoint))
    assert proc.returncode == 1
    assert f"{image}: no face found in the image" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_predict_a_folder_scores_what_it_can(shared_data, tmp_path, checkpoint):
    photo = sorted((shared_data / "face_photos" / "identities").rglob("*.jpg"))[0]
    (tmp_path / "photo.jpg").write_bytes(photo.read_bytes())
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    proc = predict(str(tmp_path), "--checkpoint", str(checkpoint), "--json")
    media = {m["path"].rsplit("/", 1)[-1]: m for m in json.loads(proc.stdout)["media"]}
    assert proc.returncode == 1  # one media could not be scored
    assert media["photo.jpg"]["probability_fake"] is not None
    assert "not a readable video" in media["broken.mp4"]["error"]


def test_predict_usage_errors_name_the_problem(tmp_path, checkpoint):
    missing = predict(str(tmp_path / "nothing.mp4"), "--checkpoint", str(checkpoint))
    assert missing.returncode == 2 and "nothing.mp4: no such file or folder" in missing.stderr
    no_model = predict(str(tmp_path), "--checkpoint", str(tmp_path / "none.pt"))
    assert no_model.returncode == 2 and "detector checkpoint not found" in no_model.stderr
    folder = predict(str(tmp_path), "--checkpoint", str(tmp_path))
    assert folder.returncode == 2 and f"{tmp_path}: is a folder; give the detector checkpoint file" in folder.stderr
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    text = predict(str(notes), "--checkpoint", str(checkpoint))
    assert text.returncode == 2 and f"{notes}: not an image or video (suffix '.txt'" in text.stderr, text.stderr


def test_predict_whole_image_scores_every_frame_without_a_face_crop(shared_data, tmp_path, checkpoint):
    image = tmp_path / "wall.png"  # no face: a face-crop detector cannot score it, a whole-image one can
    cv2.imwrite(str(image), np.tile(np.linspace(0, 255, 200, dtype=np.uint8)[None, :, None], (150, 1, 3)))
    proc = predict(str(image), "--checkpoint", str(checkpoint), "--whole-image", "--json")
    assert proc.returncode == 0, proc.stderr
    (media,) = json.loads(proc.stdout)["media"]
    assert media["faces"][0]["region"] == [0, 0, 200, 150] and 0 <= media["probability_fake"] <= 1
    video = shared_data / "real_videos" / "WDA_KatieHill_000.mp4"
    proc = predict(str(video), "--checkpoint", str(checkpoint), "--whole-image", "--frames", "3", "--json")
    (media,) = json.loads(proc.stdout)["media"]
    assert proc.returncode == 0 and len(media["faces"]) == 3  # every sampled frame, face or not
    capture = cv2.VideoCapture(str(video))
    size = [int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))]
    capture.release()
    assert media["faces"][0]["region"] == [0, 0, *size] and "box" not in media["faces"][0]


def test_predict_cuts_media_as_the_checkpoint_records(tmp_path):
    whole = _checkpoint(tmp_path / "whole.pt", input={"mode": "whole", "size": 512})
    image = tmp_path / "wall.png"
    cv2.imwrite(str(image), np.full((90, 120, 3), 128, np.uint8))
    proc = predict(str(image), "--checkpoint", str(whole), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["media"][0]["faces"][0]["region"] == [0, 0, 120, 90]
    older = _checkpoint(tmp_path / "older.pt")  # written before checkpoints recorded their input
    proc = predict(str(image), "--checkpoint", str(older))
    assert proc.returncode == 2 and "pass --margin and --crop-size" in proc.stderr


def test_predict_finds_faces_with_the_detection_settings_the_checkpoint_records(shared_data, tmp_path):
    """A detector trained on faces MTCNN found at some setting finds them the same way in new media;
    a checkpoint older than that record gets facenet-pytorch's default call (the fixture's)."""
    video = shared_data / "real_videos" / "WDA_KatieHill_000.mp4"  # 512 px frames
    only_huge_faces = {**FACE_CROPS, "faces": {**DEFAULT_CALL, "min_face_size": 1000}}  # larger than the frame
    proc = predict(str(video), "--checkpoint", str(_checkpoint(tmp_path / "model.pt", input=only_huge_faces)),
                   "--frames", "2")
    assert proc.returncode == 1 and "no face found in any of the 2 sampled frames" in proc.stderr
    assert detector_input({"config": {}, "input": only_huge_faces}).faces["min_face_size"] == 1000


def test_detector_input_takes_the_record_and_the_users_overrides():
    payload = {"config": {"image_size": 32}, "input": FACE_CROPS}
    assert detector_input(payload) == DetectorInput("mtcnn", 64, 0.3)
    assert detector_input(payload, margin=0.5, crop_size=128) == DetectorInput("mtcnn", 128, 0.5)
    assert detector_input(payload, whole_image=True) == DetectorInput("whole", 64)
    aligned = {"config": {"image_size": 32}, "input": {"mode": "center", "size": 128, "center_size": 178}}
    assert detector_input(aligned, margin=0.5) == DetectorInput("center", 128, None, 178)  # no margin to change
    assert detector_input({"config": {"image_size": 32}}, whole_image=True) == DetectorInput("whole", 32)
    assert detector_input({"config": {"image_size": 32}}, margin=0.2, crop_size=96) == DetectorInput("mtcnn", 96, 0.2)
    with pytest.raises(ValueError, match="does not record how its faces were cut"):
        detector_input({"config": {"image_size": 32}})
