"""A plain folder pair for any other data: `real/` and `fake/` (either may be absent, not both),
videos and/or images at any depth.

    real/<person>/.../clip.mp4   identity <person>          real/clip.mp4   identity "clip"
    fake/<method>/<person>/.../x method <method>, identity <person>
    fake/<method>/x.mp4          method <method>, identity "x"
    fake/x.mp4                   method "fake", identity "x"

A fake's first sub-folder names the method rather than a person, so that one folder per
generator (the usual way such sets are shared) does not make every fake of a method look like
a single person to the identity-disjoint split; the person is the next folder, if any.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from robust_deepfake.datasets import DatasetLayoutError, adapter_frame, file_stem, media_path, scan_media, warn_ignored
from robust_deepfake.logs import console

FOLDERS = {"real": 0, "fake": 1}


def list_media(root: Path) -> pd.DataFrame:
    """Every video and image under real/ and fake/; anything else in root is ignored."""
    present = [name for name in FOLDERS if (root / name).is_dir()]
    if not present:
        raise DatasetLayoutError(f"{root}: expected folder real/ or fake/ of the folders layout; neither exists")
    others = sorted(p.name for p in root.iterdir() if p.name not in FOLDERS and not p.name.startswith("."))
    if others:
        console.warning("%s: ignored %d entries beside real/ and fake/ (first: %s)", root, len(others), others[:5])
    rows = []
    for name in present:
        media, other = scan_media(root / name)
        for rel, kind in media:
            method, identity = _method_identity(name, rel)
            rows.append({"media_id": f"{name}/{rel}", "path": media_path(root, f"{name}/{rel}"), "kind": kind,
                         "label": FOLDERS[name], "method": method, "source_id": None, "target_id": None,
                         "identity": identity, "official_split": None})
        warn_ignored(other, "files that are not videos or images", root / name)
    return adapter_frame(rows, root)


def _method_identity(top: str, rel: str) -> tuple[str, str]:
    """(method, identity) from the folders a file sits in, as laid out in the module docstring."""
    *dirs, _file = rel.split("/")
    stem = file_stem(rel)
    if top == "real":
        return "real", dirs[0] if dirs else stem
    if not dirs:
        return "fake", stem
    return dirs[0], dirs[1] if len(dirs) > 1 else stem
