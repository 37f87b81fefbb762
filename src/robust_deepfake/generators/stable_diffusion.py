"""Diffusion-made fakes, as in the DeepFakeFace study: Stable Diffusion inpainting of the face region
of a real crop, and Stable Diffusion text-to-image faces.

The models come from a configured LOCAL diffusers model folder (`diffusion.inpaint_model_dir` or
`diffusion.text2img_model_dir`,
one holding `model_index.json`, e.g. a `save_pretrained` copy of an SD 1.5 inpainting or
text-to-image model); nothing is ever downloaded: every load passes ``local_files_only=True``. With
no folder configured the generator makes no fakes and says so, so the rest of the pipeline still
runs on a machine without the multi-GB weights.

Stable Diffusion works at its native resolution (``unet sample_size * vae scale factor``, 512 for
SD 1.5), far above the 128 px crops: crops and masks are resized up to it and the results back down
to the crop size. The inpainting pipeline re-encodes the whole image through the VAE, which changes
pixels outside the mask too; the result is therefore composited back over the original crop with
the face mask, so only the face region differs from the real image (as in the face swaps).

Every image gets its own RNG seeded ``seed + i`` (i = its index in the list), so an image's
fake depends only on the image and that seed, not on the batch it happens to share.

Prompts are per face (`face_prompt`): the configured template names the person and the attributes
the dataset gives the real face, as the DeepFakeFace study prompts its text-to-image fakes with
each wiki identity's name, so every person's fakes are asked for as that person.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from robust_deepfake.generators.face_mask import paste_face
from robust_deepfake.manifest import ATTR_PREFIX

log = logging.getLogger(__name__)

PipelineKind = Literal["inpaint", "text2img"]
MODEL_INDEX = "model_index.json"


def _pipeline_class(kind: PipelineKind):
    """The diffusers pipeline class for `kind`; imported lazily because diffusers and transformers
    take seconds to import and most stages never need them."""
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

    classes = {"inpaint": StableDiffusionInpaintPipeline, "text2img": StableDiffusionPipeline}
    if kind not in classes:
        raise ValueError(f"unknown diffusion generator kind {kind!r} (expected one of {sorted(classes)})")
    return classes[kind]


def _resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """Accept the config's dtype name ("float16", "float32", "bfloat16") as well as a torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"unknown torch dtype {dtype!r} (expected e.g. 'float16' or 'float32')")
    return resolved


def load_pipeline(kind: PipelineKind, model_dir: str | Path | None, device: str | torch.device = "cpu",
                  dtype: torch.dtype | str = torch.float32):
    """The Stable Diffusion pipeline of `kind` ("inpaint" | "text2img") from the local diffusers
    folder `model_dir`, on `device` in `dtype`, without network access; None when no folder is
    configured (the caller then makes no fakes of this kind).

    The safety checker is dropped: it blacks out images it flags, which would put black squares
    among the fakes and teach the detector a shortcut."""
    pipeline_class = _pipeline_class(kind)
    torch_dtype = _resolve_dtype(dtype)  # a typo in the config fails here, not after a multi-GB load
    if model_dir is None:
        log.warning("no Stable Diffusion model folder configured (diffusion.%s_model_dir): "
                    "generator %s makes no fakes", kind, kind)
        return None
    folder = Path(model_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"Stable Diffusion model folder {folder} (diffusion.{kind}_model_dir) does not "
                                f"exist; it must be a local diffusers model folder, as written by save_pretrained")
    if not (folder / MODEL_INDEX).is_file():
        raise FileNotFoundError(f"{folder} (diffusion.{kind}_model_dir) is not a diffusers model folder: "
                                f"{MODEL_INDEX} is missing (a folder written by save_pretrained has it, beside the "
                                f"unet/, vae/, text_encoder/, tokenizer/ and scheduler/ sub-folders)")
    try:
        pipe = pipeline_class.from_pretrained(folder, local_files_only=True, safety_checker=None,
                                              requires_safety_checker=False)
    except (OSError, ValueError, TypeError) as error:
        raise OSError(f"could not load a {pipeline_class.__name__} from {folder}: {error}") from error
    pipe = pipe.to(device=device, dtype=torch_dtype)  # the load's dtype keyword changed name across releases
    pipe.set_progress_bar_config(disable=True)  # our tqdm counts batches; one bar per call would flood the log
    log.info("loaded %s from %s (native %d px, %s, %s)", pipeline_class.__name__, folder, native_size(pipe),
             device, pipe.unet.dtype)
    return pipe


def native_size(pipe) -> int:
    """The side in pixels the pipeline's UNet was trained at (512 for SD 1.5): generating at another
    size degrades Stable Diffusion's output badly, so crops are resized to it instead."""
    return int(pipe.unet.config.sample_size * pipe.vae_scale_factor)


def _rngs(seed: int, start: int, count: int) -> list[torch.Generator]:
    """One CPU RNG per image, seeded seed + global index: reproducible on any device and
    independent of batching."""
    return [torch.Generator().manual_seed(seed + start + i) for i in range(count)]


def _resize(image: np.ndarray, size_hw: tuple[int, int], interpolation: int | None = None) -> np.ndarray:
    """`image` at `size_hw`; INTER_AREA when shrinking (no aliasing), cubic when enlarging (sharper
    than bilinear), unless `interpolation` is given."""
    height, width = size_hw
    if image.shape[:2] == (height, width):
        return image
    if interpolation is None:
        interpolation = cv2.INTER_AREA if image.shape[0] > height else cv2.INTER_CUBIC
    return cv2.resize(image, (width, height), interpolation=interpolation)


