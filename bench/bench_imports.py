"""Benchmark of per-job start-up: how long each workflow script takes to import what it imports.

Every Snakemake job starts a fresh Python that imports its stage; on a dataset of many small
shards that start-up is paid once per job. For each script under <repo>/workflow_scripts, its
top-level import statements (read with ast, not run) are executed in a fresh interpreter, with
<repo>/src first on the path, and timed (wall seconds, best of --repeats, minus the interpreter's
own start); `python -X importtime` then names the heaviest top-level packages it pulled in.

    .venv/bin/python bench/bench_imports.py [--repo DIR] [--repeats 3] [--label after]
                                            [--compare before] [--out bench/out]

Writes <out>/imports_<label>.md and .json; with --compare, a table of both (imports_compare.md).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from bench_report import OUT, markdown_table, write_report

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "timm", "diffusers", "transformers", "facenet_pytorch", "sklearn", "scipy",
         "skimage", "cv2", "av", "pandas", "pyarrow", "matplotlib", "numpy")


def import_lines(script: Path) -> str:
    """The script's module-level imports, as source (what a job pays before its first line of work)."""
    tree = ast.parse(script.read_text())
    return "\n".join(ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)))


def timed(code: str, env: dict[str, str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def heaviest(code: str, env: dict[str, str]) -> list[tuple[str, float]]:
    """Top-level packages by cumulative import time (seconds), from -X importtime."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env, check=True,
                          capture_output=True, text=True)
    cumulative: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", line)
        if match and match.group(3).split(".")[0] in HEAVY and match.group(3) in HEAVY:
            cumulative[match.group(3)] = max(cumulative.get(match.group(3), 0), int(match.group(1)) / 1e6)
    return sorted(cumulative.items(), key=lambda kv: -kv[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=REPO)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--label", default="after")
    parser.add_argument("--compare", help="label of an earlier measurement to put beside this one")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    repo = args.repo.resolve()
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    baseline = timed("pass", env, args.repeats)
    rows = []
    for script in sorted((repo / "workflow_scripts").glob("*.py")):
        code = import_lines(script)
        seconds = timed(code, env, args.repeats) - baseline
        heavy = heaviest(code, env)
        rows.append({"script": script.name, "seconds": round(seconds, 2),
                     "heaviest": [[name, round(s, 2)] for name, s in heavy[:4]]})
        print(f"{script.name}: {seconds:.2f} s", file=sys.stderr)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True,
                            text=True).stdout.strip()
    table = markdown_table(["workflow script", "import s", "heaviest packages (cumulative s)"],
                           [[r["script"], f"{r['seconds']:.2f}",
                             ", ".join(f"{n} {s:.2f}" for n, s in r["heaviest"]) or "-"] for r in rows], 1)
    context = (f"Checkout {commit}: each workflow script's module-level imports in a fresh interpreter, best of "
               f"{args.repeats}, minus the bare interpreter ({baseline:.2f} s); {os.cpu_count()} cores, load "
               f"average {os.getloadavg()[0]:.1f}.")
    write_report(args.out, f"imports_{args.label}", f"Per-job import time ({args.label})", context, table, rows, args)
    if args.compare:
        before = {r["script"]: r for r in json.loads((args.out / f"imports_{args.compare}.json").read_text())["rows"]}
        both = [[r["script"], f"{before[r['script']]['seconds']:.2f}" if r["script"] in before else "-",
                 f"{r['seconds']:.2f}"] for r in rows]
        write_report(args.out, "imports_compare", f"Per-job import time: {args.compare} against {args.label}",
                     context, markdown_table(["workflow script", args.compare, args.label], both), [], args)


if __name__ == "__main__":
    main()
