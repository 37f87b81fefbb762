"""Face detection stage: one MTCNN pass over every extracted frame, boxes and landmarks into the manifest.

Detection is kept apart from cropping (crop.py) because it is the expensive step: changing the crop
margin or size must not rerun MTCNN. Frames are downscaled before detection (MTCNN's cost grows with
the pixel count, and faces in deepfake datasets are large), and the boxes are mapped back to
full-frame pixels so the crop stage cuts from the full-resolution frame.

A frame that cannot be read, or that shows no face above `min_confidence`, stays in the table with
`has_face` False and an `error` text; it never stops the other frames.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from robust_deepfake.faces.detection import Keep, build_detector, check_keep, detect_batch
from robust_deepfake.images import read_rgb_or_none
from robust_deepfake.manifest import ATTR_PREFIX, DETECT_COLUMNS, FRAME_COLUMNS, require_columns

log = logging.getLogger(__name__)


def detect_faces(frames: pd.DataFrame, device: str, batch_size: int, min_face_size: int,
                 thresholds: Sequence[float], scale_factor: float, max_side: int | None,
                 min_confidence: float, keep: Keep) -> pd.DataFrame:
    """Add has_face, n_faces, box, landmarks and confidence to a frames manifest.

    Rows that arrive with an `error` are passed through untouched (the detector never sees them,
    so their n_faces is null); an unreadable frame also gets a null n_faces, a frame without a face
    n_faces 0. Box and landmarks are float32 arrays of length 4 and 10 (x, y pairs) in frame pixels.
    """
    require_columns(frames, FRAME_COLUMNS, "detect_faces")
    check_keep(keep)  # before any frame is read, not after the first batch
    out = frames.reset_index(drop=True).copy()
    n = len(out)
    errors = [e if isinstance(e, str) else None for e in out["error"]]
    has_face = np.zeros(n, dtype=bool)
    n_faces = pd.array([pd.NA] * n, dtype="Int16")
    boxes: list[np.ndarray | None] = [None] * n
    landmarks: list[np.ndarray | None] = [None] * n
    confidence = np.full(n, np.nan, dtype=np.float32)

    todo = [i for i in range(n) if errors[i] is None]
    detector = build_detector(device, min_face_size, thresholds, scale_factor) if todo else None
    chunks = [todo[k:k + batch_size] for k in range(0, len(todo), batch_size)]
    for chunk in tqdm(chunks, desc="detect", unit="batch"):
        readable, images = [], []
        for i in chunk:
            image = read_rgb_or_none(out.at[i, "frame_path"])
            if image is None:
                errors[i] = f"unreadable frame image {out.at[i, 'frame_path']}"
                log.warning("%s: %s", out.at[i, "media_id"], errors[i])
            else:
                readable.append(i)
                images.append(image)
        for i, face in zip(readable, detect_batch(detector, images, max_side, min_confidence, keep)):
            if face is None:
                n_faces[i] = 0
                errors[i] = f"no face above confidence {min_confidence}"
                log.info("%s frame %s: %s", out.at[i, "media_id"], out.at[i, "frame_idx"], errors[i])
                continue
            has_face[i] = True
            n_faces[i] = face["n_faces"]
            boxes[i] = face["box"].astype(np.float32)
            landmarks[i] = face["landmarks"].reshape(10).astype(np.float32)
            confidence[i] = face["confidence"]

    log.info("faces in %d of %d frames (%d arrived with an error, %d failed here)",
             int(has_face.sum()), n, n - len(todo), len(todo) - int(has_face.sum()))
    out["error"] = pd.Series(errors, dtype=object)
    out["has_face"] = has_face
    out["n_faces"] = n_faces
    out["box"] = pd.Series(boxes, dtype=object)
    out["landmarks"] = pd.Series(landmarks, dtype=object)
    out["confidence"] = confidence
    attrs = [c for c in out.columns if c.startswith(ATTR_PREFIX)]
    return out[DETECT_COLUMNS + attrs]