def _to_bgr_uint8(image_rgb: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """One pipeline output (H, W, 3) float RGB in [0, 1] -> uint8 BGR at `size_hw`."""
    image = np.clip(np.round(image_rgb * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(_resize(image, size_hw)[:, :, ::-1])


def _check_crops(crops_bgr: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> None:
    """Fail before any generation (minutes on a GPU) when crops and masks do not pair up."""
    if len(crops_bgr) != len(masks):
        raise ValueError(f"{len(crops_bgr)} crops but {len(masks)} masks")
    for index, (crop, mask) in enumerate(zip(crops_bgr, masks)):
        if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8:
            raise ValueError(f"crop {index}: expected a uint8 (H, W, 3) BGR image, got {crop.dtype} {crop.shape}")
        if mask.shape != crop.shape[:2]:
            raise ValueError(f"crop {index}: mask shape {mask.shape} does not match crop shape {crop.shape[:2]}")


def _batches(count: int, batch_size: int, description: str):
    """(start, stop) index pairs of consecutive batches, with a progress bar on stderr."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    starts = range(0, count, batch_size)
    for start in tqdm(starts, desc=description, unit="batch", disable=len(starts) < 2):
        yield start, min(start + batch_size, count)


def face_prompt(template: str, face: Mapping) -> str:
    """The prompt for one real face: `template` with `{identity}` (the person as the dataset names
    them, underscores as spaces) and `{attributes}` (the attributes the dataset marks present on
    this face, `attr_Black_Hair` -> "black hair", comma-separated) filled in; separators left
    dangling by an empty field are dropped."""
    identity = str(face.get("identity") or "a person").replace("_", " ")
    attributes = ", ".join(key[len(ATTR_PREFIX):].replace("_", " ").lower() for key, value in face.items()
                           if key.startswith(ATTR_PREFIX) and value is not None and value == value and value > 0)
    text = template.format(identity=identity, attributes=attributes)
    return re.sub(r"\s*,\s*(?=,|$)", "", re.sub(r"\s+", " ", text)).strip()


@torch.no_grad()
def inpaint_faces(pipe, crops_bgr: Sequence[np.ndarray], masks: Sequence[np.ndarray], prompts: Sequence[str],
                  negative_prompt: str | None = None, steps: int = 50, guidance_scale: float = 7.5,
                  strength: float = 1.0, seed: int = 0, batch_size: int = 4) -> list[np.ndarray]:
    """Regenerate the face region of each uint8 BGR crop with the inpainting pipeline, each with its
    own prompt; return uint8 BGR fakes of each crop's size, identical to the crop wherever its mask
    is 0.

    `masks` are float (H, W) in [0, 1] at crop size (`face_mask.landmark_face_mask`). The pipeline is
    asked to repaint everything the mask touches (mask > 0) at its native size; the result is then
    alpha-composited over the crop with the feathered mask, which hides the seam and undoes the VAE
    round trip outside the face."""
    _check_crops(crops_bgr, masks)
    if len(prompts) != len(crops_bgr):
        raise ValueError(f"{len(prompts)} prompts for {len(crops_bgr)} crops")
    side = native_size(pipe)
    fakes: list[np.ndarray] = []
    for start, stop in _batches(len(crops_bgr), batch_size, "inpainting faces"):
        crops, crop_masks = crops_bgr[start:stop], masks[start:stop]
        images = [Image.fromarray(np.ascontiguousarray(_resize(crop, (side, side))[:, :, ::-1])) for crop in crops]
        pipe_masks = [Image.fromarray(_resize((mask > 0).astype(np.uint8) * 255, (side, side), cv2.INTER_NEAREST))
                      for mask in crop_masks]
        count = stop - start
        result = pipe(prompt=list(prompts[start:stop]),
                      negative_prompt=None if negative_prompt is None else [negative_prompt] * count,
                      image=images, mask_image=pipe_masks, height=side, width=side, num_inference_steps=steps,
                      guidance_scale=guidance_scale, strength=strength, generator=_rngs(seed, start, count),
                      output_type="np").images
        for crop, mask, generated in zip(crops, crop_masks, result):
            fakes.append(paste_face(_to_bgr_uint8(generated, crop.shape[:2]), crop, mask))
    return fakes


@torch.no_grad()
def text2img_faces(pipe, prompts: Sequence[str], steps: int = 50, guidance_scale: float = 7.5, size: int = 128,
                   seed: int = 0, negative_prompt: str | None = None, batch_size: int = 4) -> list[np.ndarray]:
    """One uint8 BGR size x size image per prompt from the text-to-image pipeline, generated at its
    native size and resized down. These are whole generated pictures, not aligned crops: run them
    through face detection and cropping when a detector must see them as the real crops are seen."""
    side = native_size(pipe)
    fakes: list[np.ndarray] = []
    for start, stop in _batches(len(prompts), batch_size, "text-to-image faces"):
        count = stop - start
        result = pipe(prompt=list(prompts[start:stop]),
                      negative_prompt=None if negative_prompt is None else [negative_prompt] * count,
                      height=side, width=side, num_inference_steps=steps, guidance_scale=guidance_scale,
                      generator=_rngs(seed, start, count), output_type="np").images
        fakes.extend(_to_bgr_uint8(generated, (size, size)) for generated in result)
    return fakes
