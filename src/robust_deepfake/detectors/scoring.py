"""Detector metrics for the evaluation stage.

Conventions throughout: label 1 = fake, 0 = real; a score is the detector's probability that the
face is fake, and a face is called fake when its score is at or above the threshold (so a score
below the threshold is "called real", as the attack success rate counts it).

Threshold-free measures (AUC, AP, EER) come from scikit-learn; what is written here is only the
glue: input checks, the EER read off sklearn's ROC curve, and NaN instead of an exception when a
split holds one class only, because a small demo split or a per-generator slice often does and
one undefined number must not stop the whole evaluation table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

ROC_COLUMNS = ["fpr", "tpr", "threshold"]
# the test set of every fake together, beside each generator's or method's own
ALL_FAKES = "all"
# the kind of an evaluation condition distorted on the whole video, not the crop: "<kind>-video"
VIDEO_SUFFIX = "-video"
# DFDC's weight of a false alarm in weighted precision (Dolhansky et al. 2019, 2020)
DFDC_ALPHA = 100.0


def _labels_scores(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Check here rather than in sklearn so the message says which convention was broken."""
    y = np.asarray(labels).ravel()
    s = np.asarray(scores, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0 (real) or 1 (fake), got {sorted(set(y.tolist()) - {0, 1})[:5]}")
    if not np.isfinite(s).all():
        raise ValueError(f"{int((~np.isfinite(s)).sum())} scores are NaN or infinite")
    return y.astype(int), s


def _both_classes(y: np.ndarray) -> bool:
    return bool(y.size) and 0 < int(y.sum()) < y.size


def _accuracy(y: np.ndarray, s: np.ndarray, threshold: float) -> float:
    """NaN on empty input: a mean of nothing is not 0 % or 100 % accurate."""
    return float(np.mean((s >= threshold) == (y == 1))) if y.size else float("nan")


def equal_error_rate(labels: ArrayLike, scores: ArrayLike) -> float:
    """The rate at which false alarms on reals equal misses on fakes (FPR = FNR = 1 - TPR).

    The ROC curve is taken as the straight lines between sklearn's ROC points (the curve sklearn's
    AUC integrates), and the EER is where it crosses FPR = 1 - TPR. Along one segment both FPR and
    FNR are linear in the same parameter t in [0, 1], so d = FPR - FNR is too; d rises from -1 at
    (0, 0) to +1 at (1, 1), and on the first segment where it reaches 0 we solve d(t) = 0 and take
    FPR(t). Without ties the segments are horizontal or vertical, so this is the exact crossing of
    the staircase with the diagonal; a segment from tied scores is crossed part way along it
    (one real and one fake with the same score give 0.5). Rounding to the nearest ROC point, the
    common shortcut, can be off by a whole step on small splits. NaN when one class is absent.
    """
    y, s = _labels_scores(labels, scores)
    if not _both_classes(y):
        return float("nan")
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    d = fpr - (1.0 - tpr)
    i = int(np.argmax(d >= 0))  # d[-1] = 1 at (1, 1), and d[0] = -1 at (0, 0), so 1 <= i
    t = -d[i - 1] / (d[i] - d[i - 1])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def weighted_precision(labels: ArrayLike, scores: ArrayLike, threshold: float = 0.5,
                       alpha: float = DFDC_ALPHA) -> float:
    """DFDC's weighted precision TP / (TP + alpha FP) at the decision threshold (Dolhansky et al.):
    a false alarm on a real costs `alpha` times a caught fake's worth, because in the wild reals
    outnumber fakes by far, while a test set holds them in about equal numbers. NaN when nothing
    is called fake, since a precision of no calls is undefined, not 0 or 1."""
    y, s = _labels_scores(labels, scores)
    called = s >= threshold
    tp, fp = int((called & (y == 1)).sum()), int((called & (y == 0)).sum())
    return tp / (tp + alpha * fp) if tp + fp else float("nan")


def detection_metrics(labels: ArrayLike, scores: ArrayLike, threshold: float = 0.5,
                      alpha: float = DFDC_ALPHA) -> dict:
    """One row of the evaluation table. auc, eer and ap are NaN (no exception) when the input
    holds a single class, because they rank fakes against reals and there is nothing to rank;
    n_real / n_fake in the same row show why. acc is still defined then, and NaN only when empty;
    wp (`weighted_precision`, with `alpha`) is defined whenever something is called fake."""
    y, s = _labels_scores(labels, scores)
    ranked = _both_classes(y)
    nan = float("nan")
    return {
        "acc": _accuracy(y, s, threshold),
        "auc": float(roc_auc_score(y, s)) if ranked else nan,
        "eer": equal_error_rate(y, s) if ranked else nan,
        "ap": float(average_precision_score(y, s)) if ranked else nan,
        "wp": weighted_precision(y, s, threshold, alpha),
        "n": int(y.size),
        "n_real": int((y == 0).sum()),
        "n_fake": int((y == 1).sum()),
    }


def balanced_threshold(labels: ArrayLike, scores: ArrayLike, default: float = 0.5) -> float:
    """The score threshold that maximises balanced accuracy ((TPR + TNR) / 2) on held-out faces,
    placed midway between the two scores that bound the best range, so a threshold calibrated on
    separable scores sits in their gap rather than on one of them. A detector trained from
    scratch on a few hundred faces ranks well long before its probabilities mean anything (its
    AUC is 0.97 where its accuracy at 0.5 is 0.67), so the decision threshold is calibrated on the
    training split's own hold-out, never on the test split. `default` when a class is missing."""
    y, s = _labels_scores(labels, scores)
    if not _both_classes(y):
        return default
    order = np.unique(s)
    candidates = np.concatenate([[order[0] - 1.0], (order[1:] + order[:-1]) / 2, [order[-1] + 1.0]])
    balanced = np.array([(np.mean(s[y == 1] >= t) + np.mean(s[y == 0] < t)) / 2 for t in candidates])
    best = np.isclose(balanced, balanced.max())
    first = int(np.argmax(best))
    last = first + int(np.argmin(np.append(best[first:], False))) - 1  # end of the first best run
    return float(np.clip((candidates[first] + candidates[last]) / 2, 0.0, 1.0))


def roc_points(labels: ArrayLike, scores: ArrayLike) -> pd.DataFrame:
    """The ROC curve for plotting. The first threshold is +inf (sklearn's point (0, 0), nothing
    called fake). With one class there is no curve: an empty frame with the same columns, so a
    plot loop over scenarios draws nothing for that one rather than failing."""
    y, s = _labels_scores(labels, scores)
    if not _both_classes(y):
        return pd.DataFrame({c: pd.Series(dtype=float) for c in ROC_COLUMNS})
    fpr, tpr, thresholds = roc_curve(y, s)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thresholds})


