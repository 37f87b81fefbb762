"""Benchmark of preprocessing at scale: what ingest -> split writes to disk per input video and how
long it takes, through a preset as shipped, and where the time goes.

Runs `snakemake --cores N --configfile config/presets/<preset>.yaml --config dataset_root=<tree>`
up to results/<dataset>/split/summary.tsv in a fresh temporary working folder, from the checkout
given by --repo (default: this one; pass a clone of an older commit to get the "before" figures
with the same measuring code), and reports:

- bytes written under results/<dataset>/, by folder, per input video and as a multiple of the
  crops' bytes (the crops and manifests are what the user keeps; anything else is intermediate);
- the wall time of the whole run and each job's seconds (Snakemake's benchmark files);
- the stages' own split of their time (decode / detection / crop / write), from the lines the
  detection and crop stages log (absent in checkouts before those lines existed);
- the physical limit: the decoder's frames/s when it decodes every frame of the tree's videos
  (PyAV, one thread, what the sampled reader can at best approach), and the sampled frames/s.

    .venv/bin/python bench/bench_preprocess.py [--repo DIR] [--preset faceforensics]
        [--dataset-root ../shared/data/faceforensics_c23] [--cores 2] [--label after] [--out bench/out]

Writes <out>/preprocess_<label>.md and .json; with --compare LABEL also the ratios against an
earlier label's JSON (<out>/preprocess_compare.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import pandas as pd

from bench_report import OUT, markdown_table, write_report

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ROBUST_DEEPFAKE_SHARED_DATA", REPO.parent / "shared" / "data"))
SECONDS_LINE = re.compile(r"robust_deepfake\.stages\.(\w+): seconds: (.*)$", re.M)
PHASE = re.compile(r"(decode|detection|crop|write|wait|wall) ([0-9.]+)")


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def decoder_limit(videos: list[Path]) -> tuple[int, float]:
    """Frames and seconds to decode every frame of `videos` with PyAV on one thread."""
    frames, start = 0, time.perf_counter()
    for video in videos:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            stream.thread_type, stream.thread_count = "SLICE", 1
            for frame in container.decode(stream):
                frame.to_ndarray(format="rgb24")
                frames += 1
    return frames, time.perf_counter() - start


def run_preset(repo: Path, preset: str, dataset_root: Path, cores: int, workdir: Path, overrides: list[str]) -> float:
    command = [str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(repo / "Snakefile"),
               "--directory", str(workdir), "--cores", str(cores),
               "--configfile", str(repo / "config" / "presets" / f"{preset}.yaml"),
               "--config", f"dataset_root={dataset_root}", *overrides, "--", "results/{dataset}/split/summary.tsv"]
    dataset = _preset_dataset(repo, preset)
    command[-1] = command[-1].format(dataset=dataset)
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=repo, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"snakemake failed:\n{proc.stderr[-4000:]}")
    return seconds


def _preset_dataset(repo: Path, preset: str) -> str:
    import yaml

    return yaml.safe_load((repo / "config" / "presets" / f"{preset}.yaml").read_text())["dataset"]["name"]


def job_seconds(workdir: Path, dataset: str) -> dict[str, float]:
    """Each rule's summed job seconds, from Snakemake's benchmark files."""
    seconds: dict[str, float] = {}
    for tsv in sorted((workdir / "benchmarks" / dataset).rglob("*.tsv")):
        rule = tsv.parent.name if tsv.parent.name != dataset else tsv.stem
        seconds[rule] = seconds.get(rule, 0.0) + float(pd.read_csv(tsv, sep="\t")["s"].sum())
    return seconds


def stage_phases(workdir: Path, dataset: str) -> dict[str, float]:
    """decode / detection / crop / write seconds summed over the stages' logs."""
    phases: dict[str, float] = {}
    for log in (workdir / "logs" / dataset).rglob("*.log"):
        for stage, text in SECONDS_LINE.findall(log.read_text(errors="replace")):
            for phase, value in PHASE.findall(text):
                key = f"{stage}: {phase}"
                phases[key] = phases.get(key, 0.0) + float(value)
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout whose workflow runs")
    parser.add_argument("--preset", default="faceforensics")
    parser.add_argument("--dataset-root", type=Path, default=SHARED_DATA / "faceforensics_c23")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--label", default="after", help="name of this measurement (before / after)")
    parser.add_argument("--compare", help="label of an earlier measurement to give ratios against")
    parser.add_argument("--workdir", type=Path, help="working folder (default: a new temporary one)")
    parser.add_argument("--repeats", type=int, default=1, help="runs from nothing; the fastest one is reported")
    parser.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides after the preset, as snakemake --config takes them")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    repo = args.repo.resolve()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True,
                           text=True).stdout.strip()
    dataset = _preset_dataset(repo, args.preset)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_preprocess_"))
    load_before = os.getloadavg()[0]
    walls = {}
    for k in range(args.repeats):
        run_dir = workdir / f"run{k}"
        walls[run_dir] = run_preset(repo, args.preset, args.dataset_root.resolve(), args.cores, run_dir, args.config)
    workdir, wall = min(walls.items(), key=lambda kv: kv[1])
    results = workdir / "results" / dataset
    media = pd.read_parquet(results / "media.parquet")
    videos = [Path(p) for p in media.loc[media["kind"] == "video", "path"]]
    crops = pd.concat([pd.read_parquet(p) for p in sorted((results / "crops").glob("*.parquet"))])
    frames_sampled = int(crops["frame_idx"].notna().sum())
    by_folder = {d.name: folder_bytes(d) for d in sorted(results.iterdir()) if d.is_dir()}
    by_folder["(files at the top)"] = sum(f.stat().st_size for f in results.iterdir() if f.is_file())
    written = sum(by_folder.values())
    crop_bytes = by_folder.get("crops", 0)
    decoded, decode_seconds = decoder_limit(videos)
    input_bytes = sum(v.stat().st_size for v in videos)

    rows = [{"what": f"results/{dataset}/{name}/", "bytes": size, "per_video": size / len(media)}
            for name, size in by_folder.items()]
    rows.append({"what": "everything written", "bytes": written, "per_video": written / len(media)})
    table = markdown_table(["written under results/", "MB", "kB per input video"],
                           [[r["what"], f"{r['bytes'] / 1e6:.2f}", f"{r['per_video'] / 1e3:.0f}"] for r in rows])
    jobs = job_seconds(workdir, dataset)
    phases = stage_phases(workdir, dataset)
    times = markdown_table(["time", "seconds"],
                           [["ingest -> split, wall", f"{wall:.1f}"]]
                           + [[f"job: {rule}", f"{s:.1f}"] for rule, s in jobs.items()]
                           + [[f"stage {key}", f"{s:.2f}"] for key, s in sorted(phases.items())]
                           + [[f"decoder limit: every frame of the {len(videos)} videos ({decoded} frames, "
                               f"{decoded / decode_seconds:.0f} frames/s)", f"{decode_seconds:.1f}"]])
    overrides = f" with `--config {' '.join(args.config)}`" if args.config else ""
    context = (f"Checkout {commit}{' (uncommitted changes)' if dirty else ''}, preset `{args.preset}`{overrides} on "
               f"{args.dataset_root} ({len(media)} media, {input_bytes / 1e6:.1f} MB of video, {frames_sampled} "
               f"sampled frames), `--cores {args.cores}`, load average {load_before:.1f} before, "
               f"{os.getloadavg()[0]:.1f} after. Everything written: {written / 1e6:.1f} MB = "
               f"{written / max(crop_bytes, 1):.2f}x the crops ({crop_bytes / 1e6:.1f} MB), "
               f"{written / max(input_bytes, 1):.1f}x the videos. Wall times of the {args.repeats} run(s): "
               f"{', '.join(f'{w:.1f} s' for w in walls.values())}; the fastest is detailed.")
    summary = {"label": args.label, "commit": commit, "wall_s": wall, "written_bytes": written,
               "crop_bytes": crop_bytes, "media": len(media), "input_bytes": input_bytes,
               "frames_sampled": frames_sampled, "jobs_s": jobs, "phases_s": phases, "by_folder": by_folder,
               "decoder_frames": decoded, "decoder_s": decode_seconds}
    write_report(args.out, f"preprocess_{args.label}", f"Preprocessing on disk and in time ({args.label})",
                 context, table + "\n\n" + times, [summary], args)
    if args.compare:
        before = json.loads((args.out / f"preprocess_{args.compare}.json").read_text())["rows"][0]
        ratios = markdown_table(
            ["figure", args.compare, args.label, "ratio"],
            [["written under results/, per input video (kB)", f"{before['written_bytes'] / before['media'] / 1e3:.0f}",
              f"{written / len(media) / 1e3:.0f}", f"{before['written_bytes'] / written:.1f}x less"],
             ["written / crops' bytes", f"{before['written_bytes'] / before['crop_bytes']:.2f}",
              f"{written / crop_bytes:.2f}", ""],
             ["ingest -> split wall (s)", f"{before['wall_s']:.1f}", f"{wall:.1f}",
              f"{before['wall_s'] / wall:.2f}x faster"],
             ["job seconds, all rules", f"{sum(before['jobs_s'].values()):.1f}", f"{sum(jobs.values()):.1f}",
              f"{sum(before['jobs_s'].values()) / sum(jobs.values()):.2f}x"]])
        write_report(args.out, "preprocess_compare", f"Preprocessing: {args.compare} against {args.label}",
                     f"{before['commit']} against {commit}; " + context, ratios, [], args)


if __name__ == "__main__":
    main()
