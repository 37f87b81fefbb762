"""The renderers of the datasets the pipeline makes itself (`registry.RENDERED_LAYOUTS`), called
as ``render(out_dir, **settings, seed=seed, workers=threads)`` by rule render_demo."""

from __future__ import annotations

from robust_deepfake.datasets.demo import render_demo
from robust_deepfake.datasets.demo_celeba import render_demo_celeba

RENDERERS = {"demo": render_demo, "demo_celeba": render_demo_celeba}
