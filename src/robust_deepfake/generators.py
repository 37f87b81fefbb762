"""Stage train_generator: fit the face generators on split A, or take a user's checkpoint.

The attacker poisons split B against a generator, and the trainer makes split B's fakes with a
generator; both come from here (`load_generator`), so the white-box attack targets exactly the
model that makes the fakes. The grey-box attacker's surrogate is the same architecture trained on
other data: half of split A's identities, with another seed.
"""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import Dataset

from robust_deepfake.devices import resolve_device
from robust_deepfake.models import FaceGenerator
from robust_deepfake.models.faceswap_ae import (FaceCropFiles, FaceSwapGenerator, load_faceswap,
                                               most_frequent_identities, save_faceswap, train_faceswap)
from robust_deepfake.models.stargan import (StarGANTrainConfig, labels_from_attributes, load_stargan, save_stargan,
                                            train_stargan)

log = logging.getLogger(__name__)

TRAINABLE = ("faceswap_ae", "stargan")
VARIANTS = ("main", "surrogate")


def training_faces(part_a: pd.DataFrame, variant: str, seed: int) -> pd.DataFrame:
    """Real faces of split A a generator learns from; the surrogate gets a seeded half of A's
    identities, so its training data differs from the attacked model's as grey-box needs."""
    if variant not in VARIANTS:
        raise ValueError(f"generator variant must be one of {VARIANTS}, got {variant!r}")
    reals = part_a[(part_a["label"] == 0) & part_a["face_path"].notna()]
    if reals.empty:
        raise ValueError("split A has no real face crops to train a generator on")
    if variant == "surrogate":
        identities = sorted(reals["identity"].unique())
        random.Random(seed).shuffle(identities)
        keep = identities[: max(2, len(identities) // 2)]
        reals = reals[reals["identity"].isin(keep)]
    return reals.sort_values(["media_id", "frame_idx"]).reset_index(drop=True)


class _AttributeFaces(Dataset):
    """(image in [-1, 1], 0/1 attribute labels) pairs read lazily, as StarGAN training wants."""

    def __init__(self, faces: pd.DataFrame, attributes) -> None:
        self.files = FaceCropFiles(faces["face_path"].tolist())
        self.labels = labels_from_attributes(faces, attributes)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        image = torch.tensor(self.files[index]).permute(2, 0, 1).float() / 127.5 - 1.0
        return image, self.labels[index]


def train_generator(name: str, faces: pd.DataFrame, settings: dict, seed: int, out_path: str | Path,
                    work_dir: str | Path, device: str = "auto") -> pd.DataFrame:
    """Train generator `name` on `faces` (or copy the configured checkpoint) to `out_path`;
    return the per-step training history. `work_dir` holds the resumable training state, so a
    killed job continues where it stopped when Snakemake reruns it."""
    out_path, work_dir = Path(out_path), Path(work_dir)
    dev = resolve_device(device)
    checkpoint = settings.get("checkpoint")
    if checkpoint:
        _adopt_checkpoint(name, checkpoint, settings, out_path, dev)
        return pd.DataFrame({"step": [], "loss": []})
    if name == "faceswap_ae":
        if settings.get("max_identities"):
            keep = most_frequent_identities(faces["identity"].astype(str).tolist(), settings["max_identities"])
            faces = faces[faces["identity"].astype(str).isin(keep)]
        model, history = train_faceswap(
            FaceCropFiles(faces["face_path"].tolist()), faces["identity"].astype(str).tolist(),
            image_size=settings["image_size"], channels=settings["channels"], latent_dim=settings["latent_dim"],
            steps=settings["steps"], batch_size=settings["batch_size"], lr=settings["lr"], seed=seed,
            checkpoint_dir=work_dir, save_every=settings["save_every"], device=dev)
        save_faceswap(model, out_path)
    elif name == "stargan":
        config = StarGANTrainConfig(attributes=tuple(settings["attributes"]), image_size=settings["image_size"],
                                    conv_dim=settings["conv_dim"], repeat_num=settings["repeat_num"],
                                    steps=settings["steps"], batch_size=settings["batch_size"],
                                    lr=settings["lr"], seed=seed)
        result = train_stargan(_AttributeFaces(faces, settings["attributes"]), config, checkpoint_dir=work_dir,
                               save_every=settings["save_every"], device=dev)
        save_stargan(result.generator, out_path)
        history = result.history
    else:
        raise ValueError(f"generator {name!r} is not trainable; trainable: {TRAINABLE}")
    log.info("%s trained on %d faces of %d identities -> %s", name, len(faces), faces["identity"].nunique(), out_path)
    return pd.DataFrame(history)


def _adopt_checkpoint(name: str, checkpoint: str, settings: dict, out_path: Path, device: torch.device) -> None:
    """A configured pretrained checkpoint replaces training; it is loaded once here, so a wrong
    file fails in this stage with its name, not later inside poisoning."""
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"{name}.checkpoint {checkpoint} does not exist")
    load_generator(name, checkpoint, settings, device)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checkpoint, out_path)
    log.info("%s: using the configured checkpoint %s instead of training", name, checkpoint)


def load_generator(name: str, path: str | Path, settings: dict, device: str | torch.device = "cpu") -> FaceGenerator:
    """The trained (or pretrained) generator `name` from `path`, in eval mode, as a FaceGenerator."""
    device = resolve_device(device) if isinstance(device, str) else device
    if name == "faceswap_ae":
        generator = FaceSwapGenerator(load_faceswap(path, device))
    elif name == "stargan":
        generator = load_stargan(path, settings["attributes"], settings["image_size"], device)
    else:
        raise ValueError(f"generator {name!r} has no model to load; trainable: {TRAINABLE}")
    for p in _parameters(generator):
        p.requires_grad_(False)  # attacks need gradients w.r.t. the input only
    return generator


def _parameters(generator) -> list[torch.nn.Parameter]:
    module = generator if isinstance(generator, torch.nn.Module) else getattr(generator, "model", None)
    if module is None:
        return []
    module.eval()
    return list(module.parameters())


def check_trainable_data(name: str, faces: pd.DataFrame, settings: dict) -> None:
    """Fail early, with the fix, when a generator cannot learn from this dataset."""
    if name == "stargan" and not settings.get("checkpoint"):
        missing = [a for a in settings["attributes"] if f"attr_{a}" not in faces.columns]
        if missing:
            raise ValueError(f"stargan trains on attribute labels, but split A has no columns "
                             f"{['attr_' + a for a in missing]}: use a dataset with attributes (CelebA) "
                             "or set stargan.checkpoint to a pretrained generator such as 200000-G.ckpt")
    if name == "faceswap_ae" and not settings.get("checkpoint") and faces["identity"].nunique() < 2:
        raise ValueError("faceswap_ae needs at least 2 identities in split A (one decoder each)")

