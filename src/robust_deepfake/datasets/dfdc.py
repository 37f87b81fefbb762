"""The DeepFake Detection Challenge (DFDC) training parts and its labelled test set.

    dfdc_train_part_N/metadata.json  {"file.mp4": {"label": "FAKE"|"REAL", "original": "x.mp4"|null,
                                                   "split": "train"}, ...}
    dfdc_train_part_N/*.mp4
    <test folder>/labels.csv         filename,label (1 fake, 0 real); videos beside it

DFDC has no identity labels. Each fake is made from one original (real) video, so the original's
media id stands in for the identity, of the real and of every fake made from it: that keeps a
real and its fakes on the same side of the identity-disjoint split. The same actor filmed in
several originals can still end up on both sides; DFDC gives no way to know. The fake's original
is stored as target_id (the video the fake was made on; DFDC does not name the
swapped-in face); test videos have no original, so their own id is their identity.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd

from robust_deepfake.datasets import (SPLITS, DatasetLayoutError, adapter_frame, media_kind, media_path, scan_media,
                                      warn_ignored)

PART_GLOB = "dfdc_train_part_*"
METHOD = "dfdc"
LABELS = {"REAL": 0, "FAKE": 1}


def list_media(root: Path) -> pd.DataFrame:
    """Every labelled video of the training parts and of any test folder that has labels.csv."""
    parts = sorted(p for p in root.glob(PART_GLOB) if p.is_dir())
    tests = sorted(p.parent for p in root.glob("*/labels.csv") if not p.parent.match(PART_GLOB))
    if not parts and not tests:
        raise DatasetLayoutError(
            f"{root}: expected folders {PART_GLOB}/ with metadata.json (or a test folder with labels.csv) "
            "of the dfdc layout are missing")
    metadata = {part.name: _read_metadata(part) for part in parts}
    rows = _train_rows(root, metadata)
    for folder in tests:
        rows += _test_rows(root, folder)
    return adapter_frame(rows, root)


def _read_metadata(part: Path) -> dict[str, dict]:
    path = part / "metadata.json"
    if not path.is_file():
        raise DatasetLayoutError(f"{part}: metadata.json is missing, so its videos have no labels")
    try:
        entries = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DatasetLayoutError(f"{path}: cannot read DFDC metadata ({err})") from None
    if not isinstance(entries, dict):
        raise DatasetLayoutError(f"{path}: expected an object mapping file names to entries")
    for name, entry in entries.items():
        if not isinstance(entry, dict) or entry.get("label") not in LABELS:
            raise DatasetLayoutError(f"{path}: entry {name!r} has no label REAL or FAKE")
    return entries


def _train_rows(root: Path, metadata: dict[str, dict[str, dict]]) -> list[dict]:
    """Rows for listed videos that exist; originals are looked up in every part, because DFDC
    file names are unique across parts and nothing promises an original sits in its fake's part."""
    where = {name: f"{part}/{name}" for part, entries in sorted(metadata.items()) for name in entries}
    rows = []
    for part, entries in sorted(metadata.items()):
        on_disk = {rel for rel, _kind in scan_media(root / part)[0]}
        absent, orphans = [], 0
        for name, entry in sorted(entries.items()):
            if name not in on_disk:
                absent.append(name)
                continue
            media_id = f"{part}/{name}"
            label = LABELS[entry["label"]]
            target_id = None
            if label == 1:
                original = entry.get("original")
                target_id = where.get(original) if original else None
                if target_id is None:
                    orphans += 1
            split = entry.get("split")
            rows.append(_row(root, media_id, label, target_id, target_id or media_id,
                             split if split in SPLITS else None))
        folder = root / part
        warn_ignored(len(absent), "metadata.json entries without a video on disk", folder, absent)
        warn_ignored(len(on_disk - set(entries)), "videos not listed in metadata.json", folder)
        warn_ignored(orphans, "fakes whose original is not listed (identity = the fake itself)", folder)
    return rows


def _test_rows(root: Path, folder: Path) -> list[dict]:
    """The labelled test set: labels.csv rows whose file exists beside it, split "test"."""
    path = folder / "labels.csv"
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not {"filename", "label"} <= set(reader.fieldnames or []):
            raise DatasetLayoutError(f"{path}: expected columns filename,label; found {reader.fieldnames}")
        entries = sorted((r["filename"], r["label"]) for r in reader)
    rows, absent = [], []
    for name, value in entries:
        if value not in ("0", "1"):
            raise DatasetLayoutError(f"{path}: label of {name!r} is {value!r}, expected 0 (real) or 1 (fake)")
        if media_kind(name) is None or not (folder / name).is_file():
            absent.append(name)
            continue
        media_id = (folder / name).relative_to(root).as_posix()
        rows.append(_row(root, media_id, int(value), None, media_id, "test"))
    warn_ignored(len(absent), "labels.csv rows without a video on disk", path, absent)
    return rows


def _row(root: Path, media_id: str, label: int, target_id: str | None, identity: str,
         split: str | None) -> dict:
    return {"media_id": media_id, "path": media_path(root, media_id), "kind": media_kind(media_id), "label": label,
            "method": "real" if label == 0 else METHOD, "source_id": None, "target_id": target_id,
            "identity": identity, "official_split": split}
