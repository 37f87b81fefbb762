"""Stage distort_test_videos: DeeperForensics-1.0 distortions applied to split C's *whole videos*
before face detection, as that protocol distorts the delivered media, beside the evaluation's
per-crop distortions (`stages.evaluation`).

For every media of split C, the sampled frames (the frames C's faces come from) are distorted as
one clip with `attacks.distortions.distort_video`: video compression is then a real H.264 encode
over the clip (inter-frame prediction included), not one intra-coded frame per crop; the other
kinds go frame by frame. The faces are then found again by MTCNN, with the pipeline's face
settings, and cut as the detectors' training faces were (`faces.cropping.DetectorInput`), so a
distortion that hides a face loses that frame, as it would in the wild (the manifest keeps the
row with its error).

The fakes the generators made from C's faces exist as crops only. Each is pasted back into its
source frame at the square its real face was cut from (`crop_box`), so a fake video is a real
video with the face replaced, and it meets the same whole-frame distortion, detection and crop as
the real one: reals and fakes are processed alike, and a detector cannot tell them apart by how
the distortion was applied.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from robust_deepfake.atomic import write_image
from robust_deepfake.attacks.distortions import distort_video
from robust_deepfake.faces.cropping import DetectorInput, crop_face
from robust_deepfake.faces.detection import detect_batch
from robust_deepfake.images import read_image
from robust_deepfake.paths import check_distinct_folders, item_path
from robust_deepfake.seeding import item_seed
from robust_deepfake.video import media_frames

log = logging.getLogger(__name__)

DISTORTED_COLUMNS = ["media_id", "frame_idx", "label", "test_set", "image_path", "error"]


def paste_fake(frame_bgr: np.ndarray, fake_path: str, crop_box) -> np.ndarray:
    """The frame with the fake crop resized into the region its real face was cut from."""
    x1, y1, x2, y2 = (int(v) for v in crop_box)
    out = frame_bgr.copy()
    out[y1:y2, x1:x2] = cv2.resize(read_image(fake_path), (x2 - x1, y2 - y1), interpolation=cv2.INTER_CUBIC)
    return out


def clips(part_c: pd.DataFrame, test_fakes: pd.DataFrame) -> Iterator[tuple[dict, dict[int, np.ndarray]]]:
    """(identity of the clip: media_id, label, test_set; {frame index: BGR frame}) for every media
    of C, each followed by the fakes generated from it, in a fixed order. One media's frames at a
    time: C of a large dataset does not fit in memory decoded."""
    by_media = part_c.sort_values(["media_id", "frame_idx"]).groupby("media_id", sort=True)
    for media_id, rows in by_media:
        first = rows.iloc[0]
        frames, _, _ = media_frames(first, rows["frame_idx"].astype(int).tolist())
        test_set = "real" if int(first["label"]) == 0 else first["method"]
        yield {"media_id": media_id, "label": int(first["label"]), "test_set": test_set}, frames
        if not len(test_fakes):
            continue
        made = test_fakes[test_fakes["real_media_id"] == media_id]
        for fake_id, fake_rows in made.groupby("media_id", sort=True):
            pasted = {int(r["frame_idx"]): paste_fake(frames[int(r["frame_idx"])], r["image_path"], r["crop_box"])
                      for _, r in fake_rows.iterrows() if int(r["frame_idx"]) in frames}
            yield {"media_id": fake_id, "label": 1, "test_set": fake_rows["generator"].iloc[0]}, pasted


def distort_clip(media_id: str, frames: dict[int, np.ndarray], kind: str, level: int,
                 seed: int) -> tuple[list[int], list[np.ndarray]]:
    """(frame indices in order, the frames distorted as one clip); the random draws (noise,
    blocks) are keyed by the run's seed, the condition and the media, so reruns agree."""
    indices = sorted(frames)
    rng = np.random.default_rng(item_seed(seed, "video_distortion", kind, level, media_id))
    return indices, distort_video([frames[i] for i in indices], kind, level, rng)


def distort_and_cut(part_c: pd.DataFrame, test_fakes: pd.DataFrame, kind: str, level: int, seed: int,
                    face_detector, face_settings: dict, cut: DetectorInput, out_dir: str | Path,
                    image_format: str = "png") -> pd.DataFrame:
    """Distort every clip of C (reals, C's own fakes, pasted generated fakes) as a whole, find the
    face in each distorted frame and cut it as the detectors were trained: one row per frame
    (DISTORTED_COLUMNS), `error` where no face was found any more."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    check_distinct_folders([*part_c["media_id"], *test_fakes.get("media_id", ())])
    rows = []
    for identity, frames in tqdm(clips(part_c, test_fakes), desc=f"{kind}-{level} on whole videos", unit="clip"):
        indices, distorted = distort_clip(identity["media_id"], frames, kind, level, seed)
        found = detect_batch(face_detector, [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in distorted],
                             face_settings["max_side"], face_settings["min_confidence"], face_settings["keep"])
        for index, frame, face in zip(indices, distorted, found):
            row = {**identity, "frame_idx": index, "image_path": None, "error": None}
            if face is None:
                row["error"] = f"no face found after {kind}-{level}"
            else:
                crop, _, _ = crop_face(frame, face["box"], np.asarray(face["landmarks"]).reshape(-1), cut.margin,
                                       cut.size, cut.mode, cut.center_size)
                path = item_path(out_dir, identity["media_id"], index, image_format)
                write_image(path, crop)
                row["image_path"] = str(path)
            rows.append(row)
    table = pd.DataFrame(rows, columns=DISTORTED_COLUMNS)
    lost = table["error"].notna()
    log.info("%s-%d on whole videos: %d frames of %d clips, %d lost their face", kind, level, len(table),
             table["media_id"].nunique(), int(lost.sum()))
    return table
