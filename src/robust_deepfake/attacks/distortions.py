"""DeeperForensics-1.0 distortions (Jiang et al., CVPR 2020), applied to face crops for the detector
evaluation stage: seven kinds, five levels each, with the reference's level parameters
(``perturbation/add_distortion_to_video.py`` in EndlessSora/DeeperForensics-1.0).

Images are uint8 BGR arrays of shape ``(H, W, 3)``, as cv2 reads them; every distortion returns a
new array of the same shape and dtype and never changes its input. Real and fake faces go through
the same call (the caller does that). Randomness (noise, block positions) comes only from the
explicit ``rng`` argument (a ``numpy.random.Generator`` or an int seed), so a result is a function
of (image, kind, level, rng state).

What each kind does, and where it departs from the reference:

* ``CS`` colour saturation change, param = chroma factor 0.4 .. 0.0. The reference works in
  YCbCr, not HSV: it keeps luma Y and scales Cb and Cr about their neutral value by the factor.
  That equals ``Y + factor * (BGR - Y)`` per pixel, so level 5 (factor 0) gives a grey image
  with the original luma. (The reference's studio-range rescaling around cv2's float conversion
  cancels out; measured on its code, the two agree to one grey level.)
* ``CC`` colour contrast change, param = factor 0.85 .. 0.35 multiplying every intensity. The
  reference scales towards black, not about the mean, so brightness drops with contrast; kept.
* ``BW`` local block-wise, param = 16 .. 80: grey (128) 8 x 8 pixel blocks at uniformly random
  positions; blocks may overlap, as in the reference. Block count: see "Block-wise count" below.
* ``GNC`` white Gaussian noise in colour components, param = variance 0.001 .. 0.05: i.i.d.
  N(0, variance) added to each of Y, Cb and Cr of the image scaled to [0, 1] (full-range BT.601
  YCbCr, cv2's), then back to BGR and clipped to [0, 255]. The reference adds the same noise in
  YCbCr but, because its studio-range rescaling is applied to 0..255 values meant for [0, 1], the
  noise it actually leaves has variance (255/219)^2 = 1.36 x (Y) and (255/224)^2 = 1.30 x
  (chroma) the table value; here the table value is the variance on [0, 1] YCbCr, as the paper
  states it. In BGR the per-channel variance is larger (B = Y + 1.77 (Cb - 0.5) ...), and at
  level 5 clipping to [0, 255] removes part of it.
* ``GB`` Gaussian blur, param = kernel size 7 .. 21, sigma = kernel / 6:
  ``cv2.GaussianBlur(img, (k, k), k / 6)`` exactly, as in the reference.
* ``JPEG``: despite the name, the reference's "JPEG compression" is no JPEG codec: param 2 .. 6
  is a scale factor; the image is resized down to ``(H // param, W // param)`` and back up to
  ``(H, W)``, both with cv2's default bilinear interpolation (no antialiasing, as there). Kept so.
* ``VC`` video compression, param = H.264 CRF 30 .. 40. The reference re-encodes the whole video
  with ``ffmpeg -crf param`` (libx264, preset medium, yuv420p). Here frames are encoded with
  libx264 at that CRF (preset medium, one thread so that the result is reproducible) through
  PyAV codec contexts, in memory (no container, no file), and decoded back. yuv420p needs even
  sizes: an odd height or width is padded by one replicated row/column and cropped back after.
  A clip of several frames is encoded with x264's macroblock-tree rate control off
  (``mbtree=0``): with it on, the bundled libx264 gave 6 to 8 different encodings of the same
  demo clip in 12 runs of one process (its lookahead reads memory whose content depends on what
  ran before), which no seed can fix; with it off, one. mbtree only shifts bits between
  frames that are referenced more or less; CRF, preset, GOP and B-frames stay the reference's.
  A single frame (the per-crop mode) has nothing to look ahead to and is encoded as before.

Per image or per video: ``distort`` works on one image; for ``VC`` it encodes that image as a
one-frame video, i.e. one intra-coded frame, which shows block and ringing artefacts but none of
the inter-frame (P/B) ones. ``distort_video`` takes the crops of one video (same shape): ``VC``
encodes them together as one video, as the reference does; every other kind is applied frame by
frame, drawing from the one ``rng`` in frame order (so BW blocks move and GNC noise changes from
frame to frame, as in the reference, which draws anew for each frame).

Block-wise count. The reference places ``min(H, W) // 256 * param`` blocks, which is zero for any
crop under 256 px, so BW would do nothing to the 64 - 256 px crops evaluated here. Rule used,
with s = min(H, W):

* s >= 256: the reference's count, ``s // 256 * param``, unchanged (exactly the reference wherever
  it is defined);
* s < 256: ``max(level, round(param * (s / 256) ** 2))``, i.e. the reference's count on a 256 px
  image scaled by area, so the share of the face hidden by grey blocks is the same as the
  reference's at 256 px (level 1: 16 blocks of 64 px on 256^2, 1.6 %; level 5: 7.8 %, before
  overlaps). Both rules give ``param`` at s = 256, so the count is continuous there. Since every
  param is 16 x level, this is 4 x level blocks at 128 px and level blocks at 64 px; the floor of
  ``level`` blocks only binds below 64 px, where it keeps each level distinct and non-zero.

Blocks stay 8 x 8 pixels at every size (clipped only for an image smaller than 8 px): the
reference never scales them (a 1080p frame gets 8 px blocks too), and blocks scaled with the crop
would shrink to 2 px on a 64 px face, which is salt-and-pepper noise rather than occlusion. The
top-left corner is uniform over every position where the block fits; the reference's
``randint(0, W - 1 - 8)`` leaves out the last one, an off-by-one not kept.

Rounding: float results are rounded to the nearest integer and clipped to [0, 255]; the
reference truncates with ``astype(np.uint8)`` (half a grey level darker on average, and negative
values wrap around instead of clipping).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from types import MappingProxyType

import cv2
import numpy as np

__all__ = [
    "DISTORTIONS",
    "DISTORTION_NAMES",
    "KINDS",
    "LEVELS",
    "block_count",
    "distort",
    "distort_video",
    "level_param",
]

#: Level parameters of each distortion, levels 1 .. 5 (reference values, the larger the level
#: the stronger the distortion). Ordered as in the reference.
DISTORTIONS: Mapping[str, tuple] = MappingProxyType(
    {
        "CS": (0.4, 0.3, 0.2, 0.1, 0.0),  # chroma factor
        "CC": (0.85, 0.725, 0.6, 0.475, 0.35),  # intensity factor
        "BW": (16, 32, 48, 64, 80),  # 8 x 8 grey blocks per 256 px of short side
        "GNC": (0.001, 0.002, 0.005, 0.01, 0.05),  # noise variance on [0, 1] YCbCr
        "GB": (7, 9, 13, 17, 21),  # Gaussian kernel size, sigma = size / 6
        "JPEG": (2, 3, 4, 5, 6),  # down-then-up scale factor
        "VC": (30, 32, 35, 38, 40),  # H.264 (libx264) CRF
    }
)

#: Human-readable names, as the reference prints them.
DISTORTION_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "CS": "color saturation change",
        "CC": "color contrast change",
        "BW": "local block-wise",
        "GNC": "white Gaussian noise in color components",
        "GB": "Gaussian blur",
        "JPEG": "JPEG compression",
        "VC": "video compression",
    }
)

KINDS: tuple[str, ...] = tuple(DISTORTIONS)
LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)

_BLOCK = 8  # block side in pixels, the reference's
_BLOCK_VALUE = 128  # block grey level, the reference's
_REF_SIDE = 256  # the reference's count unit: blocks per 256 px of short side
_X264_PRESET = "medium"  # ffmpeg's default, which the reference's command line uses
_VC_FPS = 25  # nominal frame rate given to the encoder; CRF rate control barely depends on it


def level_param(kind: str, level: int):
    """The reference's parameter for ``kind`` at ``level`` (1 .. 5); ValueError if either is
    unknown, so that a typo in a config fails at once instead of evaluating something else."""
    if kind not in DISTORTIONS:
        raise ValueError(f"unknown distortion kind {kind!r}; expected one of {list(KINDS)}")
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or level not in LEVELS:
        raise ValueError(f"distortion level must be an int in 1..5, got {level!r}")
    return DISTORTIONS[kind][int(level) - 1]


def block_count(height: int, width: int, level: int) -> int:
    """Number of grey blocks BW places on a ``height x width`` image at ``level``: the
    reference's ``min(H, W) // 256 * param`` from 256 px up, its area-scaled version (at least
    ``level``) below, where the reference's count would be zero. See the module docstring."""
    param = level_param("BW", level)
    side = min(int(height), int(width))
    if side >= _REF_SIDE:
        return side // _REF_SIDE * param
    return max(int(level), int(round(param * (side / _REF_SIDE) ** 2)))


