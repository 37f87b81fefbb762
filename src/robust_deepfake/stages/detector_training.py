"""Stage train_detector: a deepfake detector trained on split B's real faces and the fakes made
from them, in one scenario (poison rate, purifier, training fakes' generator, backbone, training
mode).

Which real faces: the ones the fakes were made from, as the trainer has them after its defence
(purified and kept by the reject step). Real and fake then share their whole processing history,
so the detector cannot learn "purification artefacts mean fake" instead of the generator's traces.

Model selection uses a held-out share of split B's *source media* (a real video and every fake
made from it fall on the same side), never split C: C stays untouched for the evaluation stage.

Training modes (`registry.TRAINING_MODES`): `plain`; `fgsm` and `pgd` adversarial training, where
every batch is attacked against the current model (PGD updates its iterate at every step, in pixel
space, clamped to [0, 1], see detectors/network.py) and the loss mixes clean and adversarial
images; in adversarial modes the Lipschitz penalty psi * mean(|d sum F(x) / dx|^z) of the
robust-detector reference is added on the adversarial images when psi > 0. The `*_finetune` modes
are that reference's schedule: they start from the plain detector of the same scenario and seed
(`init_file`) and fine-tune it adversarially for `adversarial.finetune_epochs` epochs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from robust_deepfake.checkpoints import resumable_state
from robust_deepfake.detectors.adversarial import batch_loss
from robust_deepfake.detectors.augmentations import detector_augmentations
from robust_deepfake.detectors.network import DeepfakeDetector, DetectorConfig, read_checkpoint, save_detector
from robust_deepfake.detectors.scoring import balanced_threshold, detection_metrics
from robust_deepfake.devices import Compute
from robust_deepfake.images import read_rgb
from robust_deepfake.registry import TRAINING_MODES
from robust_deepfake.seeding import item_seed

if TYPE_CHECKING:
    from timm.utils import ModelEmaV3

log = logging.getLogger(__name__)

# Adam's weight decay is an L2 term scaled by the adaptive step; AdamW decays the weights directly
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
# history.parquet, one row per epoch; `best` marks the epochs whose weights became the model;
# `threshold` is the decision threshold calibrated on the hold-out at that epoch
HISTORY_COLUMNS = ["epoch", "train_loss", "train_images", "val_auc", "val_loss", "val_acc", "val_eer", "threshold",
                   "lr", "seconds", "best"]


class NothingToTrain(ValueError):
    """A scenario whose training set lacks a class (every real face rejected, or no fakes made)."""


# ---------------------------------------------------------------------------------------------
# Data


def training_set(purified: pd.DataFrame, fakes: pd.DataFrame, scenario: str) -> pd.DataFrame:
    """Real faces kept by the reject step (label 0) and their fakes (label 1): media_id,
    source_media_id, identity (the person of the source media, for the hold-out), image_path,
    label. An empty class raises NothingToTrain naming the scenario, since a detector trained on
    one class would report numbers that mean nothing."""
    person = purified.drop_duplicates("media_id").set_index("media_id")["identity"]
    reals = purified[purified["kept"].astype(bool)]
    reals = pd.DataFrame({"media_id": reals["media_id"], "source_media_id": reals["media_id"],
                          "identity": reals["identity"], "image_path": reals["purified_path"], "label": 0})
    fakes = pd.DataFrame({"media_id": fakes["media_id"], "source_media_id": fakes["real_media_id"],
                          "identity": fakes["real_media_id"].map(person), "image_path": fakes["image_path"],
                          "label": 1})
    if reals.empty or fakes.empty:
        raise NothingToTrain(f"{scenario}: nothing to train a detector on ({len(reals)} real faces passed the "
                         f"reject step, {len(fakes)} fakes); a higher purify.reject_factor keeps more faces")
    return pd.concat([reals, fakes], ignore_index=True)


def balanced_indices(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Undersample the larger class to the smaller one's size (the robust-detector reference's class balance), drawn
    anew each epoch so that every face is seen over the epochs."""
    by_class = [np.flatnonzero(labels == c) for c in (0, 1)]
    n = min(len(i) for i in by_class)
    chosen = np.concatenate([rng.choice(i, size=n, replace=False) for i in by_class])
    return np.sort(chosen)


