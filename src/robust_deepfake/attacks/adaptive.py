"""An attacker who knows the defence: poisoning optimised through the purifier it will meet.

The plain poison maximises the disruption of G(x + d); a defender who purifies first makes fakes
from G(P(x + d)), and the purification figures say how much of the disruption survives P. An
adaptive attacker (Athalye et al., *Obfuscated Gradients Give a False Sense of Security*, 2018;
as robust evaluations of DiffPure do) maximises the disruption of G(P(x + d)) instead:

* **EOT** (expectation over transformation): a random purifier (DiffPure's noise) is drawn afresh
  for every sample, and the loss is averaged over `samples` draws per attack step;
* **gradients**: exact where the purifier is differentiable in torch: MagNet's autoencoders, and
  the diffusion purifiers through every denoising step of their sampler (the full gradient of
  robust evaluations of DiffPure; with the DDIM sampler that is `ddim_steps` UNet evaluations to
  backpropagate, with the DDPM one t* of them); straight-through elsewhere (BPDA with the
  identity: the forward pass is the real purifier, the backward pass treats it as x -> x), which
  covers the 8-bit baselines (JPEG, median, bit depth), whose rounding has no useful gradient.

The disruption is still measured against G(x) of the clean face, as for the plain poison, so the
purification stage's `prop_dist` of G(purified) reads the same for both attackers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from robust_deepfake.attacks.disruption import disruption_loss
from robust_deepfake.defences.purifiers import purify
from robust_deepfake.generators.base import FaceGenerator
from robust_deepfake.registry import DEFENCES

Purifier = Callable[[torch.Tensor], torch.Tensor]


def straight_through(x: torch.Tensor, purified: torch.Tensor) -> torch.Tensor:
    """`purified` in the forward pass, the identity's gradient in the backward pass (BPDA)."""
    return x + (purified - x).detach()


def identity(x: torch.Tensor) -> torch.Tensor:
    """No purification: the plain attacker's view, and a defence that purifies nothing."""
    return x


def anticipated_purifier(purifier: str, settings: Mapping[str, Any], model: Mapping[str, Any] | None,
                         seed: int) -> Purifier:
    """Purifier `purifier` (a defence's, `registry.purifier_of`) as the attacker runs it inside
    the attack: fresh randomness at every call (seeded once, so a poisoning job is reproducible),
    gradients as the module docstring says."""
    if purifier == "none":
        return identity
    differentiable = DEFENCES[purifier].differentiable
    rng = torch.Generator().manual_seed(seed)

    def through(x: torch.Tensor) -> torch.Tensor:
        if differentiable:
            return purify(purifier, x, settings, model, rng)[0]
        with torch.no_grad():
            purified, _ = purify(purifier, x.detach(), settings, model, rng)
        return straight_through(x, purified)

    return through


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
