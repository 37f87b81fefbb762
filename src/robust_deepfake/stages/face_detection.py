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
from typing import Literal

import cv2
import numpy as np
import pandas as pd
from facenet_pytorch import MTCNN
from tqdm import tqdm

from robust_deepfake.devices import resolve_device
from robust_deepfake.images import read_rgb_or_none
from robust_deepfake.manifest import ATTR_PREFIX, DETECT_COLUMNS, FRAME_COLUMNS, require_columns

log = logging.getLogger(__name__)

Keep = Literal["largest", "most_confident"]
KEEP_RULES: tuple[str, ...] = ("largest", "most_confident")


def build_detector(device: str, min_face_size: int, thresholds: Sequence[float],
                   scale_factor: float) -> MTCNN:
    """An MTCNN that returns every face unsorted by size: the keep rule is ours, applied after the
    confidence filter, so MTCNN's own selection (largest/probability) must not interfere."""
    return MTCNN(min_face_size=min_face_size, thresholds=list(thresholds), factor=scale_factor,
                 post_process=False, select_largest=False, keep_all=True,
                 device=resolve_device(device))


def _check_keep(keep: str) -> None:
    if keep not in KEEP_RULES:
        raise ValueError(f"keep must be one of {KEEP_RULES}, got {keep!r}")


def _downscale(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float, float]:
    """Shrink so the longer side is at most `max_side`; return the factors that map the small
    image's x and y back to the original (separate, because rounding the size changes the aspect)."""
    h, w = image.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return image, 1.0, 1.0
    s = max_side / max(h, w)
    new_w, new_h = max(1, int(w * s + 0.5)), max(1, int(h * s + 0.5))
    small = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return small, w / new_w, h / new_h


def _mtcnn_faces(detector: MTCNN, batch: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(boxes Nx4, probs N, points Nx5x2) per image of a same-size uint8 batch (B, H, W, 3).

    MTCNN builds no image pyramid for an image smaller than its minimum face size and then fails
    on an empty concatenation, so such images are answered with "no face" without calling it."""
    empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))
    h, w = batch.shape[1:3]
    if min(h, w) < detector.min_face_size:
        log.warning("%dx%d frame is smaller than min_face_size %d: no face searched",
                    w, h, detector.min_face_size)
        return [empty] * len(batch)
    boxes, probs, points = detector.detect(batch, landmarks=True)
    faces = []
    for b, p, pts in zip(boxes, probs, points):
        if b is None:
            faces.append(empty)
        else:
            faces.append((np.asarray(b, np.float32).reshape(-1, 4), np.asarray(p, np.float32).reshape(-1),
                          np.asarray(pts, np.float32).reshape(-1, 5, 2)))
    return faces


def _keep_face(boxes: np.ndarray, probs: np.ndarray, points: np.ndarray, min_confidence: float,
               keep: Keep) -> dict | None:
    """Apply the confidence floor first, so a large false positive cannot win 'largest'."""
    ok = probs >= min_confidence
    if not ok.any():
        return None
    boxes, probs, points = boxes[ok], probs[ok], points[ok]
    score = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) if keep == "largest" else probs
    i = int(np.argmax(score))  # first of equals: deterministic
    return {"box": boxes[i].copy(), "landmarks": points[i].copy(), "confidence": float(probs[i]),
            "n_faces": int(ok.sum())}


def detect_batch(detector: MTCNN, images_rgb: list[np.ndarray], max_side: int | None,
                 min_confidence: float, keep: Keep) -> list[dict | None]:
    """Detect the kept face of each RGB image; None where no face reaches `min_confidence`.

    Images are downscaled first and grouped by their detection size, because MTCNN batches only
    equal-size images; box and landmark coordinates come back in full-image pixels. Each dict has
    box (x1, y1, x2, y2), landmarks (5x2 x, y), confidence and n_faces (faces above the floor)."""
    _check_keep(keep)
    small = [_downscale(img, max_side) for img in images_rgb]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (img, _, _) in enumerate(small):
        groups.setdefault(img.shape, []).append(i)
    results: list[dict | None] = [None] * len(images_rgb)
    for members in groups.values():
        batch = np.stack([small[i][0] for i in members])
        for i, (boxes, probs, points) in zip(members, _mtcnn_faces(detector, batch)):
            _, sx, sy = small[i]
            boxes = boxes * np.array([sx, sy, sx, sy], np.float32)
            points = points * np.array([sx, sy], np.float32)
            results[i] = _keep_face(boxes, probs, points, min_confidence, keep)
    return results


def detect_faces(frames: pd.DataFrame, device: str, batch_size: int, min_face_size: int,
                 thresholds: Sequence[float], scale_factor: float, max_side: int | None,
                 min_confidence: float, keep: Keep) -> pd.DataFrame:
    """Add has_face, n_faces, box, landmarks and confidence to a frames manifest.

    Rows that arrive with an `error` are passed through untouched (the detector never sees them,
    so their n_faces is null); an unreadable frame also gets a null n_faces, a frame without a face
    n_faces 0. Box and landmarks are float32 arrays of length 4 and 10 (x, y pairs) in frame pixels.
    """
    require_columns(frames, FRAME_COLUMNS, "detect_faces")
    _check_keep(keep)  # before any frame is read, not after the first batch
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
