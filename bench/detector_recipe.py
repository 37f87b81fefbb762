"""Which detector training choices make a detector learn at the demo's scale: the figures behind
the README's "A detector recipe that learns from little data".

Trains detectors through the train_detector stage's own code (`training_set`, `holdout_split`,
`train_detector`) on one scenario of a finished pipeline run (split B's kept real faces and their
fakes), once per recipe and seed, and scores split C's real faces and every generator's test fakes
with the evaluation stage's reader. A recipe is the config's `detector` settings with some keys
changed (`--recipe name key=json ...`, e.g. `ensemble='{"experts": [...]}'` for backbone ensemble);
the default recipes are the pipeline's old default, the new
default, and the new default with one choice undone at a time.

    .venv/bin/python bench/detector_recipe.py --workdir <snakemake working dir> [--dataset demo]
        [--scenario none/none/0/none] [--seeds 0 1 2] [--backbone resnet18] [--recipe NAME KEY=JSON ...]

Prints a Markdown table (mean ± sd over the seeds of the AUC and accuracy on C per test set, hold-out
AUC, best epoch, epochs trained, seconds) and writes bench/out/<--name>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from bench_report import add_run_arguments, machine, markdown_table, start_run, write_report
from robust_deepfake.devices import Compute
from robust_deepfake.detectors.holdout import holdout_split
from robust_deepfake.stages.detector_training import score_faces, train_detector, training_set
from robust_deepfake.stages.evaluation import evaluation_faces
from robust_deepfake.manifest import read_manifest
from robust_deepfake.detectors.network import DetectorConfig, calibrated_threshold, load_detector
from robust_deepfake.detectors.scoring import detection_metrics
from robust_deepfake.registry import DETECTOR_FAMILIES
from robust_deepfake.seeding import seed_everything

REPO = Path(__file__).resolve().parents[1]
OLD_DEFAULT = {"epochs": 8, "batch_size": 32, "optimizer": "adam", "weight_decay": 0.0, "augment": "strong",
               "lr": 1e-3, "patience": 0}
RECIPES = {
    "old default (Adam 1e-3, batch 32, 8 epochs, strong aug.)": OLD_DEFAULT,
    "default": {},
    "- AdamW's weight decay (Adam, no decay)": {"optimizer": "adam", "weight_decay": 0.0},
    "- batch 16 (batch 32)": {"batch_size": 32},
    "- flips only (strong aug.: + JPEG 60-100, noise, blur)": {"augment": "strong"},
    "- any augmentation (none)": {"augment": "none"},
    "- lr 3e-4 (1e-3)": {"lr": 1e-3},
    "- 12 epochs (8)": {"epochs": 8},
    "30 epochs, early stopping after 10": {"epochs": 30, "patience": 10},
}


def recipe_rows(name: str, changes: dict, args: argparse.Namespace, reals: pd.DataFrame, fakes: pd.DataFrame,
                test: pd.DataFrame, base: dict) -> list[dict]:
    settings = {**base, **changes}
    rows = []
    for seed in args.seeds:
        seed_everything(seed)
        train, val = holdout_split(training_set(reals, fakes, name), settings["val_fraction"], seed,
                                   settings["validation"], settings["kmeans_clusters"])
        family = DETECTOR_FAMILIES.get(args.backbone)
        config = DetectorConfig(backbone=args.backbone, image_size=settings["image_size"],
                                mean=tuple(settings["mean"]), std=tuple(settings["std"]),
                                extra=settings[family.settings] if family and family.settings else {})
        with tempfile.TemporaryDirectory() as tmp:
            began = time.perf_counter()
            history = train_detector(train, val, config, settings, "plain", seed=seed, out_path=Path(tmp) / "m.pt",
                                     work_dir=Path(tmp) / "state", compute=Compute())
            seconds = time.perf_counter() - began
            model, threshold = load_detector(Path(tmp) / "m.pt"), calibrated_threshold(Path(tmp) / "m.pt")
        scores = score_faces(model, test, settings["image_size"], 64, Compute())
        best = history[history["best"]].iloc[-1]
        row = {"recipe": name, "seed": seed, "best_epoch": int(best["epoch"]), "epochs": len(history),
               "val_auc": float(best["val_auc"]), "seconds": seconds}
        for test_set in sorted(test.loc[test["label"] == 1, "test_set"].unique()):
            keep = (test["label"] == 0) | (test["test_set"] == test_set)
            metrics = detection_metrics(test.loc[keep, "label"].to_numpy(), scores[keep.to_numpy()], threshold)
            row[f"auc_{test_set}"], row[f"acc_{test_set}"] = metrics["auc"], metrics["acc"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(args: argparse.Namespace) -> None:
    load_before = os.getloadavg()[0]
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["detector"]
    base["pretrained"] = None
    recipes = {name: dict(kv.split("=", 1) for kv in pairs) for name, *pairs in args.recipe} if args.recipe else None
    recipes = ({n: {k: json.loads(v) for k, v in c.items()} for n, c in recipes.items()} if recipes else RECIPES)
    os.chdir(args.workdir)  # manifest paths are relative to the Snakemake working directory
    results = Path("results") / args.dataset
    reals = read_manifest(results / "purified" / args.scenario / "manifest.parquet")
    fakes = read_manifest(results / "fakes" / args.generator / args.scenario / "manifest.parquet")
    test_fakes = [read_manifest(p) for p in sorted((results / "test_fakes").glob("*/manifest.parquet"))]
    test = evaluation_faces(read_manifest(results / "split" / "C.parquet"), test_fakes)
    rows = [row for name, changes in recipes.items() for row in recipe_rows(name, changes, args, reals, fakes, test,
                                                                             base)]
    table = pd.DataFrame(rows)
    figures = [c for c in table.columns if c.startswith(("auc_", "acc_"))] + ["val_auc", "best_epoch", "epochs",
                                                                                "seconds"]
    summary = table.groupby("recipe", sort=False)[figures].agg(["mean", "std"])
    body = [[name] + [f"{summary.loc[name, (c, 'mean')]:.3f} ± {summary.loc[name, (c, 'std')]:.3f}"
                      if c.startswith(("auc", "acc", "val")) else f"{summary.loc[name, (c, 'mean')]:.1f}"
                      for c in figures] for name in summary.index]
    context = (f"{args.backbone} on {args.workdir}/results/{args.dataset}, scenario {args.scenario} "
               f"({len(reals)} real faces of split B), split C: {int((test['label'] == 0).sum())} real faces and "
               f"{int(test['label'].sum())} test fakes; seeds {args.seeds}, mean ± sd; accuracy at the threshold "
               f"calibrated on B's hold-out. {machine(args.threads, load_before)}")
    write_report(args.out, args.name, "Detector recipes at the demo's scale", context,
                 markdown_table(["recipe"] + figures, body), rows, args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a finished pipeline run's working directory")
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--scenario", default="none/none/0/none", help="<attack>/<loss>/<poison rate>/<purifier>")
    parser.add_argument("--generator", default="faceswap_ae", help="the training fakes' generator")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--recipe", nargs="+", action="append", metavar="NAME KEY=JSON",
                        help="a recipe: a name and detector keys to change (repeatable; default: the built-in set)")
    parser.add_argument("--name", default="detector_recipe")
    add_run_arguments(parser)
    args = parser.parse_args()
    start_run(args)
    main(args)
