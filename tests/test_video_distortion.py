"""Whole-video DeeperForensics distortions of split C: the clips (reals, and generated fakes pasted
back into their frames), every frame changed by the table's parameter, the faces found again."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from robust_deepfake.faces.cropping import DetectorInput
from robust_deepfake.faces.detection import build_detector
from robust_deepfake.stages.video_distortion import clips, distort_and_cut, distort_clip
from robust_deepfake.video import read_video_frames
from test_frames import encode, noise_frames

FACES = {"min_face_size": 20, "skip_levels": 2, "thresholds": [0.6, 0.7, 0.7], "scale_factor": 0.709,
         "max_side": None, "min_confidence": 0.9, "keep": "largest"}


@pytest.fixture()
def clip_of_c(tmp_path):
    """A 6-frame video in C (frames 0, 2, 4 sampled) and one generated fake of it (frames 0 and 2)."""
    video = encode(tmp_path / "v.mp4", noise_frames(6, 48, 64))
    part_c = pd.DataFrame({"media_id": "real/v", "path": str(video), "kind": "video", "label": 0, "method": None,
                           "frame_idx": [0, 2, 4]})
    fake = tmp_path / "fake.png"
    cv2.imwrite(str(fake), np.full((16, 16, 3), (0, 0, 255), np.uint8))  # a red face
    fakes = pd.DataFrame({"media_id": "faceswap_ae/real/v", "real_media_id": "real/v", "generator": "faceswap_ae",
                          "frame_idx": [0, 2], "image_path": str(fake), "crop_box": [np.array([8, 4, 40, 36])] * 2})
    return part_c, fakes, video


def test_generated_fakes_are_pasted_back_into_their_source_frames(clip_of_c):
    part_c, fakes, video = clip_of_c
    (real, real_frames), (fake, fake_frames) = list(clips(part_c, fakes))
    assert real == {"media_id": "real/v", "label": 0, "test_set": "real"} and sorted(real_frames) == [0, 2, 4]
    assert fake == {"media_id": "faceswap_ae/real/v", "label": 1, "test_set": "faceswap_ae"}
    decoded, _ = read_video_frames(video, [0, 2, 4])
    for i in (0, 2, 4):
        assert np.array_equal(real_frames[i], cv2.cvtColor(decoded[i], cv2.COLOR_RGB2BGR))
    assert sorted(fake_frames) == [0, 2]
    outside = np.ones(real_frames[0].shape[:2], bool)
    outside[4:36, 8:40] = False
    for i in (0, 2):
        assert (fake_frames[i][4:36, 8:40] == (0, 0, 255)).all()  # the face region is the fake
        assert np.array_equal(fake_frames[i][outside], real_frames[i][outside])  # the rest is the real frame


@pytest.mark.parametrize("kind, level, factor", [("CC", 2, 0.725), ("CC", 5, 0.35)])
def test_a_contrast_change_scales_every_frame_by_the_tables_factor(clip_of_c, kind, level, factor):
    part_c, fakes, _ = clip_of_c
    _, frames = next(clips(part_c, fakes))
    indices, distorted = distort_clip("real/v", frames, kind, level, seed=0)
    assert indices == [0, 2, 4]
    for i, out in zip(indices, distorted):
        assert np.array_equal(out, np.clip(np.rint(frames[i].astype(np.float32) * factor), 0, 255).astype(np.uint8))


def test_saturation_level_5_and_video_compression_change_every_frame(clip_of_c):
    part_c, fakes, _ = clip_of_c
    _, frames = next(clips(part_c, fakes))
    _, grey = distort_clip("real/v", frames, "CS", 5, seed=0)  # chroma factor 0: no colour left
    for out in grey:
        assert np.abs(out.astype(int) - out[..., :1].astype(int)).max() <= 1
    _, compressed = distort_clip("real/v", frames, "VC", 5, seed=0)  # CRF 40 over the clip
    for i, out in zip(sorted(frames), compressed):
        assert out.shape == frames[i].shape and np.abs(out.astype(int) - frames[i].astype(int)).mean() > 5


def test_faces_are_found_again_in_a_distorted_real_video_and_cut_as_trained(shared_data, tmp_path):
    video = shared_data / "real_videos" / "WDA_KatieHill_000.mp4"
    part_c = pd.DataFrame({"media_id": "real/katie", "path": str(video), "kind": "video", "label": 0,
                           "method": None, "frame_idx": [0, 50]})
    detector = build_detector("cpu", FACES["min_face_size"], FACES["thresholds"], FACES["scale_factor"],
                              FACES["skip_levels"])
    table = distort_and_cut(part_c, pd.DataFrame(), "GB", 1, 0, detector, FACES, DetectorInput("mtcnn", 64, 0.3),
                            tmp_path / "crops")
    assert table["frame_idx"].tolist() == [0, 50] and table["error"].isna().all()
    assert table["test_set"].eq("real").all() and table["label"].eq(0).all()
    for path in table["image_path"]:
        assert cv2.imread(path).shape == (64, 64, 3)


def test_compressing_a_real_clip_gives_the_same_bytes_every_time(shared_data):
    """With x264's macroblock tree on, this clip came out 6 different ways in 10 encodes of one
    process (its lookahead depends on memory left by earlier work): reruns could not agree."""
    import hashlib

    from robust_deepfake.attacks.distortions import distort_video

    decoded, _ = read_video_frames(shared_data / "real_videos" / "WDA_KatieHill_000.mp4", [0, 40, 80, 120])
    frames = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2BGR), (192, 192)) for _, f in sorted(decoded.items())]
    encodings = set()
    for _ in range(10):
        churn = [np.random.bytes(1 << 16) for _ in range(50)]  # what other work leaves in memory
        encodings.add(hashlib.md5(b"".join(f.tobytes() for f in distort_video(frames, "VC", 1, 0))).hexdigest())
        del churn
    assert len(encodings) == 1
