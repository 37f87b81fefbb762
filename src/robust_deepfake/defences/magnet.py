"""MagNet's reformer as a purifier: a small convolutional denoising autoencoder trained on clean
faces with Gaussian noise, which maps a face back towards the clean faces it learnt (Meng & Chen,
*MagNet: a Two-Pronged Defense against Adversarial Examples*, CCS 2017). The DDPM-purification
reference compares two of them with its DDPM, as `defensive-model-1` and `defensive-model-2`.

Architectures in MagNet's own notation: a tuple of encoder layers, an int being a 3 x 3
convolution with that many filters and sigmoid activation, "average" a 2 x 2 average pooling; the
decoder mirrors the encoder (pooling becomes 2x upsampling) and a last 3 x 3 convolution with a
sigmoid gives the 3 channels back. MagNet works on [0, 1] images; faces here are in [-1, 1] and are
mapped in and out. Training minimises MSE(AE(clip(x + noise)), x) with noise ~ N(0, noise_std^2)
on the [0, 1] scale (MagNet's `v_noise`: 0.1 on MNIST, 0.025 on CIFAR-10). MagNet also adds an L2
activity penalty of 1e-9, which changes nothing measurable and is left out.

A job trains in seconds to a minute on a CPU, so it restarts rather than resumes when killed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from robust_deepfake.checkpoints import read_payload, save_checkpoint
from robust_deepfake.tensors import rgb_to_signed

log = logging.getLogger(__name__)

# MagNet's defensive models 1 and 2 (its MNIST reformers, whose 3-filter layers it also uses on
# CIFAR-10): with and without the pooling bottleneck
STRUCTURES: dict[str, tuple[int | str, ...]] = {
    "defensive_model_1": (3, "average", 3),
    "defensive_model_2": (3, 3),
}
FORMAT, VERSION = "robust_deepfake.magnet", 1


@dataclass(frozen=True)
class MagNetConfig:
    """One autoencoder and how it is trained; `filters` scales every layer (MagNet: 3)."""

    structure: str = "defensive_model_1"
    filters: int = 3
    noise_std: float = 0.025
    steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.structure not in STRUCTURES:
            raise ValueError(f"unknown MagNet structure {self.structure!r}; known: {sorted(STRUCTURES)}")


class MagNetAutoencoder(nn.Module):
    """The reformer: [-1, 1] RGB faces in, reconstructed faces in [-1, 1] out, any even size."""

    def __init__(self, structure: str = "defensive_model_1", filters: int = 3) -> None:
        super().__init__()
        if structure not in STRUCTURES:
            raise ValueError(f"unknown MagNet structure {structure!r}; known: {sorted(STRUCTURES)}")
        encoder = [filters if isinstance(layer, int) else layer for layer in STRUCTURES[structure]]
        decoder = ["upsample" if layer == "average" else layer for layer in reversed(encoder)]
        layers: list[nn.Module] = []
        channels = 3
        for layer in encoder + decoder:
            if layer == "average":
                layers.append(nn.AvgPool2d(2))
            elif layer == "upsample":
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            else:
                layers += [nn.Conv2d(channels, layer, 3, padding=1), nn.Sigmoid()]
                channels = layer
        layers += [nn.Conv2d(channels, 3, 3, padding=1), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)
        self.structure, self.filters = structure, filters

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images + 1) / 2) * 2 - 1


def train_magnet(faces: Sequence, config: MagNetConfig,
                 device: torch.device | str = "cpu") -> tuple[MagNetAutoencoder, list[dict]]:
    """Train one reformer on RGB uint8 crops (a list or a lazy sequence such as `FaceCropFiles`);
    return it in eval mode and one {"step", "loss", "seconds"} entry per step."""
    if len(faces) == 0:
        raise ValueError("train_magnet needs at least one face")
    torch.manual_seed(config.seed)
    model = MagNetAutoencoder(config.structure, config.filters).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    rng = torch.Generator().manual_seed(config.seed)
    history, started = [], time.perf_counter()
    model.train()
    progress = tqdm(range(config.steps), desc=config.structure, unit="step")
    for step in progress:
        index = torch.randint(len(faces), (config.batch_size,), generator=rng).tolist()
        batch = [faces[i] for i in index]
        clean = rgb_to_signed(batch, batch[0].shape[0]).to(device)
        noise = torch.randn(clean.shape, generator=rng).to(device) * (2 * config.noise_std)  # [0, 1] std on [-1, 1]
        loss = (model((clean + noise).clamp(-1, 1)) - clean).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append({"step": step + 1, "loss": loss.item(), "seconds": time.perf_counter() - started})
        progress.set_postfix(mse=f"{history[-1]['loss']:.4f}", refresh=False)
    log.info("%s: %d steps on %d faces, final MSE %.5f", config.structure, config.steps, len(faces), history[-1]["loss"])
    return model.eval(), history


def save_magnet(model: MagNetAutoencoder, config: MagNetConfig, path: str | Path) -> None:
    save_checkpoint({"format": FORMAT, "version": VERSION, "config": asdict(config),
                     "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, path)


def load_magnet(path: str | Path, device: torch.device | str = "cpu") -> MagNetAutoencoder:
    """A reformer written by `save_magnet`, in eval mode; the architecture comes from the file."""
    payload = read_payload(path, FORMAT, VERSION, "MagNet autoencoder", device)
    config = MagNetConfig(**payload["config"])
    model = MagNetAutoencoder(config.structure, config.filters)
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval()
