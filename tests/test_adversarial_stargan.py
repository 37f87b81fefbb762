"""The adversarially trained StarGAN (Ruiz et al.'s G+D training) and its blur variant, on a tiny model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from robust_deepfake.attacks.linf import pgd
from robust_deepfake.defences.adversarial_stargan import (AdversarialStarGANConfig, finetune_stargan_against_disruption,
                                                          with_input_blur)
from robust_deepfake.generators.stargan import (InputBlur, StarGANFaceGenerator, StarGANGenerator, load_stargan,
                                                save_stargan)
from robust_deepfake.generators.stargan_training import StarGANTrainConfig, train_stargan

ATTRIBUTES = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Eyeglasses", "Pale_Skin")
TINY = dict(attributes=ATTRIBUTES, image_size=32, conv_dim=8, repeat_num=2, batch_size=8, lr=1e-3, n_critic=1, seed=0)


@pytest.fixture(scope="module")
def data():
    generator = torch.Generator().manual_seed(0)
    images = F.interpolate(torch.rand(48, 3, 8, 8, generator=generator) * 2 - 1, size=32, mode="bilinear",
                           align_corners=False)
    labels = (torch.rand(48, 5, generator=generator) > 0.5).float()
    return torch.utils.data.TensorDataset(images, labels)


@pytest.fixture(scope="module")
def trained(data):
    return train_stargan(data, StarGANTrainConfig(steps=60, **TINY), log_every=10**6).generator


def disruption(model: StarGANFaceGenerator, data) -> float:
    """Mean MSE(G(x_adv, c), G(x, c)) of a fresh 10-step PGD at the paper's budget."""
    images, labels = data.tensors
    with torch.no_grad():
        clean = model.generator(images, labels)
    attack = pgd(images, lambda z: (model.generator(z, labels) - clean).pow(2).flatten(1).mean(1), 0.05, 10, 0.01,
                 rng=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return float((model.generator(attack.x_adv, labels) - clean).pow(2).mean())


def test_adversarial_fine_tuning_leaves_stargan_far_less_disrupted_than_the_same_training_without_attack(
        trained, data):
    before = {k: v.clone() for k, v in trained.generator.state_dict().items()}
    adversarial, history = finetune_stargan_against_disruption(
        trained, data, AdversarialStarGANConfig(steps=60, critic_warmup=10, batch_size=8, n_critic=1, lr=1e-3))
    control = train_stargan(data, StarGANTrainConfig(steps=60, critic_warmup=10, lr_decay_fraction=0.0, **TINY),
                            generator=trained.generator, log_every=10**6).generator
    assert disruption(adversarial, data) < 0.5 * disruption(control, data)
    assert len(history) == 60 and all("attack_mse" in step for step in history)
    assert not any("G/loss_rec" in step for step in history[:10])  # the new critic learns alone first
    assert all(torch.equal(v, before[k]) for k, v in trained.generator.state_dict().items())  # a copy was tuned


def test_the_input_blur_is_a_normalised_gaussian():
    blur = InputBlur.gaussian(1.0)
    assert blur.kernel.shape == (7, 7) and abs(float(blur.kernel.sum()) - 1) < 1e-6
    flat = torch.full((1, 3, 16, 16), 0.3)
    assert torch.allclose(blur(flat), flat, atol=1e-6)
    edge = torch.zeros(1, 3, 16, 16)
    edge[..., 8:] = 1
    assert 0 < float(blur(edge)[0, 0, 0, 7]) < 1  # an edge is smoothed


def test_the_blur_variant_carries_its_blur_through_save_and_load(trained, data, tmp_path):
    images, labels = data.tensors
    blurred = StarGANFaceGenerator(with_input_blur(trained.generator, 1.5), ATTRIBUTES, 32)
    with torch.no_grad():
        assert not torch.allclose(blurred.generator(images, labels), trained.generator(images, labels))
    save_stargan(blurred, tmp_path / "G.ckpt")
    assert "blur.kernel" in torch.load(tmp_path / "G.ckpt", weights_only=True)
    loaded = load_stargan(tmp_path / "G.ckpt", ATTRIBUTES, 32)
    with torch.no_grad():
        assert torch.equal(loaded.generator(images, labels), blurred.generator(images, labels))
    save_stargan(trained, tmp_path / "plain.ckpt")  # a plain (official-format) generator loads without a blur
    assert load_stargan(tmp_path / "plain.ckpt", ATTRIBUTES, 32).generator.blur is None


def test_a_warm_up_as_long_as_the_fine_tuning_is_refused(trained, data):
    with pytest.raises(ValueError, match="critic_warmup must be in"):
        finetune_stargan_against_disruption(trained, data, AdversarialStarGANConfig(steps=10, critic_warmup=10))


def test_a_generator_of_other_attributes_cannot_be_continued(data):
    with pytest.raises(ValueError, match="3 attributes, the config 5"):
        train_stargan(data, StarGANTrainConfig(steps=1, **TINY), generator=StarGANGenerator(8, 3, 2))
