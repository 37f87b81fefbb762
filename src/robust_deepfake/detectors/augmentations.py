"""Training augmentations of the detector (torchvision.transforms.v2, on uint8 CHW tensors).

The "strong" set is the adversarial-detector seed's: horizontal flip, JPEG quality 60-100
(p 0.5), Gaussian noise (p 0.1) and Gaussian blur with kernel 3 (p 0.05). JPEG runs first, on
uint8 pixels, as a real re-compression does; noise and blur then work on floats in [0, 1].
torchvision v2 was chosen over albumentations because it works on tensors in the data loader
without a NumPy round trip and is already a dependency. Randomness comes from torch's generator,
which `seeding.seed_everything` seeds, so an epoch's augmentations are reproducible.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

AUGMENTATIONS = ("none", "flip", "strong")


def detector_augmentations(name: str) -> v2.Compose:
    """uint8 (3, H, W) -> float (3, H, W) in [0, 1], augmented as `name` says."""
    to_float = [v2.ToDtype(torch.float32, scale=True)]
    if name == "none":
        return v2.Compose(to_float)
    if name == "flip":
        return v2.Compose([v2.RandomHorizontalFlip(p=0.5), *to_float])
    if name == "strong":
        return v2.Compose([
            v2.RandomHorizontalFlip(p=0.5),
            v2.RandomApply([v2.JPEG(quality=(60, 100))], p=0.5),
            *to_float,
            v2.RandomApply([v2.GaussianNoise(mean=0.0, sigma=0.05, clip=True)], p=0.1),
            v2.RandomApply([v2.GaussianBlur(kernel_size=3)], p=0.05),
        ])
    raise ValueError(f"unknown augmentation set {name!r}; known: {AUGMENTATIONS}")
