"""Purifiers: take the poison out of split B's real faces before fakes are made from them, decide
which faces could not be repaired, and measure how close the purified faces come to the clean ones.

Every purifier maps ``(N, 3, H, W)`` RGB images in [-1, 1] to purified images of the same shape,
dtype and device, in [-1, 1], and returns ``(purified, info)``; ``info["unet_evals"]`` counts the
diffusion UNet's forward passes (each over the whole batch), the cost that dominates.

Diffusion purifiers (a diffusers ``UNet2DModel`` predicting epsilon + its ``DDPMScheduler``):

* ``diffpure`` (Nie et al., DiffPure): noise the face to step t* with the closed form
  q(x_t* | x_0), then denoise back to 0, either with t* DDPM ancestral steps (t* UNet evaluations)
  or with ``ddim_steps`` deterministic DDIM steps (eta 0) spanning [t*, 0]. The forward noise
  drowns the perturbation; the reverse process rebuilds a face from what survives.
* ``ddpm_reverse``: the DDPM-purification reference's mode: ``start_step`` ancestral reverse steps run straight on the
  input, with no forward noise.

Step convention (diffusers'): the scheduler's timestep index k carries the noise level
``alphas_cumprod[k]``, i.e. k + 1 forward steps. "Noise to t*" means t* forward steps (index
t* - 1) and the reverse process then runs t* steps, indices t* - 1 .. 0, to a clean image, as
DiffPure's DDPM code does. So t* = 0 is the identity, and ``ddpm_reverse(start_step=k)`` is
``diffpure(t_star=k)`` without the forward noise (the input is treated as x_k).

The UNet runs at its own ``sample_size``: a face of another size is resized in and out
(bilinear, antialiased). That resize is itself a low-pass filter: 128 -> 64 -> 128 px blurs a face
even where the diffusion changes nothing (``bench/bench_purify.py`` measures it), so part of what
purification at another size removes, signal and poison alike, is the resize's doing. Nothing is
resized when nothing is denoised (t* = 0 returns the input unchanged).

Baselines (input-transformation defences) work on 8-bit images, as a face written to disk is:
[-1, 1] -> uint8 by rounding (x + 1) * 127.5, the OpenCV operation, then back to [-1, 1]. The
round trip itself moves a value by at most half a level (1/255 on [-1, 1]); ``none`` is the exact
identity and does not round.

Randomness comes only from the explicit ``rng`` (forward noise and DDPM variance noise); a
list of per-image RNGs, as diffusers accepts, makes each face's result independent of the
batch it is purified in.

The reject step and the purification measures are `defences.reject`.
"""

from __future__ import annotations

import inspect
import logging
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from robust_deepfake.devices import module_device
from robust_deepfake.tensors import bgr_to_signed, signed_to_bgr
from robust_deepfake.registry import PURIFIER_CONFIG_KEYS

if TYPE_CHECKING:  # diffusers costs ~5 s at import and only the diffusion purifiers need it
    from diffusers import DDPMScheduler, UNet2DModel

log = logging.getLogger(__name__)

RNG = torch.Generator | Sequence[torch.Generator]
Info = dict[str, Any]
SAMPLERS = ("ddpm", "ddim")
# what a purifier takes besides its settings: the images, its trained model's parts, its RNG
MODEL_PARTS = ("unet", "scheduler", "autoencoder")
_MODEL_ARGUMENTS = {"images", "rng", *MODEL_PARTS}


# --- diffusion purifiers --------------------------------------------------------------------------

def t_star_step(fraction_or_step: int | float, num_train_timesteps: int) -> int:
    """t* as a whole number of forward steps. An int is a step in [0, T]; a float is a fraction of
    T in [0, 1] (DiffPure reports t* as 0.1, 0.15 and 0.5 of T), rounded to the nearest step."""
    if isinstance(fraction_or_step, bool) or not isinstance(fraction_or_step, numbers.Real):
        raise TypeError(f"t_star must be an int step or a float fraction of T, got {fraction_or_step!r}")
    if not isinstance(fraction_or_step, numbers.Integral):
        if not 0.0 <= fraction_or_step <= 1.0:
            raise ValueError(f"t_star {fraction_or_step} as a float is a fraction of T and must lie in [0, 1] "
                             f"(give an int for a step count)")
        return round(float(fraction_or_step) * num_train_timesteps)
    if not 0 <= fraction_or_step <= num_train_timesteps:
        raise ValueError(f"t_star {fraction_or_step} must lie in [0, {num_train_timesteps}] (the scheduler's T)")
    return int(fraction_or_step)


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased resize to (height, width); the same tensor when already that size.
    Antialiasing keeps a downscale from aliasing high-frequency poison into the face."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)


