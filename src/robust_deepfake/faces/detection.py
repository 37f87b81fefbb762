"""Finding the face in a frame: MTCNN (facenet-pytorch, its weights ship in the wheel) with the
pipeline's keep rule, boxes and landmarks in full-frame pixels. Used by the face detection stage,
the whole-video distortions and `predict`.

Speed comes from skipping the finest levels of MTCNN's image pyramid (`skip_levels`: the levels
that look for faces smaller than min_face_size / scale_factor^skip_levels pixels), not from
downscaling the frame: the remaining levels are then exactly those of the default call, and so
are its boxes (bench/bench_faces.py). MTCNN's boxes hang on its pyramid: a frame downscaled first,
or a minimum face size between two of the default call's levels, moves the candidates PNet
proposes, and with them a fifth of the final boxes by more than IoU 0.9. Downscaling
(`max_side`) stays available where speed matters more than agreement with the default call.

The rest of the speed is memory layout, with the default call's arithmetic unchanged (boxes agree
to 1e-4 px): MTCNN's three small networks run channels-last, where PyTorch's CPU convolution and
max-pool kernels vectorise over channels (RNet 3.7x, ONet 3x, PNet 1.5x faster), and the frames
reach MTCNN planar, so each pyramid level's area resize and each candidate's crop resize read
contiguous channels instead of interleaved RGB (about 2x faster).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np
import torch
from facenet_pytorch import MTCNN
from torch import nn

from robust_deepfake.devices import resolve_device

log = logging.getLogger(__name__)

Keep = Literal["largest", "most_confident"]
KEEP_RULES: tuple[str, ...] = ("largest", "most_confident")
# facenet-pytorch's own `MTCNN()` call with the pipeline's confidence floor and keep rule: what
# `predict` finds faces with for a checkpoint written before detectors recorded their detection
# settings (config faces.*). Skipping pyramid levels only drops small faces; every box that the
# pipeline's settings keep is this call's (README: face detection), so no setting is guessed.
DEFAULT_CALL = {"min_face_size": 20, "skip_levels": 0, "thresholds": (0.6, 0.7, 0.7), "scale_factor": 0.709,
                "max_side": None, "min_confidence": 0.9, "keep": "largest"}


class ChannelsLast(nn.Module):
    """One of MTCNN's networks run channels-last: facenet-pytorch hands it NCHW crops and pyramid
    levels, which this converts on the way in; outputs are the same values."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor):
        return self.net(x.contiguous(memory_format=torch.channels_last))


def build_detector(device: str, min_face_size: float, thresholds: Sequence[float], scale_factor: float,
                   skip_levels: int = 0) -> MTCNN:
    """An MTCNN whose pyramid is the default call's for `min_face_size` without its `skip_levels`
    finest levels, returning every face unsorted by size: the keep rule is ours, applied after
    the confidence filter, so MTCNN's own selection (largest/probability) must not interfere."""
    if skip_levels < 0:
        raise ValueError(f"skip_levels must be at least 0, got {skip_levels}")
    detector = MTCNN(min_face_size=min_face_size / scale_factor ** skip_levels, thresholds=list(thresholds),
                     factor=scale_factor, post_process=False, select_largest=False, keep_all=True,
                     device=resolve_device(device))
    detector.pnet, detector.rnet, detector.onet = (ChannelsLast(net) for net in
                                                   (detector.pnet, detector.rnet, detector.onet))
    return detector


def planar(batch: np.ndarray) -> torch.Tensor:
    """The (B, H, W, 3) batch as a tensor of that shape whose memory is planar (B, 3, H, W):
    MTCNN permutes its input to NCHW without copying, so this is what makes that view contiguous."""
    return torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2))).permute(0, 2, 3, 1)


def check_keep(keep: str) -> None:
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
        log.warning("%dx%d frame is smaller than the smallest face searched (%.0f px): no face searched",
                    w, h, detector.min_face_size)
        return [empty] * len(batch)
    boxes, probs, points = detector.detect(planar(batch), landmarks=True)
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
    check_keep(keep)
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
