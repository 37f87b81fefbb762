"""Each stage's seconds in a finished run: Snakemake's benchmark files (one per job) summed by rule.

    .venv/bin/python bench/stage_seconds.py <run dir>/benchmarks/<dataset> [--title T] [--out bench/out]
        [--name stage_seconds]

Prints the table and writes <out>/<name>.md and .json. Used by bench/gpu_check.sh.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import pandas as pd

from bench_report import OUT, markdown_table, write_report


def job_seconds(benchmarks: Path) -> dict[str, tuple[int, float, float]]:
    """rule -> (jobs, summed seconds, peak resident MiB) from the benchmark TSVs under `benchmarks`
    (<rule>/<wildcards>.tsv per job, or <rule>.tsv for a rule without wildcards)."""
    out: dict[str, tuple[int, float, float]] = {}
    for tsv in sorted(benchmarks.rglob("*.tsv")):
        rule = tsv.stem if tsv.parent == benchmarks else tsv.relative_to(benchmarks).parts[0]
        table = pd.read_csv(tsv, sep="\t")
        jobs, seconds, rss = out.get(rule, (0, 0.0, 0.0))
        rss_now = float(pd.to_numeric(table.get("max_rss", pd.Series([0])), errors="coerce").fillna(0).max())
        out[rule] = (jobs + len(table), seconds + float(table["s"].sum()), max(rss, rss_now))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmarks", type=Path)
    parser.add_argument("--title", default="Stage seconds")
    parser.add_argument("--context", default="")
    parser.add_argument("--name", default="stage_seconds")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    seconds = job_seconds(args.benchmarks)
    if not seconds:
        raise SystemExit(f"no benchmark files under {args.benchmarks}")
    rows = [{"rule": rule, "jobs": jobs, "seconds": round(s, 2), "peak_rss_mib": round(rss)}
            for rule, (jobs, s, rss) in sorted(seconds.items(), key=lambda kv: -kv[1][1])]
    total = sum(r["seconds"] for r in rows)
    table = markdown_table(["stage (rule)", "jobs", "job seconds", "peak RSS MiB"],
                           [[r["rule"], r["jobs"], f"{r['seconds']:.1f}", r["peak_rss_mib"]] for r in rows]
                           + [["all stages", sum(r["jobs"] for r in rows), f"{total:.1f}", ""]])
    context = f"{args.context} Job seconds from {args.benchmarks}; {platform.node()}.".strip()
    write_report(args.out, args.name, args.title, context, table, rows, args)


if __name__ == "__main__":
    main()
