"""Where a stage writes the image of one item (a frame, a crop, a poisoned or purified face, a
fake): one folder per media, one file per frame, so a video's images stay together and names never
collide. Every stage that writes per-frame images names them here."""

from __future__ import annotations

from pathlib import Path


def media_slug(media_id: str) -> str:
    """A flat, file-system-safe name for a media id (ids are relative paths)."""
    return media_id.replace("/", "__").replace("\\", "__")


def item_path(out_dir: str | Path, media_id: str, frame_idx: int, image_format: str, variant: int | None = None) -> Path:
    """`<out_dir>/<media slug>/<frame_idx:06d>[_<variant>].<image_format>`; `variant` numbers the
    several images one frame can give (a face's k-th fake)."""
    suffix = "" if variant is None else f"_{variant}"
    return Path(out_dir) / media_slug(media_id) / f"{int(frame_idx):06d}{suffix}.{image_format}"
