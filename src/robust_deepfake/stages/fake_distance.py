"""Stage measure_fakes: how far the fakes of a scenario lie, as a distribution, from the fakes the
same generator makes from clean faces (FID and KID).

Features come from one of two extractors, and every table names which:
- `inception_v3`: torchvision's InceptionV3 with weights from a local file the user configures
  (`fake_distance.inception_weights`; torchvision's `inception_v3_google-*.pth`), 2048-d pool
  features at 299 px: the standard FID/KID, comparable with the literature only up to the usual
  caveats (different weights than the TF original, small samples);
- `identity_resnet18` (when no weights are configured, since nothing is downloaded): a timm
  ResNet-18 the pipeline trains itself to tell split A's identities apart, 512-d pool features.
  It measures face-specific differences and is NOT comparable with published FIDs.

FID is biased upwards for small samples (the demo's are tens of faces) and needs a covariance
square root that is ill-conditioned when samples are fewer than feature dimensions; KID (the
unbiased MMD with the cubic polynomial kernel, averaged over subsets) is the better figure for
small sets, so both are reported with the sample sizes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import timm
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import nn
from torchvision.models import inception_v3

from robust_deepfake.checkpoints import load_checkpoint, save_checkpoint
from robust_deepfake.tensors import read_unit

log = logging.getLogger(__name__)

EXTRACTORS = ("inception_v3", "identity_resnet18")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FeatureExtractor(nn.Module):
    """RGB pixels in [0, 1] -> pooled features, at the extractor's own input size."""

    def __init__(self, name: str, backbone: nn.Module, size: int) -> None:
        super().__init__()
        self.name, self.backbone, self.size = name, backbone, size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        pixels = F.interpolate(pixels, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.backbone((pixels - self.mean) / self.std)


def inception_extractor(weights: str | Path) -> FeatureExtractor:
    """torchvision's InceptionV3 from a local weights file, classifier removed."""
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"InceptionV3 weights not found: {path} (fake_distance.inception_weights)")
    model = inception_v3(weights=None, aux_logits=True, init_weights=False)
    try:
        model.load_state_dict(load_checkpoint(path, "cpu", "InceptionV3 weights file"))
    except (RuntimeError, KeyError) as exc:
        raise ValueError(f"{path} does not hold torchvision InceptionV3 weights: {exc}") from None
    model.fc = nn.Identity()
    model.aux_logits, model.AuxLogits = False, None
    return FeatureExtractor("inception_v3", model.eval(), 299)


def train_identity_extractor(images: torch.Tensor, identities: list[str], *, steps: int, batch_size: int, lr: float,
                             seed: int, size: int = 64) -> tuple[FeatureExtractor, list[dict]]:
    """A ResNet-18 trained to classify split A's identities; its pooled features are the
    fallback feature space. Returns the extractor (classifier removed) and the training history."""
    names = sorted(set(identities))
    if len(names) < 2:
        raise ValueError(f"the identity feature extractor needs at least 2 identities in split A, got {len(names)}")
    labels = torch.tensor([names.index(i) for i in identities])
    torch.manual_seed(seed)
    backbone = timm.create_model("resnet18", pretrained=False, num_classes=len(names))
    extractor = FeatureExtractor("identity_resnet18", backbone, size)
    optimizer = torch.optim.Adam(backbone.parameters(), lr=lr, fused=True)
    generator = torch.Generator().manual_seed(seed)
    history = []
    extractor.train()
    for step in range(steps):
        batch = torch.randint(len(images), (batch_size,), generator=generator)
        flipped = torch.where(torch.rand(batch_size, 1, 1, 1, generator=generator) < 0.5,
                              images[batch].flip(-1), images[batch])
        loss = F.cross_entropy(extractor(flipped), labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append({"step": step + 1, "loss": float(loss.detach())})
    backbone.reset_classifier(0)
    return extractor.eval(), history


def save_extractor(extractor: FeatureExtractor, path: str | Path) -> None:
    save_checkpoint({"name": extractor.name, "size": extractor.size, "model": extractor.backbone.state_dict()}, path)


def load_extractor(path: str | Path) -> FeatureExtractor:
    payload = load_checkpoint(path, "cpu", "feature extractor checkpoint")
    backbone = timm.create_model("resnet18", pretrained=False, num_classes=0)
    backbone.load_state_dict(payload["model"])
    return FeatureExtractor(payload["name"], backbone.eval(), int(payload["size"]))


@torch.no_grad()
def features(extractor: FeatureExtractor, pixels: torch.Tensor, batch_size: int = 32) -> np.ndarray:
    return torch.cat([extractor(pixels[i:i + batch_size]) for i in range(0, len(pixels), batch_size)]).double().numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2); a small ridge when the product's root is
    singular (fewer samples than dimensions), as the reference FID code does."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():
        ridge = np.eye(len(cov_a)) * 1e-6
        root = linalg.sqrtm((cov_a + ridge) @ (cov_b + ridge))
    root = root.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root))


def kernel_inception_distance(a: np.ndarray, b: np.ndarray, subsets: int = 50, subset_size: int = 100,
                              seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, mean and std over random subsets (Binkowski
    et al.); subsets shrink to the smaller set's size."""
    rng = np.random.default_rng(seed)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        return float("nan"), float("nan")
    d = a.shape[1]
    values = []
    for _ in range(subsets):
        x, y = a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        mmd = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
        values.append(mmd)
    return float(np.mean(values)), float(np.std(values))


def distance_row(extractor: FeatureExtractor, fakes: pd.DataFrame, reference: pd.DataFrame, seed: int) -> dict:
    """FID and KID of a scenario's fakes against the clean faces' fakes, with sizes and extractor."""
    row = {"extractor": extractor.name, "fakes": len(fakes), "reference_fakes": len(reference)}
    if len(fakes) < 2 or len(reference) < 2:
        log.warning("too few fakes for a distribution distance (%d vs %d)", len(fakes), len(reference))
        return {**row, "fid": float("nan"), "kid": float("nan"), "kid_std": float("nan")}
    a = features(extractor, read_unit(fakes["image_path"].tolist()))
    b = features(extractor, read_unit(reference["image_path"].tolist()))
    kid, kid_std = kernel_inception_distance(a, b, seed=seed)
    return {**row, "fid": frechet_distance(a, b), "kid": kid, "kid_std": kid_std}
