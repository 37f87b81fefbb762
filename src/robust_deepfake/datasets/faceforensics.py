"""FaceForensics++ (and its DeepFakeDetection part) in the official download layout.

    original_sequences/{youtube,actors}/<c>/videos/*.mp4             real
    manipulated_sequences/<Method>/<c>/videos/<target>_<source>.mp4  fake
    {train,val,test}.json                                            optional official split

YouTube videos are named by a three-digit id that is also the person's identity. The actors
(DeepFakeDetection) videos are named `01__walking_outside_cafe_disgusted.mp4` and their fakes
`01_02__meeting_serious__YVGY8LOK.mp4` (target actor 01, source actor 02); their ids get the prefix
"actors:" because actor "01" and YouTube video "001" are different people and must not be merged
by the identity-disjoint split.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from robust_deepfake.datasets import (SPLITS, DatasetLayoutError, adapter_frame, file_stem, media_path, require_dir,
                                      scan_media, warn_ignored)
from robust_deepfake.logs import console

log = logging.getLogger(__name__)

METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter", "DeepFakeDetection")
ACTORS_PREFIX = "actors:"


def list_media(root: Path, *, compression: str = "c23", methods: list[str] | tuple[str, ...] = METHODS,
               split_dir: str | Path | None = None) -> pd.DataFrame:
    """All real and fake videos of one compression, with the official split where one is found."""
    rows = _real_rows(root, compression) + _fake_rows(root, compression, methods)
    pair_split = _read_splits(root, split_dir)
    for row in rows:
        row["official_split"] = _split_of(row, pair_split)
    return adapter_frame(rows, root)


def _real_rows(root: Path, compression: str) -> list[dict]:
    """Reals from youtube/ and actors/; at least one must exist at this compression."""
    originals = require_dir(root, "original_sequences", "faceforensics")
    folders = {source: originals / source / compression / "videos" for source in ("youtube", "actors")}
    if not any(f.is_dir() for f in folders.values()):
        present = sorted(p.name for p in (originals / "youtube").glob("*") if p.is_dir())
        raise DatasetLayoutError(
            f"{root}: expected folder original_sequences/youtube/{compression}/videos/ is missing "
            f"(compression folders present under original_sequences/youtube: {present or 'none'})")
    rows = []
    for source, folder in folders.items():
        if not folder.is_dir():
            continue
        for rel, kind, identity in _named_media(folder, lambda stem: _real_identity(source, stem),
                                                "files that are not FF++ real videos"):
            rows.append(_row(root, folder, rel, kind, 0, "real", None, None, identity))
    return rows


def _named_media(folder: Path, parse_stem, what_else: str) -> list[tuple[str, str, object]]:
    """Media under `folder` whose file stem `parse_stem` understands, with what it parsed; the
    others are counted in one warning (FF++ folders hold stray files in some downloads)."""
    media, skipped = scan_media(folder)
    named = []
    for rel, kind in media:
        parsed = parse_stem(file_stem(rel))
        if parsed is None:
            skipped += 1
        else:
            named.append((rel, kind, parsed))
    warn_ignored(skipped, what_else, folder)
    return named


def _real_identity(source: str, stem: str) -> str | None:
    if source == "youtube":
        return stem if stem and "_" not in stem else None
    actor = stem.split("__")[0]
    return f"{ACTORS_PREFIX}{actor}" if "__" in stem and actor else None


def _fake_rows(root: Path, compression: str, methods: list[str] | tuple[str, ...]) -> list[dict]:
    """Fakes of the requested methods that exist on disk; a requested method that is absent is
    only logged (partial downloads are common), but none at all is an error."""
    manipulated = require_dir(root, "manipulated_sequences", "faceforensics")
    on_disk = sorted(p.name for p in manipulated.iterdir() if (p / compression / "videos").is_dir())
    missing = sorted(set(methods) - set(on_disk))
    if missing:
        console.warning("%s: requested methods not found at compression %s: %s", manipulated, compression, missing)
    unused = sorted(set(on_disk) - set(methods))
    if unused:
        log.info("%s: methods on disk but not requested, skipped: %s", manipulated, unused)
    chosen = sorted(set(on_disk) & set(methods))
    if not chosen:
        raise DatasetLayoutError(
            f"{root}: none of the methods {sorted(methods)} has a folder manipulated_sequences/<Method>/"
            f"{compression}/videos/ (methods there: {on_disk or 'none'})")
    rows = []
    for method in chosen:
        folder = manipulated / method / compression / "videos"
        for rel, kind, (target, source) in _named_media(folder, lambda stem: _fake_pair(method, stem),
                                                        "files not named <target>_<source>"):
            rows.append(_row(root, folder, rel, kind, 1, method, source, target, target))
    return rows


def _fake_pair(method: str, stem: str) -> tuple[str, str] | None:
    """(target id, source id) from a fake's name, or None when the name does not follow FF++."""
    if method == "DeepFakeDetection":
        ids = stem.split("__")[0].split("_")
        if "__" not in stem or len(ids) != 2 or not all(ids):
            return None
        return f"{ACTORS_PREFIX}{ids[0]}", f"{ACTORS_PREFIX}{ids[1]}"
    ids = stem.split("_")
    return (ids[0], ids[1]) if len(ids) == 2 and all(ids) else None


def _row(root: Path, folder: Path, rel: str, kind: str, label: int, method: str,
         source_id: str | None, target_id: str | None, identity: str) -> dict:
    media_id = f"{folder.relative_to(root).as_posix()}/{rel}"
    return {"media_id": media_id, "path": media_path(root, media_id), "kind": kind, "label": label,
            "method": method, "source_id": source_id, "target_id": target_id, "identity": identity}


def _split_folder(root: Path, split_dir: str | Path | None) -> Path | None:
    """Where the split JSONs are: the configured folder (which then must hold them), else the
    first of root/ and root/splits/ that has any."""
    if split_dir is not None:
        folder = Path(split_dir)
        if not any((folder / f"{s}.json").is_file() for s in SPLITS):
            raise DatasetLayoutError(f"split_dir {folder} holds none of {[s + '.json' for s in SPLITS]}")
        return folder
    for folder in (root, root / "splits"):
        if any((folder / f"{s}.json").is_file() for s in SPLITS):
            return folder
    log.info("%s: no FF++ split files (train/val/test.json); official_split stays empty", root)
    return None


def _read_splits(root: Path, split_dir: str | Path | None) -> dict[frozenset | str, str]:
    """Map each listed pair (as a frozenset, order-free) and each id in it to its split.

    An id in two splits would make the official split leak identities, so it is an error."""
    folder = _split_folder(root, split_dir)
    if folder is None:
        return {}
    found: dict[frozenset | str, str] = {}
    for split in SPLITS:
        path = folder / f"{split}.json"
        if not path.is_file():
            continue
        for pair in _read_pairs(path):
            for key in (frozenset(pair), *pair):
                if found.setdefault(key, split) != split:
                    raise DatasetLayoutError(f"{path}: {sorted(pair)} is also in {found[key]}.json")
    return found


def _read_pairs(path: Path) -> list[tuple[str, str]]:
    try:
        pairs = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DatasetLayoutError(f"{path}: cannot read FF++ split file ({err})") from None
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise DatasetLayoutError(f"{path}: expected a JSON list of [id, id] pairs")
    return [(str(a), str(b)) for a, b in pairs]


def _split_of(row: dict, pair_split: dict) -> str | None:
    """A real is in the split that lists its id, a fake in the one that lists its pair."""
    if row["label"] == 0:
        return pair_split.get(row["identity"])
    return pair_split.get(frozenset((row["target_id"], row["source_id"])))
