"""Dataset adapters: one module per on-disk layout, each turning a dataset root into manifest rows.

Every adapter exposes ``list_media(root: Path, **options) -> pandas.DataFrame`` with the columns
``ADAPTER_COLUMNS`` (plus ``attr_<Name>`` columns where the dataset has attributes). Adapters only
list files and read the dataset's own label/split files; they never decode media, so ingesting
100 000 videos takes seconds. `robust_deepfake.stages.ingest` adds the dataset name and the shard.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pandas as pd

from robust_deepfake.logs import console

ADAPTER_COLUMNS = ["media_id", "path", "kind", "label", "method", "source_id", "target_id",
                   "identity", "official_split"]

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}

SPLITS = ("train", "val", "test")
# how many names a warning about missing or ignored files gives
EXAMPLES = 3


class DatasetLayoutError(ValueError):
    """The dataset root does not look like the configured layout."""


def media_kind(name: str) -> str | None:
    """Decide video/image from the suffix alone, so listing never opens a file."""
    suffix = os.path.splitext(name)[1].lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    return None


def media_path(root: Path, media_id: str) -> str:
    """The absolute path as text. Joined as strings: pathlib costs seconds per 100 000 files."""
    return os.path.join(root, media_id)


def file_stem(rel: str) -> str:
    """File name without folders and suffix, by string ops for the same reason as media_path."""
    return os.path.splitext(rel.rsplit("/", 1)[-1])[0]


def iter_files(folder: Path) -> Iterator[tuple[str, os.DirEntry]]:
    """Yield (POSIX path relative to `folder`, entry) for every file below it, in sorted order.

    os.scandir keeps a 100 000-file walk to seconds. Names starting with '.' are skipped: macOS
    leaves `._clip.mp4` resource forks and `.DS_Store` files beside media, and they are never data.
    Folder links are followed (datasets are often assembled from links) but each real folder is
    entered once, so a link loop cannot hang the walk.
    """
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[str, str]] = [("", str(folder))]
    while stack:
        prefix, path = stack.pop()
        info = os.stat(path)
        if (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        with os.scandir(path) as it:
            entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
        subdirs = []
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            if entry.is_dir():
                subdirs.append((f"{rel}/", entry.path))
            elif entry.is_file():
                yield rel, entry
        stack.extend(reversed(subdirs))


def scan_media(folder: Path) -> tuple[list[tuple[str, str]], int]:
    """Media files below `folder` as sorted (relative POSIX path, kind) pairs, plus how many other
    files were passed over (so adapters can say that something was ignored)."""
    media, other = [], 0
    for rel, _entry in iter_files(folder):
        kind = media_kind(rel)
        if kind is None:
            other += 1
        else:
            media.append((rel, kind))
    return media, other


def require_dir(root: Path, rel: str, layout: str) -> Path:
    """The folder `root/rel`, or an error that names what was expected where."""
    folder = root / rel
    if not folder.is_dir():
        raise DatasetLayoutError(f"{root}: expected folder {rel}/ of the {layout} layout is missing")
    return folder


def warn_ignored(count: int, what: str, where: Path | str, examples: Iterable[str] = ()) -> None:
    """One console warning with a count and the first few names instead of one line per file: a
    stray file must not flood the log, and a user must see on the console, not only in the log,
    that listed media are missing, and which."""
    if count:
        named = sorted(examples)[:EXAMPLES]
        more = f", e.g. {', '.join(named)}" if named else ""
        console.warning("%s: ignored %d %s%s", where, count, what, more)


def adapter_frame(rows: list[dict], root: Path, extra_columns: list[str] | None = None) -> pd.DataFrame:
    """Rows -> the adapter table, sorted by media_id, after checking the invariants every later
    stage relies on (a wrong label or a missing identity would silently corrupt the split)."""
    columns = ADAPTER_COLUMNS + list(extra_columns or [])
    df = pd.DataFrame(rows, columns=columns)
    df = df.sort_values("media_id", kind="stable").reset_index(drop=True)
    df["label"] = df["label"].astype("int8")
    problems = []
    if not df["kind"].isin(["video", "image"]).all():
        problems.append("kind outside video/image")
    if not df["label"].isin([0, 1]).all():
        problems.append("label outside 0/1")
    if df["identity"].isna().any() or (df["identity"].astype(str) == "").any():
        problems.append("empty identity")
    if not (df["official_split"].isna() | df["official_split"].isin(SPLITS)).all():
        problems.append("official_split outside train/val/test")
    if problems:
        raise ValueError(f"{root}: adapter produced invalid rows ({'; '.join(problems)})")
    return df


# The adapters import the helpers above from this package, so they are imported only now.
from robust_deepfake.datasets import celeba, celebdf, deepfakeface, dfdc, faceforensics, folders  # noqa: E402

LAYOUTS: dict[str, Callable[..., pd.DataFrame]] = {
    "faceforensics": faceforensics.list_media,
    "celebdf": celebdf.list_media,
    "dfdc": dfdc.list_media,
    "celeba": celeba.list_media,
    "deepfakeface": deepfakeface.list_media,
    "folders": folders.list_media,
}


def layout_options(layout: str) -> list[str]:
    """The option names an adapter takes, read from its signature so the list cannot go stale."""
    params = inspect.signature(_adapter(layout)).parameters.values()
    return sorted(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def _adapter(layout: str) -> Callable[..., pd.DataFrame]:
    try:
        return LAYOUTS[layout]
    except KeyError:
        raise ValueError(f"unknown dataset layout {layout!r}; known layouts: {', '.join(sorted(LAYOUTS))}") from None


def list_media(layout: str, root: str | Path, **options) -> pd.DataFrame:
    """List a dataset root with the adapter for `layout`, failing early and by name on a root that
    is missing or an option the adapter does not take (a typo must not be ignored silently)."""
    adapter = _adapter(layout)
    unknown = sorted(set(options) - set(layout_options(layout)))
    if unknown:
        raise ValueError(f"layout {layout!r} takes options {layout_options(layout)}, not {unknown}")
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise DatasetLayoutError(f"dataset root {root} does not exist or is not a folder (layout {layout})")
    return adapter(root, **options)
