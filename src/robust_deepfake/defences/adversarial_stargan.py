"""The adversarially trained StarGAN: Ruiz et al.'s (*Disrupting Deepfakes*) G+D adversarial
training of a trained StarGAN, and their blur variant.

Fine-tuning continues StarGAN's own training (`generators.stargan_training`, the official losses)
from the trained generator, with one change: in every step half of the batch reaches G disrupted,
by PGD against G's CURRENT weights (the attacker's loss, MSE(G(x + d, c), G(x, c)) for the step's
target labels c), so that the critic judges fakes made from disrupted inputs (G+D training) and
the cycle must still give back the clean image. The other half stays clean, so clean translations
keep their quality. The pipeline keeps no critic of the trained StarGAN (an official release
pairs `-G.ckpt` with a `-D.ckpt`, a CelebA run here only writes G), so a new critic first learns
alone for `critic_warmup` steps before G moves.

The blur variant (`blur_sigma` > 0) puts a fixed Gaussian blur in front of G (`InputBlur`, their
`AvgBlurGenerator` with a box filter) and fine-tunes through it: the attacker's gradients, too,
pass the blur, as their spread-spectrum evasion assumes.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from robust_deepfake.attacks.linf import pgd
from robust_deepfake.devices import module_device
from robust_deepfake.generators.stargan import InputBlur, StarGANFaceGenerator, StarGANGenerator
from robust_deepfake.generators.stargan_training import Disruption, StarGANTrainConfig, train_stargan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdversarialStarGANConfig:
    """The fine-tuning's settings: the attacker's budget (L-inf `epsilon`, `attack_steps` of
    `step_size`, on images in [-1, 1]), the training schedule and the blur (0: none)."""

    epsilon: float = 0.05
    attack_steps: int = 3
    step_size: float = 0.01
    steps: int = 200          # critic steps, as StarGAN's training counts them
    critic_warmup: int = 50
    batch_size: int = 16
    lr: float = 1e-4
    n_critic: int = 5
    blur_sigma: float = 0.0
    seed: int = 0


def half_disrupted(epsilon: float, attack_steps: int, step_size: float, seed: int) -> Disruption:
    """The disruption the fine-tuning feeds G: PGD against G's weights of this step on the first
    half of the batch (random start keyed by (seed, step), so a resumed run draws the same),
    returning the batch and the attacker's final MSE per image."""

    def disrupt(generator: StarGANGenerator, x: torch.Tensor, c: torch.Tensor, step: int):
        half = (len(x) + 1) // 2
        rng = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step, 7]).generate_state(1)[0]))
        with torch.no_grad():
            clean = generator(x[:half], c[:half])
        attack = pgd(x[:half], lambda z: (generator(z, c[:half]) - clean).pow(2).flatten(1).mean(1),
                     epsilon, attack_steps, step_size, rng=rng)
        return torch.cat([attack.x_adv.to(x.device), x[half:]]), attack.losses[-1] / half

    return disrupt


def with_input_blur(generator: StarGANGenerator, sigma: float) -> StarGANGenerator:
    """A copy of the generator with a Gaussian blur of `sigma` pixels in front of it."""
    blurred = copy.deepcopy(generator)
    blurred.blur = InputBlur.gaussian(sigma).to(module_device(generator))
    return blurred


def finetune_stargan_against_disruption(model: StarGANFaceGenerator, data: Dataset, config: AdversarialStarGANConfig,
                                        *, checkpoint_dir: str | Path | None = None, save_every: int = 50,
                                        device: torch.device | str = "cpu") -> tuple[StarGANFaceGenerator, list]:
    """Fine-tune a trained StarGAN on `data` ((image in [-1, 1], 0/1 labels) pairs, as training
    reads them) against disruption; return the new generator (the input stays as it was) and the
    per-step history, whose `attack_mse` is the attacker's MSE against the weights of that step."""
    if not 0 <= config.critic_warmup < config.steps:
        raise ValueError(f"critic_warmup must be in [0, steps): {config.critic_warmup} of {config.steps} steps "
                         "would never move the generator")
    generator = model.generator
    if config.blur_sigma > 0:
        generator = with_input_blur(generator, config.blur_sigma)
    train_config = StarGANTrainConfig(
        attributes=model.attributes, image_size=model.image_size, conv_dim=generator.conv_dim,
        repeat_num=generator.repeat_num,
        steps=config.steps, batch_size=config.batch_size, lr=config.lr, n_critic=config.n_critic,
        critic_warmup=config.critic_warmup, lr_decay_fraction=0.0, seed=config.seed)
    disrupt = half_disrupted(config.epsilon, config.attack_steps, config.step_size, config.seed)
    result = train_stargan(data, train_config, checkpoint_dir=checkpoint_dir, save_every=save_every, device=device,
                           generator=generator, disrupt=disrupt, log_every=max(1, config.steps // 10))
    return result.generator, result.history
