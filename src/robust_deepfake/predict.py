"""`robust-deepfake predict`: score an image, a folder or a video with a trained detector.

The same chain as the pipeline, for media it has never seen: frames sampled evenly over a video,
each found and cut as the detector's training faces were (the checkpoint records it:
`faces.cropping.DetectorInput`), the detector's probability of fake per face, and per video the
mean over its faces (the evaluation's video level). Face crops (`mtcnn`): MTCNN with the training
run's settings (config `faces.*`; facenet-pytorch's default call for a checkpoint written before
that was recorded) keeps a face as the training's keep rule did, and the square crop takes the
training's margin and size. Whole images (`whole`, or `--whole-image` for any detector): the whole
frame resized, as the expert-ensemble reference's `infer.py` scores images.
Media without a face or that cannot be read are reported, never scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from robust_deepfake.faces.cropping import DetectorInput, crop_face
from robust_deepfake.faces.detection import DEFAULT_CALL, build_detector, detect_batch
from robust_deepfake.video import frame_indices, read_video_frames
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
        if path.suffix.lower() not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
            raise ValueError(f"{path}: not an image or video (suffix {path.suffix or 'none'!r}; images: "
                             f"{', '.join(sorted(IMAGE_SUFFIXES))}; videos: {', '.join(sorted(VIDEO_SUFFIXES))})")
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)


def _frames(path: Path, frames_per_video: int) -> tuple[str, dict[int, np.ndarray]]:
    """('image'|'video', {frame index: RGB frame}); raises MediaError for unreadable media."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        frames, _ = read_video_frames(path, lambda n: frame_indices(n, "linspace", frames_per_video, 1, 1))
        return "video", frames
    return "image", {0: cv2.cvtColor(read_image(path), cv2.COLOR_BGR2RGB)}


def detector_input(payload: dict, *, whole_image: bool = False, margin: float | None = None,
                   crop_size: int | None = None) -> DetectorInput:
    """How to cut media for the detector in `payload` (a checkpoint's): as its training faces were,
    with the user's overrides. A checkpoint from before detectors recorded it needs the crop
    settings of the run that trained it, since any default here could silently be the wrong one."""
    recorded = dict(payload.get("input") or {})
    if not recorded:
        if whole_image:
            recorded = {"mode": "whole", "size": payload["config"]["image_size"]}
        elif margin is None or crop_size is None:
            raise ValueError("this checkpoint does not record how its faces were cut (written before checkpoints "
                             "did): pass --margin and --crop-size, the crop settings of the run that trained it, "
                             "or --whole-image")
        else:
            recorded = {"mode": "mtcnn", "size": crop_size, "margin": margin}
    if whole_image:
        recorded = {"mode": "whole", "size": recorded["size"]}
    if margin is not None and recorded["mode"] == "mtcnn":
        recorded["margin"] = margin
    if crop_size is not None:
        recorded["size"] = crop_size
    return DetectorInput(**recorded)


class Predictor:
    """A detector plus what cuts its input from a frame (`cut`, from `detector_input`): MTCNN and
    the crop for face crops, the frame itself for whole images and pre-aligned centre crops."""

    def __init__(self, model: DeepfakeDetector, device: torch.device, *, cut: DetectorInput,
                 frames_per_video: int, threshold: float) -> None:
        self.model, self.device, self.threshold, self.cut = model.eval(), device, threshold, cut
        self.face_settings = (cut.faces or DEFAULT_CALL) if cut.mode == "mtcnn" else None
        self.faces = (build_detector(str(device), self.face_settings["min_face_size"], self.face_settings["thresholds"],
                                     self.face_settings["scale_factor"], self.face_settings["skip_levels"])
                      if self.face_settings else None)
        self.frames_per_video = frames_per_video

    def _cut(self, frames: dict[int, np.ndarray]) -> tuple[list[np.ndarray], list[dict]]:
        """(RGB inputs, one record per input): a face crop per frame with a face, or every frame."""
        indices = sorted(frames)
        if self.faces is None:
            found = [{"box": (0, 0, 1, 1), "landmarks": np.zeros(10, np.float32)}] * len(indices)
        else:
            found = detect_batch(self.faces, [frames[i] for i in indices], self.face_settings["max_side"],
                                 self.face_settings["min_confidence"], self.face_settings["keep"])
        crops, records = [], []
        for index, face in zip(indices, found):
            if face is None:
                continue
            crop, region, _ = crop_face(frames[index], face["box"], np.asarray(face["landmarks"]).reshape(-1),
                                        self.cut.margin, self.cut.size, self.cut.mode, self.cut.center_size)
            crops.append(crop)
            record = {"frame": int(index), "region": [int(v) for v in region]}
            if self.faces is not None:
                record.update(box=[round(float(v), 1) for v in face["box"]], confidence=round(face["confidence"], 4))
            records.append(record)
        return crops, records

    def __call__(self, path: Path) -> MediaPrediction:
        kind = "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image"
        try:
            kind, frames = _frames(path, self.frames_per_video)
        except MediaError as exc:
            return MediaPrediction(str(path), kind, error=str(exc.reason), threshold=self.threshold)
        crops, faces = self._cut(frames)
        if not crops:
            where = f"any of the {len(frames)} sampled frames" if kind == "video" else "the image"
            return MediaPrediction(str(path), kind, error=f"no face found in {where}", threshold=self.threshold)
        pixels = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255).to(self.device)
        with torch.no_grad():
            probabilities = torch.sigmoid(self.model(pixels)).cpu().numpy()
        for face, p in zip(faces, probabilities):
            face["probability"] = float(p)
        return MediaPrediction(str(path), kind, faces, threshold=self.threshold)
