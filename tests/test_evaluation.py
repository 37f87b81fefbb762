"""Evaluation on split C and the experiment report: the test set's composition, every condition
scored for real and fake alike, attacks that lower the detector's confidence, and the table and
figures built from metrics."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from robust_deepfake.devices import Compute
from robust_deepfake.registry import released_test_set
from robust_deepfake.stages.evaluation import ALL_FAKES, conditions, evaluation_faces, metrics_table, score_all
from robust_deepfake.detectors.network import DeepfakeDetector, DetectorConfig
from robust_deepfake.stages.report import (experiment_table, markdown, plot_attack_success, plot_auc_vs_rate, plot_distortions,
                                    plot_roc, poisoning_effects, seed_summary, summary_markdown)

SETTINGS = {"batch_size": 8, "threshold": 0.5, "attacks": ["fgsm", "pgd"], "fgsm": {"epsilon": 8 / 255},
            "pgd": {"epsilon": 8 / 255, "step_size": 2 / 255, "steps": 5}, "distortions": ["GB", "CS"],
            "levels": [1, 5]}


@pytest.fixture(scope="module")
def split_c(tmp_path_factory):
    """Two real videos of two frames, a dataset fake, and one generator's test fakes."""
    root = tmp_path_factory.mktemp("c")
    rng = np.random.default_rng(1)

    def image(name):
        path = root / f"{name}.png"
        cv2.imwrite(str(path), rng.integers(0, 255, (48, 48, 3), dtype=np.uint8))
        return str(path)

    part = pd.DataFrame({"media_id": ["r1", "r1", "r2", "r2", "df1"], "frame_idx": [0, 1, 0, 1, 0],
                         "label": [0, 0, 0, 0, 1], "method": ["real"] * 4 + ["Deepfakes"],
                         "face_path": [image(f"c{i}") for i in range(5)]})
    made = pd.DataFrame({"media_id": ["faceswap_ae/r1", "faceswap_ae/r1"], "frame_idx": [0, 1], "label": [1, 1],
                         "generator": "faceswap_ae", "image_path": [image("f0"), image("f1")]})
    return part, made


def test_test_set_has_reals_dataset_fakes_and_generated_fakes(split_c):
    faces = evaluation_faces(*[split_c[0], [split_c[1]]])
    assert faces.groupby("test_set")["label"].agg(list).to_dict() == {
        "Deepfakes": [1], "faceswap_ae": [1, 1], "real": [0, 0, 0, 0]}
    with pytest.raises(ValueError, match="one class"):
        evaluation_faces(split_c[0][split_c[0]["label"] == 0], [])


def test_the_attackers_own_fakes_are_a_test_set_apart_from_all(split_c):
    """Fakes made from C's faces as a poisoning left them are reported beside the clean-made ones,
    never mixed into `all`, whose figures stay comparable across scenarios."""
    part, made = split_c
    released = made.assign(media_id=["faceswap_ae/r2", "faceswap_ae/r2"], image_path=made["image_path"][::-1].to_numpy())
    faces = evaluation_faces(part, [made], {released_test_set("pgd", "target"): released})
    assert faces.groupby("test_set")["label"].agg(list).to_dict() == {
        "Deepfakes": [1], "faceswap_ae": [1, 1], "real": [0, 0, 0, 0], "released_pgd_target": [1, 1]}
    scores = faces.assign(condition="clean", kind="clean", level=0, score=np.linspace(0.1, 0.9, len(faces)))
    metrics = metrics_table(scores, 0.5)
    clean = metrics[(metrics["condition"] == "clean") & (metrics["unit"] == "frame")].set_index("test_set")
    assert set(clean.index) == {"Deepfakes", "faceswap_ae", "released_pgd_target", ALL_FAKES}
    assert clean.loc["released_pgd_target", "n_fake"] == 2 and clean.loc[ALL_FAKES, "n_fake"] == 3


