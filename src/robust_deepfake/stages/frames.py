"""Frame images stage (optional, `frames.save_images`): the sampled frames of each media written as
images, for users who want to look at them or feed them to other tools.

Nothing in the pipeline reads them: face detection and cropping decode the frames themselves
(`robust_deepfake.video.sampled_frames`, the same rule), because full-frame images cost about 70
times the videos' size on disk. A media that cannot be read becomes one row with an `error` text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from robust_deepfake.atomic import write_image
from robust_deepfake.manifest import ATTR_PREFIX, MEDIA_COLUMNS, frames_table, require_columns
from robust_deepfake.paths import check_distinct_folders, item_path
from robust_deepfake.video import sampled_frames

log = logging.getLogger(__name__)

IMAGE_FORMATS: tuple[str, ...] = ("png", "jpg")


def save_frames(media: pd.DataFrame, out_dir: str | Path, sample: Callable[[int], Sequence[int]],
                image_format: str) -> pd.DataFrame:
    """One row per sampled frame (FRAME_COLUMNS, attr_* columns, frame_path), each frame written
    to `<out_dir>/<media slug>/<frame_idx:06d>.<image_format>`. PNG is lossless and keeps the
    compression traces a detector may rely on."""
    require_columns(media, MEDIA_COLUMNS, "save_frames")
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    sample(1)  # reject a bad sampling config before any media is read
    check_distinct_folders(media["media_id"])
    Path(out_dir).mkdir(parents=True, exist_ok=True)  # a declared output, also for a shard without media
    carried = MEDIA_COLUMNS + [c for c in media.columns if c.startswith(ATTR_PREFIX)]
    rows = []
    for record in tqdm(media[carried].to_dict("records"), desc="frames", unit="media"):
        for row, frame in sampled_frames(record, sample):
            if frame is not None:
                row["frame_path"] = str(item_path(out_dir, record["media_id"], row["frame_idx"], image_format))
                write_image(row["frame_path"], frame)
            rows.append(row)
    frames = frames_table(rows, media, extra=("frame_path",))
    log.info("%d media -> %d frame images; %d rows with an error", len(media), int(frames["frame_path"].notna().sum()),
             int(frames["error"].notna().sum()))
    return frames
