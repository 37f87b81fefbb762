"""Diffusion-made fakes through tiny, randomly initialised Stable Diffusion pipelines that the tests
build from configs and save into tmp_path: real diffusers loading and generation code, no weights,
no network (sockets are blocked while loading)."""

from __future__ import annotations

import json
import logging
import socket

import cv2
import numpy as np
import pytest
import torch

from robust_deepfake.generators.stable_diffusion import inpaint_faces, load_pipeline, native_size, text2img_faces

CROP = 48  # differs from the tiny pipeline's native 64 px, so the resize in and out is exercised
STEPS = 2


def _tiny_tokenizer(folder):
    """A CLIP BPE tokenizer for the test prompts' words, written as vocab.json + merges.txt and read
    back, as transformers' own CLIP tokenizer tests do: nothing to download. Each word merges letter
    by letter into one token; the vocabulary holds the letters and every merge result."""
    from transformers import CLIPTokenizer

    merges, tokens = [], ["<|startoftext|>", "<|endoftext|>"]
    for word in ("a", "photo", "of", "face"):
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        tokens += [piece for piece in pieces if piece not in tokens]
        while len(pieces) > 1:
            merges.append(f"{pieces[0]} {pieces[1]}")
            pieces = [pieces[0] + pieces[1]] + pieces[2:]
            tokens += [pieces[0]] if pieces[0] not in tokens else []
    folder.mkdir()
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(tokens)}))
    (folder / "merges.txt").write_text("\n".join(["#version: 0.2", *merges]) + "\n")
    return CLIPTokenizer.from_pretrained(folder, model_max_length=16)


