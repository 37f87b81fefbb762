"""Adversarially trained face swap: the attack inside fine-tuning, resuming, and the defence itself.

Faces are jittered crops of two photographs scikit-image ships (the astronaut and the cat); the
face swap is tiny (32 px, 8 channels) and trained for a few hundred steps first, so that it reads
its input (an untrained one outputs a mean face that no perturbation moves, and then nothing can be
learnt about robustness)."""

from __future__ import annotations

import copy

import pytest
import torch

from robust_deepfake.defences import adversarial_generator
from robust_deepfake.defences.adversarial_generator import (CHECKPOINT_NAME, disrupt, disruption_under_attack,
                                                            finetune_against_disruption)
from robust_deepfake.attacks.linf import pgd
from robust_deepfake.attacks.disruption import disruption_loss, generator_outputs
from robust_deepfake.generators.faceswap_ae import FaceSwapAutoencoder, FaceSwapGenerator, load_faceswap
from robust_deepfake.generators.faceswap_training import train_faceswap
from robust_deepfake.tensors import rgb_to_signed

TINY = {"image_size": 32, "channels": 8, "latent_dim": 16}
EPSILON = 0.05


@pytest.fixture(scope="module")
def trained(faces) -> FaceSwapAutoencoder:
    """The face swap as the generator stage leaves it; tests fine-tune copies of it."""
    crops, identities = faces
    model, _ = train_faceswap(crops, identities, steps=400, batch_size=8, lr=2e-3, seed=0, **TINY)
    return model


def test_disrupt_stays_in_budget_and_leaves_the_model_trainable(faces, trained):
    model = copy.deepcopy(trained).train()
    images = rgb_to_signed(faces[0][:4], 48)
    rng = torch.Generator().manual_seed(0)
    result = disrupt(model, images, epsilon=EPSILON, steps=5, step_size=0.01, rng=rng)
    change = (result.x_adv - images).abs()
    assert change.max() <= EPSILON + 1e-6 and change.max() > EPSILON / 2
    assert result.x_adv.min() >= -1 and result.x_adv.max() <= 1
    assert result.losses[-1] > result.losses[0], "the attack must raise the disruption loss"
    assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())


def test_finetuning_attacks_the_current_weights_at_every_step(faces, trained, monkeypatch):
    crops, identities = faces
    model, original = copy.deepcopy(trained), FaceSwapGenerator(copy.deepcopy(trained))
    seen = []

    def recording_pgd(x, loss_fn, *args, **kwargs):
        result = pgd(x, loss_fn, *args, **kwargs)
        now = FaceSwapGenerator(copy.deepcopy(model))  # the weights at this very step
        with torch.no_grad():
            seen.append({"x": x, "x_adv": result.x_adv, "attacker": loss_fn(result.x_adv),
                         "current": disruption_loss(now, result.x_adv, generator_outputs(now, x), "mse"),
                         "original": disruption_loss(original, result.x_adv, generator_outputs(original, x), "mse")})
        return result

    monkeypatch.setattr(adversarial_generator, "pgd", recording_pgd)
    _, history = finetune_against_disruption(model, crops, identities, attack_steps=3, steps=4, batch_size=4,
                                             lr=1e-3, seed=0)
    assert len(seen) == 4
    for record in seen:
        change = (record["x_adv"] - record["x"]).abs()
        assert change.max() <= EPSILON + 1e-6 and change.max() > EPSILON / 2
        torch.testing.assert_close(record["attacker"], record["current"])
    assert not torch.allclose(seen[-1]["attacker"], seen[-1]["original"]), "weights changed, so must the attack's loss"
    assert all(h["attack_mse"] > 0 for h in history)


def test_finetuning_resumes_where_it_stopped(faces, trained, tmp_path):
    crops, identities = faces
    settings = {"attack_steps": 2, "batch_size": 4, "lr": 1e-3, "seed": 3}
    whole, whole_history = finetune_against_disruption(copy.deepcopy(trained), crops, identities, steps=5, **settings)
    finetune_against_disruption(copy.deepcopy(trained), crops, identities, steps=3, checkpoint_dir=tmp_path,
                                save_every=2, **settings)
    resumed, history = finetune_against_disruption(copy.deepcopy(trained), crops, identities, steps=5,
                                                   checkpoint_dir=tmp_path, save_every=2, **settings)
    assert [h["step"] for h in history] == [1, 2, 3, 4, 5]
    assert [h["loss"] for h in history] == pytest.approx([h["loss"] for h in whole_history], rel=1e-5)
    for name, value in whole.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value)
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)["training"]["step"] == 5
    loaded = load_faceswap(tmp_path / CHECKPOINT_NAME)
    images = rgb_to_signed(crops[:2], 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images, "cat"), resumed(images, "cat"))


def test_only_the_decoders_of_the_faces_identities_learn(faces):
    crops, identities = faces
    torch.manual_seed(0)
    model = FaceSwapAutoencoder(["astronaut", "bob", "cat"], **TINY)
    before = copy.deepcopy(model.state_dict())
    cats = [face for face, name in zip(crops, identities) if name == "cat"]
    finetune_against_disruption(model, cats, ["cat"] * len(cats), attack_steps=1, steps=2, batch_size=2, lr=1e-3)
    changed = {name.split(".")[1] for name, value in model.state_dict().items()
               if name.startswith("decoders.") and not torch.equal(value, before[name])}
    assert changed == {"id_cat"}


def test_faces_of_unknown_identities_are_refused(faces, trained):
    crops, identities = faces
    with pytest.raises(ValueError, match="no decoder for.*'dog'"):
        finetune_against_disruption(copy.deepcopy(trained), crops, identities[:-1] + ["dog"], steps=1)
    with pytest.raises(ValueError, match="12 faces but 11 identity labels"):
        finetune_against_disruption(copy.deepcopy(trained), crops, identities[:-1], steps=1)


def test_adversarial_finetuning_lowers_the_disruption_a_fresh_attack_achieves(faces, trained):
    """The defence's claim, on the faces it was fine-tuned on: a new white-box PGD attack (eps 0.05,
    10 steps of 0.01, at the crop size) moves the fine-tuned model's outputs less than the original
    model's, and less than those of a model trained as long without the attack (the control:
    more training alone does not buy robustness). Measured over 8 seeds of faces and weights
    (this test is seed 0): fine-tuned / original 0.30-0.69, fine-tuned / control 0.34-0.51."""
    crops, identities = faces
    images = rgb_to_signed(crops, 48)
    settings = {"attack_steps": 10, "steps": 100, "batch_size": 8, "lr": 2e-3, "seed": 0}
    robust, _ = finetune_against_disruption(copy.deepcopy(trained), crops, identities, **settings)
    control, _ = finetune_against_disruption(copy.deepcopy(trained), crops, identities, adversarial_weight=0.0,
                                             **settings)
    mse = {name: disruption_under_attack(model, images, seed=1)["dist_l2"].mean()
           for name, model in [("original", trained), ("robust", robust), ("control", control)]}
    assert mse["original"] > 1e-3, mse  # the attack has something to take away
    assert mse["robust"] < 0.8 * mse["original"], mse
    assert mse["robust"] < 0.8 * mse["control"], mse
