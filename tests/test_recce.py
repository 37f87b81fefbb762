"""RECCE: its metric and reconstruction terms on hand-made numbers, and its training in the pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robust_deepfake.devices import Compute
from robust_deepfake.detectors.holdout import holdout_split
from robust_deepfake.detectors.network import DeepfakeDetector, DetectorConfig, load_detector
from robust_deepfake.detectors.recce import RECCE, metric_term, reconstruction_term
from robust_deepfake.stages.detector_training import train_detector
from test_ensemble import _looks


def test_metric_term_gathers_reals_and_pushes_fakes_from_them():
    labels = torch.tensor([0.0, 0.0, 1.0])
    together = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])  # reals at one point, the fake at 90 degrees
    assert float(metric_term(together, labels)) == pytest.approx(0.0 - 1.0)
    apart = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # reals 90 degrees apart, the fake on one of them
    assert float(metric_term(apart, labels)) == pytest.approx(1.0 - 0.5)
    assert float(metric_term(together[2:], labels[2:])) == 0.0  # a fake alone: nothing to compare


def test_reconstruction_term_counts_the_real_faces_only():
    x = torch.zeros(2, 3, 4, 4)
    reconstruction = torch.stack([torch.full((3, 4, 4), 0.25), torch.ones(3, 4, 4)])
    assert float(reconstruction_term(x, reconstruction, torch.tensor([0.0, 1.0]))) == pytest.approx(0.25)
    assert float(reconstruction_term(x, reconstruction, torch.tensor([1.0, 1.0]))) == 0.0


def test_recce_reconstructs_its_input_size_and_trains_in_the_pipeline(tmp_path):
    torch.manual_seed(0)
    model = RECCE("test_resnet", decoder_channels=8)
    x = torch.randn(4, 3, 24, 24)
    logit, reconstruction, pooled = model.outputs(x)
    assert logit.shape == (4, 1) and reconstruction.shape == x.shape and pooled.ndim == 2
    assert torch.isfinite(model.training_loss(x, torch.tensor([0.0, 1.0, 0.0, 1.0])))

    faces = _looks(tmp_path, 16)
    train, val = holdout_split(faces, 0.25, seed=0)
    config = DetectorConfig(backbone="recce", image_size=24, extra={"encoder": "test_resnet", "decoder_channels": 8})
    settings = {"epochs": 6, "batch_size": 8, "lr": 3e-3, "weight_decay": 0.0, "optimizer": "adamw", "patience": 0,
                "augment": "none", "balance": True, "state_interval_s": 60}
    history = train_detector(train, val, config, settings, "plain", seed=0, out_path=tmp_path / "r.pt",
                             work_dir=tmp_path / "w", compute=Compute())
    assert np.isfinite(history["train_loss"]).all() and history["val_auc"].max() > 0.9
    assert isinstance(load_detector(tmp_path / "r.pt").backbone, RECCE)
    assert isinstance(DeepfakeDetector(config).backbone, RECCE)
