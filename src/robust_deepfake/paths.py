"""Where a stage writes the image of one item (a frame, a crop, a poisoned or purified face, a
fake): one folder per media, one file per frame, so a video's images stay together and names never
collide. Every stage that writes per-frame images names them here, and every workflow folder that
Snakemake may delete is checked here against the folders it must never touch."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

# Bytes of the readable part of a media folder's name: with the digest, a name stays far below the
# 255 bytes most file systems allow for one path component, whatever the dataset's names.
READABLE_BYTES = 96
DIGEST_CHARS = 10


class PathCollisionError(ValueError):
    """Two media would share one output folder: one would overwrite the other's faces."""


def media_slug(media_id: str) -> str:
    """The folder of one media: its id flattened and cut to `READABLE_BYTES` (so it can be found by
    eye), then a digest of the whole id. Flattening alone maps `a/b__c.mp4` and `a__b/c.mp4` to one
    name, and two people's faces would then share a folder; the digest keeps the names apart, and
    cutting keeps a 400-character id within the file system's limit on one name."""
    flat = media_id.replace("/", "__").replace("\\", "__")
    readable = flat.encode("utf-8")[:READABLE_BYTES].decode("utf-8", errors="ignore")
    digest = hashlib.sha256(media_id.encode("utf-8")).hexdigest()[:DIGEST_CHARS]
    return f"{readable}-{digest}"


def check_distinct_folders(media_ids: Iterable[str]) -> None:
    """Raise when two media ids would write to one folder. The digest makes that all but
    impossible; should it ever happen, a stage must stop rather than mix two people's images."""
    owners: dict[str, str] = {}
    for media_id in dict.fromkeys(media_ids):
        other = owners.setdefault(media_slug(media_id), media_id)
        if other != media_id:
            raise PathCollisionError(f"media {other!r} and {media_id!r} would share the output folder "
                                     f"{media_slug(media_id)!r}; rename one of them")


def item_path(out_dir: str | Path, media_id: str, frame_idx: int, image_format: str, variant: int | None = None) -> Path:
    """`<out_dir>/<media slug>/<frame_idx:06d>[_<variant>].<image_format>`; `variant` numbers the
    several images one frame can give (a face's k-th fake)."""
    suffix = "" if variant is None else f"_{variant}"
    return Path(out_dir) / media_slug(media_id) / f"{int(frame_idx):06d}{suffix}.{image_format}"


def unsafe_output_folder(folder: str | Path, protected: Iterable[str | Path]) -> str | None:
    """Why Snakemake must not own `folder` as a directory() output, or None when it may. Snakemake
    deletes such a folder before it reruns the rule: were it the checkout, `results/` or a parent
    of them (a dataset named `..` made `resources/..` the checkout), a rerun would delete it all."""
    target = Path(os.path.abspath(folder))
    for guarded in map(lambda p: Path(os.path.abspath(p)), protected):
        if target == guarded or target in guarded.parents:
            return f"{folder} is {guarded} or a folder above it, which a rerun would delete"
    return None


def unsafe_output_folders(folders: Iterable[tuple[str, str | Path]], protected: Iterable[str | Path]) -> list[str]:
    """One line per (rule name, directory() output) that `unsafe_output_folder` refuses."""
    protected = list(protected)
    return [f"rule {name}: output {why}" for name, folder in folders
            if (why := unsafe_output_folder(folder, protected))]
