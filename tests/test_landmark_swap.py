"""The 5-landmark face mask and the graphics face swap built on it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from robust_deepfake.generators.face_mask import landmark_face_mask, match_colors_lab
from robust_deepfake.generators.landmark_swap import LandmarkSwapGenerator, similarity_transform, swap_faces

# a frontal face in a 128 px crop, MTCNN order: left eye, right eye, nose, left and right mouth corner
FACE = np.array([[46, 50], [82, 50], [64, 70], [49, 88], [79, 88]], np.float64)


def moved(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def test_mask_covers_the_face_and_not_the_corners():
    mask = landmark_face_mask(FACE, (128, 128))
    assert mask.dtype == np.float32 and mask.shape == (128, 128)
    assert mask.min() >= 0 and mask.max() <= 1
    for x, y in FACE.astype(int):
        assert mask[y, x] == 1, (x, y)
    assert mask[36, 64] > 0.5, "forehead above the eyes"
    assert mask[100, 64] > 0.5, "chin below the mouth"
    for y, x in [(0, 0), (0, 127), (127, 0), (127, 127)]:
        assert mask[y, x] == 0
    assert np.array_equal(mask, landmark_face_mask(FACE.reshape(10), (128, 128)))
    assert landmark_face_mask(FACE, (128, 128), grow=1.3).sum() > mask.sum()


def test_mask_turns_with_the_head():
    rotation = cv2.getRotationMatrix2D((64, 64), 90, 1.0)  # face lying on its side
    turned = landmark_face_mask(moved(FACE, rotation), (128, 128))
    expected = cv2.warpAffine(landmark_face_mask(FACE, (128, 128)), rotation, (128, 128))
    assert np.abs(turned - expected).mean() < 0.01


def test_mask_rejects_bad_landmarks():
    with pytest.raises(ValueError, match="5 \\(x, y\\) landmarks"):
        landmark_face_mask(np.zeros(8), (64, 64))
    with pytest.raises(ValueError, match="degenerate"):
        landmark_face_mask(np.ones((5, 2)), (64, 64))


def test_colour_matching_moves_the_statistics_inside_the_mask():
    rng = np.random.default_rng(0)
    face = rng.integers(0, 120, (64, 64, 3), dtype=np.uint8)
    reference = np.zeros((64, 64, 3), np.uint8)
    reference[:] = (40, 160, 220)  # BGR: a warm skin-like tone
    mask = np.zeros((64, 64), np.float32)
    mask[16:48, 16:48] = 1
    matched = match_colors_lab(face, reference, mask)
    assert np.abs(matched[16:48, 16:48].astype(int).mean((0, 1)) - (40, 160, 220)).max() < 8


@pytest.fixture(scope="module")
def source_and_target():
    """Source: the astronaut (strong texture); target: a smooth colour ramp, so every structure
    inside the swapped face must come from the source. The source face is the target's moved by a
    known similarity (rotated 15 degrees, scaled 1.4, shifted)."""
    source = cv2.cvtColor(cv2.resize(skimage.data.astronaut(), (180, 180), interpolation=cv2.INTER_AREA),
                          cv2.COLOR_RGB2BGR)
    yy, xx = np.mgrid[0:128, 0:128]
    target = np.stack([60 + xx, 90 + yy // 2, 200 - xx // 2], axis=2).astype(np.uint8)
    to_source = cv2.getRotationMatrix2D((64, 64), 15, 1.4)
    to_source[:, 2] += (20, 10)
    return source, moved(FACE, to_source), target, to_source


def test_similarity_transform_recovers_a_known_one(source_and_target):
    _, source_points, _, to_source = source_and_target
    assert np.allclose(similarity_transform(FACE, source_points), to_source, atol=1e-3)


@pytest.mark.parametrize("color_transfer, min_correlation", [(False, 0.9), (True, 0.7)])
def test_swap_puts_the_source_face_in_and_leaves_the_rest(source_and_target, color_transfer, min_correlation):
    source, source_points, target, to_source = source_and_target
    out = swap_faces(source, source_points, target, FACE, color_transfer=color_transfer)
    assert out.shape == target.shape and out.dtype == np.uint8
    mask = landmark_face_mask(FACE, target.shape[:2])
    assert np.array_equal(out[mask == 0], target[mask == 0])
    aligned = cv2.warpAffine(source, cv2.invertAffineTransform(to_source), (128, 128))
    gray = [cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float64)[mask == 1] for img in (out, aligned, target)]
    to_source_face = np.corrcoef(gray[0], gray[1])[0, 1]
    to_target = np.corrcoef(gray[0], gray[2])[0, 1]
    assert to_source_face > min_correlation and to_source_face > to_target + 0.3, (to_source_face, to_target)


def test_colour_of_the_swapped_face_follows_the_target(source_and_target):
    source, source_points, target, _ = source_and_target
    inside = landmark_face_mask(FACE, target.shape[:2]) == 1
    matched = swap_faces(source, source_points, target, FACE)[inside].astype(float).mean(0)
    raw = swap_faces(source, source_points, target, FACE, color_transfer=False)[inside].astype(float).mean(0)
    goal = target[inside].astype(float).mean(0)
    # seamlessClone then shifts colours towards the mask's boundary, so the match is not exact
    assert np.abs(matched - goal).sum() < 0.7 * np.abs(raw - goal).sum(), (matched, raw, goal)


@pytest.mark.parametrize("offset", [(-60, 0), (0, 55), (70, 70), (-500, -500)])
def test_faces_at_or_beyond_the_border_do_not_crash(source_and_target, offset):
    source, source_points, target, _ = source_and_target
    out = swap_faces(source, source_points, target, FACE + offset)
    assert out.shape == target.shape and out.dtype == np.uint8
    if offset == (-500, -500):
        assert np.array_equal(out, target), "no face left in the image: target unchanged"
    else:
        assert not np.array_equal(out, target)


def test_source_face_partly_outside_its_image_is_not_reflected_in(source_and_target):
    source, source_points, target, _ = source_and_target
    half_out = source_points - (source_points[:, 0].mean(), 0)  # source face cut by its left border
    out = swap_faces(source, half_out, target, FACE, color_transfer=False)
    assert np.array_equal(out[:, :40], target[:, :40])


def test_generator_applies_its_settings(source_and_target):
    source, source_points, target, _ = source_and_target
    generator = LandmarkSwapGenerator(grow=0.8, color_transfer=False)
    assert np.array_equal(generator.swap(source, source_points, target, FACE),
                          swap_faces(source, source_points, target, FACE, grow=0.8, color_transfer=False))
