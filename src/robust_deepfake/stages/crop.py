"""Cropping stage: cut a face crop of fixed size from each frame with a detected face, by the rule
of `robust_deepfake.faces.cropping` (square around the box, centre square, or whole frame).

Separate from detection (face_detection.py) so that changing the margin or the crop size reruns
only this cheap step. The frames are decoded again from the media (no frame images are kept
between the stages), only those that hold a face, by the same reader as detection.
"""

from __future__ import annotations

import errno
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from robust_deepfake.atomic import write_image
from robust_deepfake.faces.cropping import crop_face
from robust_deepfake.images import MediaError
from robust_deepfake.manifest import ATTR_PREFIX, CROP_COLUMNS, DETECT_COLUMNS, require_columns
from robust_deepfake.paths import check_distinct_folders, item_path
from robust_deepfake.video import decode_ahead, media_frames

log = logging.getLogger(__name__)


def crop_faces(detections: pd.DataFrame, out_dir: Path, margin: float, size: int,
               image_format: str, mode: str = "mtcnn", center_size: int = 178, threads: int = 1) -> pd.DataFrame:
    """Write a crop for every row with a face and add crop_box, crop_landmarks and face_path.

    Rows without a face pass through with null crop columns. A frame that can no longer be decoded
    keeps has_face (it describes the detection) but gets an `error` and no crop, and so does a
    crop the file system will not take (one medium's error rows, never a lost shard). `out_dir` is
    created even when no row has a face, since the workflow declares it as an output. The next
    media is decoded (with `threads` FFmpeg threads) while the current one's crops are cut and
    written. The log ends with the seconds spent decoding, cropping, writing and waiting."""
    require_columns(detections, DETECT_COLUMNS, "crop_faces")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    check_distinct_folders(detections["media_id"])
    out = detections.reset_index(drop=True).copy()
    n = len(out)
    errors = [e if isinstance(e, str) else None for e in out["error"]]
    crop_boxes: list[np.ndarray | None] = [None] * n
    crop_landmarks: list[np.ndarray | None] = [None] * n
    face_paths: list[str | None] = [None] * n
    seconds = {"decode": 0.0, "crop": 0.0, "write": 0.0, "wait": 0.0}

    def decode(media: tuple) -> tuple[dict, dict]:
        _, rows = media
        start = time.perf_counter()
        try:
            frames, failed, _ = media_frames(out.loc[rows[0]].to_dict(), out.loc[rows, "frame_idx"].tolist(), threads)
        except MediaError as e:
            frames, failed = {}, {int(out.at[i, "frame_idx"]): str(e) for i in rows}
        seconds["decode"] += time.perf_counter() - start  # in the background thread
        return frames, failed

    with_face = out.index[out["has_face"].astype(bool)]
    by_media = list(out.loc[with_face].groupby("media_id", sort=False).groups.items())
    waited = time.perf_counter()
    for (media_id, rows), (frames, failed) in tqdm(decode_ahead(by_media, decode), total=len(by_media),
                                                   desc="crop", unit="media"):
        seconds["wait"] += time.perf_counter() - waited
        for i in rows:
            idx = int(out.at[i, "frame_idx"])
            if idx not in frames:
                errors[i] = f"frame {idx} could not be decoded again for cropping: {failed.get(idx, 'not returned')}"
                log.warning("%s: %s", media_id, errors[i])
                continue
            start = time.perf_counter()
            crop, box, points = crop_face(frames.pop(idx), out.at[i, "box"], out.at[i, "landmarks"], margin, size,
                                          mode, center_size)
            path = item_path(out_dir, media_id, idx, image_format)
            seconds["crop"] += time.perf_counter() - start
            start = time.perf_counter()
            try:
                write_image(path, crop)
            except OSError as e:  # this media's name or folder: its rows say so, the shard goes on
                if e.errno == errno.ENOSPC:
                    raise
                errors[i] = f"face crop could not be written to {path}: {e.strerror or e}"
                log.warning("%s: %s", media_id, errors[i])
                continue
            finally:
                seconds["write"] += time.perf_counter() - start
            crop_boxes[i] = np.asarray(box, dtype=np.int32)
            crop_landmarks[i] = points
            face_paths[i] = str(path)
        waited = time.perf_counter()

    written = sum(p is not None for p in face_paths)
    log.info("wrote %d face crops of %d frames to %s", written, n, out_dir)
    log.info("seconds: decode %.2f (beside the rest), crop %.2f, write %.2f, wait %.2f for a decode (%d crops)",
             seconds["decode"], seconds["crop"], seconds["write"], seconds["wait"], written)
    out["error"] = pd.Series(errors, dtype=object)
    out["crop_box"] = pd.Series(crop_boxes, dtype=object)
    out["crop_landmarks"] = pd.Series(crop_landmarks, dtype=object)
    out["face_path"] = pd.Series(face_paths, dtype=object)
    attrs = [c for c in out.columns if c.startswith(ATTR_PREFIX)]
    return out[CROP_COLUMNS + attrs]
