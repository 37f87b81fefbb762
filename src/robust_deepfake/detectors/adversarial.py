"""Adversarial training of a detector: every batch attacked against the model as it is, the loss
mixing clean and adversarial images, and the Lipschitz penalty of the adversarially robust
detector reference (psi * mean(|d sum F(x) / dx|^z) on the adversarial images). The attacks update
their iterate at every step, in pixel space, clamped to [0, 1] (detectors/network.py explains why).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robust_deepfake.attacks.linf import run_attack
from robust_deepfake.detectors.network import DeepfakeDetector



def per_sample_bce(model: DeepfakeDetector, labels: torch.Tensor):
    """The loss an evasion attack maximises: the detector's BCE on the true labels, per image."""
    return lambda pixels: F.binary_cross_entropy_with_logits(model(pixels), labels, reduction="none")


def adversarial_examples(model: DeepfakeDetector, pixels: torch.Tensor, labels: torch.Tensor, attack: str,
                         settings: dict, rng: torch.Generator) -> torch.Tensor:
    """Attack the batch against the model as it is now. BatchNorm is put in eval mode while
    attacking so that the attack's forward passes do not move its running statistics."""
    was_training = model.training
    model.eval()
    try:
        result = run_attack(attack, pixels, per_sample_bce(model, labels), settings["epsilon"], settings["steps"],
                            settings["step_size"], rng=rng, lo=0.0, hi=1.0)
    finally:
        model.train(was_training)
    return result.x_adv.detach()


def lipschitz_penalty(model: DeepfakeDetector, pixels: torch.Tensor, z: float) -> torch.Tensor:
    """mean(|d sum F(x) / dx|^z), differentiable in the weights (create_graph), as the robust-detector
    reference's penalty: it flattens the logit around the training images."""
    pixels = pixels.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(pixels).sum(), pixels, create_graph=True)
    return grad.abs().pow(z).mean()


def batch_loss(model: DeepfakeDetector, pixels: torch.Tensor, labels: torch.Tensor, attack: str | None,
               settings: dict, rng: torch.Generator) -> torch.Tensor:
    """The detector's own training loss (`DeepfakeDetector.training_loss`) on the clean batch
    (`attack` None), or the adversarial training loss with `attack`, the same loss on both parts."""
    if attack is None:
        return model.training_loss(pixels, labels)
    adversarial = adversarial_examples(model, pixels, labels, attack, settings, rng)
    w = settings["clean_weight"]
    loss = (1 - w) * model.training_loss(adversarial, labels)
    if w > 0:
        loss = loss + w * model.training_loss(pixels, labels)
    if settings["lipschitz_psi"] > 0:
        loss = loss + settings["lipschitz_psi"] * lipschitz_penalty(model, adversarial, settings["lipschitz_z"])
    return loss
