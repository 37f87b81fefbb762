"""Stage evaluate_detector: one trained detector measured on split C, as it is and under attack
and distortion.

The test set is split C's real faces, the dataset's own fakes in C (FF++, Celeb-DF, ...) and the
fakes each configured generator made from C's clean real faces (`test_fakes`), so that a detector
trained on one generator's fakes is also measured on every other's: the cross-generator question.
Beside them, the attacker's own fakes (`released_<attack>_<loss>`): the attacked generator applied
to all of C's real faces as that poisoning leaves them, as an attacker would make and release them;
each is a test set of its own, outside `all`, so the headline figures stay on clean-made fakes.
Every condition is scored on real and fake alike (DeeperForensics' users asked for exactly that):

- `clean`: the faces as they are;
- evasion attacks against this very detector, in pixel units on [0, 1]: `fgsm` and `pgd`, each
  image pushed away from its true label; the attack success rate is over the fakes;
- DeeperForensics-1.0 distortions at levels 1..5, applied to the stored crop before the
  detector's own resize (`<kind>-<level>`);
- the same distortions applied to C's whole videos before face detection
  (`<kind>-<level>-video`, stage video_distortion): the faces found again in the distorted
  frames, scored as they are; a frame whose face was lost is not scored.

Scores are kept per image and condition (scores.parquet) and summarised per test set, condition
and level (frame, and video = mean of its frame scores) in metrics.parquet.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from robust_deepfake.attacks.linf import run_attack
from robust_deepfake.detectors.adversarial import per_sample_bce
from robust_deepfake.attacks.distortions import distort
from robust_deepfake.devices import Compute, per_device
from robust_deepfake.images import read_image, to_rgb
from robust_deepfake.registry import EVASION_ATTACKS, RELEASED_PREFIX
from robust_deepfake.tensors import rgb_to_unit
from robust_deepfake.detectors.network import DeepfakeDetector
from robust_deepfake.detectors.scoring import (ALL_FAKES, DFDC_ALPHA, VIDEO_SUFFIX, attack_success_rate,
                                               detection_metrics, video_scores)
from robust_deepfake.seeding import item_seed

log = logging.getLogger(__name__)

def evaluation_faces(part_c: pd.DataFrame, test_fakes: list[pd.DataFrame],
                     released: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Rows media_id, frame_idx, image_path, label, test_set. The reals belong to every test set;
    each fake's test set is its generator (generated here), its method (the dataset's own) or, for
    the attacker's own fakes, the name it is given in `released`."""
    own = part_c.assign(image_path=part_c["face_path"], test_set=part_c["method"].where(part_c["label"] == 1, "real"))
    made = [f.assign(test_set=f["generator"]) for f in test_fakes if len(f)]
    made += [f.assign(test_set=name) for name, f in (released or {}).items() if len(f)]
    columns = ["media_id", "frame_idx", "image_path", "label", "test_set"]
    faces = pd.concat([own[columns], *[f[columns] for f in made]], ignore_index=True)
    if not (faces["label"] == 0).any() or not (faces["label"] == 1).any():
        raise ValueError(f"split C has {int((faces['label'] == 0).sum())} real and {int((faces['label'] == 1).sum())} "
                         "fake faces: a detector cannot be evaluated on one class")
    return faces


def _batches(faces: pd.DataFrame, batch_size: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(faces), batch_size):
        yield faces.iloc[start:start + batch_size]


def conditions(settings: dict) -> list[tuple[str, str, int]]:
    """(condition, kind, level) in evaluation order: clean, the attacks, every distortion level."""
    out = [("clean", "clean", 0)]
    out += [(attack, attack, 0) for attack in settings["attacks"]]
    out += [(f"{kind}-{level}", kind, level) for kind in settings["distortions"] for level in settings["levels"]]
    return out


