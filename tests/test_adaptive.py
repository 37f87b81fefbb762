"""The adaptive poison: optimised through the purifier it meets, it must disrupt the fakes made
from purified faces more than the plain poison does, with exact gradients (MagNet's autoencoder;
the diffusion purifiers' gradient is checked against finite differences) and with straight-through
ones (a median filter, not differentiable)."""

from __future__ import annotations

import pytest
import torch

from robust_deepfake.attacks.adaptive import eot_disruption_loss
from robust_deepfake.attacks.disruption import disruption_loss, generator_outputs
from robust_deepfake.attacks.linf import run_attack
from robust_deepfake.defences.anticipated import anticipated_purifier, straight_through
from robust_deepfake.defences.magnet import MagNetAutoencoder, MagNetConfig, train_magnet
from robust_deepfake.registry import purifier_of
from test_poison import TinyGenerator


def faces(n: int = 4, size: int = 16) -> torch.Tensor:
    """Smooth images (4 x 4 random colours, upsampled), which purification leaves nearly as they are."""
    coarse = torch.rand(n, 3, 4, 4, generator=torch.Generator().manual_seed(3)) * 1.6 - 0.8
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def trained_autoencoder() -> MagNetAutoencoder:
    """MagNet's model 2 trained briefly on such images: a reformer that removes small noise."""
    images = [((f.permute(1, 2, 0) + 1) * 127.5).round().byte().numpy() for f in faces(64)]
    model, _ = train_magnet(images, MagNetConfig(structure="defensive_model_2", filters=8, noise_std=0.05,
                                                 steps=600, batch_size=16, lr=1e-2))
    return model


def disruption_after(generator, purifier, clean, x_adv) -> float:
    """Mean MSE of G(P(x_adv)) against G(clean): what the trainer's fakes lose."""
    with torch.no_grad():
        reference = generator_outputs(generator, clean)
        return float(disruption_loss(generator, purifier(x_adv), reference, "mse").mean())


@pytest.mark.parametrize("defence, settings", [("defensive_model_2", {}), ("median", {"kernel": 3})])
def test_the_adaptive_poison_survives_purification_better_than_the_plain_one(defence, settings):
    model = {"autoencoder": trained_autoencoder()} if defence == "defensive_model_2" else None
    generator, clean = TinyGenerator().eval(), faces()
    purifier = anticipated_purifier(defence, settings, model, seed=0)
    with torch.no_grad():
        reference = generator_outputs(generator, clean)
    attack = dict(epsilon=0.05, steps=10, step_size=0.01)
    plain = run_attack("pgd", clean, lambda x: disruption_loss(generator, x, reference, "mse"), **attack,
                       rng=torch.Generator().manual_seed(1)).x_adv
    adaptive = run_attack("pgd", clean, lambda x: eot_disruption_loss(generator, purifier, x, reference, "mse", 2),
                          **attack, rng=torch.Generator().manual_seed(1)).x_adv
    assert (adaptive - clean).abs().max() <= 0.05 + 1e-6
    after_plain = disruption_after(generator, purifier, clean, plain)
    after_adaptive = disruption_after(generator, purifier, clean, adaptive)
    assert after_adaptive > 1.2 * after_plain, (after_plain, after_adaptive)


def test_straight_through_passes_the_forward_value_and_the_identity_gradient():
    x = torch.tensor([0.2, -0.4], requires_grad=True)
    y = straight_through(x, torch.tensor([0.0, 0.0]))
    assert y.tolist() == [0.0, 0.0]
    (y * torch.tensor([3.0, 5.0])).sum().backward()
    assert x.grad.tolist() == [3.0, 5.0]


def test_a_defence_that_purifies_nothing_is_the_identity_and_eot_needs_a_sample():
    x = faces(1)
    assert anticipated_purifier("none", {}, None, 0)(x) is x
    assert anticipated_purifier(purifier_of("adv_generator"), {}, None, 0)(x) is x
    with pytest.raises(ValueError, match="at least one sample"):
        eot_disruption_loss(TinyGenerator(), lambda v: v, x, {}, "mse", 0)


@pytest.mark.parametrize("defence, settings", [("diffpure", {"t_star": 0.1, "sampler": "ddim", "ddim_steps": 3}),
                                               ("ddpm_reverse", {"start_step": 3})])
def test_the_attacker_takes_the_exact_gradient_through_the_diffusion_purifiers(defence, settings):
    """Not the straight-through identity: the gradient of the purifier itself, through every
    denoising step (checked against a central finite difference under the same noise draw)."""
    from diffusers import DDPMScheduler, UNet2DModel

    with torch.random.fork_rng():
        torch.manual_seed(0)
        unet = UNet2DModel(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(8, 16),
                           layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
                           up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4).eval().requires_grad_(False)
    model = {"unet": unet, "scheduler": DDPMScheduler(num_train_timesteps=1000)}
    x, weights = faces(2).double(), torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(5)).double()
    unet.double()
    x.requires_grad_(True)
    (anticipated_purifier(defence, settings, model, seed=0)(x) * weights).sum().backward()
    direction = torch.rand(x.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64) - 0.5
    h = 1e-4
    with torch.no_grad():
        ends = [(anticipated_purifier(defence, settings, model, seed=0)(x + s * h * direction) * weights).sum()
                for s in (1, -1)]
    numeric = float((ends[0] - ends[1]) / (2 * h))
    analytic = float((x.grad * direction).sum())
    assert analytic == pytest.approx(numeric, rel=1e-3)
    if defence == "diffpure":  # at t* the purifier is far from the identity, and so is its gradient
        assert analytic != pytest.approx(float((weights * direction).sum()), rel=1e-2)
