"""DeepFakeFace (DFF): real IMDB-WIKI faces and three generated versions of each.

    wiki/<rel>.jpg                              real
    inpainting/<rel>, insight/<rel>, text2img/<rel>  fake, method = folder name

A fake has the same relative name as the wiki image it was made from, so the wiki-relative path
without suffix names the person in all four folders (identity), and the fake's source_id is that
wiki image's media id. Suffixes may differ between folders, so names are matched without them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from robust_deepfake.datasets import (DatasetLayoutError, adapter_frame, media_path, require_dir, scan_media,
                                      warn_ignored)

REAL = "wiki"
FAKE_METHODS = ("inpainting", "insight", "text2img")


def list_media(root: Path) -> pd.DataFrame:
    """Real wiki images and the fakes of every method folder present (at least one must be)."""
    wiki = require_dir(root, REAL, "deepfakeface")
    methods = [m for m in FAKE_METHODS if (root / m).is_dir()]
    if not methods:
        raise DatasetLayoutError(
            f"{root}: none of the fake folders {list(FAKE_METHODS)} of the deepfakeface layout exists")
    real_ids: dict[str, str] = {}
    rows = []
    media, other = scan_media(wiki)
    for rel, kind in media:
        key = _strip_suffix(rel)
        real_ids[key] = f"{REAL}/{rel}"
        rows.append(_row(root, f"{REAL}/{rel}", kind, 0, "real", None, key))
    warn_ignored(other, "files that are not media", wiki)
    for method in methods:
        media, other = scan_media(root / method)
        unmatched = 0
        for rel, kind in media:
            key = _strip_suffix(rel)
            if key not in real_ids:
                unmatched += 1
            rows.append(_row(root, f"{method}/{rel}", kind, 1, method, real_ids.get(key), key))
        warn_ignored(other, "files that are not media", root / method)
        warn_ignored(unmatched, "fakes without a wiki image of the same name (no source_id)", root / method)
    return adapter_frame(rows, root)


def _strip_suffix(rel: str) -> str:
    return os.path.splitext(rel)[0]


def _row(root: Path, media_id: str, kind: str, label: int, method: str, source_id: str | None,
         identity: str) -> dict:
    return {"media_id": media_id, "path": media_path(root, media_id), "kind": kind, "label": label, "method": method,
            "source_id": source_id, "target_id": None, "identity": identity, "official_split": None}
