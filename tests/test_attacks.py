"""L-inf attacks: the budget and the range hold exactly, PGD climbs its loss and moves its input at
every step, FGSM is one signed step, the Gaussian baseline has the same L-inf size, and runs are
reproducible from their seed."""

from __future__ import annotations

import pytest
import torch

from robust_deepfake.attacks.linf import ATTACKS, bim, fgsm, gaussian_noise, pgd, project, run_attack

EPS, STEPS, STEP = 0.05, 10, 0.01


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    """A fixed tiny random conv net standing in for a generator (weights from seed 0)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Tanh(),
                                    torch.nn.Conv2d(8, 3, 3, padding=1), torch.nn.Tanh())
    return model.eval()


def images(seed: int = 1, shape=(2, 3, 12, 12)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def edge_images() -> torch.Tensor:
    """Values at and next to both range ends, where clipping to the range and to the ball meet."""
    x = images(2)
    x[:, 0] = 1.0
    x[:, 1, :6] = -1.0
    x[:, 1, 6:] = -0.999
    x[:, 2, :, :6] = 0.9999
    return x


def disruption(net, x):
    """Ruiz et al.'s loss: its gradient is exactly zero at x itself, so only PGD's random start moves."""
    clean = net(x).detach()
    return lambda x_adv: (net(x_adv) - clean).pow(2).flatten(1).mean(dim=1)


def towards_black(net):
    """The DDPM seed's loss: -MSE(net(x_adv), -1), with a useful gradient at the clean image."""
    return lambda x_adv: -(net(x_adv) + 1).pow(2).flatten(1).mean(dim=1)


def attack_all(name, x, loss_fn, seed=0, lo=-1.0, hi=1.0):
    return run_attack(name, x, loss_fn, EPS, STEPS, STEP, torch.Generator().manual_seed(seed), lo, hi)


def test_pgd_loss_rises_over_its_steps(net):
    x = images()
    result = pgd(x, disruption(net, x), EPS, STEPS, STEP, rng=torch.Generator().manual_seed(0))
    losses = result.losses
    assert len(losses) == STEPS + 1
    assert losses[-1] > 2 * losses[0]
    decreases = sum(b < a for a, b in zip(losses, losses[1:]))
    assert decreases <= 2, losses


@pytest.mark.parametrize("name", sorted(ATTACKS))
@pytest.mark.parametrize("make_x", [images, edge_images])
def test_every_attack_stays_in_the_ball_and_the_range(net, name, make_x):
    x = make_x()
    x_adv = attack_all(name, x, towards_black(net)).x_adv
    assert x_adv.shape == x.shape
    assert float((x_adv - x).abs().max()) <= EPS + 1e-6
    assert float(x_adv.min()) >= -1.0 and float(x_adv.max()) <= 1.0
    assert float((x_adv - x).abs().max()) > EPS / 2  # it did perturb


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_attack_respects_another_range(net, name):
    x = (edge_images() + 1) / 2  # [0, 1] images, values at 0 and 1
    x_adv = attack_all(name, x, towards_black(net), lo=0.0, hi=1.0).x_adv
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert float((x_adv - x).abs().max()) <= EPS + 1e-6


def test_project_enforces_both_constraints():
    x = torch.tensor([-1.0, -0.98, 0.0, 0.99, 1.0])
    far = torch.tensor([-3.0, 0.5, -0.5, 2.0, 0.2])
    out = project(far, x, 0.05)
    assert torch.allclose(out, torch.tensor([-1.0, -0.93, -0.05, 1.0, 0.95]))


def test_pgd_updates_its_input_at_every_step(net):
    x = images()
    seen = []
    loss = disruption(net, x)

    def recording(x_adv):
        seen.append(x_adv.detach().clone())
        return loss(x_adv)

    pgd(x, recording, EPS, 5, STEP, rng=torch.Generator().manual_seed(0))
    assert len(seen) == 6  # 5 gradient steps + the returned image's loss
    for before, after in zip(seen, seen[1:]):
        assert not torch.equal(before, after)


def test_fgsm_is_one_signed_step_of_size_eps(net):
    x = images()
    loss = towards_black(net)
    x0 = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(x0).sum(), x0)
    expected = (x + EPS * grad.sign()).clamp(-1, 1)
    result = fgsm(x, loss, EPS)
    assert torch.allclose(result.x_adv, expected, atol=1e-7)
    assert len(result.losses) == 2 and result.losses[1] > result.losses[0]


def test_gaussian_noise_has_linf_eps_per_image():
    x = images() * 0.5  # inside the range by more than eps: no clipping
    result = gaussian_noise(x, EPS, torch.Generator().manual_seed(3))
    per_image = (result.x_adv - x).abs().flatten(1).amax(dim=1)
    assert torch.allclose(per_image, torch.full_like(per_image, EPS), atol=1e-6)
    delta = (result.x_adv - x).flatten()
    assert abs(float(delta.mean())) < 0.1 * EPS and float((delta.abs() < EPS / 2).float().mean()) > 0.5  # Gaussian-like
    assert result.losses == []


def test_bim_is_deterministic_and_pgd_follows_its_seed(net):
    x = images()
    loss = towards_black(net)
    assert torch.equal(bim(x, loss, EPS, STEPS, STEP).x_adv, bim(x, loss, EPS, STEPS, STEP).x_adv)
    a = pgd(x, loss, EPS, STEPS, STEP, rng=torch.Generator().manual_seed(7)).x_adv
    b = pgd(x, loss, EPS, STEPS, STEP, rng=torch.Generator().manual_seed(7)).x_adv
    c = pgd(x, loss, EPS, STEPS, STEP, rng=torch.Generator().manual_seed(8)).x_adv
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_without_random_start_a_disruption_loss_cannot_leave_the_clean_image(net):
    """Why poison_faces refuses bim/fgsm with the mse loss: the gradient at x is exactly zero."""
    x = images()
    assert torch.equal(bim(x, disruption(net, x), EPS, STEPS, STEP).x_adv, x)


def test_pgd_works_inside_a_no_grad_block(net):
    x = images()
    with torch.no_grad():
        result = pgd(x, disruption(net, x), EPS, 3, STEP, rng=torch.Generator().manual_seed(0))
    assert result.losses[-1] > result.losses[0]


def test_model_parameters_collect_no_gradient(net):
    x = images()
    pgd(x, disruption(net, x), EPS, 2, STEP, rng=torch.Generator().manual_seed(0))
    assert all(p.grad is None for p in net.parameters())


def test_clear_errors_for_misuse(net):
    x = images()
    loss = disruption(net, x)
    with pytest.raises(ValueError, match="unknown attack 'cw'"):
        run_attack("cw", x, loss, EPS, STEPS, STEP)
    with pytest.raises(ValueError, match="seeded torch.Generator"):
        pgd(x, loss, EPS, STEPS, STEP)
    with pytest.raises(ValueError, match="seeded torch.Generator"):
        run_attack("gaussian", x, loss, EPS, STEPS, STEP)
    with pytest.raises(ValueError, match="outside the valid range"):
        bim(x * 2, loss, EPS, STEPS, STEP)