def test_every_condition_is_scored_and_summarised(split_c):
    torch.manual_seed(0)
    model = DeepfakeDetector(DetectorConfig(image_size=32)).eval()
    faces = evaluation_faces(split_c[0], [split_c[1]])
    scores = score_all(model, faces, SETTINGS, seed=0, size=32, compute=Compute())
    names = [c for c, _, _ in conditions(SETTINGS)]
    assert names == ["clean", "fgsm", "pgd", "GB-1", "GB-5", "CS-1", "CS-5"]
    assert scores.groupby("condition").size().to_dict() == {n: len(faces) for n in names}
    clean = scores[scores["condition"] == "clean"]["score"].to_numpy()
    pgd = scores[scores["condition"] == "pgd"]["score"].to_numpy()
    labels = faces["label"].to_numpy()
    # each image is pushed away from its label: fakes' scores fall, reals' rise
    assert (pgd[labels == 1] < clean[labels == 1]).all() and (pgd[labels == 0] > clean[labels == 0]).all()

    again = score_all(model, faces, SETTINGS, seed=0, size=32, compute=Compute())
    assert np.array_equal(again["score"].to_numpy(), scores["score"].to_numpy())

    metrics = metrics_table(scores, 0.5)
    assert set(metrics["test_set"]) == {"Deepfakes", "faceswap_ae", ALL_FAKES}
    assert set(metrics["unit"]) == {"frame", "video"}
    frame_pgd = metrics[(metrics["condition"] == "pgd") & (metrics["unit"] == "frame") & (metrics["test_set"] == ALL_FAKES)]
    assert 0 <= frame_pgd["asr"].iloc[0] <= 1 and frame_pgd["n_fake"].iloc[0] == 3
    video_clean = metrics[(metrics["condition"] == "clean") & (metrics["unit"] == "video") & (metrics["test_set"] == ALL_FAKES)]
    assert video_clean["n"].iloc[0] == 4  # r1, r2, df1, faceswap_ae/r1


def _metrics(auc: float, asr: float) -> pd.DataFrame:
    rows = []
    for test_set_name in (ALL_FAKES, "faceswap_ae"):
        for unit in ("frame", "video"):
            rows.append({"test_set": test_set_name, "condition": "clean", "kind": "clean", "level": 0, "unit": unit,
                         "acc": auc, "auc": auc, "eer": 1 - auc, "ap": auc, "wp": auc})
            rows.append({"test_set": test_set_name, "condition": "pgd", "kind": "pgd", "level": 0, "unit": unit,
                         "acc": 0.5, "auc": 0.5, "eer": 0.5, "ap": 0.5, "wp": 0.5, "asr": asr,
                         "robust_acc": 0.5})
            rows.append({"test_set": test_set_name, "condition": "GB-1", "kind": "GB", "level": 1, "unit": unit,
                         "acc": auc - 0.1, "auc": auc - 0.1, "eer": 0.3, "ap": 0.6, "wp": 0.5})
    return pd.DataFrame(rows)


def test_experiment_table_and_figures(tmp_path):
    scenarios = [dict(backbone="resnet18", training=t, generator="faceswap_ae", attack="pgd", loss="mse",
                      poison_rate=r, defence=p) for t, r, p in [("plain", 0.0, "none"), ("plain", 0.5, "none"),
                                                   ("plain", 0.5, "diffpure"), ("pgd", 0.0, "none")]]
    metrics = [_metrics(a, s) for a, s in [(0.9, 0.8), (0.7, 0.8), (0.85, 0.7), (0.88, 0.2)]]
    history = pd.DataFrame({"epoch": [1, 2], "train_images": [10, 10], "val_auc": [0.6, 0.8], "best": [True, True]})
    purified = [pd.Series({"reject_rate": 0.1, "mse_g_purified": 0.01})] * 4
    table = experiment_table(scenarios, metrics, [history] * 4, purified)
    assert len(table) == 4 and table["best_epoch"].eq(2).all()
    row = table[(table["training"] == "pgd")].iloc[0]
    assert row["auc"] == 0.88 and row["pgd_asr"] == 0.2 and row["auc_faceswap_ae"] == 0.88
    assert row["distorted_auc_mean"] == pytest.approx(0.78)
    text = markdown(table)
    assert text.count("\n") == 6 and "| pgd |" in text
    paths = [tmp_path / f"{n}.png" for n in ("rate", "roc", "dist", "asr")]
    plot_auc_vs_rate(seed_summary(table), paths[0])
    scores = pd.DataFrame({"condition": "clean", "label": [0, 1, 0, 1], "score": [0.1, 0.9, 0.4, 0.3]})
    plot_roc([scores], ["one"], paths[1])
    plot_distortions(metrics, ["a", "b", "c", "d"], paths[2])
    plot_attack_success(seed_summary(table), paths[3])
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_scenario_without_a_detector_keeps_its_row_and_its_point(tmp_path):
    """At poison rate 1 a strict reject step can drop every real face: the scenario has no
    detector, and the table and the AUC-against-rate figure say so instead of losing it."""
    scenarios = [dict(backbone="resnet18", training="plain", generator="faceswap_ae", attack="pgd", loss="mse",
                      poison_rate=r, defence="jpeg") for r in (0.5, 1.0)]
    history = pd.DataFrame({"epoch": [1], "train_images": [10], "val_auc": [0.7], "best": [True]})
    purified = [pd.Series({"reject_rate": r, "mse_g_purified": 0.01}) for r in (0.4, 1.0)]
    table = experiment_table(scenarios, [_metrics(0.8, 0.5), pd.DataFrame()], [history, pd.DataFrame()], purified)
    assert table["detector"].tolist() == ["trained", "none: no training faces"]
    assert table["auc"].iloc[0] == 0.8 and np.isnan(table["auc"].iloc[1]) and table["reject_rate"].iloc[1] == 1.0
    assert "| none: no training faces |" in markdown(table)
    summary = seed_summary(table)
    assert summary["detector"].tolist() == ["trained", "none: no training faces"] and summary["seeds"].tolist() == [1, 0]
    plot_auc_vs_rate(summary, tmp_path / "rate.png")
    assert (tmp_path / "rate.png").stat().st_size > 0


