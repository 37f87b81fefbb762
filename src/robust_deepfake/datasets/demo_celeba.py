"""The embedded attribute demo: the demo's faces as an aligned CelebA tree with rendered attributes.

StarGAN learns to change a face's attributes from attribute labels; the demo's photographs carry
none, and CelebA cannot be shipped. So the attributes are rendered: every image is one of the
demo's face sources (`demo_faces`), aligned as CelebA's `img_align_celeba` is (178 x 218, the face
centred at a fixed scale, small tilt), lit by the demo's virtual light, and edited with five
attributes drawn per image and written in CelebA's own files:

* ``Black_Hair`` / ``Blond_Hair`` / ``Brown_Hair`` (exactly one, as StarGAN's hair colour is one
  category): the region around and above the face (hair and background) re-coloured, its texture
  kept through the luminance;
* ``Eyeglasses``: dark frames drawn over the eyes;
* ``Pale_Skin``: the face's skin lightened and desaturated.

These are edits a small StarGAN learns on a CPU in minutes, with the same label structure as the
paper's five attributes (one categorical hair colour, two flipped binaries), so the StarGAN path of
the pipeline runs on it from ingest to the table. They are not CelebA's semantics: figures on this
data show the pipeline's behaviour, not a CelebA result.

Output, in the ``celeba`` layout (read back by `datasets.celeba`)::

    <out_dir>/img_align_celeba/000001.jpg ...
    <out_dir>/list_attr_celeba.txt
    <out_dir>/identity_CelebA.txt
    <out_dir>/SOURCES.md
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from robust_deepfake.atomic import atomic_path, write_image
from robust_deepfake.datasets.celeba import ATTRIBUTES, IDENTITIES, IMAGES
from robust_deepfake.datasets.demo import (Pose, Scene, checked_identities, render_identities, rng_for,
                                          write_sources)

log = logging.getLogger(__name__)

ATTRIBUTE_NAMES = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Eyeglasses", "Pale_Skin")
HAIR = ATTRIBUTE_NAMES[:3]
# RGB targets of the hair re-colouring, at the luminance of a mid-grey pixel
HAIR_RGB = {"Black_Hair": (30.0, 26.0, 24.0), "Blond_Hair": (232.0, 200.0, 120.0),
            "Brown_Hair": (125.0, 78.0, 42.0)}
WIDTH, HEIGHT = 178, 218           # CelebA's aligned image size
FACE_FRACTION = 0.42               # face box height / image height, as MTCNN finds it on aligned CelebA


@dataclass(frozen=True)
class _Geometry:
    """Where the rendered face lies in the output image: centre and face box height, pixels."""

    cx: float
    cy: float
    h: float


def _aligned_pose(rng: np.random.Generator) -> Pose:
    """CelebA-style alignment (face centred, near upright, fixed scale) with the demo's light."""
    return Pose(frac=FACE_FRACTION * rng.uniform(0.96, 1.04), dx=rng.uniform(-0.015, 0.015),
                dy=rng.uniform(-0.015, 0.015), angle=rng.uniform(-3.0, 3.0), gain=rng.uniform(0.85, 1.15),
                contrast=rng.uniform(0.85, 1.15), temp=rng.uniform(-1.0, 1.0), grad=rng.uniform(0.0, 0.2),
                grad_dir=rng.uniform(0, 2 * np.pi), noise=rng.uniform(0.5, 1.5))


def _ellipse_mask(geometry: _Geometry, shape: tuple[int, int], axes: tuple[float, float], dy: float,
                  blur: float) -> np.ndarray:
    """A soft (blurred) filled ellipse around the face, float in [0, 1]."""
    mask = np.zeros(shape, np.float32)
    centre = (round(geometry.cx), round(geometry.cy + dy * geometry.h))
    cv2.ellipse(mask, centre, (round(axes[0] * geometry.h), round(axes[1] * geometry.h)), 0, 0, 360, 1.0, -1,
                cv2.LINE_AA)
    return cv2.GaussianBlur(mask, (0, 0), blur * geometry.h)


def _luminance(image: np.ndarray) -> np.ndarray:
    return image @ np.array([0.299, 0.587, 0.114], np.float32)


def _hair(image: np.ndarray, geometry: _Geometry, colour: str) -> np.ndarray:
    """Re-colour everything outside the face and above the chin: the target colour, modulated by
    the pixel's luminance so that hair strands and background structure stay visible."""
    face = _ellipse_mask(geometry, image.shape[:2], (0.48, 0.62), 0.08, 0.05)
    rows = np.arange(image.shape[0], dtype=np.float32)[:, None]
    above_chin = 1.0 / (1.0 + np.exp((rows - (geometry.cy + 0.35 * geometry.h)) / (0.05 * geometry.h)))
    region = ((1.0 - face) * above_chin)[:, :, None]
    tint = np.array(HAIR_RGB[colour], np.float32) * (_luminance(image) / 128.0)[:, :, None]
    return image * (1 - 0.75 * region) + tint * (0.75 * region)


