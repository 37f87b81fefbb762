"""DeeperForensics-1.0 distortions: each kind against its level-1 and level-5 table parameter,
the block-wise count rule, determinism, shapes, and argument checks. Small synthetic crops only,
so the file runs in a couple of seconds."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from robust_deepfake.attacks import distortions as D
from robust_deepfake.attacks.distortions import DISTORTIONS, block_count, distort, distort_video


def face_like(height: int = 64, width: int = 64, seed: int = 1) -> np.ndarray:
    """A colourful crop with smooth gradients, edges, texture and mild sensor noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    b = 128 + 80 * np.sin(x / 5) * np.cos(y / 7)
    g = 100 + 0.6 * x + 20 * np.sin((x + y) / 3)
    r = 60 + 0.8 * y + 30 * ((x // 8 + y // 8) % 2)
    noise = np.random.default_rng(seed).normal(0, 6, (height, width, 3))
    return np.clip(np.stack([b, g, r], -1) + noise, 0, 255).astype(np.uint8)


def chroma(image: np.ndarray) -> np.ndarray:
    """Cr, Cb minus their neutral value, per pixel (BT.601 full range, as cv2)."""
    return cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb)[..., 1:].astype(np.float64) - 128


def luma(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image.astype(np.float32) / 255, cv2.COLOR_BGR2YCrCb)[..., 0]


def test_table_matches_reference():
    assert list(DISTORTIONS) == ["CS", "CC", "BW", "GNC", "GB", "JPEG", "VC"]
    assert set(D.DISTORTION_NAMES) == set(DISTORTIONS)
    assert DISTORTIONS["GNC"] == (0.001, 0.002, 0.005, 0.01, 0.05)
    assert DISTORTIONS["VC"] == (30, 32, 35, 38, 40)
    assert all(len(params) == 5 for params in DISTORTIONS.values())
    assert D.level_param("GB", 5) == 21 and D.level_param("JPEG", 1) == 2


@pytest.mark.parametrize("kind", list(DISTORTIONS))
def test_shape_dtype_preserved_and_input_untouched(kind):
    image = face_like(63, 65)  # odd sizes: VC must pad for yuv420p and crop back
    before = image.copy()
    for level in (1, 5):
        out = distort(image, kind, level, rng=0)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert not np.array_equal(out, image)
    np.testing.assert_array_equal(image, before)


def test_cs_level5_is_grey_with_luma_kept_and_level1_keeps_40pct_chroma():
    image = face_like()
    grey = distort(image, "CS", 5, rng=0).astype(int)
    assert np.abs(grey[..., 0] - grey[..., 1]).max() <= 1
    assert np.abs(grey[..., 1] - grey[..., 2]).max() <= 1
    assert np.abs(luma(grey.astype(np.uint8)) - luma(image)).max() <= 1.5 / 255
    c_in, c_out = chroma(image), chroma(distort(image, "CS", 1, rng=0))
    ratio = np.linalg.norm(c_out) / np.linalg.norm(c_in)
    assert ratio == pytest.approx(0.4, abs=0.01)


@pytest.mark.parametrize("level, factor", [(1, 0.85), (5, 0.35)])
def test_cc_scales_intensities_by_factor(level, factor):
    image = face_like()
    out = distort(image, "CC", level, rng=0).astype(np.float64)
    assert out.std() / image.std() == pytest.approx(factor, rel=0.01)
    assert np.abs(out - image * factor).max() <= 0.5 + 1e-6  # rounded, not truncated


@pytest.mark.parametrize("level", [1, 5])
def test_gnc_noise_variance_on_mid_grey(level):
    variance = DISTORTIONS["GNC"][level - 1]
    grey = np.full((256, 256, 3), 128, np.uint8)
    out = distort(grey, "GNC", level, rng=0)
    ycrcb = cv2.cvtColor(out.astype(np.float32) / 255, cv2.COLOR_BGR2YCrCb).reshape(-1, 3)
    measured = ycrcb.var(axis=0)
    if level == 1:  # no clipping at this level: every component carries the table variance
        np.testing.assert_allclose(measured, variance, rtol=0.08)
    else:  # BGR values swing +-0.45 around 0.5 and clip, which removes part of the variance
        assert 0.6 * variance < measured[0] <= 1.02 * variance
        assert (measured > 10 * DISTORTIONS["GNC"][0]).all()


@pytest.mark.parametrize("level, kernel", [(1, 7), (5, 21)])
def test_gb_is_cv2_gaussian_blur(level, kernel):
    image = face_like()
    expected = cv2.GaussianBlur(image, (kernel, kernel), kernel / 6)
    np.testing.assert_array_equal(distort(image, "GB", level, rng=0), expected)


def test_bw_count_rule():
    assert [block_count(128, 128, lv) for lv in (1, 5)] == [4, 20]  # 16 and 80, by area / 4
    assert [block_count(64, 64, lv) for lv in range(1, 6)] == [1, 2, 3, 4, 5]
    assert [block_count(32, 40, lv) for lv in range(1, 6)] == [1, 2, 3, 4, 5]  # floor of `level`
    for side in (256, 300, 512, 1080):  # the reference's own count wherever it is non-zero
        for level in (1, 5):
            assert block_count(side, 1920, level) == side // 256 * DISTORTIONS["BW"][level - 1]
    counts = [block_count(200, 200, lv) for lv in range(1, 6)]
    assert counts == sorted(set(counts))


@pytest.mark.parametrize("level", [1, 5])
def test_bw_places_counted_8px_grey_blocks_on_128px_crop(level):
    black = np.zeros((128, 128, 3), np.uint8)
    out = distort(black, "BW", level, rng=3)
    mask = np.all(out == 128, axis=-1)
    assert np.all((out == 0) | (out == 128))
    area, count = int(mask.sum()), block_count(128, 128, level)
    assert 64 <= area <= count * 64  # blocks may overlap, as in the reference
    if level == 5:
        assert area > 8 * 64
    # every grey pixel lies in a fully grey 8 x 8 block: opening with an 8 x 8 square keeps the mask
    kernel = np.ones((8, 8), np.uint8)
    opened = cv2.dilate(cv2.erode(mask.astype(np.uint8), kernel, anchor=(0, 0)), kernel, anchor=(7, 7))
    np.testing.assert_array_equal(opened.astype(bool), mask)


def test_jpeg_is_down_then_up_resize_by_factor():
    image = face_like()
    expected = cv2.resize(cv2.resize(image, (32, 32)), (64, 64))  # level 1: factor 2
    np.testing.assert_array_equal(distort(image, "JPEG", 1, rng=0), expected)
    psnr = [cv2.PSNR(image, distort(image, "JPEG", lv, rng=0)) for lv in (1, 5)]
    assert psnr[0] > psnr[1] + 2


def test_vc_degrades_with_crf_and_keeps_colours():
    image = face_like()
    psnr = [cv2.PSNR(image, distort(image, "VC", lv, rng=0)) for lv in (1, 5)]
    assert 22 < psnr[1] < psnr[0] - 1  # CRF 40 worse than CRF 30, both still the same picture
    # colour order survives the round trip (a BGR/RGB swap would move channel means by ~40)
    out = distort(image, "VC", 1, rng=0)
    np.testing.assert_allclose(out.mean(axis=(0, 1)), image.mean(axis=(0, 1)), atol=3)


def test_distort_video_encodes_frames_together():
    frames = [face_like(seed=s) for s in range(4)]
    out = distort_video(frames, "VC", 3, rng=0)
    assert len(out) == 4 and all(o.shape == f.shape and o.dtype == np.uint8 for o, f in zip(out, frames))
    assert all(cv2.PSNR(f, o) > 22 for f, o in zip(frames, out))
    again = distort_video(frames, "VC", 3, rng=0)
    assert all(np.array_equal(a, b) for a, b in zip(out, again))
    with pytest.raises(ValueError, match="same shape"):
        distort_video([frames[0], face_like(32, 32)], "VC", 1, rng=0)


def test_distort_video_other_kinds_go_frame_by_frame_from_one_rng():
    frames = [face_like()] * 3
    rng = np.random.default_rng(5)
    out = distort_video(frames, "GNC", 2, rng=5)
    expected = [distort(f, "GNC", 2, rng) for f in frames]
    assert all(np.array_equal(a, b) for a, b in zip(out, expected))
    assert not np.array_equal(out[0], out[1])  # fresh noise each frame, as in the reference
    assert distort_video([], "GB", 1, rng=0) == []


@pytest.mark.parametrize("kind", ["BW", "GNC"])
def test_random_kinds_are_deterministic_in_the_seed(kind):
    image = face_like()
    a = distort(image, kind, 3, rng=np.random.default_rng(7))
    b = distort(image, kind, 3, rng=np.random.default_rng(7))
    c = distort(image, kind, 3, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    "kind, level", [("XX", 1), ("cs", 1), ("CS", 0), ("CS", 6), ("GB", 2.0), ("GB", True)]
)
def test_bad_kind_or_level_raise(kind, level):
    with pytest.raises(ValueError):
        distort(face_like(), kind, level, rng=0)


def test_bad_image_raises():
    with pytest.raises(ValueError, match="uint8 BGR"):
        distort(face_like().astype(np.float32), "GB", 1, rng=0)
    with pytest.raises(ValueError, match="uint8 BGR"):
        distort(face_like()[..., 0], "GB", 1, rng=0)


def test_missing_libx264_is_named(monkeypatch):
    import av

    monkeypatch.setattr(av, "codecs_available", set(av.codecs_available) - {"libx264"})
    with pytest.raises(RuntimeError, match="libx264"):
        distort(face_like(), "VC", 1, rng=0)