def _tiny_pipeline_folder(tmp_path, kind: str):
    """Save a tiny randomly initialised SD pipeline of `kind` (64 px native: UNet sample 32, VAE
    down-sampling x2) with diffusers' save_pretrained, as a user's local model folder would be."""
    from diffusers import (AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=32,
                                in_channels=9 if kind == "inpaint" else 4, out_channels=4,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                norm_num_groups=8, attention_head_dim=4)
    vae = AutoencoderKL(block_out_channels=(16, 32), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        layers_per_block=1, norm_num_groups=8, sample_size=64)
    tokenizer = _tiny_tokenizer(tmp_path / f"vocab-{kind}")
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=1000, hidden_size=32, intermediate_size=37,
                                                num_hidden_layers=2, num_attention_heads=4,
                                                max_position_embeddings=16, bos_token_id=0, eos_token_id=1,
                                                pad_token_id=1)).eval()
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipeline_class = StableDiffusionInpaintPipeline if kind == "inpaint" else StableDiffusionPipeline
    pipe = pipeline_class(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                          safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    folder = tmp_path / f"sd-{kind}"
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture
def no_network(monkeypatch):
    """Offline mode plus a socket that refuses to connect: a load that reaches for the hub fails."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _crops_and_masks() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Two distinct smooth crops and feathered elliptical face masks (0 outside the ellipse)."""
    yy, xx = np.mgrid[0:CROP, 0:CROP].astype(np.float32)
    crops = [np.stack([xx * 5, yy * 5, (xx + yy) * 2.5], axis=2).clip(0, 255).astype(np.uint8),
             np.stack([255 - yy * 5, xx * 4, np.full_like(xx, 90)], axis=2).clip(0, 255).astype(np.uint8)]
    masks = []
    for centre_x in (24, 22):
        radius = np.sqrt(((xx - centre_x) / 14) ** 2 + ((yy - 25) / 18) ** 2)
        masks.append(np.clip((1 - radius) / 0.2, 0, 1).astype(np.float32))
    return crops, masks


def test_inpaint_changes_only_the_face_and_is_seeded(tmp_path, no_network):
    pipe = load_pipeline("inpaint", _tiny_pipeline_folder(tmp_path, "inpaint"), "cpu", "float32")
    assert native_size(pipe) == 64
    crops, masks = _crops_and_masks()
    kwargs = dict(prompts=["a photo of a face"] * 2, negative_prompt="a face", steps=STEPS, guidance_scale=7.5,
                  strength=1.0, seed=3)
    fakes = inpaint_faces(pipe, crops, masks, **kwargs, batch_size=2)
    assert len(fakes) == 2
    for crop, mask, fake in zip(crops, masks, fakes):
        assert fake.dtype == np.uint8 and fake.shape == crop.shape
        assert np.array_equal(fake[mask == 0], crop[mask == 0])  # composited back: background untouched
        inside = np.abs(fake[mask == 1].astype(int) - crop[mask == 1]).mean()
        assert inside > 5, f"the face region was not regenerated (mean change {inside:.2f})"
    again = inpaint_faces(pipe, crops, masks, **kwargs, batch_size=1)  # per-image seeds: batching is irrelevant
    for fake, repeat in zip(fakes, again):
        assert np.abs(fake.astype(int) - repeat).max() <= 1
    other_seed = inpaint_faces(pipe, crops, masks, **{**kwargs, "seed": 4})
    assert not np.array_equal(other_seed[0], fakes[0])
    with pytest.raises(ValueError, match="does not match crop shape"):
        inpaint_faces(pipe, crops, [masks[0][:10]] * 2, **kwargs)


def test_text2img_makes_seeded_images_of_the_asked_size(tmp_path, no_network):
    pipe = load_pipeline("text2img", _tiny_pipeline_folder(tmp_path, "text2img"), "cpu", torch.float32)
    prompts = ["a photo of a face", "a face"]
    fakes = text2img_faces(pipe, prompts, steps=STEPS, guidance_scale=7.5, size=CROP, seed=11)
    assert [(f.dtype, f.shape) for f in fakes] == [(np.dtype(np.uint8), (CROP, CROP, 3))] * 2
    assert not np.array_equal(fakes[0], fakes[1])
    again = text2img_faces(pipe, prompts, steps=STEPS, guidance_scale=7.5, size=CROP, seed=11)
    assert all(np.array_equal(a, b) for a, b in zip(fakes, again))


def test_no_model_folder_means_no_pipeline(caplog):
    with caplog.at_level(logging.WARNING, logger="robust_deepfake.generators.stable_diffusion"):
        assert load_pipeline("inpaint", None, "cpu", torch.float32) is None
    assert "no Stable Diffusion model folder configured (diffusion.inpaint_model_dir): generator inpaint makes " \
           "no fakes" in caplog.text


def test_missing_or_foreign_model_folder_is_a_clear_error(tmp_path):
    missing = tmp_path / "sd-missing"
    with pytest.raises(FileNotFoundError, match=rf"{missing}.*does not exist"):
        load_pipeline("text2img", missing, "cpu", torch.float32)
    cv2.imwrite(str(tmp_path / "not-a-model.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path} .*not a diffusers model folder: model_index.json"):
        load_pipeline("inpaint", tmp_path, "cpu", torch.float32)
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline",
                                                           "scheduler": ["diffusers", "DDIMScheduler"]}))
    with pytest.raises(OSError, match=rf"could not load a StableDiffusionPipeline from {tmp_path}: .*scheduler"):
        load_pipeline("text2img", tmp_path, "cpu", torch.float32)
    with pytest.raises(ValueError, match="unknown diffusion generator kind"):
        load_pipeline("img2img", tmp_path, "cpu", torch.float32)
    with pytest.raises(ValueError, match="unknown torch dtype 'float61'"):
        load_pipeline("inpaint", None, "cpu", "float61")


def test_each_face_is_prompted_with_its_own_identity_and_attributes():
    from robust_deepfake.generators.stable_diffusion import face_prompt

    template = "a photo of the face of {identity}, {attributes}"
    celeb = {"identity": "Aaron_Eckhart", "attr_Black_Hair": 1, "attr_Eyeglasses": 1, "attr_Blond_Hair": -1,
             "attr_Male": 0}
    assert face_prompt(template, celeb) == "a photo of the face of Aaron Eckhart, black hair, eyeglasses"
    assert face_prompt(template, {"identity": "Ada_Lovelace"}) == "a photo of the face of Ada Lovelace"
    assert face_prompt("{identity}", {"identity": None}) == "a person"
    assert face_prompt(template, celeb) != face_prompt(template, {**celeb, "identity": "Zoe_Saldana"})


def test_a_prompt_template_with_an_unknown_field_is_refused_before_any_job():
    from robust_deepfake.config import ConfigError, validate_config
    from test_config import default_config

    cfg = default_config()
    cfg["diffusion"]["prompt"] = "a photo of {name}"
    with pytest.raises(ConfigError, match="'diffusion.prompt': 'a photo of \\{name\\}' is not a template"):
        validate_config(cfg)