def distort(image_bgr: np.ndarray, kind: str, level: int, rng: np.random.Generator | int) -> np.ndarray:
    """Apply DeeperForensics-1.0 distortion ``kind`` ('CS', 'CC', 'BW', 'GNC', 'GB', 'JPEG',
    'VC') at ``level`` 1 .. 5 to one uint8 BGR image; returns a new uint8 array of the same shape.

    ``rng`` (Generator or int seed) supplies BW's block positions and GNC's noise; the other
    kinds are deterministic and do not draw from it. 'VC' encodes the image as a one-frame video;
    use :func:`distort_video` for the crops of a whole video."""
    param = level_param(kind, level)
    image = _check_image(image_bgr)
    rng = np.random.default_rng(rng)
    if kind == "VC":
        return _video_compression([image], param)[0]
    if kind == "BW":
        return _block_wise(image, block_count(*image.shape[:2], level), rng)
    return _PER_IMAGE[kind](image, param, rng)


def distort_video(
    frames: Sequence[np.ndarray], kind: str, level: int, rng: np.random.Generator | int
) -> list[np.ndarray]:
    """Apply ``kind`` at ``level`` to the crops of one video (uint8 BGR, all the same shape).

    'VC' encodes all frames as one H.264 video, so inter-frame artefacts appear as in the
    reference; every other kind goes frame by frame with :func:`distort`, all frames drawing in
    order from the one ``rng`` (fresh noise and block positions each frame, as the reference)."""
    param = level_param(kind, level)
    frames = [_check_image(f) for f in frames]
    if not frames:
        return []
    rng = np.random.default_rng(rng)
    if kind == "VC":
        if len({f.shape for f in frames}) > 1:
            raise ValueError("VC encodes frames as one video: all frames must have the same shape")
        return _video_compression(frames, param)
    return [distort(f, kind, level, rng) for f in frames]


