"""The diffusion defence model: building, training, resuming, saving and loading (tiny models)."""

from __future__ import annotations

import re

import json
import socket
from dataclasses import replace

import numpy as np
import pytest
import skimage.data
import torch
from diffusers import DDPMPipeline

from robust_deepfake.defences.ddpm import (CHECKPOINT_PATH, DDPMConfig, _training_batch, build_scheduler,
                                         build_unet, denoising_errors, load_ddpm, save_ddpm, train_ddpm)
from robust_deepfake.tensors import rgb_to_signed

TINY = DDPMConfig(image_size=16, block_out_channels=(8, 16), num_train_timesteps=100, steps=4, batch_size=4,
                  lr=1e-3, ema_decay=0.99, save_every=2, seed=3)


@pytest.fixture(scope="module")
def faces() -> list[np.ndarray]:
    """Eight 32 px RGB uint8 crops around the astronaut's face (resized to 16 px by training)."""
    image = skimage.data.astronaut()
    return [np.ascontiguousarray(image[30 + 8 * i:150 + 8 * i:4, 150 + 6 * i:270 + 6 * i:4][:32, :32])
            for i in range(8)]


def _predict(unet, size: int = 16) -> torch.Tensor:
    """The UNet's noise prediction on fixed inputs, to compare two models."""
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return unet(x, torch.tensor([5, 50])).sample


def test_tiny_unet_predicts_noise_of_the_input_shape_and_is_seeded():
    unet = build_unet(TINY)
    assert _predict(unet).shape == (2, 3, 16, 16)
    assert torch.equal(_predict(build_unet(TINY)), _predict(unet))
    assert not torch.equal(_predict(build_unet(replace(TINY, seed=4))), _predict(unet))


def test_attention_sits_at_the_lowest_resolution_only():
    unet = build_unet(replace(TINY, block_out_channels=(8, 16, 16), attention=True))
    assert unet.config.down_block_types == ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D")
    assert unet.config.up_block_types == ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D")
    assert _predict(unet).shape == (2, 3, 16, 16)
    plain = build_unet(TINY)
    assert "Attn" not in "".join(plain.config.down_block_types + plain.config.up_block_types)
    assert not plain.config.add_attention


def test_scheduler_has_the_seeds_linear_betas():
    scheduler = build_scheduler(DDPMConfig())
    betas = scheduler.betas.double()
    assert len(betas) == 1000 and scheduler.config.prediction_type == "epsilon"
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    assert torch.allclose(betas.diff(), torch.full((999,), (0.02 - 1e-4) / 999, dtype=torch.float64), atol=1e-9)
    assert len(build_scheduler(TINY).betas) == 100


def test_config_rejects_bad_values_naming_each():
    with pytest.raises(ValueError) as error:
        DDPMConfig(image_size=30, block_out_channels=(8, 16, 32), beta_start=0.03, ema_decay=1.0)
    for name in ("image_size 30", "beta_start", "ema_decay"):
        assert name in str(error.value)
    assert DDPMConfig(block_out_channels=[8, 16]).block_out_channels == (8, 16)  # YAML lists are accepted


def test_training_batches_mirror_about_half_of_the_faces(faces):
    face = rgb_to_signed(faces[:1], 16)[0]
    batch = _training_batch(faces[:1], replace(TINY, batch_size=32), torch.Generator().manual_seed(0))
    mirrored = [torch.equal(image, face.flip(-1)) for image in batch]
    assert all(m or torch.equal(image, face) for m, image in zip(mirrored, batch))
    assert 8 <= sum(mirrored) <= 24


def test_training_reduces_the_noise_prediction_loss(faces, tmp_path):
    _, history = train_ddpm(faces, replace(TINY, steps=60, ema_decay=None, save_every=100), tmp_path)
    losses = [h["loss"] for h in history]
    assert [h["step"] for h in history] == list(range(1, 61))
    assert np.mean(losses[-15:]) < 0.7 * np.mean(losses[:5])


def test_resume_continues_the_step_counter_and_matches_an_uninterrupted_run(faces, tmp_path):
    whole, whole_history = train_ddpm(faces, TINY, tmp_path / "whole")
    train_ddpm(faces, replace(TINY, steps=2), tmp_path / "parts")
    resumed, resumed_history = train_ddpm(faces, TINY, tmp_path / "parts")
    assert [h["step"] for h in resumed_history] == [1, 2, 3, 4]
    assert [h["loss"] for h in resumed_history] == [h["loss"] for h in whole_history]
    for saved, again in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(saved, again)  # the EMA weights, the model that is saved
    raw = [torch.load(tmp_path / run / CHECKPOINT_PATH, weights_only=True) for run in ("whole", "parts")]
    assert raw[0]["step"] == raw[1]["step"] == 4
    assert all(torch.equal(a, b) for a, b in zip(raw[0]["unet"].values(), raw[1]["unet"].values()))
    assert not torch.equal(_predict(whole), _predict(build_unet(TINY)))  # training changed the model


