"""Stage generate_fakes: the detector's training fakes, made from split B's real faces as the
trainer has them (poisoned where the attacker struck; purified in the defended scenarios).

Every fake row records its generator, the real row it was made from, the target identity,
attribute or prompt, and its seed, so a result can always be traced back to its inputs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from robust_deepfake.generators import stable_diffusion as diffusion_fakes
from robust_deepfake.atomic import write_image
from robust_deepfake.generators.face_mask import landmark_face_mask
from robust_deepfake.images import read_image
from robust_deepfake.tensors import bgr_to_signed, signed_to_rgb
from robust_deepfake.generators.landmark_swap import LandmarkSwapGenerator
from robust_deepfake.paths import check_distinct_folders, item_path
from robust_deepfake.registry import GENERATORS
from robust_deepfake.generators.base import FaceGenerator, for_faces
from robust_deepfake.generators.faceswap_ae import blend_swap
from robust_deepfake.seeding import item_seed

log = logging.getLogger(__name__)



def fake_sources(manifest: pd.DataFrame) -> pd.DataFrame:
    """The real faces fakes are made from, with `image_path` the face as its user has it: a purified
    manifest gives the faces the reject step kept, purified (the trainer's); a poisoned one its
    faces as the attacker left them (the attacker's own fakes); a split manifest its real faces
    as cropped (the evaluation's, never attacked)."""
    reals = manifest[manifest["label"] == 0]
    purified = "kept" in manifest.columns
    if purified:
        reals = reals[reals["kept"].astype(bool)]
    column = "purified_path" if purified else "poisoned_path" if "poisoned_path" in manifest.columns else "face_path"
    # from the filtered frame's own column: assigning another frame's Series to an empty frame
    # would adopt that Series' index and bring every rejected row back as an empty record
    return reals.assign(image_path=reals[column]).reset_index(drop=True)


def plan_fakes(reals: pd.DataFrame, conditions: list[str] | None, per_face: int, seed: int) -> pd.DataFrame:
    """One row per fake to make: the real row, k, the seed and (for conditional generators) the
    target condition, drawn by the fake's seed among the conditions that are not the real's own
    identity (a swap onto the same person is no fake)."""
    rows = []
    for real in reals.itertuples(index=False):
        for k in range(per_face):
            s = item_seed(seed, real.media_id, int(real.frame_idx), k)
            condition = None
            if conditions:
                choices = [c for c in conditions if c != real.identity] or list(conditions)
                condition = choices[s % len(choices)]
            rows.append({"media_id": real.media_id, "frame_idx": int(real.frame_idx), "k": k, "fake_seed": s,
                         "condition": condition})
    plan = pd.DataFrame(rows, columns=["media_id", "frame_idx", "k", "fake_seed", "condition"])
    plan["real_index"] = np.repeat(np.arange(len(reals)), per_face)
    return plan


def _batches(plan: pd.DataFrame, batch_size: int, by: str | None) -> Iterator[pd.DataFrame]:
    groups = plan.groupby(by, sort=True) if by else [(None, plan)]
    for _, group in groups:
        for start in range(0, len(group), batch_size):
            yield group.iloc[start:start + batch_size]


def _model_fakes(generator: FaceGenerator, name: str, reals: pd.DataFrame, plan: pd.DataFrame,
                 batch_size: int, device: torch.device) -> Iterator[tuple[int, np.ndarray]]:
    """Face swap (decoded with another identity's decoder, blended back inside the landmark mask,
    as the Deepfakes method does) or StarGAN (the whole edited crop)."""
    for batch in _batches(plan, batch_size, by="condition"):
        rows = reals.iloc[batch["real_index"].to_numpy()]
        crops = [read_image(p) for p in rows["image_path"]]
        with torch.no_grad():
            out = for_faces(generator, rows).generate(bgr_to_signed(crops, device), batch["condition"].iloc[0]).cpu()
        for j, (plan_index, crop) in enumerate(zip(batch.index, crops)):
            if name == "faceswap_ae":
                fake = blend_swap(crop, out[j], rows["crop_landmarks"].iloc[j])
            else:
                fake = cv2.cvtColor(signed_to_rgb(out[j]), cv2.COLOR_RGB2BGR)
            yield plan_index, fake


def _landmark_fakes(reals: pd.DataFrame, plan: pd.DataFrame, sources: pd.DataFrame) -> Iterator[tuple[int, np.ndarray]]:
    """Graphics face swap: each real face receives the face of a split-A person, drawn by the
    fake's seed (the condition records whose face)."""
    swapper = LandmarkSwapGenerator()
    for plan_index, item in plan.iterrows():
        real = reals.iloc[item["real_index"]]
        source = sources.iloc[item["fake_seed"] % len(sources)]
        plan.at[plan_index, "condition"] = f"{source['identity']}:{source['media_id']}#{source['frame_idx']}"
        yield plan_index, swapper.swap(read_image(source["face_path"]), source["crop_landmarks"],
                                       read_image(real["image_path"]), real["crop_landmarks"])


def _diffusion_fakes(kind: str, reals: pd.DataFrame, plan: pd.DataFrame, settings: dict,
                     device: torch.device) -> Iterator[tuple[int, np.ndarray]]:
    """Stable Diffusion inpainting of the face region, or text-to-image, from a local model
    folder; with none configured the generator makes no fakes and says so."""
    model_dir = settings[f"{'inpaint' if kind == 'sd_inpaint' else 'text2img'}_model_dir"]
    pipe = diffusion_fakes.load_pipeline("inpaint" if kind == "sd_inpaint" else "text2img", model_dir, device)
    if pipe is None:
        return
    for batch in _batches(plan, 4, by=None):
        rows = reals.iloc[batch["real_index"].to_numpy()]
        prompts = [diffusion_fakes.face_prompt(settings["prompt"], face) for face in rows.to_dict("records")]
        for plan_index, prompt in zip(batch.index, prompts):
            plan.at[plan_index, "condition"] = prompt
        seed = int(batch["fake_seed"].iloc[0])
        if kind == "sd_inpaint":
            crops = [read_image(p) for p in rows["image_path"]]
            masks = [landmark_face_mask(lm, c.shape[:2]) for lm, c in zip(rows["crop_landmarks"], crops)]
            images = diffusion_fakes.inpaint_faces(pipe, crops, masks, prompts, settings["negative_prompt"],
                                                   settings["steps"], settings["guidance_scale"], settings["strength"],
                                                   seed=seed)
        else:
            size = read_image(rows["image_path"].iloc[0]).shape[0]
            images = diffusion_fakes.text2img_faces(pipe, prompts, settings["steps"],
                                                    settings["guidance_scale"], size, seed=seed,
                                                    negative_prompt=settings["negative_prompt"])
        yield from zip(batch.index, images)


def generate_fakes(reals: pd.DataFrame, name: str, out_dir: str | Path, *, per_face: int, seed: int,
                   image_format: str, generator: FaceGenerator | None = None, sources: pd.DataFrame | None = None,
                   diffusion_settings: dict | None = None, batch_size: int = 16,
                   device: torch.device = torch.device("cpu")) -> pd.DataFrame:
    """Make `per_face` fakes of every real face in `reals` (which carry `image_path`: the face as
    the trainer has it) with generator `name`; return the fake rows (label 1, face_path = the fake).
    A generator that makes nothing (Stable Diffusion without a model folder) gives no rows."""
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; known: {list(GENERATORS)}")
    reals = reals.reset_index(drop=True)
    check_distinct_folders(reals["media_id"])
    trained = GENERATORS[name].trained
    conditions = list(generator.conditions()) if trained else None
    plan = plan_fakes(reals, conditions, per_face, seed)
    if trained:
        made = _model_fakes(generator, name, reals, plan, batch_size, device)
    elif name == "landmark_swap":
        made = _landmark_fakes(reals, plan, sources)
    else:
        made = _diffusion_fakes(name, reals, plan, diffusion_settings, device)

    out_dir = Path(out_dir)
    written: dict[int, str] = {}
    for plan_index, image in tqdm(made, total=len(plan), desc=f"fakes {name}", unit="face"):
        item = plan.loc[plan_index]
        path = item_path(out_dir, item["media_id"], item["frame_idx"], image_format, variant=item["k"])
        write_image(path, image)
        written[plan_index] = str(path)
    if len(written) < len(plan):
        log.warning("%s made %d of %d planned fakes", name, len(written), len(plan))
    return _fake_rows(reals, plan.loc[sorted(written)], written, name)


def _fake_rows(reals: pd.DataFrame, plan: pd.DataFrame, written: dict[int, str], name: str) -> pd.DataFrame:
    """Fake rows keep the real's record (person, frame, part, poisoned flag) and say what was done."""
    fakes = reals.iloc[plan["real_index"].to_numpy()].reset_index(drop=True).copy()
    fakes["real_media_id"] = fakes["media_id"]
    suffix = plan["k"].map(lambda k: "" if k == 0 else f"#{k}").to_numpy()
    fakes["media_id"] = [f"{name}/{m}{s}" for m, s in zip(fakes["media_id"], suffix)]
    fakes["label"] = 1
    fakes["method"] = name
    fakes["generator"] = name
    fakes["condition"] = plan["condition"].astype("string").to_numpy()
    fakes["fake_seed"] = plan["fake_seed"].to_numpy()
    fakes["face_path"] = [written[i] for i in plan.index]
    fakes["image_path"] = fakes["face_path"]
    return fakes
