"""Detector training: the training set's rules, adversarial training that moves its input every
step inside the budget, the Lipschitz penalty, checkpoints, and a resumed run equal to an
uninterrupted one."""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np
import pandas as pd
import pytest
import timm
import torch

from robust_deepfake.devices import Compute
from robust_deepfake.stages import detector_training as detector_module
from robust_deepfake.detectors.holdout import holdout_split
from robust_deepfake.stages.detector_training import NothingToTrain, balanced_indices, train_detector, training_set
from robust_deepfake.detectors.adversarial import adversarial_examples, lipschitz_penalty
from robust_deepfake.detectors.network import (DeepfakeDetector, DetectorConfig, UntrainedDetector, load_detector,
                                             save_detector, save_untrained)

TINY = DetectorConfig(backbone="resnet18", image_size=32)
SETTINGS = {"epochs": 3, "batch_size": 8, "lr": 1e-3, "weight_decay": 0.0, "optimizer": "adamw", "patience": 0,
            "augment": "none", "balance": True, "state_interval_s": 0,
            "adversarial": {"epsilon": 4 / 255, "step_size": 1 / 255, "steps": 3, "clean_weight": 0.5,
                            "lipschitz_psi": 10.0, "lipschitz_z": 2.0, "finetune_epochs": 2}}


def test_training_set_uses_kept_purified_reals_and_refuses_an_empty_class():
    purified = pd.DataFrame({"media_id": ["a", "b"], "identity": ["ann", "bob"], "purified_path": ["pa", "pb"],
                             "kept": [True, False]})
    fakes = pd.DataFrame({"media_id": ["g/a", "g/b"], "real_media_id": ["a", "b"], "image_path": ["fa", "fb"]})
    faces = training_set(purified, fakes, "s")
    assert faces["image_path"].tolist() == ["pa", "fa", "fb"] and faces["label"].tolist() == [0, 1, 1]
    assert faces["source_media_id"].tolist() == ["a", "a", "b"]
    assert faces["identity"].tolist() == ["ann", "ann", "bob"]  # a fake's person is its source's
    with pytest.raises(NothingToTrain, match="scenario-x: nothing to train.*0 real faces passed the reject step"):
        training_set(purified.assign(kept=False), fakes, "scenario-x")


def test_holdout_keeps_a_source_and_its_fakes_together(detector_faces):
    train, val = holdout_split(detector_faces, 0.25, seed=0)
    assert len(train) + len(val) == len(detector_faces)
    assert not set(train["source_media_id"]) & set(val["source_media_id"])
    assert set(val["label"]) == {0, 1}
    again, _ = holdout_split(detector_faces, 0.25, seed=0)
    assert again.equals(train)


def test_random_holdout_never_holds_out_every_media_of_a_person():
    """Twelve people with three sources each and a hold-out share of 0.6: some people have all
    three drawn, yet each keeps exactly one source in training; people with a single source may
    still be held out whole. Without identities the split is the draws alone."""
    people = [f"p{k}" for k in range(12)]
    rows = [{"source_media_id": f"{p}/{m}", "identity": p, "label": label}
            for p in people for m in range(3) for label in (0, 1)]
    rows += [{"source_media_id": f"solo{k}", "identity": f"solo{k}", "label": label}
             for k in range(12) for label in (0, 1)]
    faces = pd.DataFrame(rows)
    _, drawn = holdout_split(faces.drop(columns="identity"), 0.6, seed=0)
    drawn = set(drawn["source_media_id"])
    whole = [p for p in people if {f"{p}/{m}" for m in range(3)} <= drawn]
    assert whole, "the test needs a person whose every source is drawn"

    train, val = holdout_split(faces, 0.6, seed=0)
    held = set(val["source_media_id"])
    assert all((train["identity"] == p).any() for p in people)
    assert held <= drawn and len(drawn - held) == len(whole)  # one source given back per such person
    assert any(s.startswith("solo") for s in held)


def test_balanced_indices_undersample_the_larger_class():
    labels = np.array([0] * 10 + [1] * 3)
    chosen = balanced_indices(labels, np.random.default_rng(0))
    assert (labels[chosen] == 0).sum() == 3 and (labels[chosen] == 1).sum() == 3


