"""The purify and train_defense stages' own logic (purify.purify_split / calibration_threshold,
defense.py) on crops written to tmp_path, with tiny models: files, columns, the reject rule, and a
pretrained folder replacing training."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import skimage.data
import torch

from robust_deepfake.stages.defence_training import ddpm_config, train_defense_ddpm
from robust_deepfake.defences.ddpm import DDPMConfig, build_scheduler, build_unet, load_ddpm, save_ddpm
from robust_deepfake.stages.purification import calibration_threshold, purify_split
from robust_deepfake.images import read_images
from robust_deepfake.tensors import bgr_to_signed

TINY = {"image_size": 16, "block_out_channels": [8, 16], "layers_per_block": 1, "attention": False,
        "num_train_timesteps": 100, "beta_start": 1e-4, "beta_end": 0.02, "steps": 3, "batch_size": 2, "lr": 2e-4,
        "ema_decay": None, "save_every": 2, "pretrained": None}


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> pd.DataFrame:
    """Four 32 px faces: clean crops, and 'poisoned' versions with +-6 levels of noise on two."""
    root = tmp_path_factory.mktemp("crops")
    image = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    rng = np.random.default_rng(0)
    out = []
    for k in range(4):
        crop = cv2.resize(image[30 + 8 * k:230 + 8 * k, 150:350], (32, 32), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(root / f"clean{k}.png"), crop)
        poisoned = crop if k < 2 else np.clip(crop.astype(int) + rng.integers(-6, 7, crop.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / f"poisoned{k}.png"), poisoned)
        out.append({"media_id": f"real/v{k // 2}.mp4", "frame_idx": k, "face_path": str(root / f"clean{k}.png"),
                    "poisoned_path": str(root / f"poisoned{k}.png"), "poisoned": k >= 2, "label": 0})
    return pd.DataFrame(out)


def test_purify_split_writes_measures_and_keeps_all_without_threshold(rows, tmp_path):
    out, cost = purify_split(rows, "jpeg", {"quality": 50}, tmp_path, seed=0, batch_size=3, threshold=None)
    assert out["kept"].all() and (out["defence"] == "jpeg").all()
    written = bgr_to_signed(read_images(out["purified_path"].tolist()))
    assert written.shape == (4, 3, 32, 32)
    clean = bgr_to_signed(read_images(rows["face_path"].tolist()))
    mse = (written - clean).pow(2).flatten(1).mean(1).numpy()
    np.testing.assert_allclose(out["pur_l2"].to_numpy(), mse, rtol=1e-5)  # measured on what was written
    assert cost["unet_evals"] == 0 and cost["seconds"] > 0


def test_none_needs_no_threshold_and_changes_nothing(rows, tmp_path):
    assert calibration_threshold("none", torch.zeros(2, 3, 8, 8), rows.iloc[:2], {}, "quantile", 0.05, 0, 2,
                                 None) is None
    out, _ = purify_split(rows, "none", {}, tmp_path, seed=0, batch_size=4, threshold=None)
    assert (out["pur_distance"] == 0).all()
    np.testing.assert_array_equal(read_images(out["purified_path"].tolist()), read_images(rows["poisoned_path"].tolist()))


def test_reject_threshold_drops_faces_at_or_above_it(rows, tmp_path):
    out, _ = purify_split(rows, "median", {"kernel": 5}, tmp_path, seed=0, batch_size=4, threshold=None)
    threshold = float(np.sort(out["pur_distance"].to_numpy())[1])  # the second smallest distance
    kept, _ = purify_split(rows, "median", {"kernel": 5}, tmp_path / "again", seed=0, batch_size=4,
                           threshold=threshold)
    assert kept["kept"].tolist() == (out["pur_distance"] < threshold).tolist()
    assert (~kept["kept"]).sum() == 3


def test_diffpure_stage_is_seeded_per_face(rows, tmp_path):
    config = DDPMConfig(**{k: v for k, v in TINY.items() if k != "pretrained"})
    torch.manual_seed(0)
    unet, scheduler = build_unet(config).eval(), build_scheduler(config)
    settings = {"t_star": 0.1, "sampler": "ddim", "ddim_steps": 2}
    a, cost = purify_split(rows, "diffpure", settings, tmp_path / "a", seed=3, batch_size=4, threshold=None,
                           model={"unet": unet, "scheduler": scheduler})
    b, _ = purify_split(rows.iloc[::-1], "diffpure", settings, tmp_path / "b", seed=3, batch_size=1, threshold=None,
                        model={"unet": unet, "scheduler": scheduler})
    np.testing.assert_array_equal(read_images(a["purified_path"].tolist()),
                                  read_images(b["purified_path"].tolist()[::-1]))  # batch and order free
    assert cost["unet_evals"] == 2


def test_pretrained_ddpm_folder_replaces_training(rows, tmp_path):
    config = ddpm_config(TINY, seed=0)
    torch.manual_seed(1)
    save_ddpm(build_unet(config), build_scheduler(config), tmp_path / "pretrained")
    history = train_defense_ddpm(rows, {**TINY, "pretrained": str(tmp_path / "pretrained")}, 0, tmp_path / "model",
                                 tmp_path / "work", "cpu")
    assert history.empty and not (tmp_path / "work").exists()
    ours, _ = load_ddpm(tmp_path / "model")
    theirs, _ = load_ddpm(tmp_path / "pretrained")
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)


def test_train_defense_ddpm_trains_and_saves_a_loadable_model(rows, tmp_path):
    history = train_defense_ddpm(rows, TINY, 0, tmp_path / "model", tmp_path / "work", "cpu")
    assert list(history["step"]) == [1, 2, 3]
    unet, scheduler = load_ddpm(tmp_path / "model")
    assert unet.config.sample_size == 16 and scheduler.config.num_train_timesteps == 100
