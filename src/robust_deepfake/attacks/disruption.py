"""How much a perturbation disrupts a face generator: the loss an attacker maximises and the
measures that report it (Ruiz et al., *Disrupting Deepfakes*).

A generator is asked for every one of its conditions (target identities or attributes), because
the attacker cannot know which one a trainer will use; losses are summed and measures reported per
(image, condition). Images are in [-1, 1] and stay at the crop size: a `FaceGenerator` takes any
size and returns the same shape (resizing to its own size inside its differentiable path), so a
perturbation is optimised, stored and judged at the size fake generation will feed the generator.

Conditions are dictionary keys, so a generator's conditions must be hashable (identity names,
attribute tuples).

Measures between G(reference) and G(other), per image and condition:

* ``dist_l1``: mean |difference|; ``dist_l2``: mean squared difference (MSE), as the paper;
* ``dist_l0``: share of pixels where any channel differs by more than `L0_TOLERANCE` (1/255, half
  an 8-bit level on [-1, 1]: differences an 8-bit image cannot show do not count). The paper's code
  counts non-zero elements (``norm(0)``), which float noise inflates;
* ``dist_linf``: max |difference|. (The reference code's "L_-inf" is ``norm(-inf)``, the *minimum*
  |difference|; its numbers are not comparable with this one);
* ``dist_prop``: 1.0 when ``dist_l2 > PROP_DIST_THRESHOLD`` (0.05, strictly greater) else 0.0;
  its mean over (image, condition) rows is the paper's ``prop_dist``, the share of disrupted outputs.

Measures of the perturbation itself, per image: ``pert_linf`` (max |delta|), ``pert_l2`` (Euclidean
norm of delta over all values), ``pert_psnr`` (dB, data range 2; inf for delta = 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd
import torch

from robust_deepfake.generators.base import FaceGenerator, for_faces
from robust_deepfake.registry import POISON_LOSSES

L0_TOLERANCE = 1.0 / 255.0
PROP_DIST_THRESHOLD = 0.05
DATA_RANGE = 2.0
DISRUPTION_METRICS = ["dist_l1", "dist_l2", "dist_l0", "dist_linf", "dist_prop"]
PERTURBATION_METRICS = ["pert_linf", "pert_l2", "pert_psnr"]


def generator_outputs(generator: FaceGenerator, images: torch.Tensor) -> dict[object, torch.Tensor]:
    """G(images, c) for every condition c; differentiable (wrap in torch.no_grad() for reference
    outputs)."""
    return {condition: generator.generate(images, condition) for condition in generator.conditions()}


def disruption_loss(generator: FaceGenerator, x_adv: torch.Tensor, clean_outputs: Mapping[object, torch.Tensor],
                    kind: str) -> torch.Tensor:
    """Per-image loss (N,) to maximise, summed over the conditions of `clean_outputs`.

    * ``mse``: MSE(G(x_adv, c), G(x, c)) (Ruiz et al.): push outputs away from the clean ones;
      `clean_outputs` holds G(x, c), computed once without gradient.
    * ``target``: -MSE(G(x_adv, c), black), black = -1 everywhere (the DDPM seed's loss):
      maximising it pulls every output towards a black image; `clean_outputs` gives only the
      conditions and the output shape.
    """
    if kind not in POISON_LOSSES:
        raise ValueError(f"unknown disruption loss {kind!r}; known: {list(POISON_LOSSES)}")
    total = x_adv.new_zeros(x_adv.shape[0])
    for condition, clean in clean_outputs.items():
        out = generator.generate(x_adv, condition)
        if kind == "mse":
            total = total + _per_image_mse(out, clean)
        else:
            total = total - _per_image_mse(out, torch.full_like(clean, -1.0))
    return total


def _per_image_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).pow(2).flatten(1).mean(dim=1)


def disruption_table(reference: Mapping[object, torch.Tensor], other: Mapping[object, torch.Tensor]) -> pd.DataFrame:
    """One row per (image, condition): the distances between G(reference) and G(other) (module
    docstring). `image` is the position in the batch, `condition` the condition's text."""
    frames = []
    for condition, ref in reference.items():
        diff = (other[condition].detach() - ref.detach()).float()
        n = diff.shape[0]
        l2 = diff.pow(2).flatten(1).mean(dim=1)
        frames.append(pd.DataFrame({
            "image": range(n),
            "condition": [str(condition)] * n,
            "dist_l1": diff.abs().flatten(1).mean(dim=1).cpu().numpy(),
            "dist_l2": l2.cpu().numpy(),
            "dist_l0": (diff.abs().amax(dim=1) > L0_TOLERANCE).flatten(1).float().mean(dim=1).cpu().numpy(),
            "dist_linf": diff.abs().flatten(1).amax(dim=1).cpu().numpy(),
            "dist_prop": (l2 > PROP_DIST_THRESHOLD).float().cpu().numpy(),
        }))
    return pd.concat(frames, ignore_index=True).sort_values(["image", "condition"], kind="stable",
                                                            ignore_index=True)


def perturbation_table(clean: torch.Tensor, perturbed: torch.Tensor) -> pd.DataFrame:
    """One row per image: the size of delta = perturbed - clean (module docstring)."""
    delta = (perturbed.detach() - clean.detach()).double().flatten(1)
    mse = delta.pow(2).mean(dim=1).cpu().numpy()
    return pd.DataFrame({
        "image": range(delta.shape[0]),
        "pert_linf": delta.abs().amax(dim=1).cpu().numpy(),
        "pert_l2": delta.norm(dim=1).cpu().numpy(),
        "pert_psnr": [10 * math.log10(DATA_RANGE ** 2 / m) if m > 0 else math.inf for m in mse],
    })


def per_image(table: pd.DataFrame) -> pd.DataFrame:
    """Average a per-(image, condition) disruption table over conditions: one row per image."""
    return table.groupby("image", sort=True)[DISRUPTION_METRICS].mean().reset_index()


def image_measures(clean: torch.Tensor, perturbed: torch.Tensor, clean_outputs: Mapping[object, torch.Tensor],
                   perturbed_outputs: Mapping[object, torch.Tensor]) -> pd.DataFrame:
    """One row per image: the perturbation's size and the disruption it causes, averaged over the
    conditions (what the poisoning stage records per face)."""
    return perturbation_table(clean, perturbed).merge(per_image(disruption_table(clean_outputs, perturbed_outputs)),
                                                      on="image")


def summarise(df: pd.DataFrame) -> pd.Series:
    """Means of the measures present in `df` (rows with NaN, e.g. unpoisoned faces, are skipped)
    and ``prop_dist``, the mean of ``dist_prop``: on a per-(image, condition) table the paper's
    share of disrupted outputs; on per-image averages the same value when every image has the same
    conditions."""
    present = [c for c in DISRUPTION_METRICS + PERTURBATION_METRICS if c in df.columns]
    means = df[present].mean()
    out = {"rows": int(df[present].notna().any(axis=1).sum())}
    out.update({name: float(v) for name, v in means.items() if name != "dist_prop"})
    if "dist_prop" in means:
        out["prop_dist"] = float(means["dist_prop"])
    return pd.Series(out)


def generator_disruption(generator: FaceGenerator, reference: torch.Tensor, other: torch.Tensor,
                         faces: pd.DataFrame, batch_size: int = 16) -> pd.DataFrame:
    """Per image, how far the generator's outputs for `other` are from its outputs for `reference`
    (DISRUPTION_METRICS averaged over conditions), in batches: e.g. G(purified) against G(clean),
    the measure of whether fake generation works again after purification. `faces` (the images'
    manifest rows, in order) give a conditional generator each face's own targets (`for_faces`)."""
    tables = []
    for start in range(0, len(reference), batch_size):
        batch = for_faces(generator, faces.iloc[start:start + batch_size])
        with torch.no_grad():
            ref = generator_outputs(batch, reference[start:start + batch_size])
            oth = generator_outputs(batch, other[start:start + batch_size])
        table = per_image(disruption_table(ref, oth))
        table["image"] += start
        tables.append(table)
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["image"] + DISRUPTION_METRICS)