def score_condition(model: DeepfakeDetector, faces: pd.DataFrame, kind: str, level: int, settings: dict,
                    seed: int, size: int, compute: Compute) -> np.ndarray:
    """Probability of fake for every face under one condition. Randomness (PGD's start, noise,
    block positions) comes from seeds derived from the condition and batch, so reruns agree.
    The attacks run in fp32 whatever `compute.precision`: a bf16 gradient would weaken the
    attacker, and the robustness figures would flatter the detector."""
    device = compute.device
    scores = []
    for b, batch in enumerate(_batches(faces, per_device(settings["batch_size"], device))):
        crops = [read_image(p) for p in batch["image_path"]]
        if kind != "clean" and kind not in EVASION_ATTACKS:
            rng = np.random.default_rng(item_seed(seed, kind, level, b))
            crops = [distort(im, kind, level, rng) for im in crops]
        pixels = compute.images(rgb_to_unit([to_rgb(image, size) for image in crops]))  # resized as for training
        if kind in EVASION_ATTACKS:
            attack = settings[kind]
            labels = torch.tensor(batch["label"].to_numpy(dtype=np.float32), device=device)
            rng = torch.Generator().manual_seed(item_seed(seed, kind, b))
            pixels = run_attack(kind, pixels, per_sample_bce(model, labels), attack["epsilon"], attack.get("steps", 1),
                                attack.get("step_size", attack["epsilon"]), rng=rng, lo=0.0, hi=1.0).x_adv
        with torch.no_grad(), compute.autocast():
            scores.append(torch.sigmoid(model(pixels).float()).cpu().numpy())
    return np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)


def score_all(model: DeepfakeDetector, faces: pd.DataFrame, settings: dict, seed: int, size: int,
              compute: Compute, video_distorted: dict[tuple[str, int], pd.DataFrame] | None = None) -> pd.DataFrame:
    """Long table: one row per face and condition, with the face's identifiers and label.
    `video_distorted` holds, per (kind, level), the faces cut from C's distorted whole videos."""
    model.eval()
    tables = []
    for condition, kind, level in tqdm(conditions(settings), desc="evaluate", unit="condition"):
        scores = score_condition(model, faces, kind, level, settings, seed, size, compute)
        tables.append(faces.assign(condition=condition, kind=kind, level=level, score=scores))
    for (kind, level), distorted in (video_distorted or {}).items():
        found = distorted[distorted["image_path"].notna()][faces.columns.intersection(distorted.columns)]
        scores = score_condition(model, found, "clean", 0, settings, seed, size, compute)
        tables.append(found.assign(condition=f"{kind}-{level}-video", kind=f"{kind}{VIDEO_SUFFIX}", level=level,
                                   score=scores))
    return pd.concat(tables, ignore_index=True)


def _metrics_rows(scores: pd.DataFrame, threshold: float, alpha: float) -> list[dict]:
    """Frame- and video-level metrics of one test set under one condition."""
    video = video_scores(scores)
    return [{"unit": unit, **detection_metrics(table["label"].to_numpy(), table["score"].to_numpy(), threshold, alpha)}
            for unit, table in (("frame", scores), ("video", video))]


def test_set_views(scores: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    """Each fake test set with all the reals, then every fake made from clean faces together
    (`all`: the attacker's own fakes are reported apart)."""
    reals = scores[scores["label"] == 0]
    for name in sorted(scores.loc[scores["label"] == 1, "test_set"].unique()):
        yield name, pd.concat([reals, scores[scores["test_set"] == name]], ignore_index=True)
    yield ALL_FAKES, scores[~scores["test_set"].str.startswith(RELEASED_PREFIX)]


def metrics_table(scores: pd.DataFrame, threshold: float, alpha: float = DFDC_ALPHA) -> pd.DataFrame:
    """metrics.parquet: per test set, condition and unit: acc, auc, eer, ap, DFDC's weighted
    precision (wp, false alarms weighted by `alpha`), counts; for attack conditions also the
    attack success rate and robust accuracy against the clean scores."""
    rows = []
    for name, view in test_set_views(scores):
        clean = view[view["condition"] == "clean"].set_index(["media_id", "frame_idx", "test_set"])["score"]
        for (condition, kind, level), group in view.groupby(["condition", "kind", "level"], sort=False):
            extra = {}
            if kind in EVASION_ATTACKS:
                keyed = group.set_index(["media_id", "frame_idx", "test_set"])
                extra = attack_success_rate(keyed["label"].to_numpy(), clean.loc[keyed.index].to_numpy(),
                                            keyed["score"].to_numpy(), threshold)
            for row in _metrics_rows(group, threshold, alpha):
                rows.append({"test_set": name, "condition": condition, "kind": kind, "level": level, **row,
                             **(extra if row["unit"] == "frame" else {})})
    return pd.DataFrame(rows)
