"""Frame extraction stage: the manifest's media become one row per kept frame, saved as an image.

The frames are decoded by `robust_deepfake.video` (only the GOPs that hold wanted frames). A media
that cannot be read becomes one row with an `error` text and a logged warning; the other media go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from robust_deepfake.atomic import write_image
from robust_deepfake.images import MediaError
from robust_deepfake.manifest import ATTR_PREFIX, FRAME_COLUMNS, MEDIA_COLUMNS, require_columns
from robust_deepfake.paths import item_path
from robust_deepfake.video import Mode, frame_indices, media_frames

log = logging.getLogger(__name__)

IMAGE_FORMATS: tuple[str, ...] = ("png", "jpg")


def _media_rows(record: dict[str, Any], out_dir: Path, sample: Callable[[int], list[int]],
                image_format: str) -> list[dict[str, Any]]:
    """The manifest rows of one media: one per wanted frame (written, or with the reason it could
    not be decoded), or one error row for a media that gives no frame at all."""
    empty = {"frame_idx": None, "frame_count": None, "frame_path": None, "width": None, "height": None}
    try:
        frames, failed, frame_count = media_frames(record, sample)
    except MediaError as e:
        log.warning("%s", e)
        return [{**record, **empty, "error": str(e)}]
    rows = [{**record, **empty, "frame_idx": idx, "frame_count": frame_count,
             "error": str(MediaError(record["path"], f"frame {idx} could not be decoded: {reason}"))}
            for idx, reason in failed.items()]
    for idx in sorted(frames):
        frame_path = item_path(out_dir, record["media_id"], idx, image_format)
        write_image(frame_path, frames[idx])
        height, width = frames[idx].shape[:2]
        rows.append({**record, "frame_idx": idx, "frame_count": frame_count, "frame_path": str(frame_path),
                     "width": width, "height": height, "error": None})
    return sorted(rows, key=lambda row: row["frame_idx"])


def extract_frames(media: pd.DataFrame, out_dir: str | Path, mode: Mode, per_video: int, stride: int,
                   max_per_video: int, image_format: str) -> pd.DataFrame:
    """Expand the media manifest to one row per kept frame (FRAME_COLUMNS plus any attr_*
    columns), writing each frame to `<out_dir>/<media slug>/<frame_idx:06d>.<image_format>`.
    PNG is lossless and keeps the compression traces a detector may rely on."""
    require_columns(media, MEDIA_COLUMNS, "extract_frames")
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    sample = partial(frame_indices, mode=mode, per_video=per_video, stride=stride, max_per_video=max_per_video)
    sample(1)  # reject a bad sampling config before any media is read
    Path(out_dir).mkdir(parents=True, exist_ok=True)  # a declared output, also for a shard without media
    carried = MEDIA_COLUMNS + [c for c in media.columns if c.startswith(ATTR_PREFIX)]
    rows: list[dict[str, Any]] = []
    for record in tqdm(media[carried].to_dict("records"), desc="frames", unit="media"):
        rows.extend(_media_rows(record, Path(out_dir), sample, image_format))
    columns = FRAME_COLUMNS + carried[len(MEDIA_COLUMNS):]
    frames = pd.DataFrame(rows, columns=columns).astype(media.dtypes[carried].to_dict())
    for column in ("frame_idx", "frame_count", "width", "height"):
        frames[column] = frames[column].astype("Int32")
    failed = frames.loc[frames["error"].notna() & frames["frame_idx"].isna(), "media_id"].nunique()
    lost = int((frames["error"].notna() & frames["frame_idx"].notna()).sum())
    log.info("%d media -> %d frames; %d media failed, %d frames of other media could not be decoded", len(media),
             int(frames["error"].isna().sum()), failed, lost)
    return frames
