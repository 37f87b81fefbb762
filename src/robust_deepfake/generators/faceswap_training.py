"""Training the autoencoder face swap (`faceswap_ae`): randomly warped inputs, batches drawn identity
first so every decoder trains equally often, the L1 reconstruction loss, and resumable checkpoints
(the adversarially trained generator fine-tunes through the same start).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from robust_deepfake.checkpoints import resumable_state
from robust_deepfake.generators.faceswap_ae import (FaceSwapAutoencoder, _read_checkpoint, _restore_weights,
                                                    save_faceswap)
from robust_deepfake.tensors import rgb_to_signed

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"  # the training state in the job's state folder


def random_warp_pair(images: torch.Tensor, rng: torch.Generator, rotation_deg: float = 10.0,
                     zoom: float = 0.05, shift: float = 0.05, warp: float = 0.05, flip: float = 0.4,
                     grid_points: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """(warped input, target) for a batch in [-1, 1].

    Both get the same random similarity transform and horizontal flip (more poses to learn from);
    only the input also gets a smooth random warp: a `grid_points` x `grid_points` grid of offsets
    (std `warp`, in units of half the image) interpolated bicubically over the image, as the
    original method's random warp does. The decoder must undo the warp, so the encoder learns face
    structure rather than pixel copying."""
    n, _, h, w = images.shape
    options = {"device": images.device, "dtype": images.dtype}

    def uniform(limit: float) -> torch.Tensor:
        return (torch.rand(n, generator=rng) * 2 - 1).mul(limit).to(**options)

    angle = uniform(math.radians(rotation_deg))
    scale = 1.0 + uniform(zoom)
    mirror = torch.where(torch.rand(n, generator=rng) < flip, -1.0, 1.0).to(**options)
    theta = torch.zeros(n, 2, 3, **options)
    theta[:, 0, 0] = torch.cos(angle) / scale * mirror
    theta[:, 0, 1] = -torch.sin(angle) / scale
    theta[:, 1, 0] = torch.sin(angle) / scale * mirror
    theta[:, 1, 1] = torch.cos(angle) / scale
    theta[:, 0, 2] = uniform(shift)
    theta[:, 1, 2] = uniform(shift)
    grid = F.affine_grid(theta, [n, 3, h, w], align_corners=False)
    target = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    offsets = (torch.randn(n, 2, grid_points, grid_points, generator=rng) * warp).to(**options)
    offsets[:, :, [0, -1], :] = 0  # keep the border in place: the warp moves the face, not the frame
    offsets[:, :, :, [0, -1]] = 0
    dense = F.interpolate(offsets, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    warped = F.grid_sample(images, grid + dense, mode="bilinear", padding_mode="reflection", align_corners=False)
    return warped, target


def most_frequent_identities(identities: Sequence[str], count: int) -> list[str]:
    """The `count` identities with the most faces (ties by name), sorted by name: every identity
    costs a decoder, so a large part A (thousands of people) trains a swap between its best-covered
    few, as the Deepfakes method swaps pairs of people with many frames each."""
    counts: dict[str, int] = {}
    for identity in identities:
        counts[str(identity)] = counts.get(str(identity), 0) + 1
    ranked = sorted(counts, key=lambda name: (-counts[name], name))
    return sorted(ranked[:count])


def identity_indices(identities: Sequence[str], names: Sequence[str]) -> list[np.ndarray]:
    """Row indices of each identity's faces, in `names` order."""
    labels = np.asarray([str(i) for i in identities])
    return [np.flatnonzero(labels == name) for name in names]


