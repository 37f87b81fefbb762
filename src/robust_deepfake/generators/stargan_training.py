"""Training StarGAN (`stargan`) with the official losses, schedule and augmentation: WGAN-GP critic
steps, a generator step every n_critic, classification and reconstruction terms, linear
learning-rate decay, random horizontal flips; all randomness keyed by step, so a resumed run
equals an uninterrupted one.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from robust_deepfake.checkpoints import resumable_state, save_checkpoint
from robust_deepfake.generators.stargan import (DEFAULT_ATTRIBUTES, StarGANDiscriminator, StarGANFaceGenerator,
                                                StarGANGenerator, _checked_labels, _load_strict, _read_checkpoint,
                                                _resize, default_d_repeat_num)

log = logging.getLogger(__name__)


TRAIN_STATE_NAME = "stargan-train.pt"


@dataclass(frozen=True)
class StarGANTrainConfig:
    """Everything that determines a training run's result; defaults are the official CelebA ones.
    `d_conv_dim` None = `conv_dim`; `d_repeat_num` None = `default_d_repeat_num(image_size)`."""

    attributes: tuple[str, ...] = DEFAULT_ATTRIBUTES
    image_size: int = 128
    conv_dim: int = 64
    repeat_num: int = 6
    d_conv_dim: int | None = None
    d_repeat_num: int | None = None
    steps: int = 200_000  # critic steps, as the official num_iters
    batch_size: int = 16
    lr: float = 1e-4  # for G and D
    beta1: float = 0.5
    beta2: float = 0.999
    n_critic: int = 5
    lambda_cls: float = 1.0
    lambda_rec: float = 10.0
    lambda_gp: float = 10.0
    lr_decay_fraction: float = 0.5  # linear decay to 0 over this last share of steps (official 100k of 200k)
    critic_warmup: int = 0  # critic-only steps first: fine-tuning a trained generator starts with a new critic
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", tuple(self.attributes))

    def record(self) -> dict:
        """The config as plain values, storable in a weights_only checkpoint."""
        return {**asdict(self), "attributes": list(self.attributes)}


@dataclass
class StarGANTrainingResult:
    generator: StarGANFaceGenerator
    discriminator: StarGANDiscriminator
    step: int  # critic steps done in total, resumed ones included
    history: list[dict[str, float]] = field(default_factory=list)  # one entry per step of this call


def _step_seed(seed: int, step: int, stream: int) -> int:
    """Randomness keyed by (seed, step), not by a running generator: a resumed run draws exactly
    what an uninterrupted one would, with no RNG state to save."""
    return int(np.random.SeedSequence([seed, step, stream]).generate_state(1, dtype=np.uint64)[0] >> 1)


class _StepBatches(Sampler[list[int]]):
    """Batch indices for critic steps `start..stop-1`, each drawn without replacement."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int, stop: int) -> None:
        self.n, self.batch_size, self.seed, self.start, self.stop = n, batch_size, seed, start, stop

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            generator = torch.Generator().manual_seed(_step_seed(self.seed, step, 0))
            yield torch.randperm(self.n, generator=generator)[: self.batch_size].tolist()

    def __len__(self) -> int:
        return self.stop - self.start


