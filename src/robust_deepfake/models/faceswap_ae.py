"""The autoencoder face swap of the original "Deepfakes" method (FaceForensics++'s Deepfakes class).

One encoder is shared by all identities and each identity has its own decoder; every decoder learns
to rebuild its own person's faces from the shared code. Inputs are randomly warped during training
(targets are not), so the encoder cannot pass pixels through and has to code pose, expression and
lighting, which all identities share. Swapping is then: encode a face of anyone, decode it with the
decoder of the identity wanted.

Layout, after the public faceswap "Original" model at a smaller scale: the encoder halves the image
four times with 5x5 stride-2 convolutions (channels c, 2c, 4c, 8c), squeezes it through a dense
`latent_dim` bottleneck, expands it back and upsamples once (pixel shuffle); each decoder upsamples
three times more to `image_size` and ends in a 5x5 convolution with tanh, so outputs lie in [-1, 1].
Any input size is accepted: faces are resized to `image_size` (bilinear, antialiased) and the result
back to the input size, both differentiably, so a disruption attack works at the crop size.

`FaceSwapGenerator` is the `FaceGenerator` the poisoning and fake-generation stages use;
`blend_swap` pastes a swapped face back into its crop, which is how the fake written to disk is made.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from robust_deepfake.checkpoints import read_payload, resumable_state, save_checkpoint
from robust_deepfake.face_mask import landmark_face_mask, match_colors_lab, paste_face
from robust_deepfake.images import read_rgb

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "robust_deepfake.faceswap_ae"
CHECKPOINT_VERSION = 1
CHECKPOINT_NAME = "last.pt"
DOWNSAMPLINGS = 4  # image_size / 16 is the encoder's spatial bottleneck


def _decoder_key(identity: str) -> str:
    """Module name of an identity's decoder. Identity names may hold characters a module name
    cannot ('.' in DFDC's file names) or clash with ModuleDict methods ('keys'), so they are
    percent-encoded, '.' included, and prefixed."""
    return "id_" + quote(str(identity), safe="").replace(".", "%2E")


def _upscale(in_channels: int, out_channels: int) -> nn.Sequential:
    """Double the resolution: 3x3 convolution to 4x the channels, then pixel shuffle (sharper than
    transposed convolutions, no checkerboard)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels * 4, 3, padding=1), nn.LeakyReLU(0.1),
                         nn.PixelShuffle(2))


class FaceSwapEncoder(nn.Module):
    """Face -> identity-independent code, as a (4c, image_size/8, image_size/8) feature map."""

    def __init__(self, image_size: int, channels: int, latent_dim: int) -> None:
        super().__init__()
        widths = [3] + [channels * 2 ** i for i in range(DOWNSAMPLINGS)]
        self.convs = nn.Sequential(*[layer for c_in, c_out in zip(widths, widths[1:])
                                     for layer in (nn.Conv2d(c_in, c_out, 5, stride=2, padding=2), nn.LeakyReLU(0.1))])
        self.bottom = image_size // 2 ** DOWNSAMPLINGS
        flat = widths[-1] * self.bottom ** 2
        self.squeeze = nn.Linear(flat, latent_dim)
        self.expand = nn.Linear(latent_dim, flat)
        self.up = _upscale(widths[-1], widths[-2])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.convs(images)
        code = self.expand(self.squeeze(features.flatten(1)))
        return self.up(code.view_as(features))


