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
* ``ddpm_reverse``: the seed's mode: ``start_step`` ancestral reverse steps run straight on the
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

Randomness comes only from the explicit ``generator`` (forward noise and DDPM variance noise); a
list of per-image generators, as diffusers accepts, makes each face's result independent of the
batch it is purified in.

Reject step (the seed's "delete disturbing images"): a face the purifier had to change a lot is
presumed poisoned beyond repair and dropped. One measure serves both the threshold and the check,
the per-image mean absolute error to its own input, ``purification_distance`` (MAE rather than
MSE: it is what the seed's threshold uses, and it is not dominated by a few strongly changed
pixels). The threshold is calibrated on clean faces the purifier's model never trained on
(``calibration.py``) by one of two rules (``REJECT_RULES``):

* ``quantile`` (default): the (1 - r) quantile of the clean faces' changes, so that a share r of
  clean faces (``purify.reject_clean_rate``, 5 %) is dropped and the rule's cost in clean data is
  known in advance;
* ``factor``: the seed's factor x the mean change of a clean face. The seed derives this threshold
  from mean |x - D(x)| but checks each face's MSE against it, a mismatch of units under which its
  check almost never fires; here the check uses the same measure, and then a factor below 1 puts
  the threshold under the average clean face, so many clean faces go too (measured on the demo's
  faces with JPEG q75, median 3 and blur sigma 1: 100 %, 50 % and 88 % of clean faces at 0.7).

Quality against the clean (unpoisoned) face, per image: ``pur_l2`` (MSE on [-1, 1]),
``pur_psnr`` (dB, data range 2; inf when identical), ``pur_ssim`` (scikit-image SSIM on the
8-bit RGB images). What purification does to the generator's outputs is measured with
``robust_deepfake.disruption`` (``generator_outputs``, ``disruption_table``).
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from pathlib import Path
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity
from tqdm import tqdm

from robust_deepfake.atomic import write_image
from robust_deepfake.config import PURIFIER_CONFIG_KEYS
from robust_deepfake.disruption import DATA_RANGE
from robust_deepfake.manifest import media_slug
from robust_deepfake.poison import read_crops, to_tensor
from robust_deepfake.seeding import item_seed

if TYPE_CHECKING:  # diffusers costs ~5 s at import and only the diffusion purifiers need it
    from diffusers import DDPMScheduler, UNet2DModel

log = logging.getLogger(__name__)

Generator = torch.Generator | Sequence[torch.Generator]
Info = dict[str, Any]
SAMPLERS = ("ddpm", "ddim")
DIFFUSION_PURIFIERS = frozenset({"diffpure", "ddpm_reverse"})
REJECT_RULES = ("quantile", "factor", "none")
PURIFICATION_METRICS = ["pur_l2", "pur_psnr", "pur_ssim"]
_MODEL_ARGUMENTS = {"images", "unet", "scheduler", "generator"}


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


@torch.no_grad()
def diffpure(images: torch.Tensor, unet: UNet2DModel, scheduler: DDPMScheduler, t_star: int | float, *,
             generator: Generator, sampler: str = "ddpm", ddim_steps: int = 30) -> tuple[torch.Tensor, Info]:
    """DiffPure: forward-noise to t* (an int step, or a float fraction of T: `t_star_step`), then
    denoise to 0 with t* DDPM steps or `ddim_steps` DDIM steps (module docstring)."""
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
    noise = randn_tensor(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = scheduler.add_noise(x0, noise, torch.tensor([step - 1], device=x0.device))
    if sampler == "ddpm":
        x, info["unet_evals"] = _ddpm_denoise(x_t, unet, scheduler, step, generator)
    else:
        x, info["unet_evals"] = _ddim_denoise(x_t, unet, scheduler, step, ddim_steps)
    info["resized"] = tuple(x0.shape[-2:]) != tuple(images.shape[-2:])
    log.debug("diffpure: %d faces, %s", images.shape[0], info)
    return _from_unet(x, images), info


@torch.no_grad()
def ddpm_reverse(images: torch.Tensor, unet: UNet2DModel, scheduler: DDPMScheduler, start_step: int = 10, *,
                 generator: Generator) -> tuple[torch.Tensor, Info]:
    """The seed's purifier: `start_step` DDPM ancestral steps straight on the input, taken as
    x_start_step, without forward noise (removes what looks like that little noise)."""
    if not 0 <= start_step <= scheduler.config.num_train_timesteps:
        raise ValueError(f"start_step {start_step} must lie in [0, {scheduler.config.num_train_timesteps}]")
    info: Info = {"unet_evals": 0, "start_step": start_step, "resized": False}
    if start_step == 0:
        return images.clone(), info
    x = _to_unet(images, unet)
    info["resized"] = tuple(x.shape[-2:]) != tuple(images.shape[-2:])
    x, info["unet_evals"] = _ddpm_denoise(x, unet, scheduler, start_step, generator)
    log.debug("ddpm_reverse: %d faces, %s", images.shape[0], info)
    return _from_unet(x, images), info


def _to_unet(images: torch.Tensor, unet: UNet2DModel) -> torch.Tensor:
    return resize_images(images.to(device=unet.device, dtype=unet.dtype), unet_size(unet, images))


def _from_unet(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Back to the input's size, dtype and device, clamped: the resize may not leave [-1, 1] exactly."""
    return resize_images(x, tuple(like.shape[-2:])).clamp(-1.0, 1.0).to(device=like.device, dtype=like.dtype)


def _ddpm_denoise(x: torch.Tensor, unet: UNet2DModel, scheduler: DDPMScheduler, start: int,
                  generator: Generator) -> tuple[torch.Tensor, int]:
    """Ancestral DDPM steps from index start - 1 to 0. A fresh scheduler from the same config, so
    a caller's set_timesteps cannot change the step (each step goes to index t - 1)."""
    from diffusers import DDPMScheduler

    ddpm = DDPMScheduler.from_config(scheduler.config)
    steps = range(start - 1, -1, -1)
    for t in tqdm(steps, desc="ddpm denoise", leave=False, disable=None):
        eps = unet(x, t).sample
        x = ddpm.step(eps, t, x, generator=generator).prev_sample
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


def to_bgr_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) RGB in [-1, 1] -> (N, H, W, 3) uint8 BGR, rounded to the nearest level: the
    inverse of `poison.to_tensor`, i.e. the image as it would be written to disk."""
    rgb = ((images.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return np.ascontiguousarray(rgb.permute(0, 2, 3, 1).numpy()[..., ::-1])


def _per_uint8_image(images: torch.Tensor, operation: Callable[[np.ndarray], np.ndarray]) -> torch.Tensor:
    """Apply an OpenCV/numpy operation to each face as 8-bit BGR (the channel order OpenCV's JPEG
    codec assumes) and return RGB in [-1, 1] with the input's dtype and device."""
    out = np.stack([operation(image) for image in to_bgr_uint8(images)])
    return to_tensor(out, images.device).to(images.dtype)


# --- registry ----------------------------------------------------------------------------------------

PURIFIERS: dict[str, Callable[..., tuple[torch.Tensor, Info]]] = {
    "none": none,
    "jpeg": jpeg,
    "gaussian_blur": gaussian_blur,
    "median": median,
    "bit_depth": bit_depth,
    "diffpure": diffpure,
    "ddpm_reverse": ddpm_reverse,
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


def purify(name: str, images: torch.Tensor, settings: Mapping[str, Any], unet: UNet2DModel | None = None,
           scheduler: DDPMScheduler | None = None, generator: Generator | None = None) -> tuple[torch.Tensor, Info]:
    """Run purifier `name` with its `settings` (e.g. {"quality": 75} for jpeg, {"t_star": 0.3,
    "sampler": "ddim", "ddim_steps": 30} for diffpure). Diffusion purifiers need the UNet, its
    scheduler and a generator, and say so when one is missing."""
    allowed = purifier_settings(name)
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ValueError(f"purifier {name!r} has no setting(s) {unknown}; it takes {allowed}")
    if name not in DIFFUSION_PURIFIERS:
        return PURIFIERS[name](images, **settings)
    if unet is None or scheduler is None:
        raise ValueError(f"purifier {name!r} needs a diffusion model (unet and scheduler), but none was given: "
                         f"train or configure the DDPM purifier first")
    if generator is None:
        raise ValueError(f"purifier {name!r} is random: give it a seeded torch.Generator")
    return PURIFIERS[name](images, unet, scheduler, generator=generator, **settings)


# --- reject step -------------------------------------------------------------------------------------

def purification_distance(inputs: torch.Tensor, purified: torch.Tensor) -> torch.Tensor:
    """Per image (N,), float64: mean |input - purified| over all values, how much purification
    changed a face; the one measure of the reject step (module docstring)."""
    return (inputs.detach().double() - purified.detach().double()).abs().flatten(1).mean(dim=1).cpu()


def reject_threshold(clean_changes: np.ndarray | torch.Tensor, rule: str, value: float | None) -> float | None:
    """The change at or above which a purified face is taken for one the purifier could not repair,
    from the changes (`purification_distance`) of clean faces: `quantile`, their (1 - value)
    quantile, so about a share `value` of clean faces is dropped; `factor`, value x their mean (the
    seed's, 0.7); `none`, no threshold (keep every face)."""
    if rule not in REJECT_RULES:
        raise ValueError(f"unknown reject rule {rule!r}; known: {REJECT_RULES}")
    if rule == "none":
        return None
    changes = np.asarray(clean_changes, dtype=np.float64)
    if changes.size == 0:
        raise ValueError("the reject step needs clean calibration faces")
    if rule == "quantile":
        if not 0 <= value < 1:
            raise ValueError(f"the clean reject rate must be in [0, 1), got {value}")
        return float(np.quantile(changes, 1 - value)) if value > 0 else float(np.nextafter(changes.max(), np.inf))
    return float(value * changes.mean())


def reject_mask(inputs: torch.Tensor, purified: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, distances): a face whose `purification_distance` is at or above `threshold` is
    dropped (>=, as the seed); kept is a bool tensor (N,)."""
    distances = purification_distance(inputs, purified)
    return distances < threshold, distances


def reject_rate(kept: torch.Tensor) -> float:
    """Dropped / total (0 for no faces)."""
    return float((~kept).sum()) / kept.numel() if kept.numel() else 0.0


# --- quality against the clean face ----------------------------------------------------------------

def purification_table(clean: torch.Tensor, purified: torch.Tensor) -> pd.DataFrame:
    """One row per image: MSE, PSNR and SSIM of the purified face against the clean (unpoisoned)
    one; SSIM on the 8-bit images as they would be written (module docstring)."""
    mse = (clean.detach().double() - purified.detach().double()).pow(2).flatten(1).mean(dim=1).cpu().numpy()
    clean_8bit, purified_8bit = to_bgr_uint8(clean), to_bgr_uint8(purified)
    return pd.DataFrame({
        "image": range(len(mse)),
        "pur_l2": mse,
        "pur_psnr": [10 * math.log10(DATA_RANGE ** 2 / m) if m > 0 else math.inf for m in mse],
        "pur_ssim": [structural_similarity(a, b, channel_axis=-1, data_range=255)
                     for a, b in zip(clean_8bit, purified_8bit)],
    })


def summarise_purification(table: pd.DataFrame) -> pd.Series:
    """Means of the per-image measures; PSNR is averaged over finite values only (an unchanged
    face has infinite PSNR) and ``identical`` counts those faces."""
    psnr = table["pur_psnr"]
    finite = psnr[np.isfinite(psnr)]
    return pd.Series({
        "rows": len(table),
        "pur_l2": float(table["pur_l2"].mean()),
        "pur_psnr": float(finite.mean()) if len(finite) else math.inf,
        "pur_ssim": float(table["pur_ssim"].mean()),
        "identical": int((~np.isfinite(psnr)).sum()),
    })


# ---------------------------------------------------------------------------------------------
# The purify stage: every real face of split B, as the attacker left it


def face_generators(seed: int, rows: pd.DataFrame) -> list[torch.Generator]:
    """One generator per face, keyed by the face and not by its batch: a face is purified the same
    way whatever else is in the split."""
    return [torch.Generator().manual_seed(item_seed(seed, m, int(f), -1)) for m, f in zip(rows["media_id"], rows["frame_idx"])]


def purify_batches(name: str, images: torch.Tensor, rows: pd.DataFrame, settings: Mapping[str, Any], seed: int,
                   batch_size: int, unet: UNet2DModel | None = None,
                   scheduler: DDPMScheduler | None = None) -> tuple[torch.Tensor, int]:
    """Purify `images` (one per row of `rows`) in batches; return the purified faces and the UNet
    evaluations spent (per batch, summed)."""
    out, evals = [], 0
    generators = face_generators(seed, rows)
    for start in tqdm(range(0, len(images), batch_size), desc=f"purify {name}", unit="batch"):
        batch = images[start:start + batch_size]
        generator = generators[start:start + batch_size] if name in DIFFUSION_PURIFIERS else None
        with torch.no_grad():
            purified, info = purify(name, batch, settings, unet, scheduler, generator)
        out.append(purified)
        evals += int(info.get("unet_evals", 0))
    return (torch.cat(out) if out else images), evals


def calibration_threshold(name: str, calibration: torch.Tensor, calibration_rows: pd.DataFrame,
                          settings: Mapping[str, Any], rule: str, value: float | None, seed: int, batch_size: int,
                          unet: UNet2DModel | None, scheduler: DDPMScheduler | None) -> float | None:
    """The reject threshold from clean faces the defender owns and its model never trained on
    (`reject_threshold`'s rules). None (keep all) for rule `none` or for the purifier that changes
    nothing (a threshold of 0 would reject every face)."""
    if rule == "none" or name == "none":
        return None
    purified, _ = purify_batches(name, calibration, calibration_rows, settings, seed, batch_size, unet, scheduler)
    return reject_threshold(purification_distance(calibration, purified), rule, value)


def purify_split(rows: pd.DataFrame, name: str, settings: Mapping[str, Any], out_dir: str | Path, *, seed: int,
                 batch_size: int, threshold: float | None, unet: UNet2DModel | None = None,
                 scheduler: DDPMScheduler | None = None) -> tuple[pd.DataFrame, dict]:
    """Purify every face of `rows` (the poisoned manifest: `poisoned_path` is what the defender
    has, `face_path` the clean crop, known to the measures only), write the purified crops as
    8-bit PNG under `out_dir`, decide which are kept, and measure them against the clean faces.
    Returns the rows with the purify columns of the manifest (but the G measures) and the cost ({"unet_evals", "seconds"})."""
    started = time.perf_counter()
    inputs = to_tensor(read_crops(rows["poisoned_path"].tolist()))
    purified, evals = purify_batches(name, inputs, rows, settings, seed, batch_size, unet, scheduler)
    written = []
    for (media_id, frame_idx), image in zip(rows[["media_id", "frame_idx"]].itertuples(index=False),
                                            to_bgr_uint8(purified)):
        path = Path(out_dir) / media_slug(media_id) / f"{int(frame_idx):06d}.png"
        write_image(path, image)
        written.append(str(path))
    seconds = time.perf_counter() - started
    purified = to_tensor(read_crops(written))  # measure what was written, as the fakes will see it
    if threshold is None:
        kept, distances = torch.ones(len(rows), dtype=torch.bool), purification_distance(inputs, purified)
    else:
        kept, distances = reject_mask(inputs, purified, threshold)
    out = rows.copy()
    out["purifier"] = name
    out["purified_path"] = written
    out["kept"] = kept.numpy()
    out["pur_distance"] = distances.numpy()
    quality = purification_table(to_tensor(read_crops(rows["face_path"].tolist())), purified)
    for column in PURIFICATION_METRICS:
        out[column] = quality[column].to_numpy()
    return out, {"unet_evals": evals, "seconds": seconds}
