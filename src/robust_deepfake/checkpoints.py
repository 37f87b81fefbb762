"""Reading and writing the pipeline's torch checkpoints: one safe loader, one atomic writer, and
the rule for a training state that cannot be used.

Every checkpoint is loaded with `weights_only=True`: tensors and plain containers only, so a file
from elsewhere cannot run code. When torch refuses a file its message advises retrying with
`weights_only=False`, which is the wrong advice for a file one does not trust; the errors here
say what is wrong with the file instead, and name it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

import torch

from robust_deepfake.atomic import atomic_path

log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the problem."""


def _why_unreadable(exc: BaseException) -> str:
    """torch's reason for refusing a file, without its advice to turn safe loading off."""
    text = str(exc)
    refused = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if refused:
        return (f"it holds a Python object of type {refused.group(1)}, which safe loading refuses because "
                "loading it could run code; only tensors and plain containers are accepted (re-save the "
                "weights as a state dict)")
    if "zip archive" in text or "central directory" in text:
        return "the file is corrupt or truncated (its zip archive cannot be read)"
    # unpickling garbage fails in many ways (UnpicklingError, EOFError, IndexError...): one cause
    return "it is not a torch checkpoint (corrupt, truncated or another kind of file)"


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", what: str = "checkpoint"):
    """The object saved at `path`, loaded safely onto `device`; `what` names the kind of file in
    errors (e.g. "face swap checkpoint")."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise CheckpointError(f"{what} {path} cannot be read: {_why_unreadable(exc)}") from None


def read_payload(path: str | Path, fmt: str, version: int, what: str, device: str | torch.device = "cpu") -> dict:
    """A checkpoint this pipeline wrote in format `fmt`, version `version`: anything else is an
    error that says so."""
    payload = load_checkpoint(path, device, what)
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise CheckpointError(f"{path} is not a {what} of this pipeline (format {fmt!r} expected)")
    if payload.get("version") != version:
        raise CheckpointError(f"{what} {path} has version {payload.get('version')}, this code reads version {version}")
    return payload


def save_checkpoint(payload, path: str | Path) -> None:
    """torch.save, atomically: a job killed mid-write leaves the previous file or none."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def resumable_state(path: str | Path, read: Callable[[Path], dict], what: str) -> dict | None:
    """The training state at `path` as `read` returns it, or None when there is none. A state that
    cannot be used (corrupt, another format, another configuration: `read` raises ValueError) is
    logged, deleted and answered with None, so training starts afresh instead of stopping a run
    whose user can do nothing else with the file."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return read(path)
    except ValueError as exc:
        log.warning("%s; discarding this %s and training from the start", exc, what)
        path.unlink()
        return None
