"""Logging set-up shared by the workflow scripts: everything a job says goes to its `log:` file."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def log_to_file(path: str | Path | None, level: int = logging.INFO) -> logging.Logger:
    """Send logging records and stderr (tqdm progress, warnings, tracebacks) to `path`."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        stream = open(path, "w", buffering=1)
        sys.stderr = stream
    else:
        stream = sys.stderr
    logging.basicConfig(level=level, stream=stream, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    return logging.getLogger("robust_deepfake")
