"""Autoencoder face swap: the FaceGenerator contract, training, checkpoints and pasting back.

Faces are jittered crops of two photographs that scikit-image ships (the astronaut and the cat),
so the tests need no shared data; the model is tiny (32 px, 8 channels) to run in seconds."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch

from conftest import jittered_crops
from robust_deepfake.atomic import write_image
from robust_deepfake.generators.face_mask import landmark_face_mask
from robust_deepfake.images import MediaError
from robust_deepfake.tensors import rgb_to_signed, signed_to_rgb
from robust_deepfake.generators.faceswap_ae import (FaceCropFiles, FaceSwapAutoencoder, FaceSwapGenerator, blend_swap,
                                                    load_faceswap, save_faceswap)
from robust_deepfake.generators.faceswap_training import (CHECKPOINT_NAME, most_frequent_identities, random_warp_pair,
                                                          train_faceswap)

TINY = {"image_size": 32, "channels": 8, "latent_dim": 16}
LANDMARKS = np.array([[20, 24], [44, 24], [32, 36], [22, 46], [42, 46]], np.float32)


def tiny_model(identities=("astronaut", "cat")) -> FaceSwapAutoencoder:
    torch.manual_seed(0)
    return FaceSwapAutoencoder(list(identities), **TINY)


def test_generator_output_shape_range_and_conditions():
    generator = FaceSwapGenerator(tiny_model())
    images = torch.rand(3, 3, 48, 40) * 2 - 1
    out = generator.generate(images, "cat")
    assert out.shape == images.shape and out.dtype == torch.float32
    assert out.min() >= -1 and out.max() <= 1
    assert generator.conditions() == ("astronaut", "cat")
    assert generator.image_size == 32
    assert not torch.allclose(out, generator.generate(images, "astronaut")), "decoders must differ"


def test_generate_is_differentiable_with_respect_to_the_images_only():
    generator = FaceSwapGenerator(tiny_model())
    images = (torch.rand(2, 3, 40, 40) * 2 - 1).requires_grad_(True)
    generator.generate(images, "astronaut").square().sum().backward()
    assert images.grad is not None and torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0
    assert all(p.grad is None for p in generator.model.parameters())


def test_identity_names_that_are_not_module_names():
    model = FaceSwapAutoencoder(["abc.mp4", "keys", "a/b"], **TINY)
    assert model.identities == ("abc.mp4", "keys", "a/b")
    assert model(torch.zeros(1, 3, 32, 32), "abc.mp4").shape == (1, 3, 32, 32)
    with pytest.raises(KeyError, match="no decoder for identity 'nobody'"):
        model(torch.zeros(1, 3, 32, 32), "nobody")
    with pytest.raises(ValueError, match="at least two distinct"):
        FaceSwapAutoencoder(["only"], **TINY)
    with pytest.raises(ValueError, match="multiple of 16"):
        FaceSwapAutoencoder(["a", "b"], image_size=40)


def test_most_frequent_identities_keeps_the_best_covered():
    identities = ["b", "a", "c", "c", "b", "d", "c"]
    assert most_frequent_identities(identities, 2) == ["b", "c"]
    assert most_frequent_identities(identities, 3) == ["a", "b", "c"]  # a and d tie: by name
    assert most_frequent_identities(identities, 10) == ["a", "b", "c", "d"]


def test_random_warp_is_seeded_and_warps_only_the_input():
    images = rgb_to_signed(jittered_crops(skimage.data.astronaut(), (180, 61, 268, 172), 4, seed=3), 32)
    first = random_warp_pair(images, torch.Generator().manual_seed(5), flip=0.0, rotation_deg=0.0, zoom=0.0,
                             shift=0.0)
    again = random_warp_pair(images, torch.Generator().manual_seed(5), flip=0.0, rotation_deg=0.0, zoom=0.0,
                             shift=0.0)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    warped, target = first
    assert torch.allclose(target, images, atol=1e-5), "no similarity transform asked: target is the input"
    assert (warped - target).abs().mean() > 0.01


def test_face_crop_files_decode_each_file_once_within_the_cache_budget(tmp_path):
    paths = []
    for k in range(3):
        paths.append(tmp_path / f"{k}.png")
        write_image(paths[-1], np.full((8, 8, 3), 40 * k, np.uint8))
    files = FaceCropFiles(paths, cache_bytes=2 * 8 * 8 * 3)  # room for two crops
    first = [files[k] for k in range(3)]
    for path in paths:
        path.unlink()
    assert [int(files[k][0, 0, 0]) for k in range(2)] == [0, 40], "cached crops come from memory"
    with pytest.raises(MediaError):
        files[2]  # over the budget: read from disk again, which is gone now
    with pytest.raises(ValueError):
        first[0][0, 0, 0] = 1  # shared with the cache, so read-only


def test_training_reduces_the_reconstruction_loss(faces):
    crops, identities = faces
    model, history = train_faceswap(crops, identities, steps=60, batch_size=8, lr=2e-3, seed=0, **TINY)
    assert [h["step"] for h in history] == list(range(1, 61))
    first = np.mean([h["loss"] for h in history[:10]])
    last = np.mean([h["loss"] for h in history[-10:]])
    assert last < 0.8 * first, (first, last)
    assert model.identities == ("astronaut", "cat") and not model.training


def test_checkpoint_round_trip_gives_identical_outputs(faces, tmp_path):
    crops, identities = faces
    model, _ = train_faceswap(crops, identities, steps=3, batch_size=4, seed=0, checkpoint_dir=tmp_path, **TINY)
    payload = torch.load(tmp_path / CHECKPOINT_NAME, map_location="cpu", weights_only=True)
    assert payload["training"]["step"] == 3
    images = rgb_to_signed(crops[:2], 32)
    save_faceswap(model, tmp_path / "exported.pt")
    for path in (tmp_path / CHECKPOINT_NAME, tmp_path / "exported.pt"):
        loaded = load_faceswap(path)
        assert loaded.config() == model.config()
        with torch.no_grad():
            assert torch.equal(loaded(images, "cat"), model(images, "cat"))


def test_resume_continues_the_step_counter_and_matches_an_uninterrupted_run(faces, tmp_path):
    crops, identities = faces
    settings = dict(batch_size=4, seed=3, save_every=2, **TINY)
    straight, straight_history = train_faceswap(crops, identities, steps=4, checkpoint_dir=tmp_path / "a", **settings)
    train_faceswap(crops, identities, steps=2, checkpoint_dir=tmp_path / "b", **settings)
    resumed, history = train_faceswap(crops, identities, steps=4, checkpoint_dir=tmp_path / "b", **settings)
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    assert [h["loss"] for h in history] == pytest.approx([h["loss"] for h in straight_history])
    for name, tensor in straight.state_dict().items():
        assert torch.allclose(tensor, resumed.state_dict()[name], atol=1e-6), name
    _, fresh = train_faceswap(crops, identities, steps=1, checkpoint_dir=tmp_path / "b", resume=False, **settings)
    assert [h["step"] for h in fresh] == [1]


def test_a_checkpoint_of_another_configuration_is_discarded_and_training_starts_afresh(faces, tmp_path, caplog):
    crops, identities = faces
    train_faceswap(crops, identities, steps=1, batch_size=2, checkpoint_dir=tmp_path, **TINY)
    _, history = train_faceswap(crops, identities, steps=2, batch_size=2, checkpoint_dir=tmp_path,
                                **{**TINY, "latent_dim": 8})
    assert [h["step"] for h in history] == [1, 2]
    assert f"cannot resume from {tmp_path / CHECKPOINT_NAME}: it was trained with" in caplog.text
    assert "discarding this face swap training state and training from the start" in caplog.text


def test_bad_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_faceswap(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="corrupt.pt cannot be read: it is not a torch checkpoint") as error:
        load_faceswap(corrupt)
    assert "weights_only" not in str(error.value)  # never torch's advice to load an untrusted file unsafely
    foreign = tmp_path / "200000-G.ckpt"
    torch.save({"main.0.weight": torch.zeros(1)}, foreign)
    with pytest.raises(ValueError, match="200000-G.ckpt is not a face swap checkpoint"):
        load_faceswap(foreign)


def test_train_checks_its_inputs(faces):
    crops, identities = faces
    with pytest.raises(ValueError, match="12 faces but 11 identity labels"):
        train_faceswap(crops, identities[:-1], steps=1, **TINY)


def test_blend_swap_changes_only_the_face_region():
    original = np.full((64, 64, 3), 60, np.uint8)
    swapped = torch.ones(1, 3, 32, 32)  # white face at model size: resized to the crop
    blended = blend_swap(original, swapped, LANDMARKS, color_transfer=False)
    mask = landmark_face_mask(LANDMARKS, (64, 64))
    assert blended.shape == original.shape and blended.dtype == np.uint8
    assert np.array_equal(blended[mask == 0], original[mask == 0])
    assert (blended[mask == 1] == 255).all()
    as_image = blend_swap(original, signed_to_rgb(swapped[0]), LANDMARKS, color_transfer=False)
    assert np.abs(as_image.astype(int) - blended).max() <= 1


def test_blend_swap_colour_transfer_matches_the_original_face():
    rng = np.random.default_rng(0)
    original = rng.integers(90, 110, (64, 64, 3), dtype=np.uint8)
    swapped = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    blended = blend_swap(original, swapped, LANDMARKS)
    inside = landmark_face_mask(LANDMARKS, (64, 64)) == 1
    assert abs(blended[inside].mean() - original[inside].mean()) < 5
    assert blended[inside].std() < 0.5 * swapped[inside].std()
