"""Reading and writing the pipeline's torch checkpoints: one safe loader, one atomic writer, the
rule for a training state that cannot be used, and where a training job keeps its resumable state
and when that state may be used again (`training_state`).

Every checkpoint is loaded with `weights_only=True`: tensors and plain containers only, so a file
from elsewhere cannot run code. When torch refuses a file its message advises retrying with
`weights_only=False`, which is the wrong advice for a file one does not trust; the errors here
say what is wrong with the file instead, and name it.

Resumable training state: a state may only be resumed by a rerun of the very job that wrote it. Its folder is named by a key
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
import io
import json
import logging
import pickletools
import re
import shutil
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch

from robust_deepfake.atomic import atomic_path

log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the problem."""


def _why_unreadable(exc: BaseException, path: Path) -> str:
    """torch's reason for refusing a file, without its advice to turn safe loading off."""
    text = str(exc)
    # torch's wording for a pickled callable (os.system, a class) changed between releases; a pickle
    # of protocol 4 or 5 stops torch's safe unpickler at an opcode before it reaches any callable
    named = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", text)
    callables = [named.group(1)] if named else [c for c in pickled_callables(path) if not c.startswith(SAFE_MODULES)]
    if callables:
        return (f"it holds objects that loading would execute (it calls {callables[0]}), so it was refused and "
                "nothing in it ran; only tensors and plain containers are accepted (if you made this file, "
                "re-save the weights as a state dict)")
    if "zip archive" in text or "central directory" in text:
        return "the file is corrupt or truncated (its zip archive cannot be read)"
    # unpickling garbage fails in many ways (UnpicklingError, EOFError, IndexError...): one cause
    return "it is not a torch checkpoint (corrupt, truncated or another kind of file)"


# the modules whose functions a torch checkpoint of tensors and plain containers calls when loaded
SAFE_MODULES = ("torch.", "collections.OrderedDict", "_codecs.encode")


def pickled_callables(path: Path) -> list[str]:
    """The callables the pickles in `path` name (`module.name`), read opcode by opcode without
    unpickling anything: what loading the file would call. For a zip checkpoint, its data.pkl."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                data = archive.read(next(n for n in archive.namelist() if n.endswith("/data.pkl")))
        else:
            data = path.read_bytes()
    except (OSError, StopIteration, zipfile.BadZipFile, KeyError):
        return []
    stream, names, strings = io.BytesIO(data), [], []
    while stream.tell() < len(data):  # a legacy checkpoint holds several pickles, then raw bytes
        try:
            for opcode, arg, _ in pickletools.genops(stream):
                if opcode.name == "GLOBAL":
                    names.append(arg.replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    names.append(".".join(strings[-2:]))
                elif isinstance(arg, str):
                    strings.append(arg)
        except (ValueError, EOFError):  # the raw bytes after the pickles, or not a pickle at all
            break
    return names


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", what: str = "checkpoint"):
    """The object saved at `path`, loaded safely onto `device`; `what` names the kind of file in
    errors (e.g. "face swap checkpoint")."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{what} {path} is a folder; give the checkpoint file inside it (model.pt)")
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise CheckpointError(f"{what} {path} cannot be read: {_why_unreadable(exc, path)}") from None


def read_payload(path: str | Path, fmt: str, version: int, what: str, device: str | torch.device = "cpu") -> dict:
    """A checkpoint this pipeline wrote in format `fmt`, version `version`: anything else is an
    error that says so."""
    payload = load_checkpoint(path, device, what)
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise CheckpointError(f"{path} is not a {what} of this pipeline (format {fmt!r} expected)")
    if payload.get("version") != version:
        raise CheckpointError(f"{what} {path} has version {payload.get('version')}, this code reads version {version}")
    return payload


def save_checkpoint(payload, path: str | Path) -> None:
    """torch.save, atomically: a job killed mid-write leaves the previous file or none. torch names
    the records inside the zip after the file it is given, and the temporary file's name is random;
    saving through an open handle gives the records torch's fixed name, so the same weights give
    the same bytes on every run and runs can be compared by hash."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)


def resumable_state(path: str | Path, read: Callable[[Path], dict], what: str) -> dict | None:
    """The training state at `path` as `read` returns it, or None when there is none. A state that
    cannot be used (corrupt, another format, another configuration: `read` raises ValueError) is
    logged, deleted and answered with None, so training starts afresh instead of stopping a run
    whose user can do nothing else with the file."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return read(path)
    except ValueError as exc:
        log.warning("%s; discarding this %s and training from the start", exc, what)
        path.unlink()
        return None


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
