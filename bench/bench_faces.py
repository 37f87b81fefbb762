"""Benchmark: are the config's faces.* defaults (the default call's image pyramid without its finest
levels, batched frames) faster than MTCNN's default call on full frames, and do they keep its boxes?

Frames are sampled from the shared real videos and the shared FaceForensics++ c23 videos (evenly
spaced, like frames.mode=linspace). The reference is `MTCNN()` as its README uses it: min_face_size
20, full resolution, one frame per call, largest face, no confidence floor beyond MTCNN's own
thresholds. Every other row is robust_deepfake.faces.detection.detect_batch with one setting
changed; its kept (largest face of confidence >= 0.9) box is compared with the reference's by IoU
on the frames where both found a face: against the reference's largest face, and against its
largest face of confidence >= 0.9 (the pipeline's floor: where the reference's largest face is a
low-confidence one, no setting with the floor can keep it). A reference row with that floor applied
separates the floor's effect (it costs no extra time, so its timing repeats the reference's).

    .venv/bin/python bench/bench_faces.py [--videos DIR ...] [--frames-per-video 16] [--out bench/out]

Writes <out>/faces.md (the Markdown table, also printed) and <out>/faces.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np
import torch
from facenet_pytorch import MTCNN
from tqdm import tqdm

from bench_report import add_run_arguments, machine, start_run
from robust_deepfake.faces.detection import build_detector, detect_batch

log = logging.getLogger("bench_faces")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ROBUST_DEEPFAKE_SHARED_DATA", REPO.parent / "shared" / "data"))
THRESHOLDS = [0.6, 0.7, 0.7]
SCALE_FACTOR = 0.709
MIN_CONFIDENCE = 0.9


@dataclass(frozen=True)
class Setting:
    name: str
    max_side: int | None
    min_face_size: float
    skip_levels: int
    batch_size: int


CHOSEN = Setting("chosen (config defaults)", None, 20, 2, 1)
ALTERNATIVES = [
    Setting("skip 3 levels (faces >= 56 px: the faceforensics preset)", None, 20, 3, 1),
    Setting("skip 4 levels (faces >= 79 px)", None, 20, 4, 1),
    Setting("skip 3 levels, max_side 960", 960, 20, 3, 1),
    Setting("skip 2 levels, max_side 640", 640, 20, 2, 1),
    Setting("min_face_size 40 (between two levels)", None, 40, 0, 1),
    Setting("previous defaults: max_side 640, min_face_size 40, 16 frames per call", 640, 40, 0, 16),
    Setting("chosen, 16 frames per call", None, 20, 2, 16),
]


def sample_frames(video: Path, n: int) -> list[np.ndarray]:
    """n evenly spaced RGB frames; counted by decoding, since container frame counts can be wrong."""
    with av.open(str(video)) as container:
        total = sum(1 for _ in container.decode(video=0))
    wanted = set(np.linspace(0, total - 1, n).round().astype(int).tolist())
    frames = []
    with av.open(str(video)) as container:
        for k, frame in enumerate(container.decode(video=0)):
            if k in wanted:
                frames.append(frame.to_ndarray(format="rgb24"))
    return frames


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def run_reference(frames: list[np.ndarray]) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
    """MTCNN's default call, one frame at a time: all faces, largest first (select_largest=True)."""
    mtcnn = MTCNN(device=torch.device("cpu"))
    mtcnn.detect(frames[0])  # warm-up: first-call allocations are not detection cost
    faces = []
    start = time.perf_counter()
    for frame in tqdm(frames, desc="reference", unit="frame"):
        boxes, probs = mtcnn.detect(frame)
        if boxes is None:
            faces.append((np.zeros((0, 4), np.float32), np.zeros(0, np.float32)))
        else:
            faces.append((np.asarray(boxes, np.float32), np.asarray(probs, np.float32)))
    return faces, time.perf_counter() - start


def largest_above(faces: list[tuple[np.ndarray, np.ndarray]],
                  floor: float) -> tuple[list[np.ndarray | None], list[int]]:
    """The reference's kept box and face count when only faces with confidence >= floor count."""
    boxes, counts = [], []
    for b, p in faces:
        b = b[p >= floor]
        boxes.append(b[0] if len(b) else None)
        counts.append(len(b))
    return boxes, counts


def run_setting(setting: Setting, frames: list[np.ndarray]) -> tuple[list[np.ndarray | None], list[int], float]:
    detector = build_detector("cpu", setting.min_face_size, THRESHOLDS, SCALE_FACTOR, setting.skip_levels)
    detect_batch(detector, frames[:1], setting.max_side, MIN_CONFIDENCE, "largest")  # warm-up
    results = []
    batches = [frames[k:k + setting.batch_size] for k in range(0, len(frames), setting.batch_size)]
    start = time.perf_counter()
    for batch in tqdm(batches, desc=setting.name, unit="batch"):
        results += detect_batch(detector, batch, setting.max_side, MIN_CONFIDENCE, "largest")
    seconds = time.perf_counter() - start
    return [r["box"] if r else None for r in results], [r["n_faces"] if r else 0 for r in results], seconds


