"""The defenders' trained purification models, loaded by kind (a Defence's `model`, one of
`registry.PURIFIER_MODELS`) into the parts `defences.purifiers.purify` takes. One loader per kind; diffusers
is imported only by the kind that needs it, since its import costs every other purifier's job
about 5 s."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def _load_ddpm(path: Path, device: torch.device) -> dict[str, Any]:
    """`path` is the train_ddpm rule's `unet/` output (a rule's input must be an output path);
    the model folder holding it and `scheduler/` is its parent."""
    from robust_deepfake.defences.ddpm import load_ddpm

    unet, scheduler = load_ddpm(path.parent if path.name == "unet" else path, device)
    return {"unet": unet, "scheduler": scheduler}


def _load_magnet(path: Path, device: torch.device) -> dict[str, Any]:
    from robust_deepfake.defences.magnet import load_magnet

    return {"autoencoder": load_magnet(path, device)}


LOADERS: dict[str, Callable[[Path, torch.device], dict[str, Any]]] = {"ddpm": _load_ddpm, "magnet": _load_magnet}


def load_purifier_model(kind: str | None, path: str | Path | None, device: torch.device) -> dict[str, Any] | None:
    """The parts of the trained model of kind `kind` stored at `path` (a DDPM's model folder, a
    MagNet file); None for a defence without a model."""
    if kind is None:
        return None
    if kind not in LOADERS:
        raise ValueError(f"unknown purifier model {kind!r}; known: {sorted(LOADERS)}")
    return LOADERS[kind](Path(path), device)