class FaceSwapDecoder(nn.Module):
    """Code -> one identity's face in [-1, 1] at image_size."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.ups = nn.Sequential(_upscale(channels * 4, channels * 2), _upscale(channels * 2, channels),
                                 _upscale(channels, max(channels // 2, 3)))
        self.to_rgb = nn.Conv2d(max(channels // 2, 3), 3, 5, padding=2)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.to_rgb(self.ups(code)))


class FaceSwapAutoencoder(nn.Module):
    """Shared encoder, one decoder per identity (`decoders`, keyed by `_decoder_key(identity)`)."""

    def __init__(self, identities: Sequence[str], image_size: int = 64, channels: int = 32,
                 latent_dim: int = 128) -> None:
        super().__init__()
        identities = [str(i) for i in identities]
        if len(identities) < 2 or len(set(identities)) != len(identities):
            raise ValueError(f"a face swap needs at least two distinct identities, got {identities}")
        if image_size % 2 ** DOWNSAMPLINGS or image_size < 2 ** (DOWNSAMPLINGS + 1):
            raise ValueError(f"image_size must be a multiple of {2 ** DOWNSAMPLINGS} and at least "
                             f"{2 ** (DOWNSAMPLINGS + 1)}, got {image_size}")
        self.identities = tuple(identities)
        self.image_size = int(image_size)
        self.channels = int(channels)
        self.latent_dim = int(latent_dim)
        self.encoder = FaceSwapEncoder(image_size, channels, latent_dim)
        self.decoders = nn.ModuleDict({_decoder_key(i): FaceSwapDecoder(channels) for i in identities})

    def config(self) -> dict:
        """Constructor arguments as plain types (stored in checkpoints, which load weights only)."""
        return {"identities": list(self.identities), "image_size": self.image_size, "channels": self.channels,
                "latent_dim": self.latent_dim}

    def decoder(self, identity: str) -> FaceSwapDecoder:
        key = _decoder_key(identity)
        if key not in self.decoders:
            known = ", ".join(self.identities[:10]) + (", ..." if len(self.identities) > 10 else "")
            raise KeyError(f"no decoder for identity {identity!r}; known: {known}")
        return self.decoders[key]

    def forward(self, images: torch.Tensor, identity: str) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> the faces as `identity` would show them, same shape, [-1, 1]."""
        size = images.shape[-2:]
        if tuple(size) != (self.image_size, self.image_size):
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear",
                                   align_corners=False, antialias=True)
        out = self.decoder(identity)(self.encoder(images))
        if tuple(size) != (self.image_size, self.image_size):
            out = F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=False,
                                antialias=True).clamp(-1.0, 1.0)
        return out


class FaceSwapGenerator:
    """The trained autoencoder as a `FaceGenerator`: conditions are the target identities.

    The model is put in eval mode and its weights frozen: attacks need gradients with respect to
    the images only, and fake generation none."""

    def __init__(self, model: FaceSwapAutoencoder) -> None:
        self.model = model.eval().requires_grad_(False)
        self.image_size = model.image_size

    def conditions(self) -> tuple[str, ...]:
        return self.model.identities

    def generate(self, images: torch.Tensor, condition: str) -> torch.Tensor:
        """decoder[condition](encoder(images)) in [-1, 1], at the input's size; differentiable."""
        return self.model(images, condition)


# ---------------------------------------------------------------------------------------------
# Images


