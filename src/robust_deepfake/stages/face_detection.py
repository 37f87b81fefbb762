"""Face detection stage: the sampled frames of every media of a shard, decoded and searched by MTCNN
in one pass; boxes and landmarks into the manifest, one row per frame.

No frame is stored: the crop stage decodes the frames that hold a face again (the sampled reader
decodes only the GOPs it needs, far faster than writing and reading back full-frame images, which
took 70 times the videos' own size on disk). Detection is still kept apart from cropping
(crop.py) because it is the expensive step: changing the crop margin or size must not rerun MTCNN.
MTCNN's settings and why they give the default call's boxes: faces/detection.py; the boxes are
in full-frame pixels, so the crop stage cuts from the full-resolution frame.

A media or frame that cannot be decoded, or a frame that shows no face above `min_confidence`,
stays in the table with `has_face` False and an `error` text; it never stops the other frames.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from robust_deepfake.devices import per_device, resolve_device
from robust_deepfake.faces.detection import Keep, build_detector, check_keep, detect_batch
from robust_deepfake.manifest import ATTR_PREFIX, DETECT_COLUMNS, MEDIA_COLUMNS, frames_table, require_columns
from robust_deepfake.video import decode_ahead, sampled_frames

log = logging.getLogger(__name__)


def detect_faces(media: pd.DataFrame, sample: Callable[[int], Sequence[int]], device: str, batch_size: int | dict,
                 min_face_size: float, thresholds: Sequence[float], scale_factor: float, max_side: int | None,
                 min_confidence: float, keep: Keep, skip_levels: int = 0, threads: int = 1) -> pd.DataFrame:
    """One row per sampled frame of each media (`sample` maps a frame count to the wanted frame
    indices) with has_face, n_faces, box, landmarks and confidence.

    A frame that could not be decoded has a null n_faces (the detector never saw it), a frame
    without a face n_faces 0. Box and landmarks are float32 arrays of length 4 and 10 (x, y pairs)
    in frame pixels. `batch_size` (frames per MTCNN call) may be given per device type. The next
    media is decoded (with `threads` FFmpeg threads) while MTCNN works on the current one. The log
    ends with the seconds spent decoding, detecting, and waiting for a decode."""
    require_columns(media, MEDIA_COLUMNS, "detect_faces")
    check_keep(keep)  # a bad keep rule or sampling config fails before any media is decoded
    sample(1)
    batch_size = per_device(batch_size, resolve_device(device))
    carried = MEDIA_COLUMNS + [c for c in media.columns if c.startswith(ATTR_PREFIX)]
    rows: list[dict] = []
    found: dict[int, dict | None] = {}
    pending: list[tuple[int, np.ndarray]] = []  # (row, RGB frame) waiting for a full batch
    seconds = {"decode": 0.0, "detect": 0.0, "wait": 0.0}
    detector = None

    def detect_pending() -> None:
        nonlocal detector
        start = time.perf_counter()
        if detector is None:  # built once, and only for a shard that has a frame to search
            detector = build_detector(device, min_face_size, thresholds, scale_factor, skip_levels)
        faces = detect_batch(detector, [image for _, image in pending], max_side, min_confidence, keep)
        found.update((i, face) for (i, _), face in zip(pending, faces))
        pending.clear()
        seconds["detect"] += time.perf_counter() - start

    def decode(record: dict) -> list:
        start = time.perf_counter()
        decoded = list(sampled_frames(record, sample, threads, rgb=True))  # MTCNN's channel order
        seconds["decode"] += time.perf_counter() - start  # in the background thread
        return decoded

    began = time.perf_counter()
    waited = began
    for _, decoded in tqdm(decode_ahead(media[carried].to_dict("records"), decode), total=len(media),
                           desc="detect", unit="media"):
        seconds["wait"] += time.perf_counter() - waited
        for row, frame in decoded:
            rows.append(row)
            if frame is not None:
                pending.append((len(rows) - 1, frame))
            if len(pending) >= batch_size:
                detect_pending()
        waited = time.perf_counter()
    if pending:
        detect_pending()
    wall = time.perf_counter() - began

    out = frames_table(rows, media)
    _add_faces(out, found, min_confidence)
    n_frames, n_faces = len(found), int(out["has_face"].sum())
    log.info("%d media -> %d frames decoded, %d rows that could not be decoded; faces in %d frames",
             len(media), n_frames, len(out) - n_frames, n_faces)
    log.info("seconds: decode %.2f (%.1f frames/s, beside detection), detection %.2f (%.1f frames/s), wait %.2f "
             "for a decode, wall %.2f", seconds["decode"], n_frames / max(seconds["decode"], 1e-9), seconds["detect"],
             n_frames / max(seconds["detect"], 1e-9), seconds["wait"], wall)
    return out[DETECT_COLUMNS + carried[len(MEDIA_COLUMNS):]]


def _add_faces(out: pd.DataFrame, found: dict[int, dict | None], min_confidence: float) -> None:
    """The detection columns, from MTCNN's kept face per decoded row (None: no face)."""
    n = len(out)
    errors = [e if isinstance(e, str) else None for e in out["error"]]
    has_face = np.zeros(n, dtype=bool)
    n_faces = pd.array([pd.NA] * n, dtype="Int16")
    boxes: list[np.ndarray | None] = [None] * n
    landmarks: list[np.ndarray | None] = [None] * n
    confidence = np.full(n, np.nan, dtype=np.float32)
    for i, face in found.items():
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
    out["error"] = pd.Series(errors, dtype=object)
    out["has_face"] = has_face
    out["n_faces"] = n_faces
    out["box"] = pd.Series(boxes, dtype=object)
    out["landmarks"] = pd.Series(landmarks, dtype=object)
    out["confidence"] = confidence
