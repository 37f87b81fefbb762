"""The `robust-deepfake` console command.

    robust-deepfake predict PATH [--checkpoint model.pt] [--whole-image] [--json]

PATH is an image, a video or a folder of them. Without --checkpoint the demo's clean, plainly
trained detector is used when the demo has been run in the current folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_CHECKPOINT = Path("results/demo/detectors/resnet18/plain/faceswap_ae/none/none/0/none/seed0/model.pt")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robust-deepfake", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="probability of fake per face and per video")
    predict.add_argument("path", help="an image, a video, or a folder of them (searched recursively)")
    predict.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT,
                         help="a detector model.pt of this pipeline (default: %(default)s)")
    predict.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    predict.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    predict.add_argument("--frames", type=int, default=16, help="frames sampled evenly per video (default: 16)")
    predict.add_argument("--whole-image", action="store_true",
                         help="score whole images and frames, resized, with no face crop (the expert ensemble's "
                              "input); the default: the detector's own training input, which its checkpoint records")
    predict.add_argument("--margin", type=float, default=None,
                         help="crop margin instead of the one the detector was trained with (crop.margin)")
    predict.add_argument("--crop-size", type=int, default=None,
                         help="crop side instead of the one the detector was trained with (crop.size)")
    return parser


def _text(result) -> str:
    if result.error:
        return f"{result.path}: {result.error}"
    lines = [f"{result.path}: probability of fake {result.probability:.4f}, {result.verdict} at the detector's "
             f"threshold {result.threshold:.3f} ({result.kind}, {len(result.faces)} face"
             f"{'s' if len(result.faces) != 1 else ''})"]
    if result.kind == "video" or len(result.faces) > 1:
        lines += [f"  frame {f['frame']:>5}: {f['probability']:.4f}" for f in result.faces]
    return "\n".join(lines)


def predict(args: argparse.Namespace) -> int:
    """Exit status 0 when every media got a score, 1 when some could not be scored (no face,
    unreadable), 2 for a usage error (missing path or checkpoint)."""
    import torch

    from robust_deepfake.devices import resolve_device
    from robust_deepfake.detectors.network import calibrated_threshold, load_detector, read_checkpoint
    from robust_deepfake.predict import Predictor, detector_input, media_files

    try:
        files = media_files(args.path)
        if args.checkpoint.is_dir():
            raise ValueError(f"{args.checkpoint}: is a folder; give the detector checkpoint file inside it "
                             "(results/<dataset>/detectors/.../model.pt)")
        if not args.checkpoint.is_file():
            raise FileNotFoundError(f"{args.checkpoint}: detector checkpoint not found (train one with snakemake, "
                                    "or pass --checkpoint results/<dataset>/detectors/.../model.pt)")
        device = resolve_device(args.device)
        torch.set_num_threads(1)
        payload = read_checkpoint(args.checkpoint)
        cut = detector_input(payload, whole_image=args.whole_image, margin=args.margin, crop_size=args.crop_size)
        predictor = Predictor(load_detector(args.checkpoint, device), device, cut=cut, frames_per_video=args.frames,
                              threshold=calibrated_threshold(args.checkpoint))
    except (FileNotFoundError, ValueError) as exc:
        print(f"robust-deepfake predict: {exc}", file=sys.stderr)
        return 2
    if not files:
        print(f"robust-deepfake predict: {args.path}: no image or video files in this folder", file=sys.stderr)
        return 2
    results = [predictor(path) for path in files]
    if args.json:
        print(json.dumps({"checkpoint": str(args.checkpoint), "media": [r.as_dict() for r in results]}, indent=2))
    else:
        for result in results:
            print(_text(result), file=sys.stderr if result.error else sys.stdout)
    return 1 if any(r.error for r in results) else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return {"predict": predict}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
