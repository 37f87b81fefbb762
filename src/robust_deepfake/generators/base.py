"""What a face generator is to the attacker and to the trainer.

Every generator the attacker targets is a `FaceGenerator`: differentiable, images in [-1, 1] of
shape (N, 3, H, W), one output per condition. Poisoning attacks it through `generate`, and fake
generation calls the same method, so the attacked model and the model that makes fakes are one.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import torch


class FaceGenerator(Protocol):
    """What poisoning and fake generation need of a generator."""

    image_size: int

    def conditions(self) -> Sequence[object]:
        """What the generator can be asked to produce: target identities (face swap) or target
        attribute vectors (StarGAN). A disruption attack sums its loss over all of them, since the
        attacker does not know which one the trainer will use."""
        ...

    def generate(self, images: torch.Tensor, condition: object) -> torch.Tensor:
        """Differentiable forward pass: (N, 3, H, W) in [-1, 1] -> same shape, in [-1, 1]."""
        ...
