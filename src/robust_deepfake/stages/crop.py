"""Cropping stage: cut a face crop of fixed size from each frame with a detected face, by the rule
of `robust_deepfake.faces.cropping` (square around the box, centre square, or whole frame).

Separate from detection (face_detection.py) so that changing the margin or the crop size reruns
only this cheap step.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from robust_deepfake.atomic import write_image
from robust_deepfake.faces.cropping import crop_face
from robust_deepfake.manifest import ATTR_PREFIX, CROP_COLUMNS, DETECT_COLUMNS, require_columns
from robust_deepfake.paths import item_path

log = logging.getLogger(__name__)


def crop_faces(detections: pd.DataFrame, out_dir: Path, margin: float, size: int,
               image_format: str, mode: str = "mtcnn", center_size: int = 178) -> pd.DataFrame:
    """Write a crop for every row with a face and add crop_box, crop_landmarks and face_path.

    Rows without a face pass through with null crop columns. A frame that can no longer be read
    keeps has_face (it describes the detection) but gets an `error` and no crop. `out_dir` is
    created even when no row has a face, since the workflow declares it as an output."""
    require_columns(detections, DETECT_COLUMNS, "crop_faces")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    out = detections.reset_index(drop=True).copy()
    n = len(out)
    errors = [e if isinstance(e, str) else None for e in out["error"]]
    crop_boxes: list[np.ndarray | None] = [None] * n
    crop_landmarks: list[np.ndarray | None] = [None] * n
    face_paths: list[str | None] = [None] * n

    todo = [i for i in range(n) if bool(out.at[i, "has_face"])]
    for i in tqdm(todo, desc="crop", unit="frame"):
        frame_path = out.at[i, "frame_path"]
        image = cv2.imread(frame_path, cv2.IMREAD_COLOR) if isinstance(frame_path, str) else None
        if image is None:
            errors[i] = f"unreadable frame image {frame_path}"
            log.warning("%s: %s", out.at[i, "media_id"], errors[i])
            continue
        crop, box, points = crop_face(image, out.at[i, "box"], out.at[i, "landmarks"], margin, size, mode, center_size)
        path = item_path(out_dir, out.at[i, "media_id"], out.at[i, "frame_idx"], image_format)
        write_image(path, crop)
        crop_boxes[i] = np.asarray(box, dtype=np.int32)
        crop_landmarks[i] = points
        face_paths[i] = str(path)

    log.info("wrote %d face crops of %d frames to %s", sum(p is not None for p in face_paths), n, out_dir)
    out["error"] = pd.Series(errors, dtype=object)
    out["crop_box"] = pd.Series(crop_boxes, dtype=object)
    out["crop_landmarks"] = pd.Series(crop_landmarks, dtype=object)
    out["face_path"] = pd.Series(face_paths, dtype=object)
    attrs = [c for c in out.columns if c.startswith(ATTR_PREFIX)]
    return out[CROP_COLUMNS + attrs]
