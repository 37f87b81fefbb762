"""MagNet's denoising autoencoders: MagNet's architectures, training that lowers the error of
reconstructing clean faces from noisy ones, the file round trip, and the registry wiring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robust_deepfake.checkpoints import CheckpointError
from robust_deepfake.defences.loading import LOADERS, load_purifier_model
from robust_deepfake.defences.magnet import (STRUCTURES, MagNetAutoencoder, MagNetConfig, load_magnet, save_magnet,
                                             train_magnet)
from robust_deepfake.defences.purifiers import PURIFIERS, purify
from robust_deepfake.registry import DEFENCES, PURIFIER_MODELS
from robust_deepfake.tensors import rgb_to_signed


def faces(n: int = 24, size: int = 16, seed: int = 0) -> list[np.ndarray]:
    """Smooth synthetic 'faces': a random colour gradient each, something an autoencoder can learn."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, size)[None, :, None]
    out = []
    for _ in range(n):
        low, high = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        out.append(np.broadcast_to(low + (high - low) * ramp, (size, size, 3)).astype(np.uint8).copy())
    return out


def reconstruction_error(model: MagNetAutoencoder, images: torch.Tensor, noise: float) -> float:
    noisy = (images + torch.randn(images.shape, generator=torch.Generator().manual_seed(9)) * 2 * noise).clamp(-1, 1)
    with torch.no_grad():
        return float((model(noisy) - images).pow(2).mean())


def test_the_architectures_are_magnets():
    """Model 1: conv, pool, conv | conv, upsample, conv, out; model 2: conv, conv | conv, conv, out;
    3 filters each, sigmoid after every convolution."""
    kinds = {name: [type(m).__name__ for m in MagNetAutoencoder(name).net] for name in STRUCTURES}
    assert kinds["defensive_model_1"] == ["Conv2d", "Sigmoid", "AvgPool2d", "Conv2d", "Sigmoid", "Conv2d", "Sigmoid",
                                          "Upsample", "Conv2d", "Sigmoid", "Conv2d", "Sigmoid"]
    assert kinds["defensive_model_2"] == ["Conv2d", "Sigmoid"] * 5
    convs = [m for m in MagNetAutoencoder("defensive_model_2").net if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [3, 3, 3, 3, 3] and all(c.kernel_size == (3, 3) for c in convs)
    with pytest.raises(ValueError, match="unknown MagNet structure 'model_3'"):
        MagNetAutoencoder("model_3")


@pytest.mark.parametrize("structure", sorted(STRUCTURES))
def test_training_lowers_the_reconstruction_error(structure):
    data = faces()
    clean = rgb_to_signed(data, 16)
    config = MagNetConfig(structure=structure, filters=8, noise_std=0.05, steps=1000, batch_size=8, lr=1e-2)
    torch.manual_seed(config.seed)
    untrained = MagNetAutoencoder(structure, 8).eval()
    model, history = train_magnet(data, config)
    assert len(history) == 1000 and history[-1]["loss"] < history[0]["loss"] / 3
    before, after = reconstruction_error(untrained, clean, 0.05), reconstruction_error(model, clean, 0.05)
    assert after < before / 3, (before, after)
    assert not model.training


def test_a_saved_autoencoder_loads_and_purifies_the_same(tmp_path):
    config = MagNetConfig(structure="defensive_model_2", filters=4, steps=5, batch_size=4)
    model, _ = train_magnet(faces(8), config)
    path = tmp_path / "magnet" / "model.pt"
    save_magnet(model, config, path)
    loaded = load_purifier_model("magnet", path, torch.device("cpu"))
    assert set(loaded) == {"autoencoder"} and loaded["autoencoder"].structure == "defensive_model_2"
    x = rgb_to_signed(faces(3, seed=1), 16)
    with torch.no_grad():
        ours, _ = purify("defensive_model_2", x, {}, model={"autoencoder": model})
        theirs, _ = purify("defensive_model_2", x, {}, model=loaded)
    assert torch.equal(ours, theirs) and ours.shape == x.shape
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="model.pt"):
        load_magnet(path)


def test_every_defence_with_a_model_has_a_loader_and_a_purifier():
    assert set(LOADERS) == set(PURIFIER_MODELS)
    for name, defence in DEFENCES.items():
        assert defence.model in (None, *PURIFIER_MODELS), name
        assert (name in PURIFIERS) == defence.purifier, name
    assert DEFENCES["both"].diffusion and DEFENCES["both"].adversarial_generator