def summarize(name: str, setting: Setting | None, boxes, counts, seconds: float, reference_boxes,
              reference_seconds: float, floored_boxes) -> dict:
    both = [iou(a, b) for a, b in zip(boxes, reference_boxes) if a is not None and b is not None]
    floored = [iou(a, b) for a, b in zip(boxes, floored_boxes) if a is not None and b is not None]
    return {
        "setting": name,
        "max_side": setting.max_side if setting else None,
        "min_face_size": setting.min_face_size / SCALE_FACTOR ** setting.skip_levels if setting else 20,
        "batch_size": setting.batch_size if setting else 1,

        "frames": len(boxes),
        "seconds": round(seconds, 2),
        "frames_per_s": round(len(boxes) / seconds, 2),
        "speedup": round(reference_seconds / seconds, 2),
        "frames_with_face": sum(b is not None for b in boxes),
        "faces_found": int(sum(counts)),
        "faces_per_s": round(sum(counts) / seconds, 2),
        "frames_compared": len(both),
        "mean_iou_vs_reference": round(float(np.mean(both)), 3) if both else None,
        "frames_iou_below_0.5": sum(v < 0.5 for v in both),
        "share_iou_ge_0.9": round(float(np.mean([v >= 0.9 for v in both])), 3) if both else None,
        "frames_compared_floored": len(floored),
        "share_iou_ge_0.9_floored": round(float(np.mean([v >= 0.9 for v in floored])), 3) if floored else None,
    }


def markdown(rows: list[dict]) -> str:
    head = ["setting", "max_side", "smallest face searched", "batch", "frames/s", "speed-up", "faces/s",
            "frames w/ face", "faces found", "mean IoU vs ref (n)", "IoU >= 0.9", "IoU<0.5",
            "IoU >= 0.9 vs ref's faces >= 0.9 (n)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        miou = r["mean_iou_vs_reference"]
        miou = "-" if miou is None else f"{miou:.3f} ({r['frames_compared']})"
        lines.append("| " + " | ".join(str(v) for v in [
            r["setting"], r["max_side"] or "full", f"{r['min_face_size']:.0f} px", r["batch_size"],
            r["frames_per_s"], f"{r['speedup']}x", r["faces_per_s"], f"{r['frames_with_face']}/{r['frames']}",
            r["faces_found"], miou, "-" if r["share_iou_ge_0.9"] is None else f"{r['share_iou_ge_0.9']:.1%}",
            r["frames_iou_below_0.5"],
            "-" if r["share_iou_ge_0.9_floored"] is None
            else f"{r['share_iou_ge_0.9_floored']:.1%} ({r['frames_compared_floored']})"]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=Path, nargs="+",
                        default=[SHARED_DATA / "real_videos", SHARED_DATA / "faceforensics_c23"],
                        help="folders whose .mp4 files (searched recursively) give the frames")
    parser.add_argument("--frames-per-video", type=int, default=16)
    add_run_arguments(parser)
    args = parser.parse_args()
    start_run(args, logging.INFO)

    videos = sorted(v for folder in args.videos for v in folder.rglob("*.mp4"))
    if not videos:
        raise SystemExit(f"no .mp4 videos in {', '.join(map(str, args.videos))}")
    frames, sizes = [], {}
    for video in videos:
        sampled = sample_frames(video, args.frames_per_video)
        sizes[video.name] = f"{sampled[0].shape[1]}x{sampled[0].shape[0]} x{len(sampled)}"
        frames += sampled
    log.info("%d frames from %d videos: %s", len(frames), len(videos), sizes)

    load_before = os.getloadavg()[0]
    ref_faces, ref_seconds = run_reference(frames)
    ref_boxes, ref_counts = largest_above(ref_faces, 0.0)
    floored_boxes, floored_counts = largest_above(ref_faces, MIN_CONFIDENCE)
    rows = [summarize("reference: MTCNN() defaults, full frame", None, ref_boxes, ref_counts, ref_seconds,
                      ref_boxes, ref_seconds, floored_boxes)]
    rows.append(summarize(f"reference, only faces >= {MIN_CONFIDENCE}", None, floored_boxes, floored_counts,
                          ref_seconds, ref_boxes, ref_seconds, floored_boxes))
    for setting in [CHOSEN] + ALTERNATIVES:
        boxes, counts, seconds = run_setting(setting, frames)
        rows.append(summarize(setting.name, setting, boxes, counts, seconds, ref_boxes, ref_seconds, floored_boxes))

    table = markdown(rows)
    context = (f"{len(frames)} frames ({args.frames_per_video} evenly spaced per video) from "
               f"{', '.join(f'{k} ({v})' for k, v in sizes.items())}; "
               f"{machine(args.threads, load_before)}. "
               "Decoding is not timed. "
               f"Rows below the references keep faces with confidence >= {MIN_CONFIDENCE}; "
               "IoU compares each row's largest face with the reference's largest face.")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "faces.md").write_text(f"# Face detection settings\n\n{context}\n\n{table}\n")
    (args.out / "faces.json").write_text(json.dumps(
        {"context": context, "videos": sizes, "settings": [asdict(s) for s in [CHOSEN] + ALTERNATIVES],
         "rows": rows}, indent=2) + "\n")
    print(table)


if __name__ == "__main__":
    main()
