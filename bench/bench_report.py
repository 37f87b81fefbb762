"""What every benchmark script ends with: the figures printed and written as Markdown and JSON
under bench/out/, with the context (settings, machine load) that says how to read them."""

from __future__ import annotations

import json
import os
import platform
from argparse import Namespace
from pathlib import Path


def machine(threads: int) -> str:
    """The machine line of a benchmark's context: figures on a shared machine mean little without it."""
    load = os.getloadavg()[0]
    return (f"CPU, {threads} torch thread(s), {os.cpu_count()} cores (load average {load:.1f} at the end), "
            f"{platform.processor() or platform.machine()}")


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
