"""Benchmark: seconds per face and UNet evaluations for each purifier of robust_deepfake.stages.purification, on
CPU, through `purify` itself, at the demo's sizes (128 px crops, a 64 px DDPM UNet).

The UNet is a diffusers UNet2DModel of the config's default shape (ddpm.*: 64 px, block_out_channels
32/64/64, 1 layer per block, no attention) with RANDOM weights: diffusion rows give timing and UNet
evaluations only; what a random UNet makes of a face means nothing, so their quality columns are
left empty. The faces are real (the demo's astronaut and Grace Hopper photographs, cropped at a few
offsets), and the quality columns (PSNR, SSIM of the purified face against its input) show how much
each input-transformation baseline changes a clean face. The row "resize only" is the 128 -> 64 ->
128 px round trip every diffusion purifier makes at these sizes: the blur it costs before any
denoising.

    .venv/bin/python bench/bench_purify.py [--images 8] [--batch-size 8] [--crop-size 128] [--out bench/out]

Writes <out>/<name>.md (the Markdown table, also printed) and <out>/<name>.json.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from diffusers import DDPMScheduler, UNet2DModel

from bench_report import add_run_arguments, machine, markdown_table, start_run, write_report
from robust_deepfake.datasets.demo import available_identities
from robust_deepfake.tensors import bgr_to_signed
from robust_deepfake.registry import DIFFUSION_PURIFIERS
from robust_deepfake.defences.reject import purification_table, summarise_purification
from robust_deepfake.defences.purifiers import purify, resize_images

log = logging.getLogger("bench_purify")

REPO = Path(__file__).resolve().parents[1]
RUNS: list[tuple[str, str, dict]] = [
    ("diffpure ddpm t*=300", "diffpure", {"t_star": 300, "sampler": "ddpm"}),
    ("diffpure ddim t*=300, 30 steps", "diffpure", {"t_star": 300, "sampler": "ddim", "ddim_steps": 30}),
    ("ddpm_reverse from 10", "ddpm_reverse", {"start_step": 10}),
    ("none", "none", {}),
    ("jpeg q75", "jpeg", {"quality": 75}),
    ("gaussian_blur sigma 1", "gaussian_blur", {"sigma": 1.0}),
    ("median 3", "median", {"kernel": 3}),
    ("bit_depth 4", "bit_depth", {"bits": 4}),
]


def build_unet(args) -> tuple[UNet2DModel, DDPMScheduler]:
    """The config's default DDPM shape with RANDOM weights (seeded), and the DDPM-purification reference's schedule."""
    n = len(args.block_out_channels)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        unet = UNet2DModel(sample_size=args.unet_size, in_channels=3, out_channels=3,
                           block_out_channels=tuple(args.block_out_channels), layers_per_block=args.layers_per_block,
                           down_block_types=("DownBlock2D",) * n, up_block_types=("UpBlock2D",) * n)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    # frozen, as load_ddpm returns the pipeline's: purify builds no autograd graph through the steps
    return unet.eval().requires_grad_(False), scheduler


def face_crops(n: int, size: int) -> torch.Tensor:
    """n square face crops of `size` px from the demo's two photographs, each at another offset
    (a few pixels apart) so no two are identical: (n, 3, size, size) in [-1, 1]."""
    sources = available_identities()[:2]
    crops = []
    for k in range(n):
        canvas, (x0, y0, x1, y1) = sources[k % 2].load(round(size * 0.7))
        cx, cy = (x0 + x1) / 2 + 3 * (k // 2), (y0 + y1) / 2 + 2 * (k // 2)
        left, top = int(round(cx - size / 2)), int(round(cy - size / 2))
        padded = cv2.copyMakeBorder(canvas, size, size, size, size, cv2.BORDER_REFLECT_101)
        crops.append(padded[top + size:top + 2 * size, left + size:left + 2 * size])
    return bgr_to_signed(np.stack(crops)[..., ::-1])  # RGB canvases -> to_tensor's BGR input


def time_run(label: str, name: str, settings: dict, faces: torch.Tensor, unet, scheduler, batch_size: int) -> dict:
    """Purify all faces in batches (after a one-batch warm-up); the UNet evaluations of one batch."""
    def run_all():
        outs, evals = [], 0
        for start in range(0, len(faces), batch_size):
            out, info = purify(name, faces[start:start + batch_size], settings, model={"unet": unet, "scheduler": scheduler},
                               rng=torch.Generator().manual_seed(start))
            outs.append(out)
            evals = info["unet_evals"]
        return torch.cat(outs), evals

    purify(name, faces[:1], settings, model={"unet": unet, "scheduler": scheduler}, rng=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    purified, evals = run_all()
    seconds = time.perf_counter() - start
    row = {"purifier": label, "name": name, "settings": settings, "images": len(faces), "batch_size": batch_size,
           "unet_evals_per_batch": evals, "seconds": round(seconds, 3), "s_per_image": round(seconds / len(faces), 4)}
    row.update(quality(faces, purified, random_model=name in DIFFUSION_PURIFIERS))
    return row


def quality(faces: torch.Tensor, purified: torch.Tensor, random_model: bool) -> dict:
    if random_model:
        return {"psnr": None, "ssim": None}
    summary = summarise_purification(purification_table(faces, purified))
    return {"psnr": float(round(summary["pur_psnr"], 2)) if summary["identical"] == 0 else float("inf"),
            "ssim": float(round(summary["pur_ssim"], 4))}


def resize_row(faces: torch.Tensor, unet_size: int) -> dict:
    start = time.perf_counter()
    size = faces.shape[-1]
    round_trip = resize_images(resize_images(faces, (unet_size, unet_size)), (size, size)).clamp(-1, 1)
    seconds = time.perf_counter() - start
    row = {"purifier": f"resize only ({size} -> {unet_size} -> {size} px)", "name": "resize", "settings": {},
           "images": len(faces), "batch_size": len(faces), "unet_evals_per_batch": 0, "seconds": round(seconds, 4),
           "s_per_image": round(seconds / len(faces), 5)}
    row.update(quality(faces, round_trip, random_model=False))
    return row


def markdown(rows: list[dict]) -> str:
    head = ["purifier", "UNet evals / batch", "s / image", "PSNR vs input dB", "SSIM vs input"]
    return markdown_table(head, [[r["purifier"], r["unet_evals_per_batch"], r["s_per_image"],
                                  "—" if r["psnr"] is None else r["psnr"], "—" if r["ssim"] is None else r["ssim"]]
                                 for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8, help="purify.batch_size")
    parser.add_argument("--crop-size", type=int, default=128, help="crop side (config crop.size)")
    parser.add_argument("--unet-size", type=int, default=64, help="ddpm.image_size")
    parser.add_argument("--block-out-channels", type=int, nargs="+", default=[32, 64, 64],
                        help="ddpm.block_out_channels")
    parser.add_argument("--layers-per-block", type=int, default=1, help="ddpm.layers_per_block")
    parser.add_argument("--purifiers", nargs="+", default=[label for label, _, _ in RUNS],
                        help="labels of RUNS to time (default all)")
    parser.add_argument("--name", default="purify", help="output file stem under --out")
    add_run_arguments(parser)
    args = parser.parse_args()
    start_run(args)
    cv2.setNumThreads(args.threads)
    unet, scheduler = build_unet(args)
    faces = face_crops(args.images, args.crop_size)

    load_before = os.getloadavg()[0]
    results = [resize_row(faces, args.unet_size)]
    for label, name, settings in RUNS:
        if label in args.purifiers:
            results.append(time_run(label, name, settings, faces, unet, scheduler, args.batch_size))
            log.warning("%s", results[-1])

    table = markdown(results)
    n_params = sum(p.numel() for p in unet.parameters())
    context = (f"{args.images} real face crops of {args.crop_size} px (the demo's astronaut and Grace Hopper "
               f"photographs at {args.images // 2} offsets), purified by `purify` in batches of {args.batch_size}. "
               f"UNet: diffusers UNet2DModel at {args.unet_size} px, block_out_channels "
               f"{tuple(args.block_out_channels)}, {args.layers_per_block} layer(s) per block, no attention "
               f"({n_params / 1e6:.2f} M parameters), with RANDOM weights: diffusion rows are timing and UNet "
               f"evaluations only (quality '—'); faces are resized {args.crop_size} -> {args.unet_size} -> "
               f"{args.crop_size} px around the UNet, whose cost the 'resize only' row shows. PSNR / SSIM are "
               f"of the purified face against its (clean) input. "
               f"{machine(args.threads, load_before)}.")
    write_report(args.out, args.name, "Purification cost per face", context, table, results, args)


if __name__ == "__main__":
    main()
