"""Benchmark of the workflow's DAG at scale: `snakemake -n` over a manifest of 100 000 videos.

No media are needed for a dry run, but the run must look like one that follows a real ingest, or
the figures time another DAG. So, in a temporary working folder (`--directory`, never the
repository's results/ or .snakemake/):

  1. a dataset root in the `folders` layout is fabricated: 100 000 EMPTY .mp4 files (20 % under
     real/<identity>/, 80 % under fake/<method>/<identity>/, 10 clips per identity). Empty files
     are enough: ingest only lists names, and the `dataset_listing` param of ingest walks and stats
     every file at each Snakemake start, a cost that an empty root would hide;
  2. for each shard count, the pipeline's own `ingest` checkpoint runs for real (`--cores 1`) over
     that root: it writes results/<name>/media.parquet (100 000 video rows, shards from
     `manifest.shard_of`, checked here) and the metadata Snakemake needs to consider it up to date
     (a manifest written by hand has none, and Snakemake would plan ingest again: "no metadata");
  3. `snakemake -n` is timed (TARGETS): for the manifest alone (nothing to do: the fixed cost of
     starting Snakemake, parsing the workflow and fingerprinting the dataset listing), for the shard
     stages up to the split (results/<name>/split/summary.tsv), for the default target `all`, and
     for `all` with `--quiet rules` (the job stats without the listing of every job). No dry run
     may plan `ingest`; if one does (someone edited ingest's code meanwhile), ingest is rerun and
     the dry run retried.

Wall time (best of --repeats), CPU time (user + system, of the snakemake process: steadier than
wall time on a shared machine), peak resident memory and the jobs the dry run plans are reported.
--profile also runs `all` at the largest shard count under cProfile and breaks its time down
(Snakefile parse, DAG build, checkpoint re-evaluation, the workflow's own param functions,
dry-run job listing). --compare-plain-rule times the same dry run with a copy of the workflow in
which `checkpoint ingest` is a plain `rule ingest`: what being a checkpoint costs.

    .venv/bin/python bench/bench_dag.py [--videos 100000] [--shards 16 256 1024] [--repeats 1]
                                        [--targets manifest split all all_quiet] [--profile]
                                        [--compare-plain-rule] [--workdir DIR] [--out bench/out]

Writes <out>/dag.md (the Markdown tables, also printed) and <out>/dag.json.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench_report import markdown_table, write_report
from robust_deepfake.manifest import MEDIA_COLUMNS, read_manifest, shard_of

log = logging.getLogger("bench_dag")

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
METHODS = ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]
CLIPS_PER_IDENTITY = 10
MARKER = ".bench_dag_videos"  # hidden: the listing and the adapters skip names starting with '.'
# what a copy of the workflow needs (--compare-plain-rule); src is copied so the copy's code
# fingerprints are those of this checkout
WORKFLOW_PARTS = ["Snakefile", "rules", "config", "workflow_scripts", "envs", "profiles", "report", "src"]
RETRIES = 2


class IngestPlanned(RuntimeError):
    """A dry run planned ingest: its code, params or the dataset changed after it ran."""


def fabricate_dataset(root: Path, videos: int, real_share: float = 0.2) -> None:
    """`videos` empty .mp4 files in the folders layout; reused when a previous call made the same."""
    marker = root / MARKER
    if marker.exists() and marker.read_text().strip() == str(videos):
        log.warning("reusing the fabricated dataset %s (%d videos)", root, videos)
        return
    if root.exists():
        shutil.rmtree(root)
    n_real = round(videos * real_share)
    made = set()
    for i in range(videos):
        if i < n_real:
            folder = root / "real" / f"id{i // CLIPS_PER_IDENTITY:05d}"
            name = f"clip{i % CLIPS_PER_IDENTITY}.mp4"
        else:
            k = i - n_real
            person = k // len(METHODS)
            folder = root / "fake" / METHODS[k % len(METHODS)] / f"id{person // CLIPS_PER_IDENTITY:05d}"
            name = f"clip{person % CLIPS_PER_IDENTITY}.mp4"
        if folder not in made:
            folder.mkdir(parents=True, exist_ok=True)
            made.add(folder)
        os.close(os.open(folder / name, os.O_CREAT | os.O_WRONLY, 0o644))
    marker.write_text(f"{videos}\n")


def dataset_name(shards: int) -> str:
    return f"dag_s{shards}"


def write_config(workdir: Path, shards: int, root: Path) -> Path:
    """The bench's config, on top of config/config.yaml: folders layout, the fabricated root."""
    path = workdir / f"bench_s{shards}.yaml"
    path.write_text(f"dataset:\n  name: {dataset_name(shards)}\n  layout: folders\n"
                    f"dataset_root: {root}\nshards: {shards}\n")
    return path