def test_a_state_of_other_settings_is_discarded_but_more_steps_resume(faces, tmp_path, caplog):
    train_ddpm(faces, replace(TINY, steps=2), tmp_path)
    _, history = train_ddpm(faces, replace(TINY, steps=3, save_every=7), tmp_path)
    assert [h["step"] for h in history] == [1, 2, 3]  # resumed: the first two steps come from the state
    _, fresh = train_ddpm(faces, replace(TINY, steps=2), tmp_path)  # the state is past the 2 steps asked for
    assert [h["step"] for h in fresh] == [1, 2]
    assert "at step 3, past the 2 steps asked for; discarding this DDPM training state" in caplog.text
    caplog.clear()
    _, fresh = train_ddpm(faces, replace(TINY, lr=5e-4, steps=1), tmp_path)
    assert [h["step"] for h in fresh] == [1]
    assert re.search(r"settings changed.*'lr'.*discarding this DDPM training state and training from the start",
                     caplog.text)
    _, fresh = train_ddpm(faces, replace(TINY, lr=5e-4, steps=1), tmp_path, resume=False)
    assert [h["step"] for h in fresh] == [1]


def test_save_load_round_trip_gives_identical_predictions(faces, tmp_path):
    unet, _ = train_ddpm(faces, replace(TINY, steps=2), tmp_path)
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    loaded, scheduler = load_ddpm(tmp_path)
    assert torch.equal(_predict(loaded), _predict(unet))
    assert torch.equal(scheduler.betas, build_scheduler(TINY).betas)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    save_ddpm(loaded, scheduler, tmp_path)  # overwriting an existing model folder works
    assert torch.equal(_predict(load_ddpm(tmp_path)[0]), _predict(unet))
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary folders left behind


def test_a_pipeline_folder_loads_without_the_network(tmp_path, monkeypatch):
    unet, scheduler = build_unet(TINY), build_scheduler(TINY)
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(tmp_path)
    assert (tmp_path / "model_index.json").is_file()

    def no_network(*args, **kwargs):
        raise AssertionError("load_ddpm tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    loaded, loaded_scheduler = load_ddpm(tmp_path)
    assert torch.equal(_predict(loaded), _predict(unet))
    assert loaded_scheduler.config.num_train_timesteps == 100


def test_missing_or_wrong_folders_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="DDPM folder not found"):
        load_ddpm(tmp_path / "absent")
    build_scheduler(TINY).save_pretrained(tmp_path / "scheduler")
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path}.*unet/config.json is missing"):
        load_ddpm(tmp_path)
    save_ddpm(build_unet(TINY), build_scheduler(TINY), tmp_path)
    (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match=f"could not load the DDPM in {tmp_path}"):
        load_ddpm(tmp_path)
    (tmp_path / "model_index.json").write_text(json.dumps(
        {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}))
    with pytest.raises(ValueError, match="StableDiffusionPipeline.*unconditional UNet2DModel"):
        load_ddpm(tmp_path)


def test_a_corrupt_training_checkpoint_is_named_discarded_and_training_starts_afresh(faces, tmp_path, caplog):
    (tmp_path / CHECKPOINT_PATH).parent.mkdir(parents=True)
    (tmp_path / CHECKPOINT_PATH).write_bytes(b"truncated")
    _, history = train_ddpm(faces, TINY, tmp_path)
    assert history[0]["step"] == 1
    assert (f"{tmp_path / CHECKPOINT_PATH} cannot be read: it is not a torch checkpoint (corrupt, truncated or another "
            "kind of file); discarding this DDPM training state and training from the start") in caplog.text
    assert "weights_only" not in caplog.text


def test_denoising_errors_compare_the_estimate_with_the_noisy_input(faces):
    images = rgb_to_signed(faces, 16)
    rows = denoising_errors(build_unet(TINY), build_scheduler(TINY), images, [10, 90], torch.Generator().manual_seed(0))
    assert [r["t"] for r in rows] == [10, 90]
    assert rows[0]["mse_noisy"] < rows[1]["mse_noisy"]
    assert all(r["mse_x0"] > 0 for r in rows)
