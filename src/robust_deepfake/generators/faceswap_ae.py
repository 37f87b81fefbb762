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
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robust_deepfake.checkpoints import read_payload, save_checkpoint
from robust_deepfake.generators.face_mask import landmark_face_mask, match_colors_lab, paste_face
from robust_deepfake.images import read_rgb
from robust_deepfake.tensors import signed_to_rgb

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "robust_deepfake.faceswap_ae"
CHECKPOINT_VERSION = 1
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
    rgb = signed_to_rgb(swapped) if isinstance(swapped, torch.Tensor) else np.asarray(swapped)
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