class FaceImages(Dataset):
    """(pixels float (3, S, S) in [0, 1], label) for rows with image_path and label."""

    def __init__(self, faces: pd.DataFrame, size: int, augment: str = "none") -> None:
        self.paths = faces["image_path"].tolist()
        self.labels = faces["label"].to_numpy(dtype=np.float32)
        self.size = size
        self.transform = detector_augmentations(augment)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = torch.from_numpy(read_rgb(self.paths[index], self.size)).permute(2, 0, 1).contiguous()
        # clamp: blur and noise can leave values a rounding error outside [0, 1], the attacks' range
        return self.transform(image).clamp_(0, 1), torch.tensor(self.labels[index])


# ---------------------------------------------------------------------------------------------
# Training loop


@torch.no_grad()
def score_faces(model: DeepfakeDetector, faces: pd.DataFrame, size: int, batch_size: int,
                compute: Compute) -> np.ndarray:
    """Probability of fake per row of `faces` (image_path)."""
    model.eval()
    loader = DataLoader(FaceImages(faces, size), batch_size=batch_size, shuffle=False, **compute.loader())
    scores = []
    for pixels, _ in loader:
        with compute.autocast():
            scores.append(torch.sigmoid(model(compute.images(pixels)).float()).cpu())
    return torch.cat(scores).numpy() if scores else np.zeros(0, dtype=np.float32)


def _usable_state(path: Path, config: DetectorConfig, device: torch.device) -> dict:
    """A training state of this model configuration (another one cannot be continued)."""
    payload = read_checkpoint(path, device)
    if payload["config"] != asdict(config) or "training" not in payload:
        raise ValueError(f"cannot resume from {path}: it was trained as {payload['config']}, now asked for "
                         f"{asdict(config)}")
    if "best_detector" not in payload["training"]:
        raise ValueError(f"cannot resume from {path}: a state of an earlier version, without its best epoch's weights")
    return payload


def _resume(path: Path, model: DeepfakeDetector, optimizer, scheduler, rng: torch.Generator, ema: ModelEmaV3 | None,
            device: torch.device) -> tuple[int, tuple[float, float], dict | None, list[dict]]:
    """Where an interrupted run stopped: weights (and their average), optimizer, schedule, RNGs,
    the best epoch's selection key and detector (`_best_detector`) and the history; epoch 0 when
    there is no usable state (an unusable one is discarded, logged)."""
    payload = resumable_state(path, lambda p: _usable_state(p, model.config, device), "detector training state")
    if payload is None:
        return 0, NO_EPOCH, None, []
    state = payload["training"]
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng.set_state(state["rng"].cpu())
    torch.set_rng_state(state["torch_rng"].cpu())
    if ema is not None:
        ema.module.load_state_dict(state["ema"])
    log.info("resuming detector training from %s after epoch %d", path, state["epoch"])
    return int(state["epoch"]), tuple(state["best"]), state["best_detector"], list(state["history"])


# the selection key of "no epoch yet": any epoch beats it
NO_EPOCH = (float("-inf"), float("-inf"))


def selection_key(row: dict) -> tuple[float, float]:
    """How epochs are ranked on the hold-out: by AUC, then by lower BCE. With a few hundred faces
    the hold-out AUC saturates (1.0 from epoch 3 of 40 is common), and the first epoch to reach it
    still has BatchNorm statistics that lag the weights; the loss keeps ranking those epochs."""
    auc = row["val_auc"] if np.isfinite(row["val_auc"]) else 0.0
    loss = row["val_loss"] if np.isfinite(row["val_loss"]) else float("inf")
    return round(auc, 6), -loss