def video_scores(frames: pd.DataFrame, by: str = "media_id", score: str = "score",
                 label: str = "label") -> pd.DataFrame:
    """Video-level scores as the mean of a video's frame scores, so every video counts once
    whatever its number of faces. A video whose frames disagree on the label is a bug upstream
    (a label belongs to the media, not the frame), so it raises instead of being averaged away.

    Returns one row per `by` value, sorted: `by`, label, score, n_frames."""
    missing = [c for c in (by, score, label) if c not in frames.columns]
    if missing:
        raise ValueError(f"frame table lacks columns {missing}")
    grouped = frames.groupby(by, sort=True)
    mixed = grouped[label].nunique()
    mixed = mixed[mixed > 1]
    if len(mixed):
        raise ValueError(f"label not constant within {len(mixed)} media: {list(mixed.index[:5])}")
    out = grouped.agg(**{label: (label, "first"), score: (score, "mean"), "n_frames": (score, "size")})
    return out.reset_index()


def attack_success_rate(labels: ArrayLike, clean_scores: ArrayLike, adv_scores: ArrayLike,
                        threshold: float = 0.5) -> dict:
    """How often an attack on the detector makes fakes pass as real.

    - asr: perturbed fakes called real, over all fakes, as the adversarial-detector seed counts
      it. A fake the detector already missed before the attack counts as a success, so this mixes
      the detector's own misses with what the attack did.
    - asr_detected: over the fakes called fake before the attack only, which isolates the attack;
      NaN when no fake was detected before.
    - robust_acc: accuracy on the attacked set, reals included (their adv score is their score
      under whatever the attack did to them, often nothing).
    Counts come along so a rate on three fakes is read as such.
    """
    y, clean = _labels_scores(labels, clean_scores)
    _, adv = _labels_scores(labels, adv_scores)
    fake = y == 1
    detected = fake & (clean >= threshold)
    fooled = adv < threshold
    return {
        "asr": float(fooled[fake].mean()) if fake.any() else float("nan"),
        "asr_detected": float(fooled[detected].mean()) if detected.any() else float("nan"),
        "robust_acc": _accuracy(y, adv, threshold),
        "n_fake": int(fake.sum()),
        "n_fake_detected": int(detected.sum()),
    }
