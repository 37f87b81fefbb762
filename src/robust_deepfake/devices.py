"""One device setting for every neural stage, so one config runs on a laptop and on a GPU node."""

from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    """'auto' takes CUDA when present; an explicit 'cuda' without a GPU is a config error, said early."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' is configured but no CUDA device is available (use 'auto' or 'cpu')")
    return torch.device(device)


def module_device(module: torch.nn.Module) -> torch.device:
    """Where a model's weights are, so inputs built for it (labels, images) go to the same place."""
    return next(module.parameters()).device
