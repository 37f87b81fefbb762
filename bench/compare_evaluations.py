"""Two runs of the same detectors side by side: each detector's metrics in run A and run B, for a
change that should move them little (bf16 autocast against fp32, another machine, another library
version). Reads the evaluation stage's `metrics.parquet` files; the detectors are matched by their
path under the evaluation folder, which names every setting they depend on.

    # a finished run, its evaluations kept, then the same detectors again with one change:
    cp -r results/demo/evaluation /tmp/evaluation_fp32
    .venv/bin/snakemake --cores 2 --config "compute={precision: bf16}"
    .venv/bin/python bench/compare_evaluations.py /tmp/evaluation_fp32 results/demo/evaluation \
        --labels fp32 bf16 [--name compare_evaluations] [--out bench/out]

Prints, per detector and test set, the clean frame-level AUC and accuracy of both runs, the
largest AUC change over the distortion conditions and PGD's attack success rate in both runs; then
a summary per test set: the largest and mean AUC change and the largest accuracy change. Writes <out>/<name>.md and .json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from bench_report import OUT, markdown_table, write_report
from robust_deepfake.registry import EVASION_ATTACKS

ATTACKS = ("clean", *EVASION_ATTACKS)  # the conditions that are not distortions
KEYS = ["test_set", "condition", "unit"]


def paired_metrics(before: Path, after: Path) -> pd.DataFrame:
    """Every frame-level metric row present in both runs, one column pair per metric, with the
    detector's path under the evaluation folder."""
    frames = []
    for path in sorted(before.rglob("metrics.parquet")):
        detector = path.parent.relative_to(before)
        if not (after / detector / "metrics.parquet").is_file():
            continue
        pair = pd.read_parquet(path).merge(pd.read_parquet(after / detector / "metrics.parquet"), on=KEYS,
                                           suffixes=("_a", "_b"))
        frames.append(pair[pair["unit"] == "frame"].assign(detector=str(detector)))
    if not frames:
        raise SystemExit(f"no detector has metrics.parquet under both {before} and {after}")
    return pd.concat(frames, ignore_index=True)


def per_detector(pairs: pd.DataFrame) -> list[dict]:
    """One row per detector and test set: clean AUC and accuracy in both runs, the distortions'
    largest AUC change, and PGD's attack success rate in both runs (None where the test set has
    no such condition)."""
    rows = []
    for (detector, test_set), group in pairs.groupby(["detector", "test_set"], sort=True):
        clean = group[group["condition"] == "clean"].iloc[0]
        distorted = group[~group["condition"].isin(ATTACKS)]
        pgd = group[group["condition"] == "pgd"]
        rows.append({
            "detector": detector, "test_set": test_set,
            "auc_a": float(clean["auc_a"]), "auc_b": float(clean["auc_b"]),
            "acc_a": float(clean["acc_a"]), "acc_b": float(clean["acc_b"]),
            "distorted_auc_max_change": float((distorted["auc_b"] - distorted["auc_a"]).abs().max())
            if len(distorted) else None,
            "pgd_asr_a": float(pgd["asr_a"].iloc[0]) if len(pgd) else None,
            "pgd_asr_b": float(pgd["asr_b"].iloc[0]) if len(pgd) else None,
        })
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Per test set: how far the clean AUC and accuracy moved, at most and on average."""
    table = pd.DataFrame(rows)
    out = []
    for test_set, group in table.groupby("test_set", sort=True):
        auc, acc = group["auc_b"] - group["auc_a"], group["acc_b"] - group["acc_a"]
        out.append({"test_set": test_set, "detectors": len(group), "auc_max_abs_change": float(auc.abs().max()),
                    "auc_mean_change": float(auc.mean()), "acc_max_abs_change": float(acc.abs().max())})
    return out


def cell(value) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="evaluation folder of run A")
    parser.add_argument("after", type=Path, help="evaluation folder of run B")
    parser.add_argument("--labels", nargs=2, default=["A", "B"], help="names of the two runs in the table")
    parser.add_argument("--name", default="compare_evaluations")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    rows = per_detector(paired_metrics(args.before, args.after))
    a, b = args.labels
    head = ["detector", "test set", f"AUC {a}", f"AUC {b}", f"acc {a}", f"acc {b}", "distorted AUC, max change",
            f"PGD ASR {a}", f"PGD ASR {b}"]
    table = markdown_table(head, [[r["detector"], r["test_set"], *[cell(r[k]) for k in (
        "auc_a", "auc_b", "acc_a", "acc_b", "distorted_auc_max_change", "pgd_asr_a", "pgd_asr_b")]] for r in rows], 2)
    totals = summary(rows)
    table += "\n\n" + markdown_table(
        ["test set", "detectors", "AUC, largest change", "AUC, mean change", "accuracy, largest change"],
        [[t["test_set"], t["detectors"], *[cell(t[k]) for k in ("auc_max_abs_change", "auc_mean_change",
                                                                "acc_max_abs_change")]] for t in totals], 1)
    context = (f"{a}: {args.before}; {b}: {args.after}. Frame-level metrics of each detector present in both; "
               "clean AUC and accuracy (at the detector's calibrated threshold) per test set.")
    write_report(args.out, args.name, f"Evaluations compared: {a} against {b}", context, table,
                 rows + [{"summary": totals}], args)


if __name__ == "__main__":
    main()