def validation_row(model: DeepfakeDetector, val: pd.DataFrame, config: DetectorConfig, batch_size: int,
                   compute: Compute) -> dict:
    """Hold-out AUC, BCE, EER, the threshold that balances its errors and the accuracy there."""
    scores = score_faces(model, val, config.image_size, batch_size, compute)
    labels = val["label"].to_numpy()
    threshold = balanced_threshold(labels, scores)
    metrics = detection_metrics(labels, scores, threshold)
    clipped = np.clip(scores.astype(np.float64), 1e-7, 1 - 1e-7)
    loss = float(-np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))) if len(labels) else np.nan
    # plain floats only: the state is reloaded with weights_only=True, which refuses NumPy scalars
    return {"val_auc": float(metrics["auc"]), "val_loss": loss, "val_acc": float(metrics["acc"]),
            "val_eer": float(metrics["eer"]), "threshold": threshold}


def start_from(model: DeepfakeDetector, path: str | Path) -> None:
    """Load the weights of the detector a fine-tuning mode starts from. It must be the same model
    (backbone, input size, normalisation): fine-tuning another one would silently mean nothing."""
    payload = read_checkpoint(path)
    if "untrained" in payload:
        raise NothingToTrain(f"{path}: the detector to fine-tune was never trained: {payload['untrained']}")
    if payload["config"] != asdict(model.config):
        raise ValueError(f"cannot fine-tune {path}: it is {payload['config']}, this job trains {asdict(model.config)}")
    model.load_state_dict(payload["model"])
    log.info("starting from the weights of %s (its epoch %s)", path, payload.get("epoch"))


def train_detector(train: pd.DataFrame, val: pd.DataFrame, config: DetectorConfig, settings: dict, mode: str, *,
                   seed: int, out_path: str | Path, work_dir: str | Path, compute: Compute,
                   pretrained_file: str | None = None, init_file: str | Path | None = None,
                   input_record: dict | None = None) -> pd.DataFrame:
    """Train, keep the checkpoint of the best epoch on the hold-out (`selection_key`) at
    `out_path` with its calibrated threshold, and return the per-epoch history. Training stops
    early when `patience` epochs in a row bring no better epoch (0: never). The training state
    goes to `work_dir/last.pt` after the first epoch that ends `state_interval_s` seconds or more
    after the last save (0: after every epoch), and a rerun of the same job resumes from it: a
    killed job loses what it trained since, at most that interval and one epoch, while short
    epochs are not slowed by writing the weights, the optimizer's moments and the best epoch's
    weights each time (a seventh of a 64 px ResNet-18's job on one CPU thread). A mode that starts
    from another mode's detector needs its checkpoint as `init_file`. `input_record` (how the
    faces were cut: `faces.cropping.DetectorInput`) goes into the checkpoint as `input`, for
    `predict`. `compute` says where and how (precision, memory format, loader workers) the batches
    run."""
    if mode not in TRAINING_MODES:
        raise ValueError(f"unknown training mode {mode!r}; known: {', '.join(TRAINING_MODES)}")
    training = TRAINING_MODES[mode]
    if (init_file is None) != (training.starts_from is None):
        raise ValueError(f"training mode {mode} starts from {training.starts_from or 'the backbone'}, "
                         f"but was given {init_file or 'no checkpoint'}")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    last = work_dir / "last.pt"
    model = compute.model(DeepfakeDetector(config, pretrained_file))
    if init_file is not None:
        start_from(model, init_file)
    optimizer = OPTIMIZERS[settings["optimizer"]](model.parameters(), lr=settings["lr"],
                                                  weight_decay=settings["weight_decay"], fused=True)
    epochs = settings["adversarial"]["finetune_epochs"] if training.starts_from else settings["epochs"]
    patience = settings["patience"]
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    attack_rng = torch.Generator().manual_seed(seed)
    ema = weight_average(model, settings.get("ema_decay", 0.0))
    start, best_key, best, history = _resume(last, model, optimizer, scheduler, attack_rng, ema, compute.device)
    # the detector that is validated and kept: the weights' average where there is one
    kept = model if ema is None else ema.module

    data = FaceImages(train, config.image_size, settings["augment"])
    labels = data.labels.astype(int)
    saved_at = time.monotonic()
    for epoch in range(start, epochs):
        if patience and history and epoch - max(r["epoch"] for r in history if r["best"]) >= patience:
            log.info("no better epoch on the hold-out for %d epochs: stopping after epoch %d", patience, epoch)
            break
        began = time.perf_counter()
        rng = np.random.default_rng(item_seed(seed, "epoch", epoch))
        indices = balanced_indices(labels, rng) if settings["balance"] else np.arange(len(labels))
        order = torch.Generator().manual_seed(item_seed(seed, "order", epoch))
        loader = DataLoader(torch.utils.data.Subset(data, indices.tolist()), batch_size=settings["batch_size"],
                            shuffle=True, generator=order, **compute.loader())
        model.train()
        losses = []
        for pixels, target in tqdm(loader, desc=f"epoch {epoch + 1}/{epochs} ({mode})", unit="batch", leave=False):
            pixels, target = compute.images(pixels), target.to(compute.device, non_blocking=True)
            with compute.autocast():
                loss = batch_loss(model, pixels, target, training.attack, settings.get("adversarial"), attack_rng)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if ema is not None:
                ema.update(model, step=optimizer_steps(optimizer))
            losses.append(float(loss.detach()))
        scheduler.step()
        row = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else float("nan"),
               "train_images": int(len(indices)),
               **validation_row(kept, val, config, settings["batch_size"], compute),
               "lr": float(optimizer.param_groups[0]["lr"]), "seconds": time.perf_counter() - began}
        row["best"] = selection_key(row) > best_key
        if row["best"]:
            best_key, best = selection_key(row), _best_detector(kept, epoch + 1, row)
        history.append(row)
        saved = time.monotonic() - saved_at >= settings["state_interval_s"]
        if saved:
            save_detector(model, last, extra={"training": _state(optimizer, scheduler, epoch + 1, best_key, best,
                                                                 history, attack_rng, ema)})
            saved_at = time.monotonic()
        # logged after the save: an epoch logged as saved is one a rerun can resume after
        log.info("epoch %d: loss %.4f, val AUC %.4f, val loss %.4f, acc %.3f at threshold %.3f, %.1f s%s", epoch + 1,
                 row["train_loss"], row["val_auc"], row["val_loss"], row["val_acc"], row["threshold"], row["seconds"],
                 ", state saved" if saved else "")
    kept.load_state_dict(best.pop("model"))
    save_detector(kept, out_path, extra={**best, "input": input_record or {}})
    return pd.DataFrame(history, columns=HISTORY_COLUMNS)


