"""Stage purify: every real face of split B, as the attacker left it, through one defence's
purifier (`defences.purifiers`), the reject step calibrated on clean faces
(`defences.reject`, `defences.calibration`), written as 8-bit PNG and measured against the clean
face, with a summary row per scenario.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from robust_deepfake.atomic import write_image
from robust_deepfake.defences.purifiers import purify
from robust_deepfake.defences.reject import (PURIFICATION_METRICS, purification_distance, purification_table,
                                             reject_mask, reject_threshold, summarise_purification)
from robust_deepfake.images import read_images
from robust_deepfake.tensors import bgr_to_signed, signed_to_bgr
from robust_deepfake.paths import check_distinct_folders, item_path
from robust_deepfake.registry import DIFFUSION_PURIFIERS
from robust_deepfake.seeding import item_seed

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# The purify stage: every real face of split B, as the attacker left it


def face_rngs(seed: int, rows: pd.DataFrame) -> list[torch.Generator]:
    """One RNG per face, keyed by the face and not by its batch: a face is purified the same
    way whatever else is in the split."""
    return [torch.Generator().manual_seed(item_seed(seed, m, int(f), -1)) for m, f in zip(rows["media_id"], rows["frame_idx"])]


def purify_batches(name: str, images: torch.Tensor, rows: pd.DataFrame, settings: Mapping[str, Any], seed: int,
                   batch_size: int, model: Mapping[str, Any] | None = None) -> tuple[torch.Tensor, int]:
    """Purify `images` (one per row of `rows`) in batches; return the purified faces and the UNet
    evaluations spent (per batch, summed)."""
    out, evals = [], 0
    rngs = face_rngs(seed, rows)
    for start in tqdm(range(0, len(images), batch_size), desc=f"purify {name}", unit="batch"):
        batch = images[start:start + batch_size]
        rng = rngs[start:start + batch_size] if name in DIFFUSION_PURIFIERS else None
        with torch.no_grad():
            purified, info = purify(name, batch, settings, model, rng)
        out.append(purified)
        evals += int(info.get("unet_evals", 0))
    return (torch.cat(out) if out else images), evals


def calibration_threshold(name: str, calibration: torch.Tensor, calibration_rows: pd.DataFrame,
                          settings: Mapping[str, Any], rule: str, value: float | None, seed: int, batch_size: int,
                          model: Mapping[str, Any] | None) -> float | None:
    """The reject threshold from clean faces the defender owns and its model never trained on
    (`reject_threshold`'s rules). None (keep all) for rule `none` or for the purifier that changes
    nothing (a threshold of 0 would reject every face)."""
    if rule == "none" or name == "none":
        return None
    purified, _ = purify_batches(name, calibration, calibration_rows, settings, seed, batch_size, model)
    return reject_threshold(purification_distance(calibration, purified), rule, value)


def purify_split(rows: pd.DataFrame, name: str, settings: Mapping[str, Any], out_dir: str | Path, *, seed: int,
                 batch_size: int, threshold: float | None,
                 model: Mapping[str, Any] | None = None) -> tuple[pd.DataFrame, dict]:
    """Purify every face of `rows` (the poisoned manifest: `poisoned_path` is what the defender
    has, `face_path` the clean crop, known to the measures only), write the purified crops as
    8-bit PNG under `out_dir`, decide which are kept, and measure them against the clean faces.
    Returns the rows with the purify columns of the manifest (but the G measures) and the cost ({"unet_evals", "seconds"})."""
    started = time.perf_counter()
    check_distinct_folders(rows["media_id"])
    inputs = bgr_to_signed(read_images(rows["poisoned_path"].tolist()))
    purified, evals = purify_batches(name, inputs, rows, settings, seed, batch_size, model)
    written = []
    for (media_id, frame_idx), image in zip(rows[["media_id", "frame_idx"]].itertuples(index=False),
                                            signed_to_bgr(purified)):
        path = item_path(out_dir, media_id, frame_idx, "png")
        write_image(path, image)
        written.append(str(path))
    seconds = time.perf_counter() - started
    purified = bgr_to_signed(read_images(written))  # measure what was written, as the fakes will see it
    if threshold is None:
        kept, distances = torch.ones(len(rows), dtype=torch.bool), purification_distance(inputs, purified)
    else:
        kept, distances = reject_mask(inputs, purified, threshold)
    out = rows.copy()
    out["defence"] = name
    out["purified_path"] = written
    out["kept"] = kept.numpy()
    out["pur_distance"] = distances.numpy()
    quality = purification_table(bgr_to_signed(read_images(rows["face_path"].tolist())), purified)
    for column in PURIFICATION_METRICS:
        out[column] = quality[column].to_numpy()
    return out, {"unet_evals": evals, "seconds": seconds}


def purification_summary(purified: pd.DataFrame, attack: str, loss: str, rate: float, defence: str,
                         threshold: float | None, cost: dict, batch_size: int) -> pd.DataFrame:
    """The scenario's row of purified/summary.tsv: the reject rate (poisoned and clean faces apart),
    the disruption of G's output before and after the defence, the purified faces' quality against
    the clean ones and what purification cost."""
    poisoned = purified["poisoned"].astype(bool)

    def mean(column: str, rows) -> float | None:
        return float(purified.loc[rows, column].mean()) if rows.any() else None
    return pd.DataFrame([{
        "attack": attack, "loss": loss, "poison_rate": rate, "defence": defence, "faces": len(purified),
        "poisoned_faces": int(poisoned.sum()), "reject_threshold": threshold,
        "reject_rate": float(1 - purified["kept"].mean()),
        "reject_rate_poisoned": None if not poisoned.any() else 1 - mean("kept", poisoned),
        "reject_rate_clean": None if poisoned.all() else 1 - mean("kept", ~poisoned),
        "prop_dist_poisoned": mean("dist_prop", poisoned), "prop_dist_purified": mean("pdist_prop", poisoned),
        "mse_g_poisoned": mean("dist_l2", poisoned), "mse_g_purified": mean("pdist_l2", poisoned),
        **{f"{k}_vs_clean": v for k, v in summarise_purification(purified).items() if k.startswith("pur_")},
        # every face of a batch goes through each of the batch's UNet evaluations
        "unet_evals_per_image": cost["unet_evals"] / max(math.ceil(len(purified) / batch_size), 1),
        "seconds_per_image": cost["seconds"] / max(len(purified), 1)}])
