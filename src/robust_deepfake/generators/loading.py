"""Every trained face generator by its name (registry.TRAINED_GENERATORS): how it checks its data,
trains, saves and loads. The stages ask here instead of branching on names, so a new trained
generator is one `GeneratorFamily` entry.

The attacker poisons split B against a generator, and the trainer makes split B's fakes with a
generator; both load it through `load_generator`, so the white-box attack targets exactly the model
that makes the fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import Dataset

from robust_deepfake.devices import resolve_device
from robust_deepfake.generators.base import FaceGenerator
from robust_deepfake.generators.faceswap_ae import FaceCropFiles, FaceSwapGenerator, load_faceswap, save_faceswap
from robust_deepfake.generators.faceswap_training import most_frequent_identities, train_faceswap
from robust_deepfake.generators.stargan import labels_from_attributes, load_stargan, save_stargan
from robust_deepfake.generators.stargan_training import StarGANTrainConfig, train_stargan


@dataclass(frozen=True)
class GeneratorFamily:
    """check(faces, settings) raises with the fix when the data cannot train it; train(faces,
    settings, seed, out_path, work_dir, device) trains it to out_path (state in work_dir) and returns
    its history; load(path, settings, device) gives the FaceGenerator."""

    check: Callable[[pd.DataFrame, dict], None]
    train: Callable[..., list[dict]]
    load: Callable[[str | Path, dict, torch.device], FaceGenerator]


def _check_faceswap(faces: pd.DataFrame, settings: dict) -> None:
    if faces["identity"].nunique() < 2:
        raise ValueError("faceswap_ae needs at least 2 identities in split A (one decoder each)")


def _train_faceswap(faces: pd.DataFrame, settings: dict, seed: int, out_path: Path, work_dir: Path,
                    device: torch.device) -> list[dict]:
    if settings.get("max_identities"):
        keep = most_frequent_identities(faces["identity"].astype(str).tolist(), settings["max_identities"])
        faces = faces[faces["identity"].astype(str).isin(keep)]
    model, history = train_faceswap(
        FaceCropFiles(faces["face_path"].tolist()), faces["identity"].astype(str).tolist(),
        image_size=settings["image_size"], channels=settings["channels"], latent_dim=settings["latent_dim"],
        steps=settings["steps"], batch_size=settings["batch_size"], lr=settings["lr"], seed=seed,
        checkpoint_dir=work_dir, save_every=settings["save_every"], device=device)
    save_faceswap(model, out_path)
    return history


def _check_stargan(faces: pd.DataFrame, settings: dict) -> None:
    missing = [a for a in settings["attributes"] if f"attr_{a}" not in faces.columns]
    if missing:
        raise ValueError(f"stargan trains on attribute labels, but split A has no columns "
                         f"{['attr_' + a for a in missing]}: use a dataset with attributes (CelebA) "
                         "or set stargan.checkpoint to a pretrained generator such as 200000-G.ckpt")


class AttributeFaces(Dataset):
    """(image in [-1, 1], 0/1 attribute labels) pairs read lazily, as StarGAN training wants."""

    def __init__(self, faces: pd.DataFrame, attributes) -> None:
        self.files = FaceCropFiles(faces["face_path"].tolist())
        self.labels = labels_from_attributes(faces, attributes)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        image = torch.tensor(self.files[index]).permute(2, 0, 1).float() / 127.5 - 1.0
        return image, self.labels[index]


def _train_stargan(faces: pd.DataFrame, settings: dict, seed: int, out_path: Path, work_dir: Path,
                   device: torch.device) -> list[dict]:
    config = StarGANTrainConfig(attributes=tuple(settings["attributes"]), image_size=settings["image_size"],
                                conv_dim=settings["conv_dim"], repeat_num=settings["repeat_num"],
                                steps=settings["steps"], batch_size=settings["batch_size"], lr=settings["lr"],
                                n_critic=settings["n_critic"], seed=seed)
    result = train_stargan(AttributeFaces(faces, settings["attributes"]), config, checkpoint_dir=work_dir,
                           save_every=settings["save_every"], device=device)
    save_stargan(result.generator, out_path)
    return result.history


FAMILIES = {
    "faceswap_ae": GeneratorFamily(_check_faceswap, _train_faceswap,
                                   lambda path, settings, device: FaceSwapGenerator(load_faceswap(path, device))),
    "stargan": GeneratorFamily(_check_stargan, _train_stargan,
                               lambda path, settings, device: load_stargan(path, settings["attributes"],
                                                                           settings["image_size"], device)),
}


def generator_family(name: str) -> GeneratorFamily:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"generator {name!r} has no trained model; trained generators: {sorted(FAMILIES)}") from None


def load_generator(name: str, path: str | Path, settings: dict, device: str | torch.device = "cpu") -> FaceGenerator:
    """The trained (or pretrained) generator `name` from `path`, frozen and in eval mode."""
    device = resolve_device(device) if isinstance(device, str) else device
    generator = generator_family(name).load(path, settings, device)
    for p in _parameters(generator):
        p.requires_grad_(False)  # attacks need gradients w.r.t. the input only
    return generator


def _parameters(generator) -> list[torch.nn.Parameter]:
    module = generator if isinstance(generator, torch.nn.Module) else getattr(generator, "model", None)
    if module is None:
        return []
    module.eval()
    return list(module.parameters())
