"""Stage train_generator: fit a face generator on split A (`generators.loading` knows how for
each), or take a user's checkpoint. The grey-box attacker's surrogate is the same architecture
trained on other data: half of split A's identities, with another seed.
"""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path

import pandas as pd
import torch

from robust_deepfake.devices import resolve_device
from robust_deepfake.generators.loading import generator_family, load_generator

log = logging.getLogger(__name__)

VARIANTS = ("main", "surrogate")


def training_faces(part_a: pd.DataFrame, variant: str, seed: int) -> pd.DataFrame:
    """Real faces of split A a generator learns from; the surrogate gets a seeded half of A's
    identities, so its training data differs from the attacked model's as grey-box needs."""
    if variant not in VARIANTS:
        raise ValueError(f"generator variant must be one of {VARIANTS}, got {variant!r}")
    reals = part_a[(part_a["label"] == 0) & part_a["face_path"].notna()]
    if reals.empty:
        raise ValueError("split A has no real face crops to train a generator on")
    if variant == "surrogate":
        identities = sorted(reals["identity"].unique())
        random.Random(seed).shuffle(identities)
        keep = identities[: max(2, len(identities) // 2)]
        reals = reals[reals["identity"].isin(keep)]
    return reals.sort_values(["media_id", "frame_idx"]).reset_index(drop=True)


def train_generator(name: str, faces: pd.DataFrame, settings: dict, seed: int, out_path: str | Path,
                    work_dir: str | Path, device: str = "auto") -> pd.DataFrame:
    """Train generator `name` on `faces` (or copy the configured checkpoint) to `out_path`;
    return the per-step training history. `work_dir` holds the resumable training state, so a
    killed job continues where it stopped when Snakemake reruns it."""
    out_path, work_dir = Path(out_path), Path(work_dir)
    dev = resolve_device(device)
    checkpoint = settings.get("checkpoint")
    if checkpoint:
        _adopt_checkpoint(name, checkpoint, settings, out_path, dev)
        return pd.DataFrame({"step": [], "loss": []})
    history = generator_family(name).train(faces, settings, seed, out_path, work_dir, dev)
    log.info("%s trained on %d faces of %d identities -> %s", name, len(faces), faces["identity"].nunique(), out_path)
    return pd.DataFrame(history)


def _adopt_checkpoint(name: str, checkpoint: str, settings: dict, out_path: Path, device: torch.device) -> None:
    """A configured pretrained checkpoint replaces training; it is loaded once here, so a wrong
    file fails in this stage with its name, not later inside poisoning."""
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"{name}.checkpoint {checkpoint} does not exist")
    load_generator(name, checkpoint, settings, device)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checkpoint, out_path)
    log.info("%s: using the configured checkpoint %s instead of training", name, checkpoint)


def check_trainable_data(name: str, faces: pd.DataFrame, settings: dict) -> None:
    """Fail early, with the fix, when a generator cannot learn from this dataset (a configured
    checkpoint needs no data)."""
    if not settings.get("checkpoint"):
        generator_family(name).check(faces, settings)
