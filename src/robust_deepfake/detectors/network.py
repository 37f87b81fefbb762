"""The deepfake detector: a timm backbone with one logit, wrapped so that it takes pixels.

`DeepfakeDetector` takes RGB images in [0, 1] at any size and resizes and normalises them itself.
Keeping the normalisation inside the model is what makes adversarial examples right by
construction: an attack perturbs pixels and clamps them to [0, 1], which *is* the valid range of
the normalised input (the robust-detector reference clamps normalised inputs to [0, 1], a range they do not live in),
and the budgets are in pixel units (1/255 is one grey level) whatever mean/std a backbone uses.

A checkpoint holds the backbone name, input size, normalisation and weights, plain types only,
so `load_detector` needs nothing but the file (and loads it with weights_only=True).

A scenario can leave nothing to train on (a purifier whose reject step drops every real face).
Its checkpoint then records why, with no weights (`save_untrained`), so the scenario still has
its row in the experiment table, and loading it raises `UntrainedDetector` with the reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from robust_deepfake.checkpoints import read_payload, save_checkpoint
from robust_deepfake.detectors.ensemble import ExpertEnsemble
from robust_deepfake.detectors.recce import RECCE
from robust_deepfake.detectors.spectrum import SpectrumDetector

CHECKPOINT_FORMAT = "robust_deepfake.stages.detector_training"
CHECKPOINT_VERSION = 1


class UntrainedDetector(ValueError):
    """The checkpoint records a scenario where no detector could be trained, and why."""


@dataclass(frozen=True)
class DetectorConfig:
    """What a detector is, apart from its weights: enough to rebuild it from a checkpoint."""

    backbone: str = "resnet18"
    image_size: int = 128
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    drop_rate: float = 0.0
    extra: dict = field(default_factory=dict)  # a family's settings, or timm keyword arguments (drop_path_rate)


class DeepfakeDetector(nn.Module):
    """Pixels in [0, 1] (N, 3, H, W) -> one logit per image (N,); positive means fake."""

    def __init__(self, config: DetectorConfig, pretrained_file: str | Path | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = create_backbone(config, pretrained_file)
        self.register_buffer("mean", torch.tensor(config.mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def backbone_input(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] at any size -> the backbone's input: its size, its normalisation."""
        size = self.config.image_size
        if pixels.shape[-2:] != (size, size):
            pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return (pixels - self.mean) / self.std

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.backbone_input(pixels)).squeeze(1)

    def training_loss(self, pixels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss this detector trains on: its family's own where it has one (the expert
        ensemble's three terms), else BCE on the logit."""
        own = getattr(self.backbone, "training_loss", None)
        if own is None:
            return F.binary_cross_entropy_with_logits(self(pixels), labels)
        return own(self.backbone_input(pixels), labels)


# the backbones that are not timm models (registry.DETECTOR_FAMILIES names them), by name; each
# takes the config's `extra` (the family's own settings, recorded in the checkpoint) as arguments
FAMILIES = {"spectrum": lambda config: SpectrumDetector(config.image_size, **config.extra),
            "ensemble": lambda config: ExpertEnsemble(**config.extra),
            "recce": lambda config: RECCE(**config.extra)}


def create_backbone(config: DetectorConfig, pretrained_file: str | Path | None = None) -> nn.Module:
    """A family of this pipeline by its name, or any model timm knows by name, with a one-logit
    head. Local weights go through timm's own loader (`pretrained_cfg_overlay=file`), which drops
    a classifier of another size and reads .safetensors or torch files with weights_only; nothing
    is ever downloaded."""
    if config.backbone in FAMILIES:
        if pretrained_file is not None:
            raise ValueError(f"detector.pretrained: {config.backbone} is trained from scratch here, it takes no weights")
        return FAMILIES[config.backbone](config)
    import timm  # 2 s of import (torchvision, dynamo) that the pipeline's own families do not need

    kwargs = dict(num_classes=1, drop_rate=config.drop_rate, **config.extra)
    if pretrained_file is None:
        try:
            return timm.create_model(config.backbone, pretrained=False, **kwargs)
        except RuntimeError as exc:  # timm raises RuntimeError for an unknown name
            raise ValueError(f"timm has no model {config.backbone!r}: {exc}") from None
    path = Path(pretrained_file)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights for {config.backbone} not found: {path}")
    try:
        return timm.create_model(config.backbone, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs)
    except RuntimeError as exc:
        raise ValueError(f"{path} does not hold weights of timm model {config.backbone}: {exc}") from None


def _write_checkpoint(path: str | Path, config: DetectorConfig, **fields) -> None:
    """Format, version and configuration, plus `fields`, written atomically."""
    save_checkpoint({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": asdict(config), **fields},
                    path)


def save_detector(model: DeepfakeDetector, path: str | Path, extra: dict | None = None) -> None:
    """Write weights and configuration atomically; `extra` adds plain-typed facts (epoch, val AUC)."""
    _write_checkpoint(path, model.config, model=model.state_dict(), **(extra or {}))


def save_untrained(config: DetectorConfig, path: str | Path, reason: str) -> None:
    """The checkpoint of a scenario with nothing to train on: the configuration and the reason."""
    _write_checkpoint(path, config, untrained=reason)


def read_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict:
    """The payload of a detector checkpoint of this pipeline, with clear errors for anything else
    (timm weights belong in the config's detector.pretrained instead)."""
    return read_payload(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "detector checkpoint", device)


def detector_config(payload: dict) -> DetectorConfig:
    config = dict(payload["config"])
    config["mean"], config["std"] = tuple(config["mean"]), tuple(config["std"])
    return DetectorConfig(**config)


def calibrated_threshold(path: str | Path, default: float = 0.5) -> float:
    """The decision threshold the detector's training calibrated on its hold-out (`default` for a
    checkpoint written before thresholds were kept)."""
    return float(read_checkpoint(path).get("threshold", default))


def load_detector(path: str | Path, device: str | torch.device = "cpu") -> DeepfakeDetector:
    """The detector saved at `path`, in eval mode on `device`."""
    payload = read_checkpoint(path, device)
    if "untrained" in payload:
        raise UntrainedDetector(f"{path}: no detector was trained in this scenario: {payload['untrained']}")
    model = DeepfakeDetector(detector_config(payload))
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise ValueError(f"detector checkpoint {path} does not fit its own configuration: {exc}") from exc
    return model.to(device).eval()
