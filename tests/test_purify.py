"""Purifiers: t* = 0 is the exact identity, DDPM/DDIM cost what they claim in UNet evaluations, the
DDIM update equals diffusers' DDIMScheduler where both can run, seeds decide everything, the
baselines do what their names say on hand-made images, and the reject rule and quality table give
the values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from diffusers.utils.torch_utils import randn_tensor

from robust_deepfake.defences.magnet import STRUCTURES, MagNetAutoencoder
from robust_deepfake.defences.purifiers import (PURIFIERS, bit_depth, ddpm_reverse, diffpure, gaussian_blur, jpeg,
                                                median, none, purifier_settings, purify, resize_images,
                                                settings_from_config, t_star_step)
from robust_deepfake.defences.reject import (purification_distance, purification_table, reject_mask, reject_rate,
                                             reject_threshold, summarise_purification)

UNET_SIZE = 16


@pytest.fixture(scope="module")
def unet() -> UNet2DModel:
    """A tiny random epsilon-predicting UNet (weights from seed 0)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = UNet2DModel(sample_size=UNET_SIZE, in_channels=3, out_channels=3, block_out_channels=(8, 16),
                            layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
                            up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4)
    return model.eval()


@pytest.fixture(scope="module")
def scheduler() -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")


@pytest.fixture
def count_evals(unet):
    """A list that grows by one per UNet forward pass while the test runs."""
    calls: list[int] = []
    handle = unet.register_forward_hook(lambda *args: calls.append(1))
    yield calls
    handle.remove()


def images(seed: int = 1, n: int = 2, size: int = UNET_SIZE) -> torch.Tensor:
    return torch.rand((n, 3, size, size), generator=torch.Generator().manual_seed(seed)) * 2 - 1


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- diffusion purifiers --------------------------------------------------------------------------

@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
@pytest.mark.parametrize("size", [UNET_SIZE, 24])
def test_t_star_zero_is_the_exact_identity(unet, scheduler, count_evals, sampler, size):
    x = images(size=size)
    out, info = diffpure(x, unet, scheduler, t_star=0, sampler=sampler, ddim_steps=5, rng=seeded(0))
    assert torch.equal(out, x) and out is not x
    assert info["unet_evals"] == 0 and not info["resized"] and count_evals == []
    out, info = ddpm_reverse(x, unet, scheduler, start_step=0, rng=seeded(0))
    assert torch.equal(out, x) and info["unet_evals"] == 0 and count_evals == []


def test_unet_evaluations_are_counted_and_reported(unet, scheduler, count_evals):
    x = images()
    _, info = diffpure(x, unet, scheduler, t_star=40, sampler="ddpm", rng=seeded(0))
    assert info["unet_evals"] == len(count_evals) == 40
    count_evals.clear()
    _, info = diffpure(x, unet, scheduler, t_star=40, sampler="ddim", ddim_steps=7, rng=seeded(0))
    assert info["unet_evals"] == len(count_evals) == 7
    count_evals.clear()
    _, info = ddpm_reverse(x, unet, scheduler, start_step=10, rng=seeded(0))
    assert info["unet_evals"] == len(count_evals) == 10


def test_ddim_with_ten_times_fewer_steps_equals_diffusers_ddim_scheduler(unet, scheduler, count_evals):
    """t* = 300 with 30 DDIM steps (stride 10): diffusers' DDIMScheduler can run this one case
    (100 inference steps over T = 1000), from the same noised image; the results must agree."""
    x = images(size=UNET_SIZE)
    out, info = diffpure(x, unet, scheduler, t_star=300, sampler="ddim", ddim_steps=30, rng=seeded(3))
    assert info["unet_evals"] == 30 and not info["resized"]

    noise = randn_tensor(x.shape, generator=seeded(3), dtype=x.dtype)
    sample = scheduler.add_noise(x, noise, torch.tensor([299]))
    ddim = DDIMScheduler.from_config(scheduler.config)
    ddim.set_timesteps(100)
    with torch.no_grad():
        for t in range(299, -1, -10):
            sample = ddim.step(unet(sample, t).sample, t, sample, eta=0.0).prev_sample
    torch.testing.assert_close(out, sample.clamp(-1, 1), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, x, atol=1e-2)  # the round trip through t* = 300 did change the images


