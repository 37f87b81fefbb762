"""Benchmark: detector training and evaluation throughput (images per second) on CPU, through the
pipeline's own code (robust_deepfake.stages.detector_training / evaluation), per backbone and training mode.

Training images/s counts the images of one epoch over its wall time (reading PNGs, strong
augmentations, forward/backward; FGSM/PGD modes include their attack steps and the Lipschitz
penalty). Evaluation images/s is per condition: clean scoring, FGSM, PGD (40 steps) and one
distortion (VC, the most expensive: an H.264 round trip per face). The faces are synthetic 128 px
PNGs; throughput does not depend on what they show. Backbone `ensemble` is the expert ensemble of
`--experts` (its training loss CE + KL + NCE, its EMA), read against the rows of its experts alone.

    .venv/bin/python bench/bench_detector.py [--backbones resnet18 convnextv2_atto ensemble]
        [--experts resnet18 convnextv2_atto] [--image-size 64] [--images 64] [--modes plain fgsm pgd]
        [--precision fp32|bf16] [--channels-last] [--name bench_detector] [--threads 1] [--out bench/out]

`--precision bf16` runs the training and scoring passes under bf16 autocast (`compute.precision`);
on a CPU it pays only where the CPU has bf16 arithmetic (AVX512-BF16, AMX).
Writes <out>/<name>.md (the Markdown table, also printed) and <out>/<name>.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import cv2
import numpy as np
import pandas as pd

from bench_report import add_run_arguments, machine, markdown_table, start_run, write_report
from robust_deepfake.devices import Compute
from robust_deepfake.stages.detector_training import train_detector
from robust_deepfake.stages.evaluation import score_condition
from robust_deepfake.detectors.network import DeepfakeDetector, DetectorConfig

ADVERSARIAL = {"epsilon": 2 / 255, "step_size": 0.5 / 255, "steps": 5, "clean_weight": 0.5, "lipschitz_psi": 1000.0,
               "lipschitz_z": 2.0}
EVALUATE = {"batch_size": 64, "fgsm": {"epsilon": 1 / 255}, "pgd": {"epsilon": 2 / 255, "step_size": 0.5 / 255,
                                                                      "steps": 40}}


def faces(root: Path, count: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(count):
        path = root / f"{i}.png"
        cv2.imwrite(str(path), rng.integers(0, 255, (128, 128, 3), dtype=np.uint8))
        rows.append({"media_id": f"m{i // 2}", "source_media_id": f"m{i // 2}", "frame_idx": i % 2,
                     "image_path": str(path), "label": i % 2})
    return pd.DataFrame(rows)


def train_rate(config: DetectorConfig, data: pd.DataFrame, mode: str, work: Path, compute: Compute) -> float:
    settings = {"epochs": 1, "batch_size": 32, "lr": 1e-3, "weight_decay": 0.0, "optimizer": "adamw", "patience": 0,
                "augment": "strong", "balance": False, "state_interval_s": 60,
                "adversarial": ADVERSARIAL, "ema_decay": 0.995 if config.backbone == "ensemble" else 0.0}
    history = train_detector(data, data.head(2), config, settings, mode, seed=0, out_path=work / f"{mode}.pt",
                             work_dir=work / mode, compute=compute)
    return len(data) / float(history["seconds"].iloc[0])


def evaluation_rate(model: DeepfakeDetector, data: pd.DataFrame, kind: str, level: int, size: int,
                    compute: Compute) -> float:
    began = time.perf_counter()
    score_condition(model, data, kind, level, EVALUATE, seed=0, size=size, compute=compute)
    return len(data) / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", nargs="+", default=["resnet18", "convnextv2_atto", "ensemble"])
    parser.add_argument("--experts", nargs="+", default=["resnet18", "convnextv2_atto"],
                        help="the experts of backbone ensemble")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--modes", nargs="+", default=["plain", "fgsm", "pgd"])
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--name", default="bench_detector", help="file name of the report under --out")
    add_run_arguments(parser)
    args = parser.parse_args()
    start_run(args)
    compute = Compute(precision=args.precision, channels_last=args.channels_last)

    rows = []
    with TemporaryDirectory() as tmp:
        data = faces(Path(tmp), args.images)
        for backbone in args.backbones:
            extra = {"experts": args.experts} if backbone == "ensemble" else {}
            config = DetectorConfig(backbone=backbone, image_size=args.image_size, extra=extra)
            row = {"backbone": backbone if not extra else f"ensemble({'+'.join(args.experts)})",
                   "input": args.image_size}
            for mode in args.modes:
                row[f"train {mode}"] = train_rate(config, data, mode, Path(tmp) / backbone, compute)
            model = compute.model(DeepfakeDetector(config).eval())
            for name, kind, level in (("eval clean", "clean", 0), ("eval fgsm", "fgsm", 0),
                                      ("eval pgd-40", "pgd", 0), ("eval VC-3", "VC", 3)):
                row[name] = evaluation_rate(model, data, kind, level, args.image_size, compute)
            rows.append(row)
            print(row, flush=True)
    head = list(rows[0])
    table = markdown_table(head, [[r["backbone"], r["input"], *[f"{r[h]:.1f}" for h in head[2:]]] for r in rows], 2)
    context = (f"Images per second, {args.images} synthetic 128 px faces, batch 32 (training) / 64 (evaluation); "
               f"adversarial training {ADVERSARIAL['steps']} PGD steps + Lipschitz penalty; {args.precision}"
               f"{', channels-last' if args.channels_last else ''}. {machine(args.threads)}")
    write_report(args.out, args.name, "Detector training and evaluation throughput", context, table, rows, args)


if __name__ == "__main__":
    main()