def unet_size(unet: UNet2DModel, images: torch.Tensor) -> tuple[int, int]:
    """The (height, width) the UNet was trained at: its config's sample_size (int or pair), or
    the images' own size when the config leaves it open."""
    size = unet.config.sample_size
    if size is None:
        return tuple(images.shape[-2:])
    return (size, size) if isinstance(size, int) else tuple(size)


def diffpure(images: torch.Tensor, unet: UNet2DModel, scheduler: DDPMScheduler, t_star: int | float, *,
             rng: RNG, sampler: str = "ddpm", ddim_steps: int = 30) -> tuple[torch.Tensor, Info]:
    """DiffPure: forward-noise to t* (an int step, or a float fraction of T: `t_star_step`), then
    denoise to 0 with t* DDPM steps or `ddim_steps` DDIM steps (module docstring).

    Differentiable in the images, as DiffPure's own robust evaluations take it: the adaptive
    attacker backpropagates through every denoising step (memory grows with the steps); callers
    that only purify run it under `torch.no_grad()`."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown diffpure sampler {sampler!r}; known: {SAMPLERS}")
    step = t_star_step(t_star, scheduler.config.num_train_timesteps)
    if sampler == "ddim" and step > 0 and not 1 <= ddim_steps <= step:
        raise ValueError(f"ddim_steps must lie in [1, t*] = [1, {step}], got {ddim_steps}")
    info: Info = {"unet_evals": 0, "t_star": step, "sampler": sampler, "resized": False}
    if step == 0:
        return images.clone(), info
    from diffusers.utils.torch_utils import randn_tensor

    x0 = _to_unet(images, unet)
    noise = randn_tensor(x0.shape, generator=rng, device=x0.device, dtype=x0.dtype)
    x_t = scheduler.add_noise(x0, noise, torch.tensor([step - 1], device=x0.device))
    if sampler == "ddpm":
        x, info["unet_evals"] = _ddpm_denoise(x_t, unet, scheduler, step, rng)
    else:
        x, info["unet_evals"] = _ddim_denoise(x_t, unet, scheduler, step, ddim_steps)
    info["resized"] = tuple(x0.shape[-2:]) != tuple(images.shape[-2:])
    log.debug("diffpure: %d faces, %s", images.shape[0], info)
    return _from_unet(x, images), info


def ddpm_reverse(images: torch.Tensor, unet: UNet2DModel, scheduler: DDPMScheduler, start_step: int = 10, *,
                 rng: RNG) -> tuple[torch.Tensor, Info]:
    """The DDPM-purification reference's purifier: `start_step` DDPM ancestral steps straight on the input, taken as
    x_start_step, without forward noise (removes what looks like that little noise). Differentiable
    in the images, as `diffpure`."""
    if not 0 <= start_step <= scheduler.config.num_train_timesteps:
        raise ValueError(f"start_step {start_step} must lie in [0, {scheduler.config.num_train_timesteps}]")
    info: Info = {"unet_evals": 0, "start_step": start_step, "resized": False}
    if start_step == 0:
        return images.clone(), info
    x = _to_unet(images, unet)
    info["resized"] = tuple(x.shape[-2:]) != tuple(images.shape[-2:])
    x, info["unet_evals"] = _ddpm_denoise(x, unet, scheduler, start_step, rng)
    log.debug("ddpm_reverse: %d faces, %s", images.shape[0], info)
    return _from_unet(x, images), info


def _to_unet(images: torch.Tensor, unet: UNet2DModel) -> torch.Tensor:
    return resize_images(images.to(device=unet.device, dtype=unet.dtype), unet_size(unet, images))


def _from_unet(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Back to the input's size, dtype and device, clamped: the resize may not leave [-1, 1] exactly."""
    return resize_images(x, tuple(like.shape[-2:])).clamp(-1.0, 1.0).to(device=like.device, dtype=like.dtype)


