"""L-inf bounded attacks on image batches, for any differentiable loss.

One module serves both sides of the pipeline: poisoning maximises a rng's disruption loss
(disruption.py), evasion later maximises a detector's error. An attack therefore sees only a batch
`x` in a valid range [lo, hi] (default [-1, 1], the generators' and detectors' input range) and a
`loss_fn(x_adv)` returning a per-sample loss (N,) or a scalar, which it MAXIMISES; per-sample
losses are summed before differentiation, which leaves each sample's gradient unchanged because
the samples of a batch are independent (models in eval mode).

Every attack ends with `project`, the one place that enforces both constraints: the perturbation
stays inside the eps-ball around `x` and the image inside [lo, hi]. PGD updates the input at every
step (the detector seed code recomputes the gradient at the clean input each time, which makes its
"PGD" a single FGSM step repeated; here the iterate is the only thing the gradient is taken at).

Randomness (PGD's random start, Gaussian noise) comes only from an explicit, seeded
`torch.Generator`; noise is drawn on the rng's device and then moved to `x`'s, so a CPU and a
GPU run start from the same point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

LossFn = Callable[[torch.Tensor], torch.Tensor]

class AttackResult(NamedTuple):
    """The adversarial batch and the summed loss at every iterate x_0 .. x_K (x_K = x_adv), so a
    caller can check that the loss rose; empty for attacks that use no loss (Gaussian noise)."""

    x_adv: torch.Tensor
    losses: list[float]

def project(x_adv: torch.Tensor, x: torch.Tensor, epsilon: float, lo: float = -1.0, hi: float = 1.0) -> torch.Tensor:
    """Clip the perturbation to the eps-ball around `x`, then the image to [lo, hi].

    Clipping to the range after the ball keeps the ball: for `x` inside [lo, hi], clamping moves a
    value towards the range and hence never further from `x` than it was."""
    delta = (x_adv - x).clamp(-epsilon, epsilon)
    return (x + delta).clamp(lo, hi)

def pgd(x: torch.Tensor, loss_fn: LossFn, epsilon: float, steps: int, step_size: float, random_start: bool = True,
        rng: torch.Generator | None = None, lo: float = -1.0, hi: float = 1.0) -> AttackResult:
    """Projected gradient ascent (Madry et al.): x_{k+1} = project(x_k + step_size * sign(grad loss(x_k))).

    With `random_start` the first iterate is uniform in the eps-ball (needs a seeded `rng`,
    so runs are reproducible). Gradients are taken with respect to the input only, so model
    parameters accumulate no `.grad`. Returns the last iterate and the loss at every iterate
    (steps + 1 values: one extra forward pass evaluates the returned image)."""
    _check_budget(x, epsilon, lo, hi)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    x = x.detach()
    if random_start:
        noise = _seeded_noise(torch.rand, x, rng, "pgd's random start")
        x_k = project(x + (2 * noise - 1) * epsilon, x, epsilon, lo, hi)
    else:
        x_k = x.clone()

    losses = []
    for _ in range(steps):
        x_k.requires_grad_(True)
        with torch.enable_grad():  # also inside a caller's no_grad block
            loss = loss_fn(x_k).sum()
            (grad,) = torch.autograd.grad(loss, x_k)
        losses.append(float(loss.detach()))
        x_k = project(x_k.detach() + step_size * grad.sign(), x, epsilon, lo, hi)
    with torch.no_grad():
        losses.append(float(loss_fn(x_k).sum()))
    return AttackResult(x_k, losses)

def bim(x: torch.Tensor, loss_fn: LossFn, epsilon: float, steps: int, step_size: float,
        lo: float = -1.0, hi: float = 1.0) -> AttackResult:
    """Basic iterative method (I-FGSM, Kurakin et al.): PGD from the clean image, deterministic."""
    return pgd(x, loss_fn, epsilon, steps, step_size, random_start=False, lo=lo, hi=hi)

def fgsm(x: torch.Tensor, loss_fn: LossFn, epsilon: float, lo: float = -1.0, hi: float = 1.0) -> AttackResult:
    """Fast gradient sign method (Goodfellow et al.): one signed step of size eps from the clean image."""
    return pgd(x, loss_fn, epsilon, steps=1, step_size=epsilon, random_start=False, lo=lo, hi=hi)

def gaussian_noise(x: torch.Tensor, epsilon: float, rng: torch.Generator,
                   lo: float = -1.0, hi: float = 1.0) -> AttackResult:
    """The no-gradient baseline: Gaussian noise of the same L-inf size as the attacks.

    Each image's noise n ~ N(0, 1) is scaled to delta = eps * n / max|n|, i.e. sigma is chosen per
    image so that max|delta| = eps exactly: the comparison with an attack at the same eps then
    isolates the effect of the gradient. Range clipping can only shrink delta at pixels that
    were already near lo or hi."""
    _check_budget(x, epsilon, lo, hi)
    x = x.detach()
    noise = _seeded_noise(torch.randn, x, rng, "gaussian noise")
    peak = noise.abs().flatten(1).amax(dim=1).clamp_min(torch.finfo(x.dtype).tiny)
    delta = epsilon * noise / peak.view(-1, *([1] * (x.dim() - 1)))
    return AttackResult(project(x + delta, x, epsilon, lo, hi), [])

def _seeded_noise(sampler: Callable[..., torch.Tensor], x: torch.Tensor, rng: torch.Generator | None,
                  who: str) -> torch.Tensor:
    """Noise shaped like `x` from `sampler` (torch.rand / torch.randn), drawn on the rng's
    device and moved to x's; refuses to fall back on torch's hidden global rng."""
    if rng is None:
        raise ValueError(f"{who} needs an explicit seeded torch.Generator (reproducibility)")
    return sampler(x.shape, generator=rng, device=rng.device, dtype=x.dtype).to(x.device)

def _check_budget(x: torch.Tensor, epsilon: float, lo: float, hi: float) -> None:
    """The two constraints can only both hold for a clean input inside the range and eps >= 0."""
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    if x.numel() and (float(x.min()) < lo or float(x.max()) > hi):
        raise ValueError(f"input values [{float(x.min()):.4g}, {float(x.max()):.4g}] lie outside the valid "
                         f"range [{lo}, {hi}]")

# name -> attack with one call shape (x, loss_fn, epsilon, steps, step_size, rng, lo, hi);
# each ignores what it does not use (FGSM: steps and step size; BIM and FGSM: the rng;
# Gaussian noise: the loss).
ATTACKS: dict[str, Callable[..., AttackResult]] = {
    "pgd": lambda x, loss_fn, epsilon, steps, step_size, rng, lo, hi:
        pgd(x, loss_fn, epsilon, steps, step_size, True, rng, lo, hi),
    "bim": lambda x, loss_fn, epsilon, steps, step_size, rng, lo, hi:
        bim(x, loss_fn, epsilon, steps, step_size, lo, hi),
    "fgsm": lambda x, loss_fn, epsilon, steps, step_size, rng, lo, hi:
        fgsm(x, loss_fn, epsilon, lo, hi),
    "gaussian": lambda x, loss_fn, epsilon, steps, step_size, rng, lo, hi:
        gaussian_noise(x, epsilon, rng, lo, hi),
}

def run_attack(name: str, x: torch.Tensor, loss_fn: LossFn, epsilon: float, steps: int, step_size: float,
               rng: torch.Generator | None = None, lo: float = -1.0, hi: float = 1.0) -> AttackResult:
    """Run the attack a config names (`ATTACKS`); pgd and gaussian need the seeded `rng`."""
    try:
        attack = ATTACKS[name]
    except KeyError:
        raise ValueError(f"unknown attack {name!r}; known: {sorted(ATTACKS)}") from None
    return attack(x, loss_fn, epsilon, steps, step_size, rng, lo, hi)
