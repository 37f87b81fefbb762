"""The embedded attribute demo: CelebA's layout read back by the celeba adapter, the rendered
attributes where the labels say, determinism, and the registry of rendered layouts."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from robust_deepfake.datasets import LAYOUTS, list_media
from robust_deepfake.datasets.demo import Scene, checked_identities, rng_for
from robust_deepfake.datasets.demo_celeba import ATTRIBUTE_NAMES, HAIR, HEIGHT, WIDTH, render_demo_celeba, render_face
from robust_deepfake.datasets.rendered import RENDERERS
from robust_deepfake.manifest import ATTR_PREFIX
from robust_deepfake.registry import RENDERED_LAYOUTS

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_celeba")
    return out, render_demo_celeba(out, identities=3, images_per_identity=5, seed=0)


def test_the_celeba_adapter_reads_the_rendering_with_identities_and_attributes(small):
    out, table = small
    media = list_media("celeba", out)
    assert len(media) == len(table) == 15
    assert media["identity"].nunique() == 3
    assert all(media["identity"].str.startswith("celeba:"))
    columns = [ATTR_PREFIX + name for name in ATTRIBUTE_NAMES]
    assert set(media[columns].to_numpy().ravel()) <= {-1, 1}
    # StarGAN's hair colour is one category: exactly one is set on every image
    assert (media[[ATTR_PREFIX + h for h in HAIR]].eq(1).sum(axis=1) == 1).all()
    image = cv2.imread(str(Path(media["path"].iloc[0])))
    assert image.shape == (HEIGHT, WIDTH, 3)


def test_the_same_arguments_give_the_same_bytes_whatever_the_workers(small, tmp_path):
    out, _ = small
    render_demo_celeba(tmp_path, identities=3, images_per_identity=5, seed=0, workers=2)
    for name in ("list_attr_celeba.txt", "identity_CelebA.txt", "img_align_celeba/000007.jpg",
                 "img_align_celeba/000015.jpg"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes()


def render(attributes: dict[str, int]) -> np.ndarray:
    """The astronaut under one fixed pose and light, with the given attributes."""
    scene = Scene(checked_identities(1)[0], HEIGHT)
    return render_face(scene, rng_for(0, 0, 2, 0), attributes).astype(np.float32)


BASE = {"Black_Hair": -1, "Blond_Hair": -1, "Brown_Hair": 1, "Eyeglasses": -1, "Pale_Skin": -1}


def test_eyeglasses_darken_the_eye_band_and_nothing_far_from_it():
    plain, glasses = render(BASE), render({**BASE, "Eyeglasses": 1})
    changed = np.abs(glasses - plain).max(axis=2) > 30
    rows = np.nonzero(changed.any(axis=1))[0]
    assert changed.sum() > 300
    assert rows.min() > 0.3 * HEIGHT and rows.max() < 0.55 * HEIGHT  # around the eyes of a centred face
    assert glasses[changed].mean() < plain[changed].mean() - 30


def test_each_hair_colour_tints_the_region_above_the_face_as_named():
    top = (slice(0, int(0.15 * HEIGHT)), slice(None))  # above the head: hair and background only
    means = {h: render({**BASE, "Brown_Hair": -1, h: 1})[top].mean(axis=(0, 1)) for h in HAIR}
    brightness = {h: m.mean() for h, m in means.items()}
    assert brightness["Blond_Hair"] > brightness["Brown_Hair"] + 20 > brightness["Black_Hair"] + 40
    for warm in ("Blond_Hair", "Brown_Hair"):  # red above blue, as the targets
        assert means[warm][0] > means[warm][2] + 20


def test_pale_skin_lightens_the_face_centre_only():
    plain, pale = render(BASE), render({**BASE, "Pale_Skin": 1})
    centre = (slice(int(0.45 * HEIGHT), int(0.55 * HEIGHT)), slice(int(0.4 * WIDTH), int(0.6 * WIDTH)))
    assert pale[centre].mean() > plain[centre].mean() + 8
    warmth = [(image[centre][..., 0] - image[centre][..., 2]).mean() for image in (plain, pale)]
    assert warmth[1] < 0.6 * warmth[0]  # and paler: red no longer far above blue
    corner = (slice(HEIGHT - 10, HEIGHT), slice(0, 10))
    assert np.abs(pale[corner] - plain[corner]).max() < 2


def test_rendered_layouts_are_read_by_a_known_adapter_with_settings_the_schema_and_renderer_know():
    schema = json.loads((REPO / "config" / "config.schema.json").read_text())
    demo_keys = set(schema["properties"]["demo"]["properties"])
    layouts = set(schema["properties"]["dataset"]["properties"]["layout"]["enum"])
    assert layouts == set(LAYOUTS) | set(RENDERED_LAYOUTS)
    assert set(RENDERERS) == set(RENDERED_LAYOUTS)
    for name, layout in RENDERED_LAYOUTS.items():
        assert layout.read_as in LAYOUTS, name
        assert set(layout.settings) <= demo_keys, name
        parameters = set(inspect.signature(RENDERERS[name]).parameters)
        assert parameters == {"out_dir", "seed", "workers", *layout.settings}, name  # workers: the job's threads