def test_pgd_adversarial_training_moves_the_input_every_step_inside_the_budget():
    torch.manual_seed(0)
    model = DeepfakeDetector(TINY)
    pixels = torch.rand(4, 3, 32, 32)
    labels = torch.tensor([0.0, 1.0, 0.0, 1.0])
    seen = []
    original = model.forward

    def recording_forward(x):
        seen.append(x.detach().clone())
        return original(x)

    model.forward = recording_forward
    adv = adversarial_examples(model, pixels, labels, "pgd", SETTINGS["adversarial"], torch.Generator().manual_seed(0))
    iterates = seen[:SETTINGS["adversarial"]["steps"]]  # one forward per step, then the final evaluation
    assert len(seen) == SETTINGS["adversarial"]["steps"] + 1
    for before, after in zip(iterates, iterates[1:] + [adv]):
        assert (after - before).abs().max() > 0, "the attack did not move its iterate"
    assert (adv - pixels).abs().max() <= SETTINGS["adversarial"]["epsilon"] + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert model.training  # restored after attacking in eval mode


def test_lipschitz_penalty_is_differentiable_in_the_weights():
    model = DeepfakeDetector(TINY)
    penalty = lipschitz_penalty(model, torch.rand(2, 3, 32, 32), z=2.0)
    assert penalty > 0
    penalty.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_checkpoint_round_trip_and_foreign_files(tmp_path):
    model = DeepfakeDetector(TINY).eval()
    save_detector(model, tmp_path / "model.pt")
    loaded = load_detector(tmp_path / "model.pt")
    x = torch.rand(2, 3, 40, 40)  # any size: the model resizes
    assert torch.allclose(model(x), loaded(x))
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a detector checkpoint"):
        load_detector(tmp_path / "foreign.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_detector(tmp_path / "missing.pt")


def test_an_untrained_scenario_checkpoint_says_why_when_loaded(tmp_path):
    save_untrained(TINY, tmp_path / "model.pt", "s: nothing to train a detector on")
    with pytest.raises(UntrainedDetector, match=r"model.pt: no detector was trained in this scenario: s: nothing"):
        load_detector(tmp_path / "model.pt")


def test_local_timm_weights_are_loaded_and_the_head_replaced(tmp_path):
    reference = timm.create_model("resnet18", pretrained=False, num_classes=1000)
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    model = DeepfakeDetector(TINY, pretrained_file=tmp_path / "resnet18.pth")
    assert torch.equal(model.backbone.conv1.weight, reference.conv1.weight)
    assert model.backbone.fc.out_features == 1
    with pytest.raises(FileNotFoundError):
        DeepfakeDetector(TINY, pretrained_file=tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="timm has no model"):
        DeepfakeDetector(DetectorConfig(backbone="no_such_net"))


def _train(faces, tmp_path, name, mode="plain", compute=None, settings=SETTINGS):
    torch.manual_seed(0)
    train, val = holdout_split(faces, 0.25, seed=0)
    return train_detector(train, val, TINY, settings, mode, seed=0, out_path=tmp_path / f"{name}.pt",
                          work_dir=tmp_path / f"{name}_work", compute=compute or Compute())


@pytest.mark.parametrize("workers, augment", [(0, "none"), (2, "strong")])
def test_training_learns_and_a_killed_run_resumes_to_the_same_weights(detector_faces, tmp_path, monkeypatch,
                                                                       workers, augment):
    """Also with loader workers, the data path of a GPU job (`Compute.loader`): they read and
    augment the faces, so the augmentations' randomness lives in them, seeded per epoch from the
    training seed, and a resumed run must draw the same."""
    train = partial(_train, compute=Compute(workers=workers), settings={**SETTINGS, "augment": augment})
    history = train(detector_faces, tmp_path, "straight")
    assert history["epoch"].tolist() == [1, 2, 3]
    assert history["val_auc"].max() > 0.9  # the bright square is easy to see

    _killed_in_epoch_2(train, detector_faces, tmp_path, monkeypatch)
    assert (tmp_path / "resumed_work" / "last.pt").exists()  # state_interval_s 0: saved after epoch 1
    resumed = train(detector_faces, tmp_path, "resumed")
    assert resumed["epoch"].tolist() == [1, 2, 3]
    _assert_same_weights(tmp_path / "straight.pt", tmp_path / "resumed.pt")


def test_short_epochs_within_the_state_interval_write_no_state_and_a_rerun_starts_over(detector_faces, tmp_path,
                                                                                          monkeypatch):
    train = partial(_train, settings={**SETTINGS, "state_interval_s": 3600})
    train(detector_faces, tmp_path, "straight")
    _killed_in_epoch_2(train, detector_faces, tmp_path, monkeypatch)
    assert not (tmp_path / "resumed_work" / "last.pt").exists()
    assert train(detector_faces, tmp_path, "resumed")["epoch"].tolist() == [1, 2, 3]
    _assert_same_weights(tmp_path / "straight.pt", tmp_path / "resumed.pt")


def _killed_in_epoch_2(train, faces, tmp_path, monkeypatch) -> None:
    """Run `train` as "resumed" and kill it during epoch 2's validation."""
    calls = {"n": 0}
    real_score = detector_module.score_faces

    def dying_score(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_score(*args, **kwargs)

    monkeypatch.setattr(detector_module, "score_faces", dying_score)
    with pytest.raises(KeyboardInterrupt):
        train(faces, tmp_path, "resumed")
    monkeypatch.setattr(detector_module, "score_faces", real_score)


def _assert_same_weights(path_a, path_b) -> None:
    a, b = load_detector(path_a), load_detector(path_b)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


def test_pgd_training_runs_and_records_each_epoch(detector_faces, tmp_path):
    history = _train(detector_faces, tmp_path, "pgd", mode="pgd")
    assert len(history) == 3 and np.isfinite(history["train_loss"]).all()


def test_adversarial_fine_tuning_starts_from_the_plain_checkpoints_weights(detector_faces, tmp_path):
    _train(detector_faces, tmp_path, "plain")
    plain = load_detector(tmp_path / "plain.pt").state_dict()
    train, val = holdout_split(detector_faces, 0.25, seed=0)
    frozen = {**SETTINGS, "lr": 0.0}  # no step moves a weight: what comes out is what went in
    history = train_detector(train, val, TINY, frozen, "pgd_finetune", seed=0, out_path=tmp_path / "ft.pt",
                             work_dir=tmp_path / "ft_work", compute=Compute(), init_file=tmp_path / "plain.pt")
    assert len(history) == SETTINGS["adversarial"]["finetune_epochs"]
    tuned = load_detector(tmp_path / "ft.pt").state_dict()
    weights = [k for k in plain if "running" not in k and "num_batches" not in k]
    assert all(torch.equal(plain[k], tuned[k]) for k in weights)
    torch.manual_seed(0)
    fresh = DeepfakeDetector(TINY).state_dict()
    assert not torch.equal(fresh["backbone.conv1.weight"], tuned["backbone.conv1.weight"])

    history = train_detector(train, val, TINY, SETTINGS, "fgsm_finetune", seed=0, out_path=tmp_path / "ft2.pt",
                             work_dir=tmp_path / "ft2_work", compute=Compute(), init_file=tmp_path / "plain.pt")
    assert history["val_auc"].iloc[0] > 0.9  # it begins where the plain detector ended, not at chance
    with pytest.raises(ValueError, match="starts from plain, but was given no checkpoint"):
        train_detector(train, val, TINY, SETTINGS, "pgd_finetune", seed=0, out_path=tmp_path / "x.pt",
                       work_dir=tmp_path / "x", compute=Compute())
    with pytest.raises(ValueError, match="cannot fine-tune"):
        train_detector(train, val, DetectorConfig(backbone="resnet18", image_size=48), SETTINGS, "pgd_finetune",
                       seed=0, out_path=tmp_path / "y.pt", work_dir=tmp_path / "y", compute=Compute(),
                       init_file=tmp_path / "plain.pt")


def test_the_best_epoch_is_ranked_by_hold_out_auc_then_loss():
    from robust_deepfake.stages.detector_training import NO_EPOCH, selection_key

    first = {"val_auc": 1.0, "val_loss": 0.40}
    later = {"val_auc": 1.0, "val_loss": 0.05}  # the same AUC, better calibrated: preferred
    worse = {"val_auc": 0.99, "val_loss": 0.01}
    assert selection_key(later) > selection_key(first) > selection_key(worse) > NO_EPOCH
    assert selection_key({"val_auc": float("nan"), "val_loss": float("nan")}) > NO_EPOCH


def test_patience_stops_training_and_the_threshold_is_kept_with_the_model(detector_faces, tmp_path):
    train, val = holdout_split(detector_faces, 0.25, seed=0)
    settings = {**SETTINGS, "epochs": 30, "patience": 2, "lr": 1e-2}
    history = train_detector(train, val, TINY, settings, "plain", seed=0, out_path=tmp_path / "m.pt",
                             work_dir=tmp_path / "w", compute=Compute())
    last_best = int(history.loc[history["best"], "epoch"].max())
    assert len(history) == last_best + 2 < 30  # two epochs without a better one, then stop
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    assert payload["epoch"] == last_best and payload["threshold"] == history.loc[last_best - 1, "threshold"]


def blurred_and_sharp(root, n: int, seed: int) -> pd.DataFrame:
    """Sharp noise textures (real) and the same textures blurred (fake): a face swap's decoded
    face is such a blur of the high frequencies, which the spectrum shows at once."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        texture = cv2.resize(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), (32, 32),
                             interpolation=cv2.INTER_LINEAR).astype(np.float32)
        texture += rng.normal(0, 12, texture.shape)
        for label, image in ((0, texture), (1, cv2.GaussianBlur(texture, (5, 5), 1.2))):
            path = root / f"s{seed}_{k}_{label}.png"
            cv2.imwrite(str(path), np.clip(image, 0, 255).astype(np.uint8))
            rows.append({"media_id": f"{label}/{seed}/{k}", "source_media_id": f"{seed}/{k}", "image_path": str(path),
                         "label": label})
    return pd.DataFrame(rows)


def test_the_spectrum_detector_separates_blurred_from_sharp(tmp_path):
    from robust_deepfake.stages.detector_training import score_faces
    from robust_deepfake.detectors.scoring import detection_metrics

    config = DetectorConfig(backbone="spectrum", image_size=32)
    train, test = blurred_and_sharp(tmp_path, 24, seed=1), blurred_and_sharp(tmp_path, 16, seed=2)
    fit, val = holdout_split(train, 0.25, seed=0)
    train_detector(fit, val, config, {**SETTINGS, "epochs": 15, "lr": 1e-2}, "plain", seed=0,
                   out_path=tmp_path / "spectrum.pt", work_dir=tmp_path / "w", compute=Compute())
    model = load_detector(tmp_path / "spectrum.pt")
    assert sum(p.numel() for p in model.parameters()) == 32 + 1  # a linear head on 32 spectrum bins
    scores = score_faces(model, test, 32, 16, Compute())
    assert detection_metrics(test["label"].to_numpy(), scores)["auc"] >= 0.95
    # it takes the evasion attacks as any detector: its logit is differentiable in the pixels
    pixels = torch.rand(2, 3, 32, 32, requires_grad=True)
    model(pixels).sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0


def test_spectrum_rings_cover_every_frequency_once():
    from robust_deepfake.detectors.spectrum import radial_bins

    rings = radial_bins(16, 8)
    assert rings.shape == (8, 256)
    assert torch.allclose(rings.sum(1), torch.ones(8))  # each row averages its ring
    assert torch.equal((rings > 0).sum(0), torch.ones(256, dtype=torch.long))  # each frequency in one ring
    assert rings[0, 8 * 16 + 8] > 0  # the DC term (centre of the shifted spectrum) is in the first ring
    with pytest.raises(ValueError, match="too many"):
        radial_bins(4, 16)
