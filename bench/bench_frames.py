"""Benchmark of frame extraction: how much the GOP-aware reader saves over decoding everything.

For every video in a folder, N evenly spaced frames (N = 8 and 32, the linspace mode of the
frames stage) are obtained four ways:

  pyav_sampled  robust_deepfake.video.read_video_frames: demux, then decode only needed GOPs
  pyav_all      PyAV decoding every frame in turn, keeping the wanted ones
  cv2_all       cv2.VideoCapture.read() over every frame, keeping the wanted ones
  cv2_seek      cv2.VideoCapture with CAP_PROP_POS_FRAMES set before each wanted frame

"effective frames/s" is wanted frames / wall seconds, the rate that matters to the pipeline; the
speed-up is against pyav_all. CPU seconds (all threads) are given too: on a shared machine they
move less than wall time, and they are what parallel jobs compete for. "decoded" is how many
frames went through the decoder (unknown for cv2_seek). "max mean |diff|" compares each method's
frames with pyav_all's (0 = pixel-identical). Repeats run the methods in turn, so a load change
hits all of them, and the fastest run of each counts.

    python bench/bench_frames.py [VIDEO_DIR] [--out bench/out] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np

from robust_deepfake.video import frame_indices, read_video_frames

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEOS = REPO.parent / "shared" / "data" / "real_videos"
SAMPLE_SIZES = (8, 32)
METHODS = ("pyav_sampled", "pyav_all", "cv2_all", "cv2_seek")

log = logging.getLogger("bench_frames")

Frames = dict[int, np.ndarray]
Reader = Callable[[Path, list[int]], tuple[Frames, int | None]]


def pyav_sampled(path: Path, wanted: list[int]) -> tuple[Frames, int | None]:
    """The frames stage's reader, as the pipeline calls it."""
    frames, info = read_video_frames(path, wanted)
    return frames, info["decoded_frames"]


def pyav_all(path: Path, wanted: list[int]) -> tuple[Frames, int | None]:
    """Only wanted frames are converted to RGB, so the baseline pays for decoding, not conversion."""
    keep, frames, i = set(wanted), {}, 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if i in keep:
                frames[i] = frame.to_ndarray(format="rgb24")
            i += 1
    return frames, i


def cv2_all(path: Path, wanted: list[int]) -> tuple[Frames, int | None]:
    """What most deepfake preprocessing code does: read() every frame, keep some."""
    keep, frames = set(wanted), {}
    capture = cv2.VideoCapture(str(path))
    i = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        if i in keep:
            frames[i] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        i += 1
    capture.release()
    return frames, i


def cv2_seek(path: Path, wanted: list[int]) -> tuple[Frames, int | None]:
    """The usual shortcut: each seek goes back to a keyframe and decodes forward again, so GOPs
    shared by several wanted frames are decoded several times."""
    frames = {}
    capture = cv2.VideoCapture(str(path))
    for i in wanted:
        capture.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, image = capture.read()
        if ok:
            frames[i] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    capture.release()
    return frames, None


READERS: dict[str, Reader] = {"pyav_sampled": pyav_sampled, "pyav_all": pyav_all, "cv2_all": cv2_all,
                              "cv2_seek": cv2_seek}


def timed(path: Path, wanted: list[int], repeats: int) -> dict[str, dict]:
    """Fastest wall and CPU time of each method over `repeats` rounds of all methods in turn: the
    machine may be shared, and the minimum is the least disturbed run."""
    results = {m: {"wall": float("inf"), "cpu": float("inf")} for m in METHODS}
    for _ in range(repeats):
        for method in METHODS:
            wall, cpu = time.perf_counter(), time.process_time()
            frames, decoded = READERS[method](path, wanted)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            r = results[method]
            r.update(frames=frames, decoded=decoded, wall=min(r["wall"], wall), cpu=min(r["cpu"], cpu))
    return results


def max_mean_diff(frames: Frames, reference: Frames) -> float | None:
    """Largest per-frame mean absolute difference; None when a method missed frames."""
    if sorted(frames) != sorted(reference):
        return None
    return max(float(np.abs(frames[i].astype(np.int16) - reference[i]).mean()) for i in reference)


def bench_video(path: Path, repeats: int) -> list[dict]:
    """One row per sample size and method; the same wanted frames for every method."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        size = f"{stream.codec_context.width}x{stream.codec_context.height}"
        codec = stream.codec_context.name
    _, info = read_video_frames(path, [0])
    rows = []
    for n in SAMPLE_SIZES:
        wanted = frame_indices(info["frame_count"], "linspace", n, 1, n)
        results = timed(path, wanted, repeats)
        reference, baseline = results["pyav_all"]["frames"], results["pyav_all"]["wall"]
        for method, r in results.items():
            rows.append({"video": path.name, "size": size, "codec": codec, "frame_count": info["frame_count"],
                         "n": n, "method": method, "wanted": len(wanted), "got": len(r["frames"]),
                         "decoded": r["decoded"], "seconds": r["wall"], "cpu_seconds": r["cpu"],
                         "effective_fps": len(wanted) / r["wall"], "speedup_vs_decode_all": baseline / r["wall"],
                         "max_mean_abs_diff": max_mean_diff(r["frames"], reference)})
            log.info("%s N=%d %s: %.3f s", path.name, n, method, r["wall"])
    return rows


def markdown(rows: list[dict]) -> str:
    """The table as it goes into reports and the PR description."""
    lines = ["| video | size | codec | frames | N | method | decoded | wall (s) | CPU (s) | effective frames/s "
             "| speed-up vs pyav_all | max mean \\|diff\\| |",
             "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        diff = "missed frames" if r["max_mean_abs_diff"] is None else f"{r['max_mean_abs_diff']:.2f}"
        decoded = "?" if r["decoded"] is None else r["decoded"]
        lines.append(f"| {r['video']} | {r['size']} | {r['codec']} | {r['frame_count']} | {r['n']} | {r['method']} "
                     f"| {decoded} | {r['seconds']:.3f} | {r['cpu_seconds']:.3f} | {r['effective_fps']:.1f} "
                     f"| {r['speedup_vs_decode_all']:.2f}x | {diff} |")
    return "\n".join(lines) + "\n"


def environment() -> dict:
    """Timings mean little without the library versions and the core count behind them."""
    return {"python": platform.python_version(), "pyav": av.__version__, "ffmpeg": av.ffmpeg_version_info,
            "opencv": cv2.__version__, "cpus": os.cpu_count(), "machine": platform.machine()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="?", type=Path, default=DEFAULT_VIDEOS, help="folder of .mp4 videos")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out", help="folder for frames.md and frames.json")
    parser.add_argument("--repeats", type=int, default=1, help="runs per measurement; the fastest counts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    videos = sorted(args.videos.glob("*.mp4"))
    if not videos:
        parser.error(f"no .mp4 videos in {args.videos}")
    rows = [row for path in videos for row in bench_video(path, args.repeats)]
    table = markdown(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "frames.md").write_text(table)
    (args.out / "frames.json").write_text(json.dumps({"environment": environment(), "rows": rows}, indent=2))
    print(table)


if __name__ == "__main__":
    main()
