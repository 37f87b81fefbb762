"""Poisoning stage: disrupt a share of split B's real faces against a face generator, so that the
fakes later generated from them are broken and the detector trained on them learns the wrong thing.

Which faces: whole media (videos) are chosen, not frames: an attacker poisons what they publish,
and a video whose frames are half clean would let a detector see clean and disrupted versions of
the same face side by side. Fakes are never poisoned.

How: each chosen crop is read (8-bit BGR), turned into an RGB tensor in [-1, 1] at the crop's own
size, attacked (attacks.py) against `disruption_loss` summed over all of the generator's conditions,
and written back as an 8-bit image. 8-bit writing rounds the perturbation to whole levels
(2/255 on [-1, 1]); it is rounded to the nearest level and then limited to the largest whole number
of levels inside eps, so the written file still respects the budget. Every measure is computed on
the image as decoded from the encoded bytes that are written, i.e. on what the file holds.

Threat model: `poison_faces` attacks whatever generator it is given: the generator that makes the
fakes (white box) or a surrogate trained on other data (grey box); the stage decides.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from robust_deepfake.atomic import atomic_path, write_image
from robust_deepfake.attacks.disruption import (DISRUPTION_METRICS, PERTURBATION_METRICS, generator_outputs,
                                                image_measures, summarise)
from robust_deepfake.attacks.adaptive import Purifier, eot_disruption_loss, identity
from robust_deepfake.attacks.linf import run_attack
from robust_deepfake.generators.base import FaceGenerator, for_faces
from robust_deepfake.images import read_images
from robust_deepfake.tensors import bgr_to_signed
from robust_deepfake.manifest import require_columns
from robust_deepfake.paths import check_distinct_folders, item_path
from robust_deepfake.registry import POISON_ATTACKS, linf_attack

log = logging.getLogger(__name__)

LEVEL = 2.0 / 255.0  # one 8-bit step on [-1, 1]


def select_poisoned(reals: pd.DataFrame, poison_rate: float, seed: int) -> pd.Series:
    """Boolean mask over `reals`' rows: the frames of round(poison_rate x real media) media.

    Real media (label 0) are sorted by id and permuted with `seed`; the first ones are chosen, so
    the choice is deterministic, rates 0 and 1 are exact (none, all), and at one seed a higher
    rate poisons a superset of a lower rate's media (comparisons across rates differ only in the
    added media). Rows of fake media are never chosen."""
    if not 0.0 <= poison_rate <= 1.0:
        raise ValueError(f"poison_rate must be in [0, 1], got {poison_rate}")
    require_columns(reals, ["media_id", "label"], "select_poisoned")
    is_real = reals["label"].eq(0)
    media = np.array(sorted(reals.loc[is_real, "media_id"].unique()), dtype=object)
    n_chosen = math.floor(poison_rate * len(media) + 0.5)  # round half up, exact at 0 and 1
    chosen = media[np.random.default_rng(seed).permutation(len(media))[:n_chosen]]
    return (reals["media_id"].isin(set(chosen)) & is_real).rename("poisoned")


def check_attack(attack: str, epsilon: float, loss_kind: str, image_format: str) -> None:
    """Refuse settings under which the written poison would be no attack at all."""
    if epsilon < LEVEL * (1 - 1e-6):
        raise ValueError(f"epsilon {epsilon} is below one 8-bit level ({LEVEL:.5f} on [-1, 1]): every "
                         "written poisoned image would equal its clean crop")
    if attack in POISON_ATTACKS and POISON_ATTACKS[attack].starts_at_input and loss_kind == "mse":
        raise ValueError(f"attack {attack!r} starts at the clean image, where the 'mse' disruption loss has a "
                         "zero gradient: nothing would change. Use loss 'target' or attack 'pgd'")
    if image_format != "png":
        log.warning("writing poisoned crops as %s: lossy compression destroys part of the perturbation; "
                    "the measures report what survives", image_format)


def poison_faces(rows: pd.DataFrame, mask, generator: FaceGenerator, attack: str, epsilon: float, steps: int,
                 step_size: float, loss_kind: str, batch_size: int, seed: int, out_dir: str | Path,
                 image_format: str = "png", device: str | torch.device = "cpu",
                 grid_path: str | Path | None = None, through: Purifier = identity,
                 eot_samples: int = 1) -> pd.DataFrame:
    """Attack the crops of the rows `mask` selects (a boolean Series aligned on `rows`' index, or
    an array in row order), write them under `out_dir` and return `rows` with manifest.POISON_ADDED_COLUMNS.

    Unselected rows keep their crop: `poisoned_path` = `face_path`, null attack and measures.
    Measures per poisoned image are those of disruption.py, averaged over the conditions. An
    `nn.Module` generator is put in eval mode: poisoning needs batch-independent outputs.
    `grid_path` (optional) gets a disruption_grid of the first batch, first condition.
    `through` is what the attacker optimises through: nothing (`identity`), or for an adaptive
    attack the defence's purification (`defences.anticipated`), averaged over `eot_samples` draws per step; the `attack` then names the
    `attacks.linf` attack it runs (`registry.linf_attack`). With nothing selected (the clean
    scenario) the generator and the attack settings are not used and may be None."""
    require_columns(rows, ["media_id", "frame_idx", "face_path"], "poison_faces")
    check_distinct_folders(rows["media_id"])
    out = rows.reset_index(drop=True).copy()
    selected = pd.Series(mask, index=rows.index)
    if selected.isna().any():
        raise ValueError("poison mask does not cover every row")
    todo = np.flatnonzero(selected.to_numpy(dtype=bool))
    if len(todo):
        check_attack(attack, epsilon, loss_kind, image_format)
    if isinstance(generator, torch.nn.Module):
        generator.eval()

    rng = torch.Generator().manual_seed(seed)
    poisoned_paths = out["face_path"].to_numpy(dtype=object, copy=True)
    metrics = pd.DataFrame(np.nan, index=out.index, columns=PERTURBATION_METRICS + DISRUPTION_METRICS)
    batches = range(0, len(todo), batch_size) if len(todo) else range(0)
    for start in tqdm(batches, desc=f"poison {attack}", unit="batch"):
        idx = todo[start:start + batch_size]
        clean_u8 = read_images(out.loc[idx, "face_path"].tolist())
        clean = bgr_to_signed(clean_u8, device)
        target = for_faces(generator, out.loc[idx])
        with torch.no_grad():
            clean_outputs = generator_outputs(target, clean)
        x_adv = run_attack(linf_attack(attack) if attack in POISON_ATTACKS else attack, clean,
                           lambda x: eot_disruption_loss(target, through, x, clean_outputs, loss_kind, eot_samples),
                           epsilon, steps, step_size, rng).x_adv
        paths = [item_path(out_dir, out.at[i, "media_id"], out.at[i, "frame_idx"], image_format) for i in idx]
        written = [write_encoded(path, quantise(c, a, epsilon)) for path, c, a in zip(paths, clean_u8, x_adv)]
        poisoned = bgr_to_signed(np.stack(written), device)
        with torch.no_grad():
            poisoned_outputs = generator_outputs(target, poisoned)
        metrics.loc[idx] = image_measures(clean, poisoned, clean_outputs, poisoned_outputs)[metrics.columns].to_numpy()
        poisoned_paths[idx] = [str(path) for path in paths]
        if grid_path is not None and start == 0:
            first = next(iter(clean_outputs))
            disruption_grid(clean, poisoned, clean_outputs[first], poisoned_outputs[first], grid_path)

    is_poisoned = np.zeros(len(out), dtype=bool)
    is_poisoned[todo] = True
    out["poisoned"] = is_poisoned
    out["poisoned_path"] = pd.Series(poisoned_paths, dtype=object)
    out["attack"] = pd.Series(np.where(is_poisoned, attack, None), dtype=object)
    out["epsilon"] = np.where(is_poisoned, epsilon if len(todo) else np.nan, np.nan).astype(np.float32)
    for name in metrics.columns:
        out[name] = metrics[name].astype(np.float32)
    if len(todo):
        log.info("poisoned %d of %d faces with %s (eps %g): %s", len(todo), len(out), attack, epsilon,
                 summarise(out.loc[is_poisoned]).round(4).to_dict())
    else:
        log.info("no face selected for poisoning (%d rows)", len(out))
    return out


def quantise(clean_bgr: np.ndarray, x_adv: torch.Tensor, epsilon: float) -> np.ndarray:
    """The 8-bit BGR image nearest to `x_adv` (RGB, [-1, 1]) whose change from `clean_bgr` stays within
    eps: the perturbation rounded to whole levels, each limited to floor(eps / level) levels."""
    max_levels = math.floor(epsilon / LEVEL + 1e-6)
    target = ((x_adv.detach().float().cpu() + 1.0) * 127.5).permute(1, 2, 0).numpy()[..., ::-1]
    levels = np.clip(np.rint(target - clean_bgr), -max_levels, max_levels)
    return np.clip(clean_bgr + levels, 0, 255).astype(np.uint8)


def write_encoded(path: Path, image_bgr: np.ndarray) -> np.ndarray:
    """Encode, write atomically and return the image decoded from the very bytes written (equal to
    the input for PNG; what survives compression for JPEG)."""
    ok, encoded = cv2.imencode(path.suffix, image_bgr)
    if not ok:
        raise OSError(f"could not encode image {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)


def disruption_grid(clean: torch.Tensor, poisoned: torch.Tensor, g_clean: torch.Tensor, g_poisoned: torch.Tensor,
                    path: str | Path, rows: int = 4) -> None:
    """A PNG with one face per row: clean | poisoned | G(clean) | G(poisoned) (RGB tensors in [-1, 1],
    all of one shape), to see what the poison does. torchvision is imported here, not with the
    module: its import (3 s, torch._dynamo) would be paid by every job that reads crops."""
    from torchvision.utils import make_grid

    n = min(rows, clean.shape[0])
    tiles = [clean[:n], poisoned[:n], g_clean[:n], g_poisoned[:n]]
    grid = make_grid(torch.stack(tiles, dim=1).flatten(0, 1).detach().float().cpu(), nrow=4, padding=2,
                     pad_value=1.0)
    rgb = ((grid.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    write_image(path, np.ascontiguousarray(rgb[..., ::-1]))


def blank_grid(path: str | Path, message: str) -> None:
    """The grid's stand-in when nothing was poisoned (rate 0), so the scenario's outputs are complete
    and say why there is nothing to see."""
    canvas = np.full((64, 520, 3), 255, np.uint8)
    cv2.putText(canvas, message, (8, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    write_image(path, canvas)


def poisoning_summary(poisoned: pd.DataFrame, attack: str, loss: str, rate: float, threat: str,
                      generator: str) -> pd.DataFrame:
    """The scenario's row of poisoned/summary.tsv: the perturbation's size and the disruption of the
    generator's output (`prop_dist`), over the faces that were attacked."""
    summary = summarise(poisoned[poisoned["poisoned"]]).to_frame().T
    for position, (column, value) in enumerate({"attack": attack, "loss": loss, "poison_rate": rate, "threat": threat,
                                                "generator": generator}.items()):
        summary.insert(position, column, value)
    return summary