def test_diffpure_ddpm_runs_the_full_300_steps(unet, scheduler, count_evals):
    out, info = diffpure(images(), unet, scheduler, t_star=0.3, sampler="ddpm", rng=seeded(0))
    assert info["t_star"] == 300 and info["unet_evals"] == len(count_evals) == 300
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_diffpure_is_decided_by_its_generator(unet, scheduler, sampler):
    x = images()

    def run(seed):
        return diffpure(x, unet, scheduler, t_star=20, sampler=sampler, ddim_steps=5, rng=seeded(seed))[0]

    assert torch.equal(run(7), run(7))
    assert not torch.allclose(run(7), run(8), atol=1e-3)


def test_per_image_generators_make_a_face_independent_of_its_batch(unet, scheduler):
    x = images(n=3)
    batch, _ = diffpure(x, unet, scheduler, t_star=15, rng=[seeded(10), seeded(11), seeded(12)])
    alone, _ = diffpure(x[1:2], unet, scheduler, t_star=15, rng=[seeded(11)])
    torch.testing.assert_close(batch[1:2], alone, atol=1e-5, rtol=1e-5)


def test_other_sizes_are_resized_to_the_unet_and_back(unet, scheduler, count_evals):
    x = images(size=24)
    out, info = diffpure(x, unet, scheduler, t_star=5, rng=seeded(0))
    assert out.shape == x.shape and info["resized"] and count_evals == [1] * 5


def test_resize_round_trip_blurs_and_same_size_is_untouched():
    x = images(size=32)
    assert resize_images(x, (32, 32)) is x
    round_trip = resize_images(resize_images(x, (16, 16)), (32, 32))
    assert round_trip.shape == x.shape
    assert round_trip.std() < 0.8 * x.std()  # random pixels lose most of their high frequencies


def test_t_star_step_takes_steps_and_fractions():
    assert t_star_step(300, 1000) == 300
    assert t_star_step(0.3, 1000) == 300
    assert t_star_step(0.15, 1000) == 150
    assert t_star_step(1.0, 1000) == 1000
    assert t_star_step(0, 1000) == 0
    assert t_star_step(np.int64(250), 1000) == 250 and t_star_step(np.float64(0.5), 1000) == 500
    for bad in (1.5, -0.1, -1, 1001):
        with pytest.raises(ValueError):
            t_star_step(bad, 1000)
    with pytest.raises(TypeError):
        t_star_step(True, 1000)


def test_bad_diffusion_settings_are_refused(unet, scheduler):
    with pytest.raises(ValueError, match="sampler"):
        diffpure(images(), unet, scheduler, t_star=10, sampler="euler", rng=seeded(0))
    with pytest.raises(ValueError, match="ddim_steps"):
        diffpure(images(), unet, scheduler, t_star=10, sampler="ddim", ddim_steps=11, rng=seeded(0))
    with pytest.raises(ValueError, match="start_step"):
        ddpm_reverse(images(), unet, scheduler, start_step=1001, rng=seeded(0))


# --- every purifier through the registry ----------------------------------------------------------

SETTINGS = {
    "none": {},
    "jpeg": {"quality": 50},
    "gaussian_blur": {"sigma": 1.0},
    "median": {"kernel": 3},
    "bit_depth": {"bits": 3},
    "diffpure": {"t_star": 0.01, "sampler": "ddim", "ddim_steps": 3},
    "ddpm_reverse": {"start_step": 3},
    "both": {"t_star": 0.01, "sampler": "ddim", "ddim_steps": 3},
    "defensive_model_1": {},
    "defensive_model_2": {},
}