def faces_to_tensor(faces: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """RGB uint8 (H, W, 3) crops -> (N, 3, size, size) float32 in [-1, 1] (area filter when
    shrinking, cubic when enlarging, as crop.py does)."""
    batch = []
    for face in faces:
        face = np.asarray(face)
        if face.dtype != np.uint8 or face.ndim != 3 or face.shape[2] != 3:
            raise ValueError(f"expected an RGB uint8 (H, W, 3) face, got {face.dtype} {face.shape}")
        if face.shape[:2] != (size, size):
            shrink = max(face.shape[:2]) > size
            face = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        batch.append(face)
    stacked = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float()
    return stacked / 127.5 - 1.0


def tensor_to_rgb(image: torch.Tensor) -> np.ndarray:
    """One image (3, H, W) or (1, 3, H, W) in [-1, 1] -> RGB uint8 (H, W, 3)."""
    image = image.detach().float().cpu()
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected one (3, H, W) image, got shape {tuple(image.shape)}")
    array = ((image.clamp(-1, 1) + 1.0) * 127.5).round().byte().permute(1, 2, 0).numpy()
    return np.ascontiguousarray(array)


class FaceCropFiles(Sequence):
    """Face crop files read on access as RGB uint8, so training on a large part A does not hold all
    crops in memory.

    Decoded crops are kept, up to `cache_bytes`, because training draws each crop of a small part A
    hundreds of times: decoding a batch's 16 PNGs again every step was 9 % of a face swap step.
    The arrays handed out are shared with the cache and must not be modified in place."""

    def __init__(self, paths: Sequence[str | Path], cache_bytes: int = 512 * 2 ** 20) -> None:
        self.paths = [Path(p) for p in paths]
        self.cache_bytes = int(cache_bytes)
        self._cache: dict[int, np.ndarray] = {}
        self._cached_bytes = 0

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        face = self._cache.get(index)
        if face is None:
            face = read_rgb(self.paths[index])
            if self._cached_bytes + face.nbytes <= self.cache_bytes:
                face.setflags(write=False)
                self._cache[index] = face
                self._cached_bytes += face.nbytes
        return face


def blend_swap(original_crop_bgr: np.ndarray, swapped: np.ndarray | torch.Tensor,
               landmarks: Sequence[float] | np.ndarray, *, grow: float = 1.0, feather: float = 0.15,
               color_transfer: bool = True) -> np.ndarray:
    """The original crop (uint8 BGR) with the swapped face pasted inside the landmark face mask.

    `swapped` is the generator's output for this crop: an RGB uint8 image or a (3, H, W) /
    (1, 3, H, W) tensor in [-1, 1]; it is resized to the crop if needed. Only the face changes, as
    in the Deepfakes method; its colours are first matched to the original face (CIELAB, inside
    the mask) unless `color_transfer` is off."""
    rgb = tensor_to_rgb(swapped) if isinstance(swapped, torch.Tensor) else np.asarray(swapped)
    height, width = original_crop_bgr.shape[:2]
    face = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if face.shape[:2] != (height, width):
        face = cv2.resize(face, (width, height), interpolation=cv2.INTER_CUBIC)
    mask = landmark_face_mask(landmarks, (height, width), grow=grow, feather=feather)
    if color_transfer:
        face = match_colors_lab(face, original_crop_bgr, mask)
    return paste_face(face, original_crop_bgr, mask)


# ---------------------------------------------------------------------------------------------
# Training


def random_warp_pair(images: torch.Tensor, generator: torch.Generator, rotation_deg: float = 10.0,
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
        return (torch.rand(n, generator=generator) * 2 - 1).mul(limit).to(**options)

    angle = uniform(math.radians(rotation_deg))
    scale = 1.0 + uniform(zoom)
    mirror = torch.where(torch.rand(n, generator=generator) < flip, -1.0, 1.0).to(**options)
    theta = torch.zeros(n, 2, 3, **options)
    theta[:, 0, 0] = torch.cos(angle) / scale * mirror
    theta[:, 0, 1] = -torch.sin(angle) / scale
    theta[:, 1, 0] = torch.sin(angle) / scale * mirror
    theta[:, 1, 1] = torch.cos(angle) / scale
    theta[:, 0, 2] = uniform(shift)
    theta[:, 1, 2] = uniform(shift)
    grid = F.affine_grid(theta, [n, 3, h, w], align_corners=False)
    target = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    offsets = (torch.randn(n, 2, grid_points, grid_points, generator=generator) * warp).to(**options)
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
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch with identities drawn uniformly, then a face of that identity uniformly: each
    decoder trains equally often however unbalanced the faces are. Returns (images, identity index)."""
    who = torch.randint(len(per_identity), (batch_size,), generator=generator)
    rows = [int(per_identity[k][torch.randint(len(per_identity[k]), (1,), generator=generator)]) for k in who.tolist()]
    return faces_to_tensor([faces[r] for r in rows], image_size), who


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
    optimizer, generator, step, history = start_training(model, lr=lr, seed=seed, checkpoint=path, resume=resume,
                                                         device=device, what="face swap training")

    model.train()
    started = time.perf_counter()
    progress = tqdm(range(step, steps), desc="faceswap_ae", unit="step", initial=step, total=steps)
    for step in progress:
        images, who = sample_batch(faces, per_identity, batch_size, image_size, generator)
        inputs, targets = random_warp_pair(images.to(device), generator)
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
                                                 "rng": generator.get_state(), "history": history})
    return model.to(memory_format=torch.contiguous_format).eval(), history


# ---------------------------------------------------------------------------------------------
# Checkpoints


def save_faceswap(model: FaceSwapAutoencoder, path: str | Path, training: dict | None = None) -> None:
    """Write the model (weights + constructor arguments, plain types only, so it loads with
    weights_only=True) atomically; `training` adds the state needed to resume."""
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": model.config(),
               "model": model.state_dict()}
    if training is not None:
        payload["training"] = training
    save_checkpoint(payload, path)


def _read_checkpoint(path: str | Path, device: str | torch.device) -> dict:
    """The checkpoint's payload, safely loaded and checked to be this module's format (an official
    or foreign checkpoint cannot be used here)."""
    return read_payload(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "face swap checkpoint", device)


def _restore_weights(path: Path, model: FaceSwapAutoencoder, payload: dict) -> None:
    try:
        model.load_state_dict(payload["model"])
    except (RuntimeError, KeyError) as exc:
        raise ValueError(f"face swap checkpoint {path} does not fit its own configuration "
                         f"{payload.get('config')}: {exc}") from exc


def load_faceswap(path: str | Path, device: str | torch.device = "cpu") -> FaceSwapAutoencoder:
    """The model saved at `path` (by `save_faceswap` or as a training checkpoint), in eval mode."""
    payload = _read_checkpoint(path, device)
    try:
        model = FaceSwapAutoencoder(**payload["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"face swap checkpoint {path} has an unusable configuration "
                         f"{payload.get('config')}: {exc}") from exc
    _restore_weights(Path(path), model, payload)
    return model.to(device).eval()


def start_training(model: FaceSwapAutoencoder, *, lr: float, seed: int, checkpoint: Path | None, resume: bool,
                   device: torch.device, what: str) -> tuple[torch.optim.Optimizer, torch.Generator, int, list[dict]]:
    """Adam (beta1 0.5, as the original), the batch RNG, and the step and history to start from:
    0 and [] or, with `resume` and a usable `checkpoint`, where that run stopped. Adam is the
    fused kernel: the dense bottleneck's millions of weights make the per-tensor loop the slowest
    part of a CPU step (measured 35 ms against 5 ms at latent_dim 1024)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999), fused=True)
    generator = torch.Generator().manual_seed(seed)
    state = (resumable_state(checkpoint, lambda path: _training_state(path, model, device), f"{what} state")
             if checkpoint is not None and resume else None)
    if state is None:
        return optimizer, generator, 0, []
    _restore_weights(checkpoint, model, state)
    optimizer.load_state_dict(state["training"]["optimizer"])
    generator.set_state(state["training"]["rng"].cpu())
    step = int(state["training"]["step"])
    log.info("resuming %s from %s at step %d", what, checkpoint, step)
    return optimizer, generator, step, list(state["training"]["history"])


def _training_state(path: Path, model: FaceSwapAutoencoder, device: torch.device) -> dict:
    """A training checkpoint of this very model configuration, with its training state."""
    payload = _read_checkpoint(path, device)
    if payload.get("config") != model.config():
        raise ValueError(f"cannot resume from {path}: it was trained with {payload.get('config')}, "
                         f"now asked for {model.config()}")
    if "training" not in payload:
        raise ValueError(f"cannot resume from {path}: it holds weights only, no training state")
    return payload
