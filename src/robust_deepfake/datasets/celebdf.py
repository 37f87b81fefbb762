"""Celeb-DF (v1 and v2) in its release layout.

    Celeb-real/idX_NNNN.mp4          real, celebrity X
    YouTube-real/NNNNN.mp4           real, one unnamed person per video
    Celeb-synthesis/idT_idS_NNNN.mp4 fake
    List_of_testing_videos.txt       `1 Celeb-real/id0_0000.mp4` (1 = real, 0 = fake!)

Reading of the fake names: `id0_id1_0000.mp4` is real video `Celeb-real/id0_0000.mp4` (person
id0, the target whose video is kept) with the face of id1 (the source) swapped in; the number
is the target video's. So target_id is the first id, source_id the second, and the identity
shown is the target's.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from robust_deepfake.datasets import (DatasetLayoutError, adapter_frame, file_stem, media_path, require_dir,
                                      scan_media, warn_ignored)
from robust_deepfake.logs import console

TEST_LIST = "List_of_testing_videos.txt"
METHOD = "Celeb-synthesis"


def list_media(root: Path) -> pd.DataFrame:
    """Real and synthesised videos; the testing list gives "test", every other video "train"."""
    rows = _real_rows(root) + _fake_rows(root)
    test = _read_test_list(root, {r["media_id"]: r["label"] for r in rows})
    for row in rows:
        row["official_split"] = None if test is None else ("test" if row["media_id"] in test else "train")
    return adapter_frame(rows, root)


def _real_rows(root: Path) -> list[dict]:
    folders = [f for f in ("Celeb-real", "YouTube-real") if (root / f).is_dir()]
    if not folders:
        raise DatasetLayoutError(
            f"{root}: expected folder Celeb-real/ (or YouTube-real/) of the celebdf layout is missing")
    rows = []
    for name in folders:
        media, skipped = scan_media(root / name)
        for rel, kind in media:
            stem = file_stem(rel)
            if name == "YouTube-real":
                identity = f"youtube:{stem}"
            else:
                person, _, number = stem.rpartition("_")
                if not person or not number:
                    skipped += 1
                    continue
                identity = person
            rows.append(_row(root, f"{name}/{rel}", kind, 0, "real", None, None, identity))
        warn_ignored(skipped, "files that are not Celeb-DF real videos", root / name)
    return rows


def _fake_rows(root: Path) -> list[dict]:
    folder = require_dir(root, METHOD, "celebdf")
    media, skipped = scan_media(folder)
    rows = []
    for rel, kind in media:
        parts = file_stem(rel).split("_")
        if len(parts) != 3 or not all(parts):
            skipped += 1
            continue
        target, source, _number = parts
        rows.append(_row(root, f"{METHOD}/{rel}", kind, 1, METHOD, source, target, target))
    warn_ignored(skipped, "files not named idT_idS_NNNN", folder)
    return rows


def _row(root: Path, media_id: str, kind: str, label: int, method: str,
         source_id: str | None, target_id: str | None, identity: str) -> dict:
    return {"media_id": media_id, "path": media_path(root, media_id), "kind": kind, "label": label,
            "method": method, "source_id": source_id, "target_id": target_id, "identity": identity}


def _read_test_list(root: Path, labels: dict[str, int]) -> set[str] | None:
    """Media ids on the testing list, checked against the folder labels (the list's own label is
    inverted: 1 means real), or None when the dataset has no list."""
    path = root / TEST_LIST
    if not path.is_file():
        console.warning("%s: %s not found; official_split stays empty", root, TEST_LIST)
        return None
    test, absent = set(), []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[0] not in ("0", "1"):
            raise DatasetLayoutError(f"{path}:{number}: expected '<1 real|0 fake> <path>', got {line!r}")
        media_id = fields[1]
        if media_id not in labels:
            absent.append(media_id)
            continue
        if labels[media_id] != 1 - int(fields[0]):
            raise DatasetLayoutError(f"{path}:{number}: label {fields[0]} contradicts the folder of {media_id}")
        test.add(media_id)
    warn_ignored(len(absent), "listed test videos that are not on disk", path, absent)
    return test
