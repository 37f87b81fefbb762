"""How a job uses its device: CPUs from SLURM, loader workers, per-device batch sizes, and that
bf16 autocast and channels-last training keep a detector's results within the stated tolerance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from robust_deepfake.detectors.holdout import holdout_split
from robust_deepfake.detectors.network import DetectorConfig, load_detector
from robust_deepfake.devices import Compute, job_cpus, per_device
from robust_deepfake.stages.detector_training import score_faces, train_detector

from test_detector import SETTINGS


def test_a_slurm_job_uses_every_cpu_of_its_allocation(monkeypatch):
    """The cluster profile asks for --cpus-per-gpu, which Snakemake's `threads` (1) never sees."""
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert job_cpus(1) == 1
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert job_cpus(1) == 4 and job_cpus(8) == 8


def test_loader_workers_feed_a_gpu_and_stay_out_of_a_cpus_way():
    assert Compute(cpus=4).loader() == {"num_workers": 0, "pin_memory": False, "persistent_workers": False}
    gpu = Compute(torch.device("cuda"), cpus=4).loader()
    assert gpu == {"num_workers": 3, "pin_memory": True, "persistent_workers": True}
    assert Compute(cpus=4, workers=2).loader()["num_workers"] == 2
    with pytest.raises(ValueError, match="precision must be one of"):
        Compute(precision="fp16")


def test_batch_sizes_are_one_number_or_one_per_device():
    assert per_device(16, torch.device("cuda")) == 16
    assert per_device({"cpu": 16, "cuda": 256}, torch.device("cuda")) == 256
    assert per_device({"cpu": 16, "cuda": 256}, torch.device("cpu")) == 16


@pytest.mark.parametrize("backbone", ["resnet18", "spectrum"])
def test_bf16_and_channels_last_training_stay_within_tolerance_of_fp32(detector_faces, tmp_path, backbone):
    """The same tiny detector trained in fp32 and in bf16 autocast with channels-last batches: both
    learn the task, and their test scores differ by less than the README's tolerance (0.05 in
    probability; bf16 keeps 8 bits of mantissa)."""
    config = DetectorConfig(backbone=backbone, image_size=32)
    train, val = holdout_split(detector_faces, 0.25, seed=0)
    scores = {}
    for name, compute in {"fp32": Compute(), "bf16": Compute(precision="bf16", channels_last=True)}.items():
        torch.manual_seed(0)
        history = train_detector(train, val, config, {**SETTINGS, "epochs": 2}, "plain", seed=0,
                                 out_path=tmp_path / f"{name}.pt", work_dir=tmp_path / name, compute=compute)
        assert np.isfinite(history["train_loss"]).all()
        model = compute.model(load_detector(tmp_path / f"{name}.pt"))
        scores[name] = score_faces(model, detector_faces, 32, 16, compute)
    labels = detector_faces["label"].to_numpy()
    assert abs(scores["fp32"] - scores["bf16"]).max() < 0.05, abs(scores["fp32"] - scores["bf16"]).max()
    for name, s in scores.items():
        assert pd.Series(s).notna().all() and len(s) == len(labels), name
