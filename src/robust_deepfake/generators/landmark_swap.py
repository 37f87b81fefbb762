"""Graphics face swap from 5 landmarks, in the spirit of FaceForensics++'s "FaceSwap" method.

No learning: the source face is aligned onto the target's by the similarity transform (rotation,
uniform scale, translation) that best maps the source's 5 MTCNN landmarks onto the target's, its
colours are matched to the target's face (CIELAB mean and standard deviation inside the face mask),
and it is blended in with Poisson image editing (``cv2.seamlessClone``, NORMAL_CLONE), whose
result is finally composited with the feathered mask so that nothing outside the face changes.

FaceForensics++'s FaceSwap fits a 3D face model to 68 landmarks and renders it; with MTCNN's 5
points a similarity transform is what the data supports: pose changes beyond in-plane rotation are
not modelled, which leaves exactly the kind of blending and alignment artefacts such fakes have.

This generator is not differentiable and is not a ``FaceGenerator``: a disruption attack cannot
target it (there is no model to disrupt), it only adds a second kind of fake for the detector.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from robust_deepfake.generators.face_mask import as_landmarks, landmark_face_mask, match_colors_lab, paste_face

log = logging.getLogger(__name__)

# seamlessClone needs the mask to keep off the image border (its Poisson solve takes the boundary
# values from the pixels around the mask) and a region it can solve on.
BORDER_PX = 2
MIN_REGION_PX = 3


def similarity_transform(source_landmarks: Sequence[float] | np.ndarray,
                         target_landmarks: Sequence[float] | np.ndarray) -> np.ndarray:
    """2x3 matrix of the similarity transform mapping the source's landmarks onto the target's,
    fitted to all 5 points (least squares).

    The RANSAC threshold is set beyond any image, so every point is an inlier and OpenCV's
    Levenberg-Marquardt refinement runs on all five: five reliable points need no outlier rejection,
    and a 2-point RANSAC sample would ignore the mouth."""
    source = as_landmarks(source_landmarks).astype(np.float32)
    target = as_landmarks(target_landmarks).astype(np.float32)
    span = float(max(np.ptp(source), np.ptp(target), 1.0))
    matrix, _ = cv2.estimateAffinePartial2D(source, target, method=cv2.RANSAC,
                                            ransacReprojThreshold=100.0 * span, refineIters=20)
    if matrix is None:
        raise ValueError(f"no similarity transform between landmarks {source.tolist()} and {target.tolist()}")
    return matrix


def _clone_region(mask: np.ndarray) -> np.ndarray:
    """uint8 mask for seamlessClone: the soft mask's support, kept BORDER_PX off the image border."""
    region = (mask > 0).astype(np.uint8) * 255
    region[:BORDER_PX, :] = 0
    region[-BORDER_PX:, :] = 0
    region[:, :BORDER_PX] = 0
    region[:, -BORDER_PX:] = 0
    return region


def swap_faces(source_bgr: np.ndarray, source_landmarks: Sequence[float] | np.ndarray, target_bgr: np.ndarray,
               target_landmarks: Sequence[float] | np.ndarray, *, grow: float = 1.0, feather: float = 0.15,
               color_transfer: bool = True) -> np.ndarray:
    """The target image (uint8 BGR, its size) with its face replaced by the source's face.

    A face whose mask reaches the image border is clipped to keep seamlessClone working; one with
    no usable face region left (e.g. landmarks outside the image) gives the target unchanged, with
    a warning, rather than failing a whole batch of fakes."""
    height, width = target_bgr.shape[:2]
    matrix = similarity_transform(source_landmarks, target_landmarks)
    warped = cv2.warpAffine(source_bgr, matrix, (width, height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT_101)
    covered = cv2.warpAffine(np.full(source_bgr.shape[:2], 255, np.uint8), matrix, (width, height),
                             flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    mask = landmark_face_mask(target_landmarks, (height, width), grow=grow, feather=feather)
    mask *= covered > 0  # only where the source image has pixels, not its reflected border
    region = _clone_region(mask)
    mask *= region > 0
    x, y, w, h = cv2.boundingRect(region)
    if w < MIN_REGION_PX or h < MIN_REGION_PX:
        log.warning("no face region left to swap (landmarks %s in a %dx%d image): target kept unchanged",
                    as_landmarks(target_landmarks).round(1).tolist(), width, height)
        return target_bgr.copy()
    if color_transfer:
        warped = match_colors_lab(warped, target_bgr, mask)
    # seamlessClone centres the mask's bounding box on `centre` (integer halves): this keeps it in place
    centre = (x + w // 2, y + h // 2)
    cloned = cv2.seamlessClone(warped, target_bgr, region, centre, cv2.NORMAL_CLONE)
    return paste_face(cloned, target_bgr, mask)


@dataclass(frozen=True)
class LandmarkSwapGenerator:
    """The landmark face swap with its settings fixed, for the fake-generation stage. Not a
    FaceGenerator: it is not differentiable and needs a source face, not a condition."""

    grow: float = 1.0
    feather: float = 0.15
    color_transfer: bool = True

    def swap(self, source_bgr: np.ndarray, source_landmarks: Sequence[float] | np.ndarray,
             target_bgr: np.ndarray, target_landmarks: Sequence[float] | np.ndarray) -> np.ndarray:
        """`swap_faces` with this generator's settings: the target with the source's face."""
        return swap_faces(source_bgr, source_landmarks, target_bgr, target_landmarks, grow=self.grow,
                          feather=self.feather, color_transfer=self.color_transfer)