@pytest.mark.parametrize("name", sorted(PURIFIERS))
def test_every_purifier_keeps_shape_dtype_and_range(unet, scheduler, name):
    x = images(size=24)
    x[0, 0, 0, 0], x[0, 1, 0, 0] = 1.0, -1.0
    model = {"unet": unet, "scheduler": scheduler,
             "autoencoder": MagNetAutoencoder(name if name in STRUCTURES else "defensive_model_1").eval()}
    with torch.no_grad():
        out, info = purify(name, x, SETTINGS[name], model=model, rng=seeded(0))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert torch.isfinite(out).all() and out.min() >= -1 and out.max() <= 1
    assert isinstance(info["unet_evals"], int)
    assert set(SETTINGS[name]) <= set(purifier_settings(name))


def test_purify_says_what_is_missing_or_wrong():
    x = images()
    with pytest.raises(ValueError, match=r"'diffpure' needs its trained model \(unet, scheduler\)"):
        purify("diffpure", x, {"t_star": 10})
    with pytest.raises(ValueError, match=r"'defensive_model_2' needs its trained model \(autoencoder\)"):
        purify("defensive_model_2", x, {}, model={"unet": object()})
    with pytest.raises(ValueError, match="seeded torch.Generator"):
        purify("ddpm_reverse", x, {}, model={"unet": object(), "scheduler": object()})
    with pytest.raises(ValueError, match="no setting"):
        purify("jpeg", x, {"qualty": 50})
    with pytest.raises(ValueError, match="unknown purifier"):
        purify("magic", x, {})


# --- baselines on hand-made images ------------------------------------------------------------------

def constant_image(values: list[float], size: int = 4) -> torch.Tensor:
    """One image per value, every pixel and channel at that value."""
    return torch.tensor(values).view(-1, 1, 1, 1).expand(-1, 3, size, size).clone()


def test_none_is_the_exact_input():
    x = images()
    out, info = none(x)
    assert torch.equal(out, x) and info == {"unet_evals": 0}


def test_bit_depth_one_bit_maps_to_the_two_range_ends():
    out, _ = bit_depth(constant_image([-1.0, -0.6, -0.1, 0.1, 0.6, 1.0]), bits=1)
    assert out[:, 0, 0, 0].tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]


def test_bit_depth_keeps_only_its_levels():
    out, _ = bit_depth(images(size=8), bits=2)
    levels = np.unique(np.rint((out.numpy() + 1) * 127.5))
    assert set(levels) <= {0, 85, 170, 255} and len(levels) > 1
    eight_bit, _ = bit_depth(images(), bits=8)  # 8 bits: only the round trip's rounding to a level
    assert (eight_bit - images()).abs().max() <= 1 / 255 + 1e-6


def test_median_removes_a_single_pixel_spike():
    x = constant_image([-0.2], size=9)
    x[0, :, 4, 4] = 1.0
    out, _ = median(x, kernel=3)
    expected = torch.full_like(x, round((-0.2 + 1) * 127.5) / 127.5 - 1)
    torch.testing.assert_close(out, expected)


def test_jpeg_changes_a_noisy_image_but_keeps_its_mean():
    x = images(size=32) * 0.5
    out, _ = jpeg(x, quality=30)
    assert (out - x).abs().mean() > 0.05
    assert abs(out.mean() - x.mean()) < 0.02


def test_gaussian_blur_smooths_noise_and_keeps_a_flat_image():
    x = images(size=32)
    out, _ = gaussian_blur(x, sigma=2.0)
    assert out.std() < 0.5 * x.std() and abs(out.mean() - x.mean()) < 0.02
    flat = constant_image([0.2], size=16)
    torch.testing.assert_close(gaussian_blur(flat, sigma=2.0)[0], flat, atol=1 / 255, rtol=0)


@pytest.mark.parametrize("call", [lambda x: jpeg(x, quality=0), lambda x: gaussian_blur(x, sigma=0),
                                  lambda x: median(x, kernel=4), lambda x: bit_depth(x, bits=0)])
def test_baselines_refuse_bad_settings(call):
    with pytest.raises(ValueError):
        call(images())


# --- reject step -----------------------------------------------------------------------------------

