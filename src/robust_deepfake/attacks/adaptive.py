"""An attacker who knows the defence: poisoning optimised through the purifier it will meet.

The plain poison maximises the disruption of G(x + d); a defender who purifies first makes fakes
from G(P(x + d)), and the purification figures say how much of the disruption survives P. An
adaptive attacker (Athalye et al., *Obfuscated Gradients Give a False Sense of Security*, 2018;
as robust evaluations of DiffPure do) maximises the disruption of G(P(x + d)) instead:

* **EOT** (expectation over transformation): a random purifier (DiffPure's noise) is drawn afresh
  for every sample, and the loss is averaged over `samples` draws per attack step;
* **gradients** through the purifier: exact where it is differentiable, straight-through (BPDA)
  elsewhere.

The attack sees the purifier only as a function of the images (`Purifier`); the defence that
knows how to run each purifier that way, with fresh randomness and gradients, is
`defences.anticipated.anticipated_purifier`.

The disruption is still measured against G(x) of the clean face, as for the plain poison, so the
purification stage's `prop_dist` of G(purified) reads the same for both attackers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from robust_deepfake.attacks.disruption import disruption_loss
from robust_deepfake.generators.base import FaceGenerator

Purifier = Callable[[torch.Tensor], torch.Tensor]


def identity(x: torch.Tensor) -> torch.Tensor:
    """No purification: the plain attacker's view, and a defence that purifies nothing."""
    return x


def eot_disruption_loss(generator: FaceGenerator, purifier: Purifier, x_adv: torch.Tensor,
                        clean_outputs: Mapping[object, torch.Tensor], kind: str, samples: int) -> torch.Tensor:
    """Per-image disruption of G(P(x_adv)) against `clean_outputs` (G of the clean faces),
    averaged over `samples` draws of the purifier: the loss the adaptive attacker maximises."""
    if samples < 1:
        raise ValueError(f"EOT needs at least one sample, got {samples}")
    total = x_adv.new_zeros(x_adv.shape[0])
    for _ in range(samples):
        total = total + disruption_loss(generator, purifier(x_adv), clean_outputs, kind)
    return total / samples