def _ddpm_denoise(x: torch.Tensor, unet: UNet2DModel, scheduler: DDPMScheduler, start: int,
                  rng: RNG) -> tuple[torch.Tensor, int]:
    """Ancestral DDPM steps from index start - 1 to 0. A fresh scheduler from the same config, so
    a caller's set_timesteps cannot change the step (each step goes to index t - 1)."""
    from diffusers import DDPMScheduler

    ddpm = DDPMScheduler.from_config(scheduler.config)
    steps = range(start - 1, -1, -1)
    for t in tqdm(steps, desc="ddpm denoise", leave=False, disable=None):
        eps = unet(x, t).sample
        x = ddpm.step(eps, t, x, generator=rng).prev_sample
    return x, len(steps)


def _ddim_denoise(x: torch.Tensor, unet: UNet2DModel, scheduler: DDPMScheduler, start: int,
                  steps: int) -> tuple[torch.Tensor, int]:
    """Deterministic DDIM (eta 0, Song et al. eq. 12) over `steps` noise levels evenly spanning
    [start, 0], the last step landing on the clean image (alpha_bar 1).

    The update is written out because diffusers' DDIMScheduler fixes each step to
    T // num_inference_steps over the whole [T, 0]: it cannot take an arbitrary number of steps
    over [t*, 0]. Where the strides agree the two are equal (tests/test_purify.py checks it)."""
    config = scheduler.config
    if config.prediction_type != "epsilon" or config.thresholding:
        raise ValueError(f"diffpure's DDIM sampler needs an epsilon-predicting scheduler without dynamic "
                         f"thresholding (got prediction_type={config.prediction_type!r}, "
                         f"thresholding={config.thresholding})")
    alphas = scheduler.alphas_cumprod.to(device=x.device, dtype=torch.float64)
    levels = np.linspace(start, 0, steps + 1).round().astype(int)  # strictly decreasing as steps <= start
    for level, next_level in tqdm(list(zip(levels[:-1], levels[1:])), desc="ddim denoise", leave=False, disable=None):
        t, prev = int(level) - 1, int(next_level) - 1
        alpha_t = alphas[t]
        alpha_prev = alphas[prev] if prev >= 0 else alphas.new_tensor(1.0)
        eps = unet(x, t).sample
        x0 = (x - (1 - alpha_t).sqrt().to(x.dtype) * eps) / alpha_t.sqrt().to(x.dtype)
        if config.clip_sample:
            x0 = x0.clamp(-config.clip_sample_range, config.clip_sample_range)
        x = alpha_prev.sqrt().to(x.dtype) * x0 + (1 - alpha_prev).sqrt().to(x.dtype) * eps
    return x, steps


# --- baselines on 8-bit images ---------------------------------------------------------------------

def none(images: torch.Tensor) -> tuple[torch.Tensor, Info]:
    """No purification: the undefended baseline (the exact input, not rounded to 8 bits)."""
    return images.clone(), {"unet_evals": 0}


def jpeg(images: torch.Tensor, quality: int = 75) -> tuple[torch.Tensor, Info]:
    """JPEG compression at `quality` (1-100): drops the high frequencies a perturbation lives in."""
    if not 1 <= quality <= 100:
        raise ValueError(f"jpeg quality must lie in [1, 100], got {quality}")

    def compress(image: np.ndarray) -> np.ndarray:
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise OSError("OpenCV could not encode a JPEG image")
        return cv2.imdecode(encoded, cv2.IMREAD_COLOR)

    return _per_uint8_image(images, compress), {"unet_evals": 0}


def gaussian_blur(images: torch.Tensor, sigma: float = 1.0) -> tuple[torch.Tensor, Info]:
    """Gaussian blur of standard deviation `sigma` pixels (kernel size from sigma, OpenCV's rule)."""
    if sigma <= 0:
        raise ValueError(f"gaussian_blur sigma must be > 0, got {sigma}")
    return _per_uint8_image(images, lambda im: cv2.GaussianBlur(im, (0, 0), sigmaX=sigma)), {"unet_evals": 0}


def median(images: torch.Tensor, kernel: int = 3) -> tuple[torch.Tensor, Info]:
    """Median filter over kernel x kernel pixels (odd, >= 3): removes isolated outliers, keeps edges."""
    if kernel < 3 or kernel % 2 == 0:
        raise ValueError(f"median kernel must be odd and >= 3, got {kernel}")
    return _per_uint8_image(images, lambda im: cv2.medianBlur(im, kernel)), {"unet_evals": 0}