def seeded_tables(aucs: dict) -> pd.DataFrame:
    """Per-seed experiment rows of resnet18 scenarios whose AUC (and accuracy) is given per seed."""
    history = pd.DataFrame({"epoch": [1], "train_images": [10], "val_auc": [0.9], "best": [True]})
    scenarios, metrics = [], []
    for (defence, rate), values in aucs.items():
        for seed, auc in enumerate(values):
            scenarios.append(dict(backbone="resnet18", training="plain", generator="faceswap_ae",
                                  attack="none" if rate == 0 else "pgd", loss="none" if rate == 0 else "mse",
                                  poison_rate=rate, defence=defence, seed=seed))
            metrics.append(_metrics(auc, 0.5))
    return experiment_table(scenarios, metrics, [history] * len(scenarios),
                            [pd.Series({"reject_rate": 0.0})] * len(scenarios))


def test_the_table_shows_mean_and_sd_over_two_seeds_against_hand_computed_values():
    """Two seeds of three scenarios: the summary's mean ± sd, and the poisoning's cost and what
    DiffPure wins back, with their 95 % intervals, computed here by hand."""
    per_seed = seeded_tables({("none", 0.0): (0.9, 0.8), ("none", 0.5): (0.71, 0.59), ("diffpure", 0.5): (0.81, 0.74)})
    summary = seed_summary(per_seed)
    clean = summary[summary["poison_rate"] == 0].iloc[0]
    assert clean["seeds"] == 2 and clean["auc"] == pytest.approx(0.85)
    assert clean["auc_sd"] == pytest.approx(np.std([0.9, 0.8], ddof=1))  # 0.0707
    text = summary_markdown(summary, poisoning_effects(per_seed))
    assert "0.850 ± 0.071" in text and "0.650 ± 0.085" in text and "0.775 ± 0.049" in text

    effects = poisoning_effects(per_seed).set_index("defence")
    # cost per seed: 0.9 - 0.71 = 0.19 and 0.8 - 0.59 = 0.21; mean 0.2, sd 0.0141, t(0.975, 1) = 12.706
    half = 12.7062047 * np.std([0.19, 0.21], ddof=1) / np.sqrt(2)
    assert effects.loc["none", "auc_cost"] == pytest.approx(0.2)
    assert (effects.loc["none", "auc_cost_lo"], effects.loc["none", "auc_cost_hi"]) == pytest.approx(
        (0.2 - half, 0.2 + half), abs=1e-6)
    # DiffPure wins back 0.81 - 0.71 = 0.10 and 0.74 - 0.59 = 0.15: 0.125 of the 0.2 lost, a share of 0.625
    assert effects.loc["diffpure", "auc_won_back"] == pytest.approx(0.125)
    assert effects.loc["diffpure", "auc_share"] == pytest.approx(0.625)
    assert effects.loc["diffpure", "auc_share_lo"] <= 0.625 <= effects.loc["diffpure", "auc_share_hi"]
    assert "0.200 [" in text and "0.625 [" in text
    # a cost whose interval reaches 0 (0.15 and 0.25) leaves no share to speak of
    noisy = poisoning_effects(seeded_tables({("none", 0.0): (0.9, 0.8), ("none", 0.5): (0.75, 0.55),
                                            ("diffpure", 0.5): (0.85, 0.7)})).set_index("defence")
    assert noisy.loc["diffpure", "auc_won_back"] == pytest.approx(0.125) and np.isnan(noisy.loc["diffpure", "auc_share"])
    # without the clean scenario there is no cost to measure: no effects, and summary.md says nothing of them
    without_clean = per_seed[per_seed["poison_rate"] > 0]
    assert poisoning_effects(without_clean).empty
    assert "Poisoning cost" not in summary_markdown(seed_summary(without_clean), poisoning_effects(without_clean))