def test_the_factor_rule_is_factor_times_mean_clean_error():
    clean = torch.zeros(2, 3, 4, 4)
    purified = constant_image([0.5, -0.25])  # per-image mean |error| 0.5 and 0.25
    changes = purification_distance(clean, purified)
    assert changes.tolist() == [0.5, 0.25]
    assert reject_threshold(changes, "factor", 0.7) == 0.7 * 0.375
    assert reject_threshold(changes, "factor", 0.5) == 0.1875
    assert reject_threshold(changes, "none", None) is None


def test_the_quantile_rule_drops_the_stated_share_of_clean_faces():
    """Calibrated on 100 000 changes of a known distribution, it drops 5 % (and 20 %) of another
    100 000 drawn from it; a rate of 0 keeps every calibration face."""
    rng = np.random.default_rng(0)
    calibration, fresh = rng.gamma(2.0, 0.01, 100_000), rng.gamma(2.0, 0.01, 100_000)
    for rate in (0.05, 0.2):
        threshold = reject_threshold(calibration, "quantile", rate)
        assert np.mean(fresh >= threshold) == pytest.approx(rate, abs=0.006)
    assert np.mean(calibration >= reject_threshold(calibration, "quantile", 0.0)) == 0
    with pytest.raises(ValueError, match="unknown reject rule"):
        reject_threshold(calibration, "median", 0.5)


def test_a_face_at_the_threshold_is_rejected_and_below_kept():
    inputs = torch.zeros(4, 3, 4, 4)
    purified = constant_image([0.1875, 0.1875 - 2 ** -10, 0.5, -0.1875])
    threshold = reject_threshold(purification_distance(torch.zeros(2, 3, 4, 4), constant_image([0.5, 0.25])),
                                 "factor", 0.5)
    kept, distances = reject_mask(inputs, purified, threshold)
    assert threshold == 0.1875
    assert kept.tolist() == [False, True, False, False]
    assert distances.tolist() == [0.1875, 0.1875 - 2 ** -10, 0.5, 0.1875]
    assert reject_rate(kept) == 0.75
    assert reject_rate(torch.zeros(0, dtype=torch.bool)) == 0.0


# --- quality against the clean face ----------------------------------------------------------------

def test_purification_table_values():
    clean = constant_image([0.0, -0.5], size=8)
    purified = clean.clone()
    purified[1] += 0.5  # MSE 0.25
    table = purification_table(clean, purified)
    assert table["pur_l2"].tolist() == [0.0, 0.25]
    assert table["pur_psnr"][0] == math.inf
    assert table["pur_psnr"][1] == pytest.approx(10 * math.log10(4 / 0.25))
    assert table["pur_ssim"][0] == pytest.approx(1.0)
    summary = summarise_purification(table)
    assert summary["rows"] == 2 and summary["identical"] == 1
    assert summary["pur_psnr"] == pytest.approx(10 * math.log10(16)) and summary["pur_l2"] == 0.125


def test_ssim_falls_when_noise_is_added():
    clean = images(size=32) * 0.3
    noisy = (clean + 0.3 * images(seed=5, size=32)).clamp(-1, 1)
    ssim = purification_table(clean, noisy)["pur_ssim"]
    assert (ssim < 0.9).all() and (ssim > -1).all()


def test_settings_from_config_reads_the_purify_section():
    section = {"t_star": 1, "sampler": "ddim", "ddim_steps": 30, "reverse_start": 10, "jpeg_quality": 75,
               "blur_sigma": 1.0, "median_kernel": 3, "bits": 4, "reject_factor": 0.7, "batch_size": 8}
    assert settings_from_config("diffpure", section) == {"t_star": 1.0, "sampler": "ddim", "ddim_steps": 30}
    assert t_star_step(settings_from_config("diffpure", section)["t_star"], 1000) == 1000  # a fraction, not step 1
    assert settings_from_config("ddpm_reverse", section) == {"start_step": 10}
    assert settings_from_config("jpeg", section) == {"quality": 75}
    for name in PURIFIERS:
        assert set(settings_from_config(name, section)) == set(purifier_settings(name))
    with pytest.raises(ValueError, match="unknown purifier"):
        settings_from_config("adv_generator", section)
