"""The face region from MTCNN's 5 landmarks, and pasting a face into an image inside it.

Both face swaps (the autoencoder's and the landmark one) replace only the face, so they need the
same region: a full 68-point hull (what FaceForensics++'s FaceSwap uses) is not available, since
MTCNN gives only the two eyes, the nose tip and the two mouth corners. The region is therefore an
ellipse fitted to those points in the face's own frame:

* origin at the midpoint of the eyes, ``u`` along the eye line (left eye -> right eye), ``v`` at a
  right angle to it, pointing to the mouth; so in-plane rotation of the head turns the ellipse;
* face scale ``s`` = max(inter-ocular distance, eye-midpoint-to-mouth-midpoint distance): on a
  frontal face both are about equal, and the larger one keeps the mask from collapsing when the
  head turns (the eyes move together) or tilts up and down (eyes and mouth move together);
* vertical extent from ``FOREHEAD * s`` above the eye line (eyebrows sit about 0.3 s above it)
  to ``CHIN * s`` below the mouth; horizontal half-width ``HALF_WIDTH * s`` (cheeks are about
  1.05 s from the face's centre line, so the mask stops just inside the jaw and hair line);
* centred horizontally on the mean ``u`` of the five points (it follows the nose on a turned head).

``grow`` scales both semi-axes about the ellipse centre. The edge is feathered inward: the mask is
1 inside ``(1 - feather)`` of the ellipse's normalised radius and falls smoothly to 0 on the ellipse,
so nothing outside the ellipse is ever changed.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

FOREHEAD = 0.6
CHIN = 0.5
HALF_WIDTH = 0.95
# Colour matching scales each LAB channel's spread by at most this factor either way: a target face
# that is nearly flat (blown-out, blurred) would otherwise squash the swapped face to a smear, and
# a nearly flat source would have its noise blown up.
MAX_CONTRAST_GAIN = 2.0


def as_landmarks(landmarks: Sequence[float] | np.ndarray) -> np.ndarray:
    """The 5 MTCNN landmarks as a (5, 2) float64 array, from (5, 2) or the manifest's flat (10,)."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.size != 10:
        raise ValueError(f"expected 5 (x, y) landmarks, got an array of shape {points.shape}")
    points = points.reshape(5, 2)
    if not np.isfinite(points).all():
        raise ValueError(f"landmarks are not finite: {points.tolist()}")
    return points


def face_ellipse(landmarks: Sequence[float] | np.ndarray, grow: float = 1.0):
    """(centre (x, y), semi-axes (along eyes, across), unit eye-line direction) of the face region
    in image pixels, following the geometry in the module docstring."""
    points = as_landmarks(landmarks)
    left_eye, right_eye, _nose, left_mouth, right_mouth = points
    eye_mid = (left_eye + right_eye) / 2
    mouth_mid = (left_mouth + right_mouth) / 2
    eye_line = right_eye - left_eye
    inter_ocular = float(np.hypot(*eye_line))
    eye_to_mouth = float(np.hypot(*(mouth_mid - eye_mid)))
    scale = max(inter_ocular, eye_to_mouth)
    if scale <= 0:
        raise ValueError(f"degenerate landmarks (all eyes and mouth corners coincide): {points.tolist()}")
    u_axis = eye_line / inter_ocular if inter_ocular > 0 else np.array([1.0, 0.0])
    v_axis = np.array([-u_axis[1], u_axis[0]])
    if np.dot(mouth_mid - eye_mid, v_axis) < 0:  # mirrored landmarks: keep v pointing to the mouth
        v_axis = -v_axis
    mouth_v = float(np.dot(mouth_mid - eye_mid, v_axis))
    top, bottom = -FOREHEAD * scale, mouth_v + CHIN * scale
    centre_u = float(np.mean((points - eye_mid) @ u_axis))
    centre = eye_mid + centre_u * u_axis + (top + bottom) / 2 * v_axis
    semi_axes = (HALF_WIDTH * scale * grow, (bottom - top) / 2 * grow)
    return centre, semi_axes, u_axis


def landmark_face_mask(landmarks: Sequence[float] | np.ndarray, size_hw: tuple[int, int], grow: float = 1.0,
                       feather: float = 0.15) -> np.ndarray:
    """Float32 (H, W) mask in [0, 1]: 1 on the face (eyes, nose, mouth, forehead, chin), 0 outside
    the ellipse, a smooth inward ramp of `feather` (share of the radius) between, so pasted faces
    have no visible seam."""
    if grow <= 0 or not 0 < feather <= 1:
        raise ValueError(f"need grow > 0 and 0 < feather <= 1, got grow={grow}, feather={feather}")
    height, width = size_hw
    centre, (semi_u, semi_v), u_axis = face_ellipse(landmarks, grow)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    dx, dy = xx - centre[0], yy - centre[1]
    along = dx * u_axis[0] + dy * u_axis[1]
    across = -dx * u_axis[1] + dy * u_axis[0]
    radius = np.sqrt((along / semi_u) ** 2 + (across / semi_v) ** 2)
    ramp = np.clip((1.0 - radius) / feather, 0.0, 1.0)
    return (ramp * ramp * (3.0 - 2.0 * ramp)).astype(np.float32)  # smoothstep: no kink at either end


def match_colors_lab(face_bgr: np.ndarray, reference_bgr: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`face_bgr` with each CIELAB channel's mean and standard deviation, weighted by `mask`,
    moved to those of `reference_bgr` under the same mask (Reinhard et al. 2001).

    A swapped face keeps the source's skin tone and lighting; matching it to the target's face in a
    perceptual colour space before pasting removes the most visible cue of the swap. Statistics are
    taken only inside the mask, so background colours do not bias them; the spread is scaled by at
    most MAX_CONTRAST_GAIN either way."""
    weights = mask.astype(np.float64)
    total = weights.sum()
    if total <= 0:
        return face_bgr.copy()
    face_lab = cv2.cvtColor(face_bgr.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB).astype(np.float64)
    ref_lab = cv2.cvtColor(reference_bgr.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB).astype(np.float64)

    def stats(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = np.tensordot(weights, lab, axes=([0, 1], [0, 1])) / total
        var = np.tensordot(weights, (lab - mean) ** 2, axes=([0, 1], [0, 1])) / total
        return mean, np.sqrt(var)

    face_mean, face_std = stats(face_lab)
    ref_mean, ref_std = stats(ref_lab)
    gain = np.where(face_std > 1e-6, ref_std / np.maximum(face_std, 1e-6), 1.0)
    gain = np.clip(gain, 1.0 / MAX_CONTRAST_GAIN, MAX_CONTRAST_GAIN)
    matched = (face_lab - face_mean) * gain + ref_mean
    bgr = cv2.cvtColor(matched.astype(np.float32), cv2.COLOR_LAB2BGR)
    return np.clip(np.round(bgr * 255.0), 0, 255).astype(np.uint8)


def paste_face(face_bgr: np.ndarray, target_bgr: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Alpha-composite `face_bgr` over `target_bgr` with `mask`: pixels where the mask is 0 stay
    exactly as they were."""
    alpha = mask.astype(np.float32)[:, :, None]
    out = alpha * face_bgr.astype(np.float32) + (1.0 - alpha) * target_bgr.astype(np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
