"""A defence's purification as the adaptive attacker runs it inside its attack (`attacks.adaptive`).

The attacker backpropagates through P to optimise the poison against G(P(x + d)), so it needs P
as a function of the images with two properties the defender's own purification does not have:

* **fresh randomness at every call** (seeded once, so a poisoning job is reproducible), for the
  expectation over the purifier's noise (EOT);
* **gradients**: exact where the purifier is differentiable in torch: MagNet's autoencoders, and
  the diffusion purifiers through every denoising step of their sampler (the full gradient of
  robust evaluations of DiffPure; with the DDIM sampler that is `ddim_steps` UNet evaluations to
  backpropagate, with the DDPM one t* of them); straight-through elsewhere (BPDA with the
  identity: the forward pass is the real purifier, the backward pass treats it as x -> x), which
  covers the 8-bit baselines (JPEG, median, bit depth), whose rounding has no useful gradient.

It lives with the defences, not the attacks, because it knows each purifier (`purifiers.purify`,
the registry's `differentiable`); the attack sees only a function of the images.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from robust_deepfake.attacks.adaptive import Purifier, identity
from robust_deepfake.defences.purifiers import purify
from robust_deepfake.registry import DEFENCES


def straight_through(x: torch.Tensor, purified: torch.Tensor) -> torch.Tensor:
    """`purified` in the forward pass, the identity's gradient in the backward pass (BPDA)."""
    return x + (purified - x).detach()


def anticipated_purifier(purifier: str, settings: Mapping[str, Any], model: Mapping[str, Any] | None,
                         seed: int) -> Purifier:
    """Purifier `purifier` (a defence's, `registry.purifier_of`) as the attacker runs it inside
    the attack: fresh randomness at every call, gradients as the module docstring says."""
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
