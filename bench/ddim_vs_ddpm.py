"""DiffPure's reverse process with every DDPM step against DDIM with far fewer UNet evaluations:
L2 / PSNR / SSIM of the purified poisoned faces against their clean crops, UNet evaluations and
seconds per face, with the DDPM a pipeline run trained.

    .venv/bin/python bench/ddim_vs_ddpm.py --workdir <snakemake working dir> [--dataset demo]
        [--attack pgd] [--loss mse] [--rate 0.5] [--t-star 0.3] [--ddim-steps 30 10] [--faces 16]

Reads <workdir>/results/<dataset>/defense/ddpm/model and the poisoned faces of
results/<dataset>/poisoned/<attack>/<loss>/<rate>/manifest.parquet; prints a Markdown table and writes
bench/out/ddim_vs_ddpm.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from bench_report import markdown_table, write_report
from robust_deepfake.manifest import read_manifest
from robust_deepfake.defences.ddpm import load_ddpm
from robust_deepfake.images import read_images
from robust_deepfake.tensors import bgr_to_signed
from robust_deepfake.stages.purification import face_rngs
from robust_deepfake.defences.reject import purification_table, summarise_purification
from robust_deepfake.defences.purifiers import purify

REPO = Path(__file__).resolve().parents[1]


def run(label: str, settings: dict, faces, rows, clean, unet, scheduler, seed: int) -> dict:
    started = time.perf_counter()
    with torch.no_grad():
        purified, info = purify("diffpure", faces, settings, {"unet": unet, "scheduler": scheduler}, face_rngs(seed, rows))
    seconds = time.perf_counter() - started
    quality = summarise_purification(purification_table(clean, purified))
    return {"reverse process": label, "unet_evals": info["unet_evals"], "s_per_face": round(seconds / len(faces), 3),
            "l2_to_clean": round(float(quality["pur_l2"]), 5), "psnr_to_clean": round(float(quality["pur_psnr"]), 2),
            "ssim_to_clean": round(float(quality["pur_ssim"]), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--attack", default="pgd")
    parser.add_argument("--loss", default="mse")
    parser.add_argument("--rate", default="0.5")
    parser.add_argument("--t-star", type=float, default=0.3)
    parser.add_argument("--ddim-steps", type=int, nargs="+", default=[30, 10])
    parser.add_argument("--faces", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out = args.out.resolve()
    os.chdir(args.workdir)  # manifest paths are relative to the Snakemake working directory
    results = Path("results") / args.dataset
    unet, scheduler = load_ddpm(results / "defense" / "ddpm" / "model")
    manifest = read_manifest(results / "poisoned" / args.attack / args.loss / args.rate / "manifest.parquet")
    rows = manifest[manifest["poisoned"]].head(args.faces).reset_index(drop=True)
    faces, clean = bgr_to_signed(read_images(rows["poisoned_path"].tolist())), bgr_to_signed(read_images(rows["face_path"].tolist()))
    table = [run(f"DDPM, every step (t* = {args.t_star:g} T)", {"t_star": args.t_star, "sampler": "ddpm", "ddim_steps": 1},
                 faces, rows, clean, unet, scheduler, args.seed)]
    for steps in args.ddim_steps:
        table.append(run(f"DDIM, {steps} steps", {"t_star": args.t_star, "sampler": "ddim", "ddim_steps": steps},
                         faces, rows, clean, unet, scheduler, args.seed))
    reference = table[0]["l2_to_clean"]
    for row in table:
        row["l2_vs_ddpm"] = f"{row['l2_to_clean'] / reference - 1:+.1%}"
    head = list(table[0])
    markdown = markdown_table(head, [[row[h] for h in head] for row in table])
    context = (f"{len(rows)} poisoned faces ({args.attack}, rate {args.rate}) of {args.workdir / results}, diffpure t* {args.t_star:g} "
               f"of T = {scheduler.config.num_train_timesteps}, the run's trained DDPM, CPU, 1 thread.")
    write_report(args.out, "ddim_vs_ddpm", "DDIM against the full DDPM reverse process", context, markdown,
                 table, args)


if __name__ == "__main__":
    main()
