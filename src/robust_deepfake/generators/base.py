"""What a face generator is to the attacker and to the trainer.

Every generator the attacker targets is a `FaceGenerator`: differentiable, images in [-1, 1] of
shape (N, 3, H, W), one output per condition. Poisoning attacks it through `generate`, and fake
generation calls the same method, so the attacked model and the model that makes fakes are one.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import pandas as pd
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


def for_faces(generator: FaceGenerator, faces: pd.DataFrame) -> FaceGenerator:
    """The generator as it applies to these faces (one batch, in order). A generator whose targets
    depend on each face's own attributes (StarGAN: a hair-colour target is the only hair colour
    set, other attributes are flipped from the face's own) binds them with its `for_faces`; the
    others apply alike to every face and come back unchanged. Poisoning, the purification measures
    and fake generation all go through here, so the attacked, measured and used targets are one."""
    bind = getattr(generator, "for_faces", None)
    return bind(faces) if bind is not None else generator