def snakemake_cmd(snakefile: Path, workdir: Path, config: Path, targets: list[str], *options: str,
                  prefix=SNAKEMAKE) -> list[str]:
    """Targets come before the options that take several values (--configfile, --quiet)."""
    return [*prefix, "--snakefile", str(snakefile), "--directory", str(workdir), *targets,
            "--configfile", str(snakefile.parent / "config" / "config.yaml"), str(config), *options]


def run_timed(cmd: list[str], log_path: Path) -> dict:
    """Wall and CPU seconds and peak RSS of one command (os.wait4: the child's own resource use)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    output = log_path.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}), see {log_path}:\n{output[-3000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mib": usage.ru_maxrss / 1024,
            "output": output}


def planned_jobs(output: str) -> dict[str, int]:
    """Jobs of a dry run by rule, from Snakemake's 'Job stats' table ({} for nothing to do)."""
    if "Nothing to be done" in output or "Job stats:" not in output:
        return {}
    table = output.split("Job stats:")[1].split("\n\n")[0]
    jobs = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M)}
    jobs.pop("total", None)
    return jobs


def check_manifest(path: Path, videos: int, shards: int) -> None:
    """The ingest output is what the bench claims: `videos` video rows, each in shard_of's shard."""
    df = read_manifest(path)
    if list(df.columns) != MEDIA_COLUMNS:
        raise AssertionError(f"{path}: columns {list(df.columns)} != MEDIA_COLUMNS")
    if len(df) != videos or not (df["kind"] == "video").all():
        raise AssertionError(f"{path}: {len(df)} rows, kinds {df['kind'].value_counts().to_dict()}; "
                             f"expected {videos} videos")
    expected = pd.Series([shard_of(m, shards) for m in df["media_id"]], index=df.index)
    if not (df["shard"] == expected).all():
        raise AssertionError(f"{path}: shard column differs from manifest.shard_of")


class Bench:
    """One working folder, one workflow checkout (the repository's, or a copy of it)."""

    def __init__(self, snakefile: Path, workdir: Path, root: Path, videos: int):
        self.snakefile, self.workdir, self.root, self.videos = snakefile, workdir, root, videos
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs = workdir / "bench_logs"

    def ingest(self, shards: int) -> dict:
        config = write_config(self.workdir, shards, self.root)
        target = f"results/{dataset_name(shards)}/media.parquet"
        result = run_timed(snakemake_cmd(self.snakefile, self.workdir, config, [target], "--cores", "1"),
                           self.logs / f"ingest_s{shards}.log")
        check_manifest(self.workdir / target, self.videos, shards)
        return result

    def dry_run(self, shards: int, target: str | None, name: str, repeats: int, extra=(), prefix=SNAKEMAKE) -> dict:
        """Best of `repeats` dry runs; ingest rerun first whenever a dry run would plan it."""
        config = write_config(self.workdir, shards, self.root)
        targets, args = ([target] if target else []), ["-n", *extra]
        results = []
        for attempt in range(repeats):
            for retry in range(RETRIES + 1):
                result = run_timed(snakemake_cmd(self.snakefile, self.workdir, config, targets, *args, prefix=prefix),
                                   self.logs / f"dry_s{shards}_{name}_{attempt}.log")
                result["jobs"] = planned_jobs(result["output"])
                if "ingest" not in result["jobs"]:
                    break
                if retry == RETRIES:
                    raise IngestPlanned(f"dry run {args} keeps planning ingest (is its code being edited?)")
                log.warning("dry run planned ingest (code or config changed meanwhile): rerunning ingest")
                self.ingest(shards)
            results.append(result)
        best = min(results, key=lambda r: r["wall_s"])
        return {**best, "cpu_s": min(r["cpu_s"] for r in results)}


