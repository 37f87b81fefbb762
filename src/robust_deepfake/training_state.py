"""Resumable training state: where a training job keeps what it needs to continue after being
killed, and when that state may be used again.

A state may only be resumed by a rerun of the very job that wrote it. Its folder is named by a key
over the job's params (every setting, the seed, the device and the code fingerprint of the job's
script and the package modules it imports) and over its input files (their bytes, size and time of
writing). An edited setting or module changes the params; any upstream job that reruns rewrites
an input, even with the same bytes; either way the key changes and training starts afresh.
Only a job that was killed and rerun on untouched inputs finds its own folder.

When the job ends well the whole state folder goes: a finished job needs no state, and a later
rerun of it happens because something changed, so it must not resume either.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

STATE_FOLDER = "training"
_CHUNK = 1 << 20


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _input_identity(path: str | Path) -> list:
    """What makes an input the same input: its bytes and when it was written. A folder input
    counts by its listing (names, sizes, times), so a large folder is not read."""
    path = Path(path)
    if path.is_dir():
        return [str(path), sorted([str(f.relative_to(path)), f.stat().st_size, f.stat().st_mtime_ns]
                                  for f in path.rglob("*") if f.is_file())]
    stat = path.stat()
    return [str(path), stat.st_size, stat.st_mtime_ns, _file_digest(path)]


def job_key(params: Mapping, inputs: Iterable[str | Path]) -> str:
    """12 hex digits naming one job on one set of inputs (see the module docstring). `params` is
    any mapping with `items()`, Snakemake's named params included."""
    record = [dict(params.items()), [_input_identity(p) for p in sorted(map(str, inputs))]]
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:12]


@contextmanager
def training_state(home: str | Path, params: Mapping, inputs: Iterable[str | Path]) -> Iterator[Path]:
    """The folder `home/training/<job key>` for the job's resumable state, created empty unless a
    killed run of this very job left one. States of other keys under `home/training/` belong to
    superseded runs and are removed first; the whole `home/training/` goes once the body ends
    without an error."""
    root = Path(home) / STATE_FOLDER
    state = root / job_key(params, inputs)
    if root.is_dir():
        for other in root.iterdir():
            if other != state:
                log.info("removing the training state of a superseded run: %s", other)
                shutil.rmtree(other) if other.is_dir() else other.unlink()
    if state.is_dir() and any(state.iterdir()):
        log.info("found the state of an interrupted run of this job on the same inputs: %s", state)
    state.mkdir(parents=True, exist_ok=True)
    yield state
    shutil.rmtree(root, ignore_errors=True)
