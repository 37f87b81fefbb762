"""Reading the pipeline's image files (frames, face crops, purified faces, fakes).

Every stage reads images by path from a manifest; one reader keeps the failure the same
everywhere: an error naming the file and what is wrong with it, instead of OpenCV's silent None.
Files are 8-bit BGR, OpenCV's order; `tensors` turns them into the models' tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np


class MediaError(Exception):
    """A media file (image or video) that cannot give the wanted pixels; its message names the
    file and the problem, because it becomes the `error` text of the media's manifest row."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(str(path), reason)  # both args, so the error pickles across worker processes
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def read_image(path: str | Path) -> np.ndarray:
    """uint8 BGR (OpenCV's order; grey and RGBA files become 3 channels); raises MediaError."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "file not found")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise MediaError(path, "unreadable image")
    return image


def to_rgb(image_bgr: np.ndarray, size: int | None = None) -> np.ndarray:
    """uint8 RGB, resized to (size, size) with area interpolation (as a downscale should be) when
    `size` is given and differs. Training and evaluation both go through here, so a detector sees
    its test faces resized exactly as its training faces."""
    if size is not None and image_bgr.shape[:2] != (size, size):
        image_bgr = cv2.resize(image_bgr, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)


def read_rgb(path: str | Path, size: int | None = None) -> np.ndarray:
    """The image at `path` as `to_rgb` gives it."""
    return to_rgb(read_image(path), size)


def read_rgb_or_none(path) -> np.ndarray | None:
    """RGB uint8, or None for a missing path or an undecodable file: for stages that record such a
    frame as a row with an error instead of stopping."""
    if not isinstance(path, str) or not path:
        return None
    image = cv2.imread(path, cv2.IMREAD_COLOR)  # also turns grey and RGBA into 3 channels
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_images(paths: Sequence[str | Path]) -> np.ndarray:
    """Stack image files (8-bit BGR) into (N, H, W, 3) uint8; a missing file or an image of another
    size is an error naming the file."""
    images = []
    for path in paths:
        image = read_image(path)
        if images and image.shape != images[0].shape:
            raise ValueError(f"face crop {path} is {image.shape[1]}x{image.shape[0]}, others "
                             f"{images[0].shape[1]}x{images[0].shape[0]}: crops must share one size")
        images.append(image)
    return np.stack(images)