# name -> (label in the table, target file or None for the default target `all`, extra arguments)
TARGETS = {
    "manifest": ("-n results/<name>/media.parquet (nothing to do)", "results/{name}/media.parquet", []),
    "split": ("-n results/<name>/split/summary.tsv", "results/{name}/split/summary.tsv", []),
    "all": ("-n (all)", None, []),
    "all_quiet": ("-n --quiet rules (all; job stats only)", None, ["--quiet", "rules"]),
}


def row(shards: int, videos: int, target: str, result: dict, jobs: int | None, variant: str = "checkpoint ingest"):
    return {"videos": videos, "shards": shards, "target": target, "variant": variant, "jobs": jobs,
            "wall_s": round(result["wall_s"], 2), "cpu_s": round(result["cpu_s"], 2),
            "peak_rss_mib": round(result["peak_rss_mib"])}


# (label, path fragment, function): cumulative seconds of these functions in the cProfile run.
# Indented labels are parts of the row above them.
PHASES = [
    ("parse the workflow (Snakefile, rules/*.smk)", "snakemake/workflow.py", "include"),
    ("  of which script_fingerprint (params: code)", "robust_deepfake/fingerprint.py", "script_fingerprint"),
    ("  of which validate_config", "robust_deepfake/config.py", "validate_config"),
    ("build the DAG (workflow._build_dag)", "snakemake/workflow.py", "_build_dag"),
    ("  first pass (dag.init)", "snakemake/dag.py", "init"),
    ("  checkpoint re-evaluation (update_checkpoint_dependencies)", "snakemake/dag.py",
     "update_checkpoint_dependencies"),
    ("  dataset_listing (ingest param: walk + stat of the dataset)", "rules/common.smk", "dataset_listing"),
    ("  shard_rows (per-shard digests of the manifest)", "rules/common.smk", "shard_rows"),
    ("  Snakemake: params of every job (rules.expand_params)", "snakemake/rules.py", "expand_params"),
    ("  Snakemake: update_needrun", "snakemake/dag.py", "update_needrun"),
    ("  Snakemake: script/wrapper/notebook processors (dag.process)", "snakemake/dag.py", "process"),
    ("dry-run scheduling and job listing (JobScheduler.schedule)", "snakemake/scheduling/job_scheduler.py",
     "schedule"),
    ("  of which printing the jobs (Job.log_info)", "snakemake/jobs.py", "log_info"),
]


def profile_breakdown(prof: Path) -> list[dict]:
    """Cumulative time of each phase; with the same function name in nested places, the largest."""
    stats = pstats.Stats(str(prof))
    total = stats.total_tt
    rows = []
    for label, fragment, function in PHASES:
        times = [v[3] for (path, _, name), v in stats.stats.items() if name == function and fragment in path]
        seconds = max(times) if times else 0.0
        rows.append({"phase": label, "profiled_s": round(seconds, 2), "share": round(seconds / total, 3)})
    main = [v[3] for (path, _, name), v in stats.stats.items() if name == "main" and path.endswith("snakemake/cli.py")]
    rows.insert(0, {"phase": "Python start, importing Snakemake (total minus cli.main)",
                    "profiled_s": round(total - max(main, default=0.0), 2),
                    "share": round((total - max(main, default=0.0)) / total, 3)})
    rows.append({"phase": "total (under cProfile: slower than unprofiled)", "profiled_s": round(total, 2),
                 "share": 1.0})
    return rows


def copy_workflow_plain_ingest(dest: Path) -> Path:
    """A copy of the workflow in which ingest is a plain rule instead of a checkpoint."""
    if dest.exists():
        shutil.rmtree(dest)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for part in WORKFLOW_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=ignore)
        elif src.exists():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / part)
    ingest = dest / "rules" / "ingest.smk"
    text = ingest.read_text()
    if "checkpoint ingest:" not in text:
        raise RuntimeError(f"{ingest}: no 'checkpoint ingest:' to turn into a rule")
    ingest.write_text(text.replace("checkpoint ingest:", "rule ingest:"))
    return dest / "Snakefile"


