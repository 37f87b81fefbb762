"""Benchmark: seconds per poisoned face for each attack, on CPU, through the poisoning stage's own
code path (robust_deepfake.stages.poison.poison_faces: read crop, attack over all conditions, quantise,
write PNG, measure on the written image).

The generators are the pipeline's own classes (FaceSwapAutoencoder at the demo's settings, the
official-size StarGANGenerator) with RANDOM weights: the timings are those of the real networks;
the disruption figures only show that the attack moves the outputs, not how much a trained
generator is disrupted. Crops are random 8-bit images at the demo's crop size; a generator of
another size resizes them to its own and back, as the pipeline's generators do.

bim and fgsm start at the clean image, where the Ruiz et al. MSE loss has a zero gradient, so every
attack runs with the push-to-black loss ('target'); PGD is also timed with 'mse' (the default).

    .venv/bin/python bench/bench_poison.py [--images 16] [--crop-size 64] [--image-size 64] [--out bench/out]

Writes <out>/<name>.md (the Markdown table, also printed) and <out>/<name>.json.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch import nn

from bench_report import add_run_arguments, machine, markdown_table, start_run, write_report
from robust_deepfake.attacks.disruption import summarise
from robust_deepfake.generators.faceswap_ae import FaceSwapAutoencoder, FaceSwapGenerator
from robust_deepfake.generators.stargan import StarGANFaceGenerator, StarGANGenerator
from robust_deepfake.stages.poison import poison_faces

log = logging.getLogger("bench_poison")

REPO = Path(__file__).resolve().parents[1]
RUNS = [("pgd", "mse"), ("pgd", "target"), ("bim", "target"), ("fgsm", "target"), ("gaussian", "target")]
BATCH_SIZES = [8, 1]


def build_generators(args) -> dict[str, object]:
    """The pipeline's own generator classes at their configured sizes, with RANDOM weights (seeded):
    the face swap at the demo's settings and the official-size StarGAN (128 px, 6 blocks)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        identities = [f"id{k}" for k in range(args.identities)]
        faceswap = FaceSwapGenerator(FaceSwapAutoencoder(identities, args.image_size, args.channels, args.latent_dim))
        stargan = StarGANFaceGenerator(StarGANGenerator(conv_dim=64, c_dim=5, repeat_num=6)).eval()
    return {"faceswap_ae": faceswap, "stargan": stargan}


def n_parameters(generator) -> int:
    module = generator if isinstance(generator, nn.Module) else generator.model
    return sum(p.numel() for p in module.parameters())


def write_crops(folder: Path, n: int, size: int) -> pd.DataFrame:
    """n random crops, two frames per fake 'video', as the split's rows would list them."""
    rng = np.random.default_rng(0)
    rows = []
    for k in range(n):
        media_id = f"real/v{k // 2:03d}.mp4"
        path = folder / f"{k:04d}.png"
        cv2.imwrite(str(path), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        rows.append({"media_id": media_id, "frame_idx": k, "label": 0, "face_path": str(path)})
    return pd.DataFrame(rows)


def time_run(rows: pd.DataFrame, name: str, generator, attack: str, loss: str, batch_size: int, args,
             out_dir: Path) -> dict:
    common = dict(generator=generator, attack=attack, epsilon=args.epsilon, steps=args.steps,
                  step_size=args.step_size, loss_kind=loss, batch_size=batch_size, seed=0, out_dir=out_dir)
    poison_faces(rows.iloc[:batch_size], [True] * batch_size, **common)  # warm-up: first-call allocations
    start = time.perf_counter()
    out = poison_faces(rows, [True] * len(rows), **common)
    seconds = time.perf_counter() - start
    summary = summarise(out)
    return {"generator": name, "attack": attack, "loss": loss, "batch_size": batch_size, "images": len(rows),
            "seconds": round(seconds, 3), "s_per_image": round(seconds / len(rows), 4),
            "images_per_s": round(len(rows) / seconds, 2),
            "dist_l2": float(f"{summary['dist_l2']:.3g}"), "prop_dist": round(summary["prop_dist"], 3),
            "pert_linf": round(summary["pert_linf"], 4), "pert_psnr": round(summary["pert_psnr"], 2)}


def markdown(rows: list[dict]) -> str:
    head = ["generator", "attack", "loss", "batch", "s / image", "images / s", "mean dist_l2", "prop_dist",
            "pert L-inf", "pert PSNR dB"]
    keys = ["generator", "attack", "loss", "batch_size", "s_per_image", "images_per_s", "dist_l2", "prop_dist",
            "pert_linf", "pert_psnr"]
    return markdown_table(head, [[r[k] for k in keys] for r in rows], text_columns=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--crop-size", type=int, default=64, help="crop side (config crop.size)")
    parser.add_argument("--image-size", type=int, default=64, help="generator side (faceswap_ae.image_size)")
    parser.add_argument("--channels", type=int, default=16, help="faceswap_ae.channels (demo: 16)")
    parser.add_argument("--latent-dim", type=int, default=1024, help="faceswap_ae.latent_dim (demo: 1024)")
    parser.add_argument("--identities", type=int, default=4, help="face-swap decoders (faceswap_ae.max_identities)")
    parser.add_argument("--generators", nargs="+", default=["faceswap_ae", "stargan"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=BATCH_SIZES)
    parser.add_argument("--attacks", nargs="+", default=[a for a, _ in RUNS], help="subset of pgd bim fgsm gaussian")
    parser.add_argument("--name", default="poison", help="output file stem under --out")
    parser.add_argument("--epsilon", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--step-size", type=float, default=0.01)
    add_run_arguments(parser)
    args = parser.parse_args()
    start_run(args)
    generators = {k: v for k, v in build_generators(args).items() if k in args.generators}

    load_before = os.getloadavg()[0]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        crops = write_crops(Path(tmp), args.images, args.crop_size)
        for name, generator in generators.items():
            for attack, loss in (run for run in RUNS if run[0] in args.attacks):
                for batch_size in args.batch_sizes:
                    results.append(time_run(crops, name, generator, attack, loss, batch_size, args, Path(tmp) / "out"))
                    log.warning("%s", results[-1])

    table = markdown(results)
    sizes = ", ".join(f"{name} {n_parameters(g) / 1e6:.2f} M parameters" for name, g in generators.items())
    context = (f"{args.images} random {args.crop_size} px crops, poisoned end to end by `poison_faces` (read, "
               f"attack, quantise, write PNG, measure). Generators: the pipeline's classes with RANDOM weights "
               f"(timing only; disruption figures are not those of trained generators): faceswap_ae at "
               f"{args.image_size} px, {args.channels} channels, latent {args.latent_dim}, {args.identities} decoders; "
               f"stargan at 128 px, "
               f"conv_dim 64, 6 blocks, 5 attributes ({sizes}). Losses sum over every condition. eps {args.epsilon}, "
               f"{args.steps} steps of {args.step_size} (PGD, BIM); "
               f"{machine(args.threads, load_before)}.")
    write_report(args.out, args.name, "Poisoning cost per face", context, table, results, args)


if __name__ == "__main__":
    main()
