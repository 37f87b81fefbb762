"""The one home of the conversions between 8-bit images and tensors.

Two tensor ranges meet here: the generators and purifiers work on RGB in [-1, 1] ("signed", as the
reference systems and diffusers do), the detectors on RGB in [0, 1] ("unit", so that an attack
budget of 1/255 is one grey level). Files are 8-bit BGR, OpenCV's order (`images` reads them).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from robust_deepfake.images import read_rgb


def bgr_to_signed(images_bgr: np.ndarray | Sequence[np.ndarray], device="cpu") -> torch.Tensor:
    """(N, H, W, 3) uint8 BGR -> (N, 3, H, W) float RGB in [-1, 1]: a generator's or purifier's input."""
    rgb = torch.from_numpy(np.ascontiguousarray(np.stack(images_bgr)[..., ::-1])).to(device)
    return rgb.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def signed_to_bgr(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) RGB in [-1, 1] -> (N, H, W, 3) uint8 BGR, rounded to the nearest level: the
    inverse of `bgr_to_signed`, i.e. the images as they would be written to disk."""
    rgb = ((images.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return np.ascontiguousarray(rgb.permute(0, 2, 3, 1).numpy()[..., ::-1])


def rgb_to_signed(faces: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """RGB uint8 (H, W, 3) crops -> (N, 3, size, size) float32 in [-1, 1] (area filter when
    shrinking, cubic when enlarging, as cropping does)."""
    batch = []
    for face in faces:
        face = np.asarray(face)
        if face.dtype != np.uint8 or face.ndim != 3 or face.shape[2] != 3:
            raise ValueError(f"expected an RGB uint8 (H, W, 3) face, got {face.dtype} {face.shape}")
        if face.shape[:2] != (size, size):
            shrink = max(face.shape[:2]) > size
            face = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        batch.append(face)
    stacked = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float()
    return stacked / 127.5 - 1.0


def signed_to_rgb(image: torch.Tensor) -> np.ndarray:
    """One image (3, H, W) or (1, 3, H, W) in [-1, 1] -> RGB uint8 (H, W, 3)."""
    image = image.detach().float().cpu()
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected one (3, H, W) image, got shape {tuple(image.shape)}")
    array = ((image.clamp(-1, 1) + 1.0) * 127.5).round().byte().permute(1, 2, 0).numpy()
    return np.ascontiguousarray(array)


def read_unit(paths: Sequence[str | Path], size: int | None = None) -> torch.Tensor:
    """The images at `paths` (of one size, or resized to `size` as `to_rgb` does) as a detector
    batch: (N, 3, H, W) RGB in [0, 1]."""
    return rgb_to_unit([read_rgb(path, size) for path in paths])


def rgb_to_unit(images_rgb: Sequence[np.ndarray], device="cpu") -> torch.Tensor:
    """RGB uint8 (H, W, 3) images of one size -> (N, 3, H, W) float in [0, 1]: a detector's input."""
    return torch.from_numpy(np.stack(images_rgb)).permute(0, 3, 1, 2).float().div(255).to(device)
