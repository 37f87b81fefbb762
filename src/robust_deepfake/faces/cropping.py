"""Cutting the face out of a frame: the crop rule of the crop stage, of the whole-video distortions
and of `predict`. It is chosen so that crops are never distorted:

* the square's side is ``max(w, h) * (1 + margin)`` of the detected box, centred on the box;
* if that side is larger than the frame's shorter side, it becomes the shorter side;
* the square is then *shifted* (not clipped) to lie inside the frame.

The reference systems clip the square at the frame border instead, which yields a non-square region
that the final resize stretches; a detector could then learn border distortion as a cue. Shifting
keeps every crop square, at the cost of the face being off-centre near borders.

Pre-aligned datasets (CelebA's `img_align_celeba`) are cropped as the models trained on them
expect instead (`mode: center`): StarGAN's preprocessing, the central `center_size` square
(torchvision's `CenterCrop(178)`, its rounding) resized to the crop size. `mode: whole` keeps the
whole frame, resized to size x size, as the image-track winner's detector sees its input (its
`infer.py` resizes every image to 512 x 512, aspect ratio not kept: neither is it here). In both,
the detection still decides which images hold a face and gives the landmarks the later stages read.

What a detector was trained on (`DetectorInput`: the face detection's settings and the cut) is
written into its checkpoint, so that `robust-deepfake predict` finds and cuts faces in new media the
same way without restating the settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class DetectorInput:
    """How the faces a detector trained on were cut: the crop mode, the crop side, and the mode's
    own settings (the margin of `mtcnn` and the MTCNN settings that found the faces, config
    `faces.*`; the square of `center`)."""

    mode: str
    size: int
    margin: float | None = None
    center_size: int | None = None
    faces: dict | None = None


def square_box(box: Sequence[float], margin: float, frame_w: int, frame_h: int) -> tuple[int, int, int, int]:
    """The square crop region (x1, y1, x2, y2) in frame pixels, x2/y2 exclusive, for the rule in
    the module docstring: enlarged by `margin`, capped at the shorter frame side, shifted inside."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * (1.0 + margin)
    side_px = max(1, int(round(min(side, frame_w, frame_h))))
    left = int(round((x1 + x2) / 2 - side_px / 2))
    top = int(round((y1 + y2) / 2 - side_px / 2))
    left = min(max(left, 0), frame_w - side_px)
    top = min(max(top, 0), frame_h - side_px)
    return left, top, left + side_px, top + side_px


def center_box(side: int, frame_w: int, frame_h: int) -> tuple[int, int, int, int]:
    """The central side x side square (x1, y1, x2, y2), capped at the shorter frame side, placed
    as torchvision's CenterCrop places it, so crops match what StarGAN's official loader fed it."""
    side = min(side, frame_w, frame_h)
    left = int(round((frame_w - side) / 2.0))
    top = int(round((frame_h - side) / 2.0))
    return left, top, left + side, top + side


# crop mode -> the region (x1, y1, x2, y2) it cuts, from (box, margin, center_size, frame_w, frame_h)
CROP_MODES = {
    "mtcnn": lambda box, margin, center_size, w, h: square_box(box, margin, w, h),
    "center": lambda box, margin, center_size, w, h: center_box(center_size, w, h),
    "whole": lambda box, margin, center_size, w, h: (0, 0, w, h),
}


def crop_region(mode: str, box: Sequence[float], margin: float, center_size: int, frame_w: int,
                frame_h: int) -> tuple[int, int, int, int]:
    """The region a crop is cut from: the square around the detected box (`mtcnn`), the image's
    centre (`center`, pre-aligned datasets) or the whole frame (`whole`); module docstring."""
    if mode not in CROP_MODES:
        raise ValueError(f"unknown crop mode {mode!r}; known: {', '.join(CROP_MODES)}")
    return CROP_MODES[mode](box, margin, center_size, frame_w, frame_h)


def crop_face(image: np.ndarray, box: Sequence[float], landmarks: Sequence[float], margin: float,
              size: int, mode: str = "mtcnn",
              center_size: int = 178) -> tuple[np.ndarray, tuple[int, int, int, int], np.ndarray]:
    """Cut the crop's region (`crop_region`) and resize it to size x size; return the crop, its
    region in frame pixels and the 5 landmarks in crop pixels (flat x, y pairs, float32). The crop
    keeps the image's channel order (BGR or RGB alike: each channel is resized on its own).

    INTER_AREA when shrinking avoids aliasing; INTER_CUBIC when enlarging keeps edges sharper than
    bilinear. Landmarks use continuous coordinates: the region [x1, x2) maps onto [0, size), per
    axis (only `whole` has two scales)."""
    frame_h, frame_w = image.shape[:2]
    cx1, cy1, cx2, cy2 = crop_region(mode, box, margin, center_size, frame_w, frame_h)
    region = image[cy1:cy2, cx1:cx2]
    width, height = cx2 - cx1, cy2 - cy1
    if width == height == size:
        crop = region.copy()
    else:
        interpolation = cv2.INTER_AREA if width * height > size * size else cv2.INTER_CUBIC
        crop = cv2.resize(region, (size, size), interpolation=interpolation)
    points = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    scale = np.array([size / width, size / height], np.float32)
    crop_points = (points - np.array([cx1, cy1], np.float32)) * scale
    return crop, (cx1, cy1, cx2, cy2), crop_points.reshape(10).astype(np.float32)