# --- the distortions -------------------------------------------------------------------------


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f"expected a uint8 BGR image of shape (H, W, 3), got {image.dtype} {image.shape}")
    return image


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _color_saturation(image: np.ndarray, factor: float, rng) -> np.ndarray:
    # cv2's float conversion: Y in [0, 1], Cr/Cb centred on 0.5; scale chroma about its centre.
    ycrcb = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_BGR2YCrCb)
    ycrcb[..., 1:] = 0.5 + (ycrcb[..., 1:] - 0.5) * factor
    return _to_uint8(cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2BGR) * 255.0)


def _color_contrast(image: np.ndarray, factor: float, rng) -> np.ndarray:
    return _to_uint8(image.astype(np.float32) * factor)


def _block_wise(image: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    out = image.copy()
    height, width = image.shape[:2]
    bh, bw = min(_BLOCK, height), min(_BLOCK, width)
    ys = rng.integers(0, height - bh, size=count, endpoint=True)
    xs = rng.integers(0, width - bw, size=count, endpoint=True)
    for y, x in zip(ys, xs):
        out[y : y + bh, x : x + bw] = _BLOCK_VALUE
    return out


def _gaussian_noise_color(image: np.ndarray, variance: float, rng: np.random.Generator) -> np.ndarray:
    ycrcb = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_BGR2YCrCb)
    ycrcb += np.float32(np.sqrt(variance)) * rng.standard_normal(ycrcb.shape, dtype=np.float32)
    return _to_uint8(cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2BGR) * 255.0)


def _gaussian_blur(image: np.ndarray, kernel: int, rng) -> np.ndarray:
    return cv2.GaussianBlur(image, (kernel, kernel), kernel / 6.0)


def _jpeg_compression(image: np.ndarray, factor: int, rng) -> np.ndarray:
    height, width = image.shape[:2]
    small = cv2.resize(image, (max(1, width // factor), max(1, height // factor)))
    return cv2.resize(small, (width, height))


_PER_IMAGE = {
    "CS": _color_saturation,
    "CC": _color_contrast,
    "GNC": _gaussian_noise_color,
    "GB": _gaussian_blur,
    "JPEG": _jpeg_compression,
}


def _video_compression(frames: list[np.ndarray], crf: int) -> list[np.ndarray]:
    """Encode ``frames`` (same shape) with libx264 at ``crf`` and decode them back, in memory."""
    try:
        import av
    except ImportError as err:  # pragma: no cover - av is a declared dependency
        raise RuntimeError("VC distortion needs PyAV (`pip install av`) with libx264") from err
    if "libx264" not in av.codecs_available:
        raise RuntimeError(
            "VC distortion needs the libx264 encoder, which this PyAV build lacks "
            "(install a PyAV wheel or FFmpeg built with libx264)"
        )
    height, width = frames[0].shape[:2]
    pad_h, pad_w = height % 2, width % 2  # yuv420p needs even sizes

    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height = width + pad_w, height + pad_h
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = Fraction(1, _VC_FPS)
    encoder.framerate = Fraction(_VC_FPS, 1)
    encoder.thread_count = 1  # one thread: identical bytes on every run and machine
    encoder.options = {"crf": str(crf), "preset": _X264_PRESET}
    if len(frames) > 1:  # see the module docstring: the macroblock tree makes a clip's bytes vary
        encoder.options = {**encoder.options, "x264-params": "mbtree=0"}

    packets = []
    for index, frame in enumerate(frames):
        if pad_h or pad_w:
            frame = cv2.copyMakeBorder(frame, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")
        video_frame = video_frame.reformat(format="yuv420p")
        video_frame.pts = index
        video_frame.time_base = encoder.time_base
        packets.extend(encoder.encode(video_frame))
    packets.extend(encoder.encode(None))

    decoder = av.CodecContext.create("h264", "r")
    decoder.thread_count = 1
    decoded = []
    for packet in packets + [None]:
        for video_frame in decoder.decode(packet):
            decoded.append(video_frame.to_ndarray(format="bgr24")[:height, :width])
    if len(decoded) != len(frames):
        raise RuntimeError(f"H.264 round trip returned {len(decoded)} frames for {len(frames)}")
    return [np.ascontiguousarray(f) for f in decoded]