def _eyeglasses(image: np.ndarray, geometry: _Geometry) -> np.ndarray:
    """Two dark rims and a bridge where the eyes of an MTCNN-sized face box are."""
    out = image.copy()
    h, eye_y = geometry.h, geometry.cy - 0.1 * geometry.h
    axes = (round(0.15 * h), round(0.1 * h))
    thickness = max(2, round(0.035 * h))
    for side in (-1, 1):
        cv2.ellipse(out, (round(geometry.cx + side * 0.2 * h), round(eye_y)), axes, 0, 0, 360,
                    (20.0, 20.0, 22.0), thickness, cv2.LINE_AA)
    cv2.line(out, (round(geometry.cx - 0.05 * h), round(eye_y)), (round(geometry.cx + 0.05 * h), round(eye_y)),
             (20.0, 20.0, 22.0), thickness, cv2.LINE_AA)
    return out


def _pale_skin(image: np.ndarray, geometry: _Geometry) -> np.ndarray:
    """The face lightened towards a pale, low-saturation skin tone."""
    face = _ellipse_mask(geometry, image.shape[:2], (0.4, 0.52), 0.05, 0.06)[:, :, None]
    pale = 0.35 * image + 0.65 * np.array([240.0, 232.0, 226.0], np.float32) * (
        0.7 + 0.3 * _luminance(image)[:, :, None] / 255.0)
    return image * (1 - 0.85 * face) + pale * (0.85 * face)


def _draw_attributes(rng: np.random.Generator) -> dict[str, int]:
    """One hair colour, Eyeglasses and Pale_Skin each with probability 0.4; CelebA's -1/1."""
    hair = HAIR[rng.integers(len(HAIR))]
    values = {name: 1 if name == hair else -1 for name in HAIR}
    values["Eyeglasses"] = 1 if rng.random() < 0.4 else -1
    values["Pale_Skin"] = 1 if rng.random() < 0.4 else -1
    return values


def render_face(scene: Scene, rng: np.random.Generator, attributes: dict[str, int]) -> np.ndarray:
    """One aligned 178 x 218 RGB uint8 image of a scene with the given attributes."""
    pose = _aligned_pose(rng)
    square = scene.render(pose, rng, quantise=False)
    left = (HEIGHT - WIDTH) // 2
    image = np.ascontiguousarray(square[:, left:left + WIDTH])
    geometry = _Geometry(cx=HEIGHT / 2 + pose.dx * HEIGHT - left, cy=HEIGHT / 2 + pose.dy * HEIGHT,
                         h=pose.frac * HEIGHT)
    hair = next(name for name in HAIR if attributes[name] == 1)
    image = _hair(image, geometry, hair)
    if attributes["Pale_Skin"] == 1:
        image = _pale_skin(image, geometry)
    if attributes["Eyeglasses"] == 1:
        image = _eyeglasses(image, geometry)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _write_attribute_file(path: Path, names: list[str], rows: list[dict[str, int]]) -> None:
    """CelebA's list_attr_celeba.txt: the count, the names, then `file v1 v2 ...`."""
    lines = [str(len(rows)), " ".join(ATTRIBUTE_NAMES)]
    lines += [f"{name} " + " ".join(f"{row[a]:2d}" for a in ATTRIBUTE_NAMES) for name, row in zip(names, rows)]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def render_demo_celeba(out_dir: Path, identities: int, images_per_identity: int, seed: int,
                       workers: int = 1) -> pd.DataFrame:
    """Render the attribute demo under out_dir; return one row per image (file, identity and the
    five attributes as -1/1). The same arguments give the same bytes, whatever `workers` (threads,
    one identity each: `render_identities`)."""
    out_dir = Path(out_dir)
    chosen = checked_identities(identities)
    if images_per_identity < 1:
        raise ValueError(f"images_per_identity must be >= 1, got {images_per_identity}")
    folder = out_dir / IMAGES
    folder.mkdir(parents=True, exist_ok=True)

    def render_identity(index: int) -> list[dict]:
        """Images numbered as CelebA's, in identity order: identity `index` owns a fixed block."""
        scene = Scene(chosen[index], HEIGHT)
        rows = []
        for k in range(images_per_identity):
            rng = rng_for(seed, index, 2, k)
            attributes = _draw_attributes(rng)
            name = f"{index * images_per_identity + k + 1:06d}.jpg"
            write_image(folder / name, cv2.cvtColor(render_face(scene, rng, attributes), cv2.COLOR_RGB2BGR))
            rows.append({"file": name, "identity": chosen[index].identity, **attributes})
        return rows

    per_identity = render_identities(render_identity, len(chosen), workers, "attribute demo identities")
    rows = [row for identity_rows in per_identity for row in identity_rows]
    names = [row["file"] for row in rows]
    attribute_rows = [{key: row[key] for key in row if key not in ("file", "identity")} for row in rows]
    identity_lines = [f"{row['file']} {index + 1}" for index, identity_rows in enumerate(per_identity)
                      for row in identity_rows]
    _write_attribute_file(out_dir / ATTRIBUTES, names, attribute_rows)
    with atomic_path(out_dir / IDENTITIES) as tmp:
        tmp.write_text("\n".join(identity_lines) + "\n")
    write_sources(out_dir / "SOURCES.md", chosen, {"identities": identities,
                                                   "images_per_identity": images_per_identity, "seed": seed},
                  "its aligned images are that one photograph under small tilts and changing light, with five "
                  "rendered attribute edits (hair colour, eyeglasses, pale skin; see robust_deepfake.datasets."
                  "demo_celeba). All images are real in the dataset's sense (no generator made them).")
    log.info("attribute demo: wrote %d images for %d identities", len(rows), identities)
    return pd.DataFrame(rows)
