"""`robust-deepfake predict`: score an image, a folder or a video with a trained detector.

The same chain as the pipeline, for media it has never seen: frames sampled evenly over a video,
MTCNN finds the largest face, the square crop with the pipeline's margin and size, the detector's
probability of fake per face, and per video the mean over its faces (the evaluation's video
level). The expert-ensemble reference's `infer.py` scores whole images; here faces are scored, as the detector was
trained on faces. Media without a face or that cannot be read are reported, never scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from robust_deepfake.stages.crop import crop_face
from robust_deepfake.stages.face_detection import build_detector, detect_batch
from robust_deepfake.stages.frames import frame_indices, read_video_frames
from robust_deepfake.datasets import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from robust_deepfake.images import MediaError, read_image
from robust_deepfake.detectors.network import DeepfakeDetector



@dataclass
class MediaPrediction:
    """One media's result: per face (frame index, box, probability) and the mean, or why none."""

    path: str
    kind: str
    faces: list[dict] = field(default_factory=list)
    error: str | None = None
    threshold: float = 0.5

    @property
    def probability(self) -> float | None:
        return float(np.mean([f["probability"] for f in self.faces])) if self.faces else None

    @property
    def verdict(self) -> str | None:
        """fake or real at the detector's own threshold, calibrated on its training hold-out."""
        return None if self.probability is None else "fake" if self.probability >= self.threshold else "real"

    def as_dict(self) -> dict:
        return {"path": self.path, "kind": self.kind, "probability_fake": self.probability, "verdict": self.verdict,
                "threshold": self.threshold, "faces": self.faces, "error": self.error}


def media_files(path: str | Path) -> list[Path]:
    """The images and videos to score: the file itself, or every such file under a folder."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)


def _frames(path: Path, frames_per_video: int) -> tuple[str, dict[int, np.ndarray]]:
    """('image'|'video', {frame index: RGB frame}); raises MediaError for unreadable media."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        frames, _ = read_video_frames(path, lambda n: frame_indices(n, "linspace", frames_per_video, 1, 1))
        return "video", frames
    return "image", {0: cv2.cvtColor(read_image(path), cv2.COLOR_BGR2RGB)}


class Predictor:
    """A detector plus the face detector and crop settings that feed it. The crop settings and the
    frame count have no defaults here: `robust-deepfake predict`'s options own them, so they are
    stated once."""

    def __init__(self, model: DeepfakeDetector, device: torch.device, *, margin: float, crop_size: int,
                 frames_per_video: int, threshold: float, min_confidence: float = 0.9) -> None:
        self.model, self.device, self.threshold = model.eval(), device, threshold
        self.faces = build_detector(str(device), min_face_size=40, thresholds=(0.6, 0.7, 0.7), scale_factor=0.709)
        self.margin, self.crop_size, self.min_confidence = margin, crop_size, min_confidence
        self.frames_per_video = frames_per_video

    def __call__(self, path: Path) -> MediaPrediction:
        kind = "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image"
        try:
            kind, frames = _frames(path, self.frames_per_video)
        except MediaError as exc:
            return MediaPrediction(str(path), kind, error=str(exc.reason), threshold=self.threshold)
        indices = sorted(frames)
        found = detect_batch(self.faces, [frames[i] for i in indices], 640, self.min_confidence, "largest")
        crops, faces = [], []
        for index, face in zip(indices, found):
            if face is None:
                continue
            bgr = cv2.cvtColor(frames[index], cv2.COLOR_RGB2BGR)
            crop, _, _ = crop_face(bgr, face["box"], face["landmarks"].reshape(-1), self.margin, self.crop_size)
            crops.append(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))
            faces.append({"frame": int(index), "box": [round(float(v), 1) for v in face["box"]],
                          "confidence": round(face["confidence"], 4)})
        if not crops:
            where = f"any of the {len(frames)} sampled frames" if kind == "video" else "the image"
            return MediaPrediction(str(path), kind, error=f"no face found in {where}", threshold=self.threshold)
        pixels = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255).to(self.device)
        with torch.no_grad():
            probabilities = torch.sigmoid(self.model(pixels)).cpu().numpy()
        for face, p in zip(faces, probabilities):
            face["probability"] = float(p)
        return MediaPrediction(str(path), kind, faces, threshold=self.threshold)
