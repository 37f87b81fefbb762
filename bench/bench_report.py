"""What every benchmark script ends with: the figures printed and written as Markdown and JSON
under bench/out/, with the context (settings, machine load) that says how to read them."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
from argparse import Namespace
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """--threads and --out, the same in every timing script."""
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: timings on a shared machine vary least)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the .md and .json figures")


def start_run(args: Namespace, level: int = logging.WARNING) -> None:
    """Logging to stderr and the torch thread count, before anything is timed."""
    import torch

    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)


def machine(threads: int, load_before: float | None = None) -> str:
    """The machine line of a benchmark's context: figures on a shared machine mean little without
    the load during the run (`load_before`: os.getloadavg()[0] when timing began)."""
    load = f"load average {os.getloadavg()[0]:.1f} at the end"
    if load_before is not None:
        load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    return f"CPU, {threads} torch thread(s), {os.cpu_count()} cores ({load}), {platform.processor() or platform.machine()}"


def markdown_table(head: list[str], rows: list[list], text_columns: int = 1) -> str:
    """A Markdown table: the first `text_columns` columns left-aligned, the figures right-aligned."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * text_columns + "---:|" * (len(head) - text_columns)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(out: Path, name: str, title: str, context: str, table: str, rows: list[dict],
                 args: Namespace | None = None) -> None:
    """Print the table and write <out>/<name>.md and <out>/<name>.json."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(f"# {title}\n\n{context}\n\n{table}\n")
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()} if args else {}
    (out / f"{name}.json").write_text(json.dumps({"context": context, "settings": settings, "rows": rows},
                                                 indent=2) + "\n")
    print(context + "\n\n" + table)