def _classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Official: binary cross-entropy summed over attributes, averaged over the batch."""
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / logits.shape[0]


def _gradient_penalty(scores: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: (||d scores / d inputs||_2 - 1)^2 per image, averaged."""
    (grad,) = torch.autograd.grad(scores, inputs, grad_outputs=torch.ones_like(scores), create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


# G's input for a batch: (G, x_real, c_trg, step) -> (input, the attack's loss); `None` trains on x_real
Disruption = Callable[[StarGANGenerator, torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, float]]


class _StarGANTrainer:
    """The networks, optimisers and one official training step; holds no randomness of its own.
    `generator`, when given, is a trained G to continue from (copied; the critic starts new)."""

    def __init__(self, config: StarGANTrainConfig, device: torch.device,
                 generator: StarGANGenerator | None = None) -> None:
        self.config, self.device = config, device
        c_dim = len(config.attributes)
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
            torch.manual_seed(config.seed)
            self.G = StarGANGenerator(config.conv_dim, c_dim, config.repeat_num).to(device)
            self.D = StarGANDiscriminator(config.image_size, config.d_conv_dim or config.conv_dim, c_dim,
                                          config.d_repeat_num or default_d_repeat_num(config.image_size)).to(device)
        if generator is not None:
            if generator.c_dim != c_dim:
                raise ValueError(f"the generator to continue from has {generator.c_dim} attributes, the config {c_dim}")
            self.G = copy.deepcopy(generator).to(device).train().requires_grad_(True)
        betas = (config.beta1, config.beta2)
        self.g_optimizer = torch.optim.Adam(self.G.parameters(), config.lr, betas, fused=True)
        self.d_optimizer = torch.optim.Adam(self.D.parameters(), config.lr, betas, fused=True)

    def state(self, step: int) -> dict:
        return {"step": step, "config": self.config.record(), "G": self.G.state_dict(), "D": self.D.state_dict(),
                "g_optimizer": self.g_optimizer.state_dict(), "d_optimizer": self.d_optimizer.state_dict()}

    def _usable_state(self, path: Path) -> dict:
        """A training state saved by `state` under this configuration (only `steps` may grow, and
        not below the state's step), since a result must not depend on two configurations."""
        state = _read_checkpoint(path, self.device)
        missing = {"step", "config", "G", "D", "g_optimizer", "d_optimizer"} - state.keys()
        if missing:
            raise ValueError(f"{path} is not a StarGAN training state (missing {sorted(missing)})")
        saved, current = state["config"], self.config.record()
        changed = sorted(k for k in current if k != "steps" and saved.get(k) != current[k])
        if changed:
            raise ValueError(f"{path} was trained with another configuration: "
                             + ", ".join(f"{k} {saved.get(k)!r} -> {current[k]!r}" for k in changed))
        if state["step"] > self.config.steps:
            raise ValueError(f"{path} is at step {state['step']}, past the configured steps {self.config.steps}")
        return state

    def restore(self, path: Path) -> int:
        """Continue from the training state at `path`; return its step (0 when there is none, or
        when it cannot be used: it is then discarded, logged)."""
        state = resumable_state(path, self._usable_state, "StarGAN training state")
        if state is None:
            return 0
        _load_strict(self.G, state["G"], path, "StarGAN generator")
        _load_strict(self.D, state["D"], path, "StarGAN critic")
        self.g_optimizer.load_state_dict(state["g_optimizer"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])
        return int(state["step"])

    def _set_lr(self, step: int) -> None:
        decay_steps = self.config.lr_decay_fraction * self.config.steps
        factor = min(1.0, (self.config.steps - step) / decay_steps) if decay_steps > 0 else 1.0
        for optimizer in (self.g_optimizer, self.d_optimizer):
            for group in optimizer.param_groups:
                group["lr"] = self.config.lr * factor

    def train_step(self, step: int, images: torch.Tensor, labels: torch.Tensor,
                   disrupt: Disruption | None = None) -> dict[str, float]:
        """One critic update, plus a generator update every `n_critic` steps (official order).
        With `disrupt`, G reads the disrupted batch it returns in both updates (Ruiz et al.'s G+D
        adversarial training: the critic judges the fakes made from disrupted inputs), while the
        cycle still has to give back the clean image."""
        cfg = self.config
        self._set_lr(step)
        x_real = _resize(images.to(self.device, torch.float32), (cfg.image_size, cfg.image_size))
        n = x_real.shape[0]
        c_org = _checked_labels(labels, n, len(cfg.attributes), self.device)
        noise = torch.Generator().manual_seed(_step_seed(cfg.seed, step, 1))
        flip = (torch.rand(n, generator=noise) < 0.5).to(self.device)  # the official RandomHorizontalFlip
        x_real = torch.where(flip[:, None, None, None], x_real.flip(3), x_real)
        c_trg = c_org[torch.randperm(n, generator=noise).to(self.device)]
        x_in, attack_loss = disrupt(self.G, x_real, c_trg, step) if disrupt is not None else (x_real, None)

        out_src, out_cls = self.D(x_real)
        d_loss_real = -out_src.mean()
        d_loss_cls = _classification_loss(out_cls, c_org)
        x_fake = self.G(x_in, c_trg).detach()
        d_loss_fake = self.D(x_fake)[0].mean()
        alpha = torch.rand(n, 1, 1, 1, generator=noise).to(self.device)
        x_hat = (alpha * x_real + (1 - alpha) * x_fake).requires_grad_(True)
        d_loss_gp = _gradient_penalty(self.D(x_hat)[0], x_hat)
        d_loss = d_loss_real + d_loss_fake + cfg.lambda_cls * d_loss_cls + cfg.lambda_gp * d_loss_gp
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()
        losses = {"D/loss_real": d_loss_real.item(), "D/loss_fake": d_loss_fake.item(),
                  "D/loss_cls": d_loss_cls.item(), "D/loss_gp": d_loss_gp.item()}
        if attack_loss is not None:
            losses["attack_mse"] = attack_loss

        if (step + 1) % cfg.n_critic == 0 and step >= cfg.critic_warmup:
            x_fake = self.G(x_in, c_trg)
            out_src, out_cls = self.D(x_fake)
            g_loss_fake = -out_src.mean()
            g_loss_cls = _classification_loss(out_cls, c_trg)
            g_loss_rec = (x_real - self.G(x_fake, c_org)).abs().mean()
            g_loss = g_loss_fake + cfg.lambda_rec * g_loss_rec + cfg.lambda_cls * g_loss_cls
            self.g_optimizer.zero_grad(set_to_none=True)
            self.d_optimizer.zero_grad(set_to_none=True)
            g_loss.backward()
            self.g_optimizer.step()
            losses.update({"G/loss_fake": g_loss_fake.item(), "G/loss_rec": g_loss_rec.item(),
                           "G/loss_cls": g_loss_cls.item()})
        return losses


def train_stargan(data: Dataset, config: StarGANTrainConfig = StarGANTrainConfig(), *,
                  checkpoint_dir: str | Path | None = None, resume: bool = True, save_every: int = 1000,
                  log_every: int = 100, device: torch.device | str = "cpu", num_workers: int = 0,
                  generator: StarGANGenerator | None = None, disrupt: Disruption | None = None,
                  ) -> StarGANTrainingResult:
    """Train StarGAN with the official losses on `data`, a Dataset of (image (3, H, W) in [-1, 1],
    0/1 labels (c_dim,)) — e.g. `TensorDataset(images, labels)`; images are resized to
    `config.image_size`. With `checkpoint_dir`, the full training state (G, D, both optimisers,
    step) is written atomically every `save_every` steps and at the end, and `resume` continues
    from it; the result equals an uninterrupted run's, since all randomness is keyed by step.
    `generator` continues from a trained G with a new critic (`config.critic_warmup` critic-only
    steps first), and `disrupt` gives G a disrupted batch to read (`_StarGANTrainer.train_step`):
    together, the adversarial fine-tuning of `defences.adversarial_stargan`."""
    if len(data) == 0:
        raise ValueError("StarGAN training data is empty")
    device = torch.device(device)
    trainer = _StarGANTrainer(config, device, generator)
    state_path = Path(checkpoint_dir) / TRAIN_STATE_NAME if checkpoint_dir is not None else None
    start = 0
    if state_path is not None and resume:
        start = trainer.restore(state_path)
        if start:
            log.info("resuming StarGAN training from %s at step %d of %d", state_path, start, config.steps)
    batches = _StepBatches(len(data), config.batch_size, config.seed, start, config.steps)
    loader = DataLoader(data, batch_sampler=batches, num_workers=num_workers)
    history: list[dict[str, float]] = []
    progress = tqdm(loader, desc="StarGAN", unit="step", total=config.steps, initial=start)
    for step, (images, labels) in enumerate(progress, start=start):
        losses = trainer.train_step(step, images, labels, disrupt)
        history.append({"step": step + 1, **losses})
        done = step + 1
        if done % log_every == 0 or done == config.steps:
            progress.set_postfix({k: f"{v:.3f}" for k, v in losses.items()})
            log.info("step %d/%d %s", done, config.steps, " ".join(f"{k} {v:.4f}" for k, v in losses.items()))
        if state_path is not None and (done % save_every == 0 or done == config.steps):
            save_checkpoint(trainer.state(done), state_path)
    return StarGANTrainingResult(StarGANFaceGenerator(trainer.G, config.attributes, config.image_size),
                                 trainer.D, config.steps, history)
