"""The defence's reject step and what purification did to a face, measured against the clean one.

Reject step (the DDPM-purification reference's "delete disturbing images"): a face the purifier had to change a lot is
presumed poisoned beyond repair and dropped. One measure serves both the threshold and the check,
the per-image mean absolute error to its own input, ``purification_distance`` (MAE rather than
MSE: it is what that reference's threshold uses, and it is not dominated by a few strongly changed
pixels). The threshold is calibrated on clean faces the purifier's model never trained on
(``calibration.py``) by one of two rules (``REJECT_RULES``):

* ``quantile`` (default): the (1 - r) quantile of the clean faces' changes, so that a share r of
  clean faces (``purify.reject_clean_rate``, 5 %) is dropped and the rule's cost in clean data is
  known in advance;
* ``factor``: the reference's factor x the mean change of a clean face. The reference derives this threshold
  from mean |x - D(x)| but checks each face's MSE against it, a mismatch of units under which its
  check almost never fires; here the check uses the same measure, and then a factor below 1 puts
  the threshold under the average clean face, so many clean faces go too (measured on the demo's
  faces with JPEG q75, median 3 and blur sigma 1: 100 %, 50 % and 88 % of clean faces at 0.7).

Quality against the clean (unpoisoned) face, per image: ``pur_l2`` (MSE on [-1, 1]),
``pur_psnr`` (dB, data range 2; inf when identical), ``pur_ssim`` (scikit-image SSIM on the
8-bit RGB images). What purification does to the generator's outputs is measured with
``robust_deepfake.attacks.disruption`` (``generator_outputs``, ``disruption_table``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from skimage.metrics import structural_similarity

from robust_deepfake.attacks.disruption import DATA_RANGE
from robust_deepfake.tensors import signed_to_bgr

REJECT_RULES = ("quantile", "factor", "none")
PURIFICATION_METRICS = ["pur_l2", "pur_psnr", "pur_ssim"]


# --- reject step -------------------------------------------------------------------------------------

def purification_distance(inputs: torch.Tensor, purified: torch.Tensor) -> torch.Tensor:
    """Per image (N,), float64: mean |input - purified| over all values, how much purification
    changed a face; the one measure of the reject step (module docstring)."""
    return (inputs.detach().double() - purified.detach().double()).abs().flatten(1).mean(dim=1).cpu()


def reject_threshold(clean_changes: np.ndarray | torch.Tensor, rule: str, value: float | None) -> float | None:
    """The change at or above which a purified face is taken for one the purifier could not repair,
    from the changes (`purification_distance`) of clean faces: `quantile`, their (1 - value)
    quantile, so about a share `value` of clean faces is dropped; `factor`, value x their mean (the
    seed's, 0.7); `none`, no threshold (keep every face)."""
    if rule not in REJECT_RULES:
        raise ValueError(f"unknown reject rule {rule!r}; known: {REJECT_RULES}")
    if rule == "none":
        return None
    changes = np.asarray(clean_changes, dtype=np.float64)
    if changes.size == 0:
        raise ValueError("the reject step needs clean calibration faces")
    if rule == "quantile":
        if not 0 <= value < 1:
            raise ValueError(f"the clean reject rate must be in [0, 1), got {value}")
        return float(np.quantile(changes, 1 - value)) if value > 0 else float(np.nextafter(changes.max(), np.inf))
    return float(value * changes.mean())


def reject_mask(inputs: torch.Tensor, purified: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, distances): a face whose `purification_distance` is at or above `threshold` is
    dropped (>=, as the reference); kept is a bool tensor (N,)."""
    distances = purification_distance(inputs, purified)
    return distances < threshold, distances


def reject_rate(kept: torch.Tensor) -> float:
    """Dropped / total (0 for no faces)."""
    return float((~kept).sum()) / kept.numel() if kept.numel() else 0.0


# --- quality against the clean face ----------------------------------------------------------------

def purification_table(clean: torch.Tensor, purified: torch.Tensor) -> pd.DataFrame:
    """One row per image: MSE, PSNR and SSIM of the purified face against the clean (unpoisoned)
    one; SSIM on the 8-bit images as they would be written (module docstring)."""
    mse = (clean.detach().double() - purified.detach().double()).pow(2).flatten(1).mean(dim=1).cpu().numpy()
    clean_8bit, purified_8bit = signed_to_bgr(clean), signed_to_bgr(purified)
    return pd.DataFrame({
        "image": range(len(mse)),
        "pur_l2": mse,
        "pur_psnr": [10 * math.log10(DATA_RANGE ** 2 / m) if m > 0 else math.inf for m in mse],
        "pur_ssim": [structural_similarity(a, b, channel_axis=-1, data_range=255)
                     for a, b in zip(clean_8bit, purified_8bit)],
    })


def summarise_purification(table: pd.DataFrame) -> pd.Series:
    """Means of the per-image measures; PSNR is averaged over finite values only (an unchanged
    face has infinite PSNR) and ``identical`` counts those faces."""
    psnr = table["pur_psnr"]
    finite = psnr[np.isfinite(psnr)]
    return pd.Series({
        "rows": len(table),
        "pur_l2": float(table["pur_l2"].mean()),
        "pur_psnr": float(finite.mean()) if len(finite) else math.inf,
        "pur_ssim": float(table["pur_ssim"].mean()),
        "identical": int((~np.isfinite(psnr)).sum()),
    })
