"""The spectrum detector of Durall et al., "Unmasking DeepFakes with simple features" (2019): the
azimuthally averaged log power spectrum of the grey image, then a linear classifier.

Generators leave their traces in the high frequencies (up-sampling, blending, the blur of a face
swap's small decoder), and averaging the 2-D power spectrum over rings of equal frequency turns
them into a short 1-D profile that a linear model separates. It is the classical reference of the
field and the floor a CNN must beat. Written in torch (torch.fft), so it is one more detector
backbone: it trains through the same stage and takes the same FGSM/PGD evasion and distortion
evaluation as the timm models (its features are differentiable in the pixels).

The profile's bins are standardised by a BatchNorm without learnable scale whose running mean and
variance are the cumulative average over all training batches (`momentum=None`): the features do
not move during training, so after one epoch these are the training set's statistics, exactly what
the logistic regression of the paper standardises with.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def radial_bins(size: int, bins: int) -> torch.Tensor:
    """(bins, size * size) averaging matrix: row k averages the power at the frequencies whose
    distance from the centre of the (shifted) spectrum falls in the k-th of `bins` equal rings up
    to the corner, as Durall et al.'s azimuthal average does."""
    freq = torch.fft.fftshift(torch.fft.fftfreq(size)) * size  # -size/2 .. size/2 - 1
    radius = torch.sqrt(freq[:, None] ** 2 + freq[None, :] ** 2).flatten()
    ring = torch.clamp((radius / (size / math.sqrt(2)) * bins).long(), max=bins - 1)
    matrix = torch.zeros(bins, size * size)
    matrix[ring, torch.arange(size * size)] = 1.0
    counts = matrix.sum(1, keepdim=True)
    if (counts == 0).any():
        raise ValueError(f"{bins} spectrum bins are too many for a {size} px image (some rings hold no frequency)")
    return matrix / counts


class SpectrumDetector(nn.Module):
    """Normalised pixels (N, 3, S, S) -> one logit per image (N, 1), as a timm model with
    `num_classes=1` gives it."""

    def __init__(self, image_size: int, bins: int = 32) -> None:
        super().__init__()
        self.register_buffer("rings", radial_bins(image_size, bins))
        self.register_buffer("grey", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1))
        self.standardise = nn.BatchNorm1d(bins, affine=False, momentum=None)
        self.head = nn.Linear(bins, 1)

    def profile(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, bins) azimuthally averaged log power spectrum of the grey images."""
        grey = (pixels * self.grey).sum(1)
        spectrum = torch.fft.fftshift(torch.fft.fft2(grey, norm="ortho"), dim=(-2, -1))
        power = spectrum.real ** 2 + spectrum.imag ** 2  # |F|^2, differentiable also where F = 0
        return torch.log(power + 1e-8).flatten(1) @ self.rings.T

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.standardise(self.profile(pixels)))