def git_state() -> str:
    """Commit and whether the checkout differs from it (read-only: no index refresh, no lock)."""
    def git(*args):
        return subprocess.run(["git", "--no-optional-locks", "-C", str(REPO), *args], capture_output=True,
                              text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{commit}{' + uncommitted edits' if dirty else ''}"


def snakemake_version() -> str:
    from importlib.metadata import version
    return version("snakemake")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=100_000, help="videos in the fabricated dataset")
    parser.add_argument("--shards", type=int, nargs="+", default=[16, 256, 1024], help="config `shards` values")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS),
                        help="dry runs to time (see TARGETS)")
    parser.add_argument("--repeats", type=int, default=1, help="dry runs per measurement; the fastest counts")
    parser.add_argument("--profile", action="store_true", help="cProfile `all` at the largest shard count")
    parser.add_argument("--compare-plain-rule", action="store_true",
                        help="also time `all` at the largest shard count with ingest as a plain rule")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="working folder (kept; reuses a fabricated dataset); default: a temporary one")
    parser.add_argument("--name", default="dag", help="output file stem under --out")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")

    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_dag_")
        workdir = Path(tmp.name)
    else:
        workdir = args.workdir.resolve()
    load_before = os.getloadavg()[0]
    try:
        root = workdir / "dataset"
        start = time.perf_counter()
        fabricate_dataset(root, args.videos)
        log.warning("dataset of %d empty videos ready in %.1f s", args.videos, time.perf_counter() - start)

        bench = Bench(REPO / "Snakefile", workdir / "run", root, args.videos)
        rows: list[dict] = []
        for shards in args.shards:
            result = bench.ingest(shards)
            rows.append(row(shards, args.videos, "ingest (real job, --cores 1)", result, 1))
            log.warning("%s", rows[-1])
            for target in args.targets:
                label, path, extra = TARGETS[target]
                path = path and path.format(name=dataset_name(shards))
                result = bench.dry_run(shards, path, target, args.repeats, extra)
                rows.append(row(shards, args.videos, label, result, sum(result["jobs"].values())))
                rows[-1]["jobs_by_rule"] = result["jobs"]
                log.warning("%s", {k: v for k, v in rows[-1].items() if k != "jobs_by_rule"})

        largest = max(args.shards)
        if args.compare_plain_rule:
            plain = Bench(copy_workflow_plain_ingest(workdir / "workflow_plain"), workdir / "run_plain", root,
                          args.videos)
            plain.ingest(largest)
            result = plain.dry_run(largest, None, "all_plain", args.repeats)
            rows.append(row(largest, args.videos, "-n (all)", result, sum(result["jobs"].values()),
                            variant="plain rule ingest (copy)"))
            rows[-1]["jobs_by_rule"] = result["jobs"]
            log.warning("%s", rows[-1])

        breakdown = []
        if args.profile:
            prof = workdir / f"all_s{largest}.prof"
            bench.dry_run(largest, None, "all_profiled", 1,
                          prefix=[sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "snakemake"])
            breakdown = profile_breakdown(prof)
    finally:
        if tmp is not None:
            tmp.cleanup()

    table = markdown_table(["videos", "shards", "workflow", "command", "jobs planned", "wall (s)", "CPU (s)",
                            "peak RSS (MiB)"],
                           [[f"{r['videos']:,}".replace(",", " "), r["shards"], r["variant"], r["target"],
                             r["jobs"], f"{r['wall_s']:.1f}", f"{r['cpu_s']:.1f}", r["peak_rss_mib"]] for r in rows],
                           text_columns=4)
    if breakdown:
        table += (f"\n\ncProfile of `snakemake -n` (all) at {largest} shards: cumulative seconds "
                  "(indented rows are parts of the row above)\n\n")
        table += markdown_table(["phase", "profiled (s)", "share"],
                                [[b["phase"].replace("  ", "— ", 1) if b["phase"].startswith("  ") else b["phase"],
                                  f"{b['profiled_s']:.2f}", f"{100 * b['share']:.0f} %"] for b in breakdown])
    context = (f"`snakemake -n` over a fabricated `folders` dataset of {args.videos} empty .mp4 files, after the "
               f"pipeline's own ingest ran over it (so ingest is up to date and not planned). Best of "
               f"{args.repeats} run(s); CPU = user + system seconds of the snakemake process. Snakemake "
               f"{snakemake_version()}, Python {platform.python_version()}, workflow at {git_state()}; "
               f"{os.cpu_count()} cores, load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after.")
    write_report(args.out, args.name, f"DAG scale: snakemake -n over {args.videos} videos", context, table,
                 rows + [{"profile": b} for b in breakdown], args)


if __name__ == "__main__":
    main()
