"""Stages train_ddpm and train_adv_generator: the defender's models, learned from split A's clean
real faces only (the defender never sees which faces of B are poisoned).

- `ddpm`: the diffusion model the purifiers use (diffusers UNet2DModel + DDPMScheduler), or a
  user's pretrained diffusers DDPM folder (e.g. a CelebA-HQ DDPM) instead of training.
- `defensive_model_1` / `_2`: MagNet's denoising autoencoders (`defences.magnet`), or a file of
  this pipeline's format instead of training.
- `adv_generator`: the attacked generator fine-tuned on its own PGD-disrupted inputs (Ruiz et
  al.'s adversarial training; for StarGAN G+D, `defences.adversarial_stargan`), the defence that
  needs no purification; `adv_generator_blur`: StarGAN's with a blur in front (their variant).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from robust_deepfake.atomic import atomic_path
from robust_deepfake.defences.adversarial_generator import finetune_against_disruption
from robust_deepfake.defences.adversarial_stargan import AdversarialStarGANConfig, finetune_stargan_against_disruption
from robust_deepfake.devices import resolve_device
from robust_deepfake.defences.magnet import MagNetConfig, load_magnet, save_magnet, train_magnet
from robust_deepfake.generators.faceswap_ae import FaceCropFiles, load_faceswap, save_faceswap
from robust_deepfake.generators.loading import AttributeFaces
from robust_deepfake.generators.stargan import load_stargan, save_stargan
from robust_deepfake.registry import DEFENCES

if TYPE_CHECKING:
    from robust_deepfake.defences.ddpm import DDPMConfig

log = logging.getLogger(__name__)


def ddpm_config(settings: dict, seed: int) -> DDPMConfig:
    """The config's `ddpm` section as a DDPMConfig (the `pretrained` key is not a model setting).
    The DDPM module (diffusers: seconds to import) is imported only by the jobs that train it,
    not by the MagNet and adversarial-generator jobs that share this stage module."""
    from robust_deepfake.defences.ddpm import DDPMConfig

    names = {f.name for f in fields(DDPMConfig)}
    return DDPMConfig(**{k: v for k, v in settings.items() if k in names}, seed=seed)


def train_defense_ddpm(faces: pd.DataFrame, settings: dict, seed: int, out_dir: str | Path, work_dir: str | Path,
                       device: str = "auto") -> pd.DataFrame:
    """Write the DDPM to `out_dir` (unet/, scheduler/): trained on `faces` with its resumable state
    in `work_dir`, or copied from the configured pretrained folder, which is loaded (and so checked)
    here rather than failing later inside purification."""
    from robust_deepfake.defences.ddpm import build_scheduler, load_ddpm, save_ddpm, train_ddpm

    dev = resolve_device(device)
    if settings.get("pretrained"):
        unet, scheduler = load_ddpm(settings["pretrained"], dev)
        save_ddpm(unet, scheduler, out_dir)
        log.info("ddpm: using the pretrained diffusers folder %s instead of training", settings["pretrained"])
        return pd.DataFrame({"step": [], "loss": []})
    config = ddpm_config(settings, seed)
    unet, history = train_ddpm(FaceCropFiles(faces["face_path"].tolist()), config, work_dir, device=dev)
    save_ddpm(unet, build_scheduler(config), out_dir)
    log.info("ddpm trained on %d clean faces of split A -> %s", len(faces), out_dir)
    return pd.DataFrame(history)


def train_magnet_purifier(faces: pd.DataFrame, structure: str, settings: dict, seed: int, out_path: str | Path,
                          checkpoint: str | None = None, device: str = "auto") -> pd.DataFrame:
    """Write MagNet autoencoder `structure` to `out_path`: trained on `faces`, or the configured
    `checkpoint`, which is loaded (and so checked) here rather than failing inside purification."""
    dev = resolve_device(device)
    if checkpoint:
        model = load_magnet(checkpoint, dev)
        if model.structure != structure:
            raise ValueError(f"magnet.checkpoint for {structure} is {checkpoint}, a {model.structure} autoencoder")
        with atomic_path(out_path) as tmp:
            shutil.copyfile(checkpoint, tmp)
        log.info("%s: using the configured file %s instead of training", structure, checkpoint)
        return pd.DataFrame({"step": [], "loss": []})
    config = MagNetConfig(structure=structure, seed=seed, **settings)
    model, history = train_magnet(FaceCropFiles(faces["face_path"].tolist()), config, dev)
    save_magnet(model, config, out_path)
    return pd.DataFrame(history)


def _finetune_faceswap(faces: pd.DataFrame, generator_path: str | Path, generator_settings: dict, settings: dict,
                       attack: dict, seed: int, out_path: str | Path, work_dir: str | Path, device) -> list[dict]:
    model = load_faceswap(generator_path, device)
    faces = faces[faces["identity"].astype(str).isin(model.identities)]
    if faces.empty:
        raise ValueError(f"split A has no faces of the identities the face swap {generator_path} knows")
    model, history = finetune_against_disruption(
        model, FaceCropFiles(faces["face_path"].tolist()), faces["identity"].astype(str).tolist(),
        epsilon=attack["epsilon"], attack_steps=settings["attack_steps"], step_size=attack["step_size"],
        steps=settings["steps"], batch_size=settings["batch_size"], lr=settings["lr"], seed=seed,
        checkpoint_dir=work_dir, save_every=settings["save_every"], device=device)
    save_faceswap(model, out_path)
    return history


def _finetune_stargan(faces: pd.DataFrame, generator_path: str | Path, generator_settings: dict, settings: dict,
                      attack: dict, seed: int, out_path: str | Path, work_dir: str | Path, device) -> list[dict]:
    attributes = generator_settings["attributes"]
    model = load_stargan(generator_path, attributes, generator_settings["image_size"], device)
    config = AdversarialStarGANConfig(
        epsilon=attack["epsilon"], attack_steps=settings["attack_steps"], step_size=attack["step_size"],
        steps=settings["steps"], critic_warmup=settings["critic_warmup"], batch_size=settings["batch_size"],
        lr=settings["lr"], n_critic=generator_settings["n_critic"], blur_sigma=settings["blur_sigma"], seed=seed)
    model, history = finetune_stargan_against_disruption(model, AttributeFaces(faces, attributes), config,
                                                         checkpoint_dir=work_dir, save_every=settings["save_every"],
                                                         device=device)
    save_stargan(model, out_path)
    return history


# attacked generator -> its adversarial fine-tuning (registry.GENERATORS' adversarial_settings)
ADVERSARIAL_FINETUNING = {"faceswap_ae": _finetune_faceswap, "stargan": _finetune_stargan}


def train_adversarial_generator(faces: pd.DataFrame, family: str, generator_path: str | Path,
                                generator_settings: dict, settings: dict, attack: dict, seed: int,
                                out_path: str | Path, work_dir: str | Path, device: str = "auto") -> pd.DataFrame:
    """Fine-tune the trained attacked generator (`family`, its config section `generator_settings`)
    on its own disrupted inputs (the attacker's budget and step size from `attack`), with a blur in
    front when `settings["blur_sigma"]` > 0, and save it to `out_path`; return the per-step history."""
    blurrable = DEFENCES["adv_generator_blur"].generators
    if settings["blur_sigma"] > 0 and family not in blurrable:
        raise ValueError(f"the blur variant of the adversarially trained generator exists for {list(blurrable)}, "
                         f"not {family}")
    history = ADVERSARIAL_FINETUNING[family](faces, generator_path, generator_settings, settings, attack, seed,
                                             out_path, work_dir, resolve_device(device))
    log.info("%s adversarially fine-tuned for %d steps -> %s", family, len(history), out_path)
    return pd.DataFrame(history)
