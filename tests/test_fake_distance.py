"""FID/KID of fake sets: the distances on hand-made feature sets, the identity feature extractor
that stands in when no InceptionV3 weights are configured, and local InceptionV3 weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.models import inception_v3

from robust_deepfake.stages.fake_distance import (frechet_distance, inception_extractor, kernel_inception_distance,
                                           load_extractor, save_extractor, train_identity_extractor)


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (4000, 3))
    b = rng.normal(0, 1, (4000, 3)) + np.array([2.0, 0, 0])
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    # equal covariances: FID = |mu_a - mu_b|^2 = 4
    assert frechet_distance(a, b) == pytest.approx(4.0, abs=0.15)
    wide = rng.normal(0, 2, (4000, 3))
    # one dimension's variance 1 vs 4: (sqrt(4) - sqrt(1))^2 = 1 per dimension
    assert frechet_distance(a, wide) == pytest.approx(3.0, abs=0.2)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(1)
    a, a2 = rng.normal(0, 1, (200, 8)), rng.normal(0, 1, (200, 8))
    b = rng.normal(1, 1, (200, 8))
    same, _ = kernel_inception_distance(a, a2, subsets=20, subset_size=100)
    different, _ = kernel_inception_distance(a, b, subsets=20, subset_size=100)
    assert abs(same) < 0.05 < different


def test_identity_extractor_learns_and_round_trips(tmp_path):
    torch.manual_seed(0)
    images = torch.rand(24, 3, 32, 32) * 0.2
    images[12:, 0] += 0.7  # identity "b" is red
    identities = ["a"] * 12 + ["b"] * 12
    extractor, history = train_identity_extractor(images, identities, steps=15, batch_size=8, lr=1e-3, seed=0, size=32)
    assert history[-1]["loss"] < history[0]["loss"]
    save_extractor(extractor, tmp_path / "extractor.pt")
    loaded = load_extractor(tmp_path / "extractor.pt")
    assert loaded.name == "identity_resnet18"
    with torch.no_grad():
        assert torch.allclose(extractor(images[:2]), loaded(images[:2]), atol=1e-5)
        assert loaded(images[:2]).shape == (2, 512)
    with pytest.raises(ValueError, match="at least 2 identities"):
        train_identity_extractor(images, ["a"] * 24, steps=1, batch_size=4, lr=1e-3, seed=0)


def test_local_inception_weights_give_2048_d_features(tmp_path):
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), tmp_path / "inc.pth")
    extractor = inception_extractor(tmp_path / "inc.pth")
    with torch.no_grad():
        assert extractor(torch.rand(2, 3, 64, 64)).shape == (2, 2048)
    with pytest.raises(FileNotFoundError, match="InceptionV3 weights not found"):
        inception_extractor(tmp_path / "missing.pth")
