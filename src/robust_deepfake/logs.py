"""Logging set-up shared by the workflow scripts: everything a job says goes to its `log:` file,
and what the user must act on goes to the console as well (`console`)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

# Records of this logger reach the job's log file like any other and, in a workflow job, the
# console too: missing media, a part without fakes, what the split lost. A job's stderr goes to its
# log file, where a warning nobody opens helps no one.
console = logging.getLogger("robust_deepfake.console")


def log_to_file(path: str | Path | None, level: int = logging.INFO) -> logging.Logger:
    """Send logging records and stderr (tqdm progress, warnings, tracebacks) to `path`, and the
    `console` logger's records to the terminal as well."""
    terminal = sys.stderr
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        stream = open(path, "w", buffering=1)
        sys.stderr = stream
    else:
        stream = sys.stderr
    logging.basicConfig(level=level, stream=stream, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    for handler in list(console.handlers):
        console.removeHandler(handler)
    if path:  # without a file the root handler already writes to the terminal
        handler = logging.StreamHandler(terminal)
        handler.setFormatter(logging.Formatter(f"%(levelname)s ({Path(path).name}): %(message)s"))
        console.addHandler(handler)
    return logging.getLogger("robust_deepfake")
