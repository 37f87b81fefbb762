"""Shared fixtures. Real media live in ../shared/data beside the checkout; tests that need them
skip with a reason when it is absent (a user's fresh clone)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ROBUST_DEEPFAKE_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_report_header(config) -> str:
    """The suite writes a few GB of workflow runs under the temporary directory; a full disk shows
    up as errors in unrelated fixtures, so the free space is the first thing a failed log should
    tell."""
    tmp = Path(tempfile.gettempdir())
    return f"temporary directory: {tmp} ({shutil.disk_usage(tmp).free / 2**30:.1f} GiB free)"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test media not found at {SHARED_DATA} (set ROBUST_DEEPFAKE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tests run torch on one thread: on a small shared machine, more threads make OpenMP spin-wait
    against other processes, and a test that takes 0.5 s alone can take a minute."""
    try:
        import torch
    except ImportError:
        yield
        return
    torch.set_num_threads(1)
    yield


def jittered_crops(image, box: tuple[int, int, int, int], count: int, seed: int) -> list:
    """`count` 48 px crops around `box`, shifted and scaled a little: one synthetic identity."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    x1, y1, x2, y2 = box
    crops = []
    for _ in range(count):
        side = int((x2 - x1) * rng.uniform(1.1, 1.3))
        cx = (x1 + x2) // 2 + int(rng.integers(-6, 7))
        cy = (y1 + y2) // 2 + int(rng.integers(-6, 7))
        region = image[cy - side // 2:cy + side // 2, cx - side // 2:cx + side // 2]
        crops.append(cv2.resize(region, (48, 48), interpolation=cv2.INTER_AREA))
    return crops


@pytest.fixture(scope="module")
def faces() -> tuple[list, list[str]]:
    """Two synthetic identities from photographs scikit-image ships (the astronaut and the cat),
    six crops each, for the face-swap tests: no shared data needed."""
    import skimage.data

    astronaut = jittered_crops(skimage.data.astronaut(), (180, 61, 268, 172), 6, seed=1)
    cat = jittered_crops(skimage.data.chelsea(), (120, 40, 300, 220), 6, seed=2)
    return astronaut + cat, ["astronaut"] * 6 + ["cat"] * 6


@pytest.fixture(scope="session")
def detector_faces(tmp_path_factory):
    """For the detector tests: eight source media, two frames each; reals are smooth gradients,
    fakes carry a bright square, so that a tiny detector learns them in a few epochs."""
    import cv2
    import numpy as np
    import pandas as pd

    root = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    rows = []
    for m in range(8):
        for f in range(2):
            base = np.clip(np.linspace(40, 200, 48)[None, :, None] + rng.normal(0, 8, (48, 48, 3)), 0, 255)
            for label in (0, 1):
                image = base.copy()
                if label:
                    image[12:30, 12:30] = 250
                path = root / f"m{m}_{f}_{label}.png"
                cv2.imwrite(str(path), image.astype(np.uint8))
                rows.append({"media_id": f"fake/m{m}" if label else f"m{m}", "source_media_id": f"m{m}",
                             "image_path": str(path), "label": label})
    return pd.DataFrame(rows)