def sample_batch(faces: Sequence[np.ndarray], per_identity: list[np.ndarray], batch_size: int, image_size: int,
                 rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch with identities drawn uniformly, then a face of that identity uniformly: each
    decoder trains equally often however unbalanced the faces are. Returns (images, identity index)."""
    who = torch.randint(len(per_identity), (batch_size,), generator=rng)
    rows = [int(per_identity[k][torch.randint(len(per_identity[k]), (1,), generator=rng)]) for k in who.tolist()]
    return rgb_to_signed([faces[r] for r in rows], image_size), who


def reconstruction_loss(model: FaceSwapAutoencoder, inputs: torch.Tensor, targets: torch.Tensor,
                        who: torch.Tensor) -> torch.Tensor:
    """Mean L1 between each face's target and its own identity's decoding of its (warped) input.
    The batch is encoded once; each identity's rows go through their decoder."""
    codes = model.encoder(inputs)
    loss = inputs.new_zeros(())
    for k in who.unique().tolist():
        rows = who == k
        decoded = model.decoder(model.identities[k])(codes[rows])
        loss = loss + F.l1_loss(decoded, targets[rows], reduction="sum")
    return loss / targets.numel()


def train_faceswap(faces: Sequence[np.ndarray], identities: Sequence[str], *, image_size: int = 64,
                   channels: int = 32, latent_dim: int = 128, steps: int = 1500, batch_size: int = 16,
                   lr: float = 5e-4, seed: int = 0, checkpoint_dir: str | Path | None = None,
                   save_every: int = 250, resume: bool = True, device: str | torch.device = "cpu",
                   ) -> tuple[FaceSwapAutoencoder, list[dict]]:
    """Train the face swap on RGB uint8 crops (`faces`: a list, an (N, H, W, 3) array or a lazy
    sequence such as `FaceCropFiles`) with one identity name per face; return (model, history).

    Adam (beta1 0.5, as the original) on the L1 reconstruction of randomly warped inputs. Weights
    and inputs are channels-last while training: its convolutions are ~10 % faster on a CPU.
    With `checkpoint_dir`, model, optimizer, step, random state and history are saved atomically
    every `save_every` steps and at the end, and a later call resumes from there (`resume`): the
    step counter continues and, on the same device, the result equals an uninterrupted run.
    `history` has one {"step", "loss", "seconds"} entry per step (seconds since this call began)."""
    if len(faces) != len(identities):
        raise ValueError(f"{len(faces)} faces but {len(identities)} identity labels")
    names = sorted({str(i) for i in identities})
    per_identity = identity_indices(identities, names)
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):  # weight init from `seed`, without touching global state
        torch.manual_seed(seed)
        model = FaceSwapAutoencoder(names, image_size, channels, latent_dim).to(device, memory_format=torch.channels_last)
    path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    optimizer, rng, step, history = start_training(model, lr=lr, seed=seed, checkpoint=path, resume=resume,
                                                         device=device, what="face swap training")

    model.train()
    started = time.perf_counter()
    progress = tqdm(range(step, steps), desc="faceswap_ae", unit="step", initial=step, total=steps)
    for step in progress:
        images, who = sample_batch(faces, per_identity, batch_size, image_size, rng)
        inputs, targets = random_warp_pair(images.to(device), rng)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
        loss = reconstruction_loss(model, inputs, targets, who.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = loss.item()
        history.append({"step": step + 1, "loss": value, "seconds": time.perf_counter() - started})
        progress.set_postfix(l1=f"{value:.4f}")
        if path is not None and ((step + 1) % save_every == 0 or step + 1 == steps):
            save_faceswap(model, path, training={"optimizer": optimizer.state_dict(), "step": step + 1,
                                                 "rng": rng.get_state(), "history": history})
    return model.to(memory_format=torch.contiguous_format).eval(), history


def start_training(model: FaceSwapAutoencoder, *, lr: float, seed: int, checkpoint: Path | None, resume: bool,
                   device: torch.device, what: str) -> tuple[torch.optim.Optimizer, torch.Generator, int, list[dict]]:
    """Adam (beta1 0.5, as the original), the batch RNG, and the step and history to start from:
    0 and [] or, with `resume` and a usable `checkpoint`, where that run stopped. Adam is the
    fused kernel: the dense bottleneck's millions of weights make the per-tensor loop the slowest
    part of a CPU step (measured 35 ms against 5 ms at latent_dim 1024)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999), fused=True)
    rng = torch.Generator().manual_seed(seed)
    state = (resumable_state(checkpoint, lambda path: _training_state(path, model, device), f"{what} state")
             if checkpoint is not None and resume else None)
    if state is None:
        return optimizer, rng, 0, []
    _restore_weights(checkpoint, model, state)
    optimizer.load_state_dict(state["training"]["optimizer"])
    rng.set_state(state["training"]["rng"].cpu())
    step = int(state["training"]["step"])
    log.info("resuming %s from %s at step %d", what, checkpoint, step)
    return optimizer, rng, step, list(state["training"]["history"])


def _training_state(path: Path, model: FaceSwapAutoencoder, device: torch.device) -> dict:
    """A training checkpoint of this very model configuration, with its training state."""
    payload = _read_checkpoint(path, device)
    if payload.get("config") != model.config():
        raise ValueError(f"cannot resume from {path}: it was trained with {payload.get('config')}, "
                         f"now asked for {model.config()}")
    if "training" not in payload:
        raise ValueError(f"cannot resume from {path}: it holds weights only, no training state")
    return payload
