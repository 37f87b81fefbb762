"""The faces of the embedded demo dataset (`datasets.demo`): photographs that installed packages
ship, each one identity, with where it comes from and its licence. Rendering needs no face
detector: the face boxes of the photographs and the list of usable LFW faces are constants below,
measured once with MTCNN (see their comments).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np


# Face boxes (x0, y0, x1, y1) in the original photographs, as found by facenet-pytorch 2.5.3
# MTCNN(keep_all=True, min_face_size=40, thresholds=[0.6, 0.7, 0.7]) on the full image
# (confidences 0.99999, 0.99998 and 0.9996), rounded to whole pixels.
ASTRONAUT_BOX = (180, 61, 268, 172)


GRACE_HOPPER_BOX = (164, 106, 348, 344)


CAMERA_BOX = (197, 116, 255, 196)


# Indices (0-99: the faces; 100-199 of lfw_subset are non-faces) of the LFW crops used, best first.
# Chosen once, offline, by rendering each of the 100 faces exactly as render_demo does (seed 0:
# two 8-frame videos and one still, at 256 px and again at 128 px, 34 frames per face) and running
# the MTCNN set-up config/config.yaml had then (facenet-pytorch 2.5.3, min_face_size 40,
# thresholds 0.6/0.7/0.7, confidence >= 0.9, the detected box containing the rendered face centre;
# today's skip_levels 2 searches the same sizes, from 39.8 px).
# 94 of the 100 faces were found in every frame (4, 9, 13, 28, 47, 76 were not: 18% to 94%).
# Faces are ranked by detection rate, then by their lowest confidence over the 34 frames; the best
# 37 are kept (lowest confidence 0.9955), so that with the three photographs there are 40
# identities, the maximum of config/config.schema.json.
LFW_INDICES: tuple[int, ...] = (
    29, 46, 12, 18, 45, 79, 33, 3, 80, 75, 38, 98, 83, 26, 63, 24, 73, 92, 66,
    72, 17, 15, 6, 37, 60, 94, 87, 44, 95, 11, 19, 20, 27, 42, 99, 41, 8,
)


SKIMAGE_LICENCE = "public domain (scikit-image data notes: 'No known copyright restrictions')"


CAMERA_LICENCE = "CC0 by the photographer, Lav Varshney (scikit-image data notes)"


GRACE_HOPPER_LICENCE = ("public domain (official US Navy photograph, a work of the US federal government; "
                        "matplotlib ships it without a licence note of its own)")


LFW_LICENCE = ("Labeled Faces in the Wild (Huang et al., 2007), news photographs collected from the "
               "web and distributed for research; scikit-image ships 100 of its faces as 25x25 crops")


@dataclass(frozen=True)
class FaceSource:
    """One identity: where its face comes from and how to load it."""

    identity: str
    package: str
    origin: str
    licence: str
    load: Callable[[int], tuple[np.ndarray, tuple[float, float, float, float]]]
    """load(face_px) -> (RGB uint8 canvas, face box) with the face box about face_px tall."""


def _scaled_photo(image: np.ndarray, box: tuple[float, float, float, float], face_px: int):
    """Resize a photograph so that its face box is face_px tall (area filter when shrinking)."""
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = np.ascontiguousarray(image[:, :, :3])
    factor = face_px / (box[3] - box[1])
    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    out = cv2.resize(image, size, interpolation=interp)
    return out, tuple(v * factor for v in box)


def _load_astronaut(face_px: int):
    import skimage.data

    return _scaled_photo(skimage.data.astronaut(), ASTRONAUT_BOX, face_px)


def _load_camera(face_px: int):
    import skimage.data

    return _scaled_photo(skimage.data.camera(), CAMERA_BOX, face_px)


def _grace_hopper_path() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def _load_grace_hopper(face_px: int):
    image = cv2.imread(str(_grace_hopper_path()), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"matplotlib sample image not found: {_grace_hopper_path()}")
    return _scaled_photo(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), GRACE_HOPPER_BOX, face_px)


_LFW_CACHE: dict[str, np.ndarray] = {}


def _lfw_faces() -> np.ndarray:
    """The 100 face crops of skimage.data.lfw_subset() as uint8 (100, 25, 25)."""
    if "faces" not in _LFW_CACHE:
        import skimage.data

        subset = skimage.data.lfw_subset()  # (200, 25, 25) float in [0, 1]; first 100 are faces
        _LFW_CACHE["faces"] = np.round(np.clip(subset[:100], 0, 1) * 255).astype(np.uint8)
    return _LFW_CACHE["faces"]


def _lfw_canvas(crop: np.ndarray, face_px: int) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Upscale a 25x25 LFW crop (bicubic) so it is face_px tall and give it context.

    The crop is reflect-padded to three times its side, the padding is blurred progressively
    (sharp face, soft surround: like a shallow depth of field), and the result is faintly tinted so
    that the grey photographs are not perfectly neutral."""
    side = face_px
    face = cv2.resize(crop, (side, side), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    pad = side
    padded = cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    blurred = cv2.GaussianBlur(padded, (0, 0), sigmaX=side * 0.12)
    # weight 1 on the face, falling to 0 a tenth of the side outside it
    yy, xx = np.mgrid[0:padded.shape[0], 0:padded.shape[1]].astype(np.float32)
    dist = np.maximum(np.maximum(pad - xx, xx - (pad + side - 1)), np.maximum(pad - yy, yy - (pad + side - 1)))
    feather = max(2.0, side * 0.06)
    alpha = np.clip(1.0 - (dist + feather) / (2 * feather), 0.0, 1.0)
    canvas = alpha * padded + (1 - alpha) * blurred
    canvas = np.repeat(np.clip(canvas, 0, 255)[:, :, None], 3, axis=2)
    box = (pad + 0.0, pad + 0.0, pad + side + 0.0, pad + side + 0.0)
    return np.round(canvas).astype(np.uint8), box


def _lfw_loader(index: int):
    def load(face_px: int):
        return _lfw_canvas(_lfw_faces()[index], face_px)

    return load


def available_identities() -> list[FaceSource]:
    """All face sources, in the order render_demo takes them."""
    sources = [
        FaceSource("astronaut", "scikit-image", "skimage.data.astronaut() (Eileen Collins, NASA)",
                   SKIMAGE_LICENCE, _load_astronaut),
        FaceSource("grace_hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg (Grace Hopper)",
                   GRACE_HOPPER_LICENCE, _load_grace_hopper),
        FaceSource("camera", "scikit-image", "skimage.data.camera() (man behind a camera; the image since scikit-image 0.18)",
                   CAMERA_LICENCE, _load_camera),
    ]
    for index in LFW_INDICES:
        sources.append(FaceSource(f"lfw_{index:03d}", "scikit-image",
                                  f"skimage.data.lfw_subset()[{index}] (25x25 LFW face crop)",
                                  LFW_LICENCE, _lfw_loader(index)))
    return sources


MAX_IDENTITIES = 3 + len(LFW_INDICES)