def bit_depth(images: torch.Tensor, bits: int = 4) -> tuple[torch.Tensor, Info]:
    """Bit-depth reduction (feature squeezing, Xu et al.): 2**bits evenly spaced levels per channel
    over 0..255; perturbations smaller than a level vanish."""
    if not 1 <= bits <= 8:
        raise ValueError(f"bit_depth bits must lie in [1, 8], got {bits}")
    top = 2 ** bits - 1

    def squeeze(image: np.ndarray) -> np.ndarray:
        levels = np.rint(image.astype(np.float64) / 255.0 * top)
        return np.rint(levels / top * 255.0).astype(np.uint8)

    return _per_uint8_image(images, squeeze), {"unet_evals": 0}


# --- a trained reformer -------------------------------------------------------------------------

def magnet(images: torch.Tensor, autoencoder: torch.nn.Module) -> tuple[torch.Tensor, Info]:
    """MagNet's reformer (`defences.magnet`): one pass of the denoising autoencoder trained on
    split A's clean faces, which pulls a face towards the faces it learnt."""
    return autoencoder(images.to(module_device(autoencoder))).to(images).clamp(-1, 1), {"unet_evals": 0}


def _per_uint8_image(images: torch.Tensor, operation: Callable[[np.ndarray], np.ndarray]) -> torch.Tensor:
    """Apply an OpenCV/numpy operation to each face as 8-bit BGR (the channel order OpenCV's JPEG
    codec assumes) and return RGB in [-1, 1] with the input's dtype and device."""
    out = np.stack([operation(image) for image in signed_to_bgr(images)])
    return bgr_to_signed(out, images.device).to(images.dtype)


# --- registry ----------------------------------------------------------------------------------------

PURIFIERS: dict[str, Callable[..., tuple[torch.Tensor, Info]]] = {
    "none": none,
    "jpeg": jpeg,
    "gaussian_blur": gaussian_blur,
    "median": median,
    "bit_depth": bit_depth,
    "diffpure": diffpure,
    "ddpm_reverse": ddpm_reverse,
    "defensive_model_1": magnet,
    "defensive_model_2": magnet,
    "both": diffpure,  # the reference's `both`: DiffPure here, the adversarially trained face swap after it
}


def purifier_settings(name: str) -> list[str]:
    """The settings (keyword arguments besides images and the model) purifier `name` takes."""
    if name not in PURIFIERS:
        raise ValueError(f"unknown purifier {name!r}; known: {sorted(PURIFIERS)}")
    return [p for p in inspect.signature(PURIFIERS[name]).parameters if p not in _MODEL_ARGUMENTS]


# Which key of the config's `purify` section feeds each setting (config/config.schema.json).
def settings_from_config(name: str, purify_config: Mapping[str, Any]) -> dict[str, Any]:
    """Purifier `name`'s settings from the config's `purify` section. The config gives t* as a
    fraction of T, so it is passed on as a float: a YAML ``1`` means all of T, never step 1."""
    if name not in PURIFIER_CONFIG_KEYS:
        raise ValueError(f"unknown purifier {name!r}; known: {sorted(PURIFIER_CONFIG_KEYS)}")
    settings = {setting: purify_config[key] for setting, key in PURIFIER_CONFIG_KEYS[name].items()}
    if "t_star" in settings:
        settings["t_star"] = float(settings["t_star"])
    return settings


def purify(name: str, images: torch.Tensor, settings: Mapping[str, Any], model: Mapping[str, Any] | None = None,
           rng: RNG | None = None) -> tuple[torch.Tensor, Info]:
    """Run purifier `name` with its `settings` (e.g. {"quality": 75} for jpeg, {"t_star": 0.3,
    "sampler": "ddim", "ddim_steps": 30} for diffpure). A purifier with a trained model takes its
    parts from `model` ({"unet", "scheduler"} for the diffusion purifiers, {"autoencoder"} for
    MagNet's, as `defences.loading.load_purifier_model` gives them); the random ones a seeded RNG.
    What is missing is said, not guessed."""
    allowed = purifier_settings(name)
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ValueError(f"purifier {name!r} has no setting(s) {unknown}; it takes {allowed}")
    takes = inspect.signature(PURIFIERS[name]).parameters
    parts = [part for part in MODEL_PARTS if part in takes]
    missing = [part for part in parts if (model or {}).get(part) is None]
    if missing:
        raise ValueError(f"purifier {name!r} needs its trained model ({', '.join(missing)}), but none was given: "
                         f"train or configure that model first")
    if "rng" in takes and rng is None:
        raise ValueError(f"purifier {name!r} is random: give it a seeded torch.Generator")
    extra = {"rng": rng} if "rng" in takes else {}
    return PURIFIERS[name](images, **{part: model[part] for part in parts}, **extra, **settings)