def _best_detector(model: DeepfakeDetector, epoch: int, row: dict) -> dict:
    """The best epoch's detector, kept in memory until the end (and in the training state): its
    weights copied, since later steps change the tensors `state_dict` shares, and the facts the
    checkpoint records with them."""
    weights = {name: value.detach().clone() for name, value in model.state_dict().items()}
    return {"model": weights, "epoch": epoch, "val_auc": row["val_auc"], "threshold": row["threshold"]}


def _state(optimizer, scheduler, epoch: int, best_key: tuple[float, float], best: dict, history: list[dict],
           rng: torch.Generator, ema: ModelEmaV3 | None) -> dict:
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch,
             "best": list(best_key), "best_detector": best, "history": history, "rng": rng.get_state(),
             "torch_rng": torch.get_rng_state()}
    if ema is not None:
        state["ema"] = ema.module.state_dict()
    return state


def weight_average(model: DeepfakeDetector, decay: float) -> ModelEmaV3 | None:
    """The exponential moving average of the weights (timm's), or None for decay 0. Its warm-up
    (decay min(d, 1 - (1 + step)^(-2/3))) lets a short run's average follow the training instead
    of holding on to the initial weights: at 0.995 a few hundred steps would otherwise leave
    them a large share of it."""
    if not decay:
        return None
    from timm.utils import ModelEmaV3  # timm's import (seconds) is paid only by the jobs that average

    return ModelEmaV3(model, decay=decay, use_warmup=True)


def optimizer_steps(optimizer: torch.optim.Optimizer) -> int:
    """Steps taken so far, read from the optimizer's own state (so a resumed run counts on)."""
    states = [s for s in optimizer.state.values() if "step" in s]
    return int(states[0]["step"]) if states else 0
