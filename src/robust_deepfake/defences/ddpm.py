"""The diffusion defence model: a DDPM (Ho et al.) trained on split A's clean real faces, used by
the purifiers (`robust_deepfake.stages.purification`) to wash disruption poison out of split B's faces.

The model is the field's own: a diffusers `UNet2DModel` predicting the noise (epsilon) and a
`DDPMScheduler` with the DDPM-purification reference's linear betas 1e-4 .. 0.02 over T = 1000 steps. Training is the
standard epsilon objective: a random step t per face, noise added in closed form
(`scheduler.add_noise`), MSE between the UNet's prediction and that noise; faces are flipped
horizontally at random (faces are near-symmetric, so this doubles the data for free); Adam; and an
exponential moving average of the weights (diffusers' `EMAModel`, with the warm-up of diffusers'
unconditional training example), which is what is saved as the model.

The saved model is a plain diffusers folder (`unet/` + `scheduler/`, safetensors), the layout a
`DDPMPipeline.save_pretrained` folder also has, so `load_ddpm` reads ours and a user's pretrained
DDPM (e.g. a CelebA-HQ DDPM saved locally) alike, from local files only.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.training_utils import EMAModel
from tqdm import tqdm

from robust_deepfake.checkpoints import read_payload, resumable_state, save_checkpoint
from robust_deepfake.devices import resolve_device
from robust_deepfake.tensors import rgb_to_signed

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "robust_deepfake.ddpm"
CHECKPOINT_VERSION = 1
CHECKPOINT_PATH = Path("training") / "last.pt"  # inside train_ddpm's out_dir
UNET_FOLDER = "unet"
SCHEDULER_FOLDER = "scheduler"
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid")
EMA_WARMUP_POWER = 3 / 4  # diffusers' train_unconditional.py: decay 1 - (1 + step) ** -0.75, capped
RESUMABLE_CHANGES = frozenset({"steps", "save_every"})  # may differ between a run and its resumption


@dataclass(frozen=True)
class DDPMConfig:
    """Everything that defines the DDPM and its training, as plain types (stored in checkpoints).

    `attention` adds self-attention at the lowest resolution (down, middle and up blocks); without
    it the UNet is convolutional only, which is what trains in minutes on a CPU. `ema_decay` is the
    cap of the EMA's warm-up decay; None trains without EMA and saves the raw weights."""

    image_size: int = 64
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    attention: bool = False
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    beta_schedule: str = "linear"
    steps: int = 3000
    batch_size: int = 16
    lr: float = 2e-4
    ema_decay: float | None = 0.999
    save_every: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        # YAML gives lists; a tuple keeps the config hashable and equal to the one it was saved with
        object.__setattr__(self, "block_out_channels", tuple(int(c) for c in self.block_out_channels))
        problems = self._problems()
        if problems:
            raise ValueError("invalid DDPM configuration: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        """What is wrong with the values, all at once, so one edit fixes the config."""
        problems = []
        channels = self.block_out_channels
        if not channels or min(channels) < 1:
            problems.append(f"block_out_channels must be positive channel counts, got {channels}")
        elif self.image_size < 1 or self.image_size % 2 ** (len(channels) - 1):
            problems.append(f"image_size {self.image_size} must be a positive multiple of "
                            f"{2 ** (len(channels) - 1)} (halved {len(channels) - 1} times by the UNet)")
        elif self.attention and channels[-1] < 8:
            problems.append(f"attention needs at least 8 channels at the lowest resolution (heads of 8), "
                            f"got {channels[-1]}")
        for name in ("layers_per_block", "num_train_timesteps", "steps", "batch_size", "save_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.beta_start < self.beta_end < 1:
            problems.append(f"need 0 < beta_start < beta_end < 1, got {self.beta_start}, {self.beta_end}")
        if self.beta_schedule not in BETA_SCHEDULES:
            problems.append(f"beta_schedule {self.beta_schedule!r} is not one of {BETA_SCHEDULES}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            problems.append(f"ema_decay must lie in (0, 1) or be None, got {self.ema_decay}")
        return problems


def build_unet(config: DDPMConfig) -> UNet2DModel:
    """A fresh epsilon-predicting UNet for RGB faces of `config.image_size`, its weights drawn from
    `config.seed` (global random state untouched), so a config alone fixes the starting point.

    One resolution per entry of `block_out_channels`, halved between them. GroupNorm needs every
    width to split into the same number of groups: the greatest common divisor of the widths and
    32 (diffusers' default group count)."""
    channels = config.block_out_channels
    lowest = len(channels) - 1
    down = tuple("AttnDownBlock2D" if config.attention and i == lowest else "DownBlock2D" for i in range(len(channels)))
    up = tuple("AttnUpBlock2D" if config.attention and i == 0 else "UpBlock2D" for i in range(len(channels)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return UNet2DModel(sample_size=config.image_size, in_channels=3, out_channels=3,
                           block_out_channels=channels, layers_per_block=config.layers_per_block,
                           down_block_types=down, up_block_types=up, add_attention=config.attention,
                           norm_num_groups=math.gcd(32, *channels))


def build_scheduler(config: DDPMConfig) -> DDPMScheduler:
    """The forward process: `num_train_timesteps` steps of betas from beta_start to beta_end
    (linear by default, as the DDPM-purification reference and Ho et al.), epsilon prediction, samples clipped to [-1, 1]."""
    return DDPMScheduler(num_train_timesteps=config.num_train_timesteps, beta_start=config.beta_start,
                         beta_end=config.beta_end, beta_schedule=config.beta_schedule, prediction_type="epsilon")


# ---------------------------------------------------------------------------------------------
# Training


def _training_batch(faces: Sequence[np.ndarray], config: DDPMConfig, rng: torch.Generator) -> torch.Tensor:
    """`batch_size` faces drawn uniformly with replacement, resized to the model's size, half of
    them (at random) mirrored left to right. On the CPU, from the CPU rng, so the batch
    does not depend on the training device."""
    rows = torch.randint(len(faces), (config.batch_size,), generator=rng).tolist()
    images = rgb_to_signed([faces[r] for r in rows], config.image_size)
    mirror = torch.rand(config.batch_size, generator=rng) < 0.5
    images[mirror] = images[mirror].flip(-1)
    return images


def epsilon_loss(unet: UNet2DModel, scheduler: DDPMScheduler, images: torch.Tensor,
                 rng: torch.Generator) -> torch.Tensor:
    """Ho et al.'s simple loss on a batch in [-1, 1]: MSE between the noise added at a random step
    and the UNet's prediction of it. Step and noise come from the (CPU) `rng`."""
    timesteps = torch.randint(scheduler.config.num_train_timesteps, (images.shape[0],), generator=rng)
    noise = torch.randn(images.shape, generator=rng)
    device = unet.device
    noisy = scheduler.add_noise(images.to(device), noise.to(device), timesteps.to(device))
    return F.mse_loss(unet(noisy, timesteps.to(device)).sample, noise.to(device))


def train_ddpm(faces: Sequence[np.ndarray], config: DDPMConfig, out_dir: str | Path, *, resume: bool = True,
               device: str | torch.device = "cpu") -> tuple[UNet2DModel, list[dict]]:
    """Train a DDPM on RGB uint8 crops (`faces`: a list, an (N, H, W, 3) array or a lazy sequence
    such as `FaceCropFiles`) and save it under `out_dir` as a diffusers folder (`unet/`,
    `scheduler/`); return (UNet with the saved weights, in eval mode, history).

    Model, EMA, optimizer, step, random state and history are checkpointed atomically to
    `out_dir/training/last.pt` every `save_every` steps and at the end; with `resume` a later call
    continues from there (the step counter continues, and `steps` may be raised to train longer)
    and, on the same device, ends with the same weights as an uninterrupted run.
    `history` has one {"step", "loss", "seconds"} entry per step (seconds since this call began)."""
    if len(faces) == 0:
        raise ValueError("train_ddpm needs at least one face")
    out_dir = Path(out_dir)
    device = resolve_device(device) if isinstance(device, str) else device
    unet = build_unet(config).to(device)
    scheduler = build_scheduler(config)
    optimizer = torch.optim.Adam(unet.parameters(), lr=config.lr, fused=True)
    ema = (EMAModel(unet.parameters(), decay=config.ema_decay, use_ema_warmup=True, power=EMA_WARMUP_POWER)
           if config.ema_decay is not None else None)
    rng = torch.Generator().manual_seed(config.seed)
    checkpoint = out_dir / CHECKPOINT_PATH
    step, history = 0, []
    state = resumable_state(checkpoint, lambda path: _training_state(path, config, device),
                            "DDPM training state") if resume else None
    if state is not None:
        unet.load_state_dict(state["unet"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        rng.set_state(state["rng"].cpu())
        step, history = int(state["step"]), list(state["history"])
        log.info("resuming DDPM training from %s at step %d", checkpoint, step)
    log.info("training a DDPM of %.2f M parameters on %d faces, %d steps, on %s",
             sum(p.numel() for p in unet.parameters()) / 1e6, len(faces), config.steps, device)

    unet.train()
    started = time.perf_counter()
    progress = tqdm(range(step, config.steps), desc="ddpm", unit="step", initial=step, total=config.steps)
    for step in progress:
        loss = epsilon_loss(unet, scheduler, _training_batch(faces, config, rng), rng)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema.step(unet.parameters())
        value = loss.item()
        history.append({"step": step + 1, "loss": value, "seconds": time.perf_counter() - started})
        progress.set_postfix(mse=f"{value:.4f}")
        if (step + 1) % config.save_every == 0 or step + 1 == config.steps:
            _save_checkpoint(checkpoint, config, unet, optimizer, ema, rng, step + 1, history)

    if ema is not None:
        ema.copy_to(unet.parameters())
    unet.eval()
    save_ddpm(unet, scheduler, out_dir)
    return unet, history


# ---------------------------------------------------------------------------------------------
# Training checkpoints (weights + state to resume; loaded with weights_only=True)


def _save_checkpoint(path: Path, config: DDPMConfig, unet: UNet2DModel, optimizer: torch.optim.Optimizer,
                     ema: EMAModel | None, rng: torch.Generator, step: int, history: list[dict]) -> None:
    save_checkpoint({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": asdict(config),
                     "unet": unet.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                     "optimizer": optimizer.state_dict(), "step": step, "rng": rng.get_state(),
                     "history": history}, path)


def _training_state(path: Path, config: DDPMConfig, device: torch.device) -> dict:
    """A training checkpoint of these settings (only the step budget and the checkpoint interval
    may differ) that has not run past the steps asked for."""
    payload = read_payload(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "DDPM training checkpoint", device)
    saved, wanted = _fixed_settings(payload["config"]), _fixed_settings(asdict(config))
    if saved != wanted:
        changed = {k: (saved.get(k), wanted.get(k)) for k in sorted(wanted.keys() | saved.keys())
                   if saved.get(k) != wanted.get(k)}
        raise ValueError(f"cannot resume from {path}: settings changed since it was written "
                         f"(name: (then, now)) {changed}")
    if payload["step"] > config.steps:
        raise ValueError(f"cannot resume from {path}: it is at step {payload['step']}, past the {config.steps} "
                         "steps asked for")
    return payload


def _fixed_settings(config: dict) -> dict:
    """The settings a resumed run must share with the checkpoint: all but the step budget and
    the checkpoint interval. Channels as a tuple, however they were stored."""
    fixed = {k: v for k, v in config.items() if k not in RESUMABLE_CHANGES}
    fixed["block_out_channels"] = tuple(fixed.get("block_out_channels", ()))
    return fixed


# ---------------------------------------------------------------------------------------------
# The model as a diffusers folder


def _replace_folder(folder: Path, write: Callable[[Path], None]) -> None:
    """Write a folder through `write(temporary folder)` beside it, then swap it in, so a killed
    job leaves either the old folder or the new one, never a half-written one."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)  # left over by a killed job of the same pid
    try:
        tmp.mkdir()
        write(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_ddpm(unet: UNet2DModel, scheduler: DDPMScheduler, folder: str | Path) -> None:
    """Write `folder/scheduler/` and `folder/unet/` (safetensors) as diffusers does, each atomically;
    the UNet last, so its presence means the model is complete."""
    folder = Path(folder)
    _replace_folder(folder / SCHEDULER_FOLDER, scheduler.save_pretrained)
    _replace_folder(folder / UNET_FOLDER, lambda tmp: unet.save_pretrained(tmp, safe_serialization=True))


def _check_pipeline_index(index: Path) -> None:
    """A pipeline folder's model_index.json must name an unconditional UNet2DModel as its `unet`
    (a Stable Diffusion or other conditional pipeline cannot purify this way)."""
    try:
        components = json.loads(index.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{index} could not be read as JSON: {exc}") from exc
    unet_class = (components.get("unet") or [None, None])[-1] if isinstance(components, dict) else None
    if unet_class != "UNet2DModel":
        pipeline = components.get("_class_name") if isinstance(components, dict) else None
        raise ValueError(f"{index.parent} is a {pipeline or 'diffusers'} folder whose unet is {unet_class!r}; "
                         f"a DDPM purifier needs an unconditional UNet2DModel (e.g. a DDPMPipeline folder)")
    scheduler_class = (components.get("scheduler") or [None, None])[-1]
    if scheduler_class != "DDPMScheduler":
        log.info("%s declares a %s; its betas are read as a DDPMScheduler", index.parent, scheduler_class)


def load_ddpm(folder: str | Path, device: str | torch.device = "cpu") -> tuple[UNet2DModel, DDPMScheduler]:
    """(UNet in eval mode with frozen weights, scheduler) from a local diffusers DDPM folder: ours
    (`unet/` + `scheduler/`) or a pipeline folder with model_index.json (a `DDPMPipeline` saved
    with `save_pretrained`, e.g. a CelebA-HQ DDPM). Local files only: nothing is downloaded. The
    scheduler is read as a `DDPMScheduler` whatever class the folder names, since its betas define
    the forward process purification noises with."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"DDPM folder not found: {folder}")
    index = folder / "model_index.json"
    if index.is_file():
        _check_pipeline_index(index)
    for part, config_name in ((UNET_FOLDER, "config.json"), (SCHEDULER_FOLDER, "scheduler_config.json")):
        if not (folder / part / config_name).is_file():
            raise FileNotFoundError(f"{folder} is not a diffusers DDPM folder: {folder / part / config_name} is "
                                    f"missing (expected unet/ and scheduler/, as train_ddpm or "
                                    f"DDPMPipeline.save_pretrained writes them)")
    try:
        unet = UNet2DModel.from_pretrained(folder, subfolder=UNET_FOLDER, local_files_only=True,
                                           low_cpu_mem_usage=False)  # True needs `accelerate`, and warns
        scheduler = DDPMScheduler.from_pretrained(folder, subfolder=SCHEDULER_FOLDER, local_files_only=True)
    except (OSError, ValueError, TypeError, RuntimeError) as exc:
        raise ValueError(f"could not load the DDPM in {folder}: {exc}") from exc
    device = resolve_device(device) if isinstance(device, str) else device
    return unet.to(device).eval().requires_grad_(False), scheduler


# ---------------------------------------------------------------------------------------------
# Quality


@torch.no_grad()
def denoising_errors(unet: UNet2DModel, scheduler: DDPMScheduler, images: torch.Tensor, timesteps: Sequence[int],
                     rng: torch.Generator) -> list[dict]:
    """How well the model denoises held-out faces (N, 3, H, W) in [-1, 1] at its own size: per
    timestep index t, the MSE to the clean faces of the noisy faces x_t and of the model's one-step
    estimate of x_0 from them (clipped to [-1, 1]). Purification works when the estimate is far
    closer than the noisy input at the noise levels it uses (DiffPure: t* of 0.1-0.3 T)."""
    rows = []
    alphas_cumprod = scheduler.alphas_cumprod
    for t in timesteps:
        noise = torch.randn(images.shape, generator=rng)
        step = torch.full((images.shape[0],), int(t), dtype=torch.long)
        noisy = scheduler.add_noise(images, noise, step)
        eps = unet(noisy.to(unet.device), step.to(unet.device)).sample.float().cpu()
        alpha = alphas_cumprod[int(t)]
        x0 = ((noisy - (1 - alpha).sqrt() * eps) / alpha.sqrt()).clamp(-1, 1)
        rows.append({"t": int(t), "mse_noisy": F.mse_loss(noisy, images).item(),
                     "mse_x0": F.mse_loss(x0, images).item()})
    return rows
