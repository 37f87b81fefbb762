"""The expert ensemble (its three losses on hand-made numbers, its prediction), the weight average
and the k-means hold-out."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from robust_deepfake.devices import Compute
from robust_deepfake.detectors.ensemble import (ExpertEnsemble, consensus_kl_term, cross_entropy_term,
                                                supervised_nce_term)
from robust_deepfake.detectors.holdout import holdout_split, kmeans_sources
from robust_deepfake.detectors.network import DeepfakeDetector, DetectorConfig, load_detector
from robust_deepfake.stages.detector_training import train_detector, weight_average

EXPERTS = ["test_resnet", "test_efficientnet"]  # timm's tiny test models: the same code paths, no weight


def test_cross_entropy_term_is_each_experts_cross_entropy_averaged():
    # expert 1 gives P(fake) 3/4 on both faces, expert 2 gives 1/2
    logits = torch.tensor([[[0.0, math.log(3)], [0.0, math.log(3)]], [[0.0, 0.0], [0.0, 0.0]]])
    labels = torch.tensor([1.0, 0.0])
    expert1 = (-math.log(3 / 4) - math.log(1 / 4)) / 2
    expert2 = -math.log(1 / 2)
    assert float(cross_entropy_term(logits, labels)) == pytest.approx((expert1 + expert2) / 2)


def test_consensus_kl_term_pulls_each_expert_to_the_mean_prediction():
    # one face: expert 1 says (real 0.5, fake 0.5), expert 2 (0.9, 0.1); the consensus is (0.7, 0.3)
    logits = torch.log(torch.tensor([[[0.5, 0.5]], [[0.9, 0.1]]]))
    kl1 = 0.7 * math.log(0.7 / 0.5) + 0.3 * math.log(0.3 / 0.5)
    kl2 = 0.7 * math.log(0.7 / 0.9) + 0.3 * math.log(0.3 / 0.1)
    assert float(consensus_kl_term(logits)) == pytest.approx((kl1 + kl2) / 2, rel=1e-5)
    agreeing = torch.log(torch.tensor([[[0.8, 0.2]], [[0.8, 0.2]]]))
    assert float(consensus_kl_term(agreeing)) == pytest.approx(0.0, abs=1e-7)
    # the consensus is a fixed target: d/dz_k = (p_k - p_bar) / K, with no term through p_bar
    moving = logits.clone().requires_grad_(True)
    consensus_kl_term(moving).backward()
    assert moving.grad[0, 0, 1] == pytest.approx((0.5 - 0.3) / 2) and moving.grad[1, 0, 1] == pytest.approx(-0.1)


def test_supervised_nce_term_on_hand_made_embeddings():
    # two real faces at the same point, one fake at a right angle; temperature 1
    embeddings = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])  # normalised inside
    labels = torch.tensor([0.0, 0.0, 1.0])
    # anchors 1 and 2: positive similarity 1 against a negative at 0; anchor 3 has no positive
    expected = -math.log(math.e / (math.e + 1))
    assert float(supervised_nce_term(embeddings, labels, 1.0)) == pytest.approx(expected)
    separated = torch.tensor([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    assert float(supervised_nce_term(separated, labels, 0.1)) < float(supervised_nce_term(embeddings, labels, 0.1))
    assert float(supervised_nce_term(embeddings, torch.tensor([0.0, 1.0, 2.0]), 1.0)) == 0.0  # nothing to pull


def test_the_ensemble_predicts_its_experts_mean_fake_probability():
    torch.manual_seed(0)
    ensemble = ExpertEnsemble(EXPERTS).eval()
    x = torch.randn(3, 3, 32, 32)
    logits, features = ensemble.expert_outputs(x)
    assert logits.shape == (2, 3, 2) and len(features) == 2
    mean_fake = torch.softmax(logits, -1)[..., 1].mean(0)
    assert torch.allclose(torch.sigmoid(ensemble(x).squeeze(1)), mean_fake, atol=1e-6)
    with pytest.raises(ValueError, match="at least two experts"):
        ExpertEnsemble(["test_resnet"])


def test_one_weight_average_update_by_hand():
    torch.manual_seed(0)
    model = DeepfakeDetector(DetectorConfig(backbone="spectrum", image_size=32))
    ema = weight_average(model, 0.995)
    assert weight_average(model, 0.0) is None
    ema.update(model, step=1)  # the first update copies the weights
    before = ema.module.backbone.head.weight.detach().clone()
    with torch.no_grad():
        model.backbone.head.weight.add_(1.0)
    ema.update(model, step=50)
    decay = min(0.995, 1 - (1 + 49) ** (-2 / 3))  # the warm-up's decay at step 50 (timm counts from 0)
    expected = decay * before + (1 - decay) * model.backbone.head.weight
    assert torch.allclose(ema.module.backbone.head.weight, expected, atol=1e-6)
    assert not torch.allclose(ema.module.backbone.head.weight, model.backbone.head.weight)


def _looks(root, n_sources: int) -> pd.DataFrame:
    """Sources of two looks (dark and bright scenes), two frames each, a real and a fake per frame."""
    rng = np.random.default_rng(0)
    rows = []
    for s in range(n_sources):
        level = 40 if s % 2 else 210
        for frame in range(2):
            for label in (0, 1):
                image = np.clip(level + rng.normal(0, 5, (24, 24, 3)), 0, 255).astype(np.uint8)
                if label:
                    image[6:14, 6:14] = 128
                path = root / f"s{s}_{frame}_{label}.png"
                cv2.imwrite(str(path), image)
                rows.append({"media_id": f"fake/s{s}" if label else f"s{s}", "source_media_id": f"s{s}",
                             "frame_idx": frame, "image_path": str(path), "label": label})
    return pd.DataFrame(rows)


def test_kmeans_holdout_takes_whole_clusters_and_whole_media(tmp_path):
    faces = _looks(tmp_path, 12)
    held = kmeans_sources(faces, 0.5, seed=3, clusters=2)
    looks = {int(s[1:]) % 2 for s in held}
    assert len(held) == 6 and len(looks) == 1  # one whole cluster: every source of one look, no other
    train, val = holdout_split(faces, 0.5, seed=3, rule="kmeans", clusters=2)
    assert len(train) + len(val) == len(faces)
    for media, rows in faces.groupby("media_id"):  # every frame of a media on one side
        assert rows["image_path"].isin(val["image_path"]).all() or not rows["image_path"].isin(val["image_path"]).any()
    assert not set(train["source_media_id"]) & set(val["source_media_id"])
    assert set(val["label"]) == {0, 1}
    with pytest.raises(ValueError, match="unknown validation rule"):
        holdout_split(faces, 0.5, seed=0, rule="stratified")


def test_the_ensemble_trains_with_its_losses_and_weight_average(tmp_path):
    faces = _looks(tmp_path, 16)
    train, val = holdout_split(faces, 0.25, seed=0)
    config = DetectorConfig(backbone="ensemble", image_size=24, extra={"experts": EXPERTS, "embedding_dim": 8})
    settings = {"epochs": 6, "batch_size": 8, "lr": 3e-3, "weight_decay": 0.0, "optimizer": "adamw", "patience": 0,
                "augment": "none", "balance": True, "ema_decay": 0.995, "state_interval_s": 0}
    history = train_detector(train, val, config, settings, "plain", seed=0, out_path=tmp_path / "e.pt",
                             work_dir=tmp_path / "w", compute=Compute())
    assert np.isfinite(history["train_loss"]).all() and history["val_auc"].max() > 0.9
    model = load_detector(tmp_path / "e.pt")
    assert model.config.extra["experts"] == EXPERTS and isinstance(model.backbone, ExpertEnsemble)
    raw = torch.load(tmp_path / "w" / "last.pt", weights_only=True)
    assert "ema" in raw["training"]  # a resumed run carries its average on
