"""Detector metrics against cases worked out by hand (label 1 = fake, score = P(fake))."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from sklearn.metrics import auc

from robust_deepfake.detectors.scoring import (attack_success_rate, detection_metrics, equal_error_rate,
                                               roc_points, video_scores, weighted_precision)


def test_perfect_separation():
    m = detection_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert m["auc"] == 1.0 and m["eer"] == 0.0 and m["ap"] == 1.0 and m["acc"] == 1.0


def test_reversed_scores():
    # ROC (0,0) (.5,0) (1,0) (1,.5) (1,1): the curve meets FPR = 1 - TPR at (1, 0).
    m = detection_metrics([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1])
    assert m["auc"] == 0.0 and m["eer"] == 1.0 and m["acc"] == 0.0


def test_four_sample_hand_case():
    # labels [0,0,1,1], scores [0.1,0.6,0.4,0.9].
    # AUC: fake-real pairs ranked right: 0.4>0.1, 0.9>0.1, 0.9>0.6 (0.4<0.6 is wrong) -> 3/4.
    # AP: descending 0.9 F (P 1, R 1/2), 0.6 R, 0.4 F (P 2/3, R 1) -> 1/2*1 + 1/2*2/3 = 5/6.
    # ROC (0,0) (0,.5) (.5,.5) (.5,1) (1,1); FPR - FNR = -1, -.5, 0, .5, 1 -> EER at (.5,.5) = 0.5.
    # Threshold 0.5: called fake [0,1,0,1] -> 2 of 4 right.
    m = detection_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    assert m["auc"] == pytest.approx(0.75)
    assert m["ap"] == pytest.approx(5 / 6)
    assert m["eer"] == pytest.approx(0.5)
    assert m["acc"] == pytest.approx(0.5)
    assert (m["n"], m["n_real"], m["n_fake"]) == (4, 2, 2)


def test_five_sample_eer_between_roc_points():
    # reals [0.2, 0.6], fakes [0.4, 0.7, 0.9]. Descending: .9F .7F .6R .4F .2R.
    # ROC (0,0) (0,1/3) (0,2/3) (.5,2/3) (.5,1) (1,1); FNR 1, 2/3, 1/3, 1/3, 0, 0.
    # FPR - FNR changes sign on (0,2/3)->(.5,2/3), where FNR stays 1/3 while FPR runs 0 -> .5,
    # so the crossing is FPR = FNR = 1/3 (neither ROC point: they give 0 vs 1/3 and .5 vs 1/3).
    # AUC: 5 of 6 pairs right (only 0.4 < 0.6). AP: 1/3*1 + 1/3*1 + 1/3*3/4 = 11/12.
    labels, scores = [0, 0, 1, 1, 1], [0.2, 0.6, 0.4, 0.7, 0.9]
    m = detection_metrics(labels, scores)
    assert m["eer"] == pytest.approx(1 / 3)
    assert m["auc"] == pytest.approx(5 / 6)
    assert m["ap"] == pytest.approx(11 / 12)


def test_eer_interpolates_along_a_tied_segment():
    # labels [0,0,1,1], scores [0.2,0.5,0.5,0.9]: the tie makes one diagonal ROC segment
    # (0,.5) -> (.5,1); on it FPR = t/2, FNR = 1/2 - t/2, equal at t = 1/2 -> EER 0.25.
    assert equal_error_rate([0, 0, 1, 1], [0.2, 0.5, 0.5, 0.9]) == pytest.approx(0.25)
    # one real, one fake, same score: the chance diagonal, EER 0.5
    assert equal_error_rate([0, 1], [0.5, 0.5]) == pytest.approx(0.5)


def test_threshold_accuracy_and_boundary():
    labels, scores = [0, 0, 1, 1], [0.1, 0.5, 0.4, 0.9]
    assert detection_metrics(labels, scores)["acc"] == 0.5  # 0.5 >= 0.5 is called fake
    assert detection_metrics(labels, scores, threshold=0.3)["acc"] == 0.75
    assert detection_metrics(labels, scores, threshold=0.45)["acc"] == 0.5
    assert detection_metrics(labels, scores, threshold=0.95)["acc"] == 0.5


@pytest.mark.parametrize("label", [0, 1])
def test_one_class_gives_nan_not_an_error(label):
    m = detection_metrics([label] * 3, [0.2, 0.7, 0.9])
    assert math.isnan(m["auc"]) and math.isnan(m["eer"]) and math.isnan(m["ap"])
    assert m["acc"] == pytest.approx(2 / 3 if label else 1 / 3)
    assert (m["n_real"], m["n_fake"]) == ((0, 3) if label else (3, 0))
    assert roc_points([label] * 3, [0.2, 0.7, 0.9]).empty


def test_empty_input():
    m = detection_metrics([], [])
    assert m["n"] == 0 and math.isnan(m["acc"]) and math.isnan(m["auc"])


def test_bad_input_raises():
    with pytest.raises(ValueError, match="labels"):
        detection_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="3 scores"):
        detection_metrics([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="NaN"):
        detection_metrics([0, 1], [0.1, float("nan")])


def test_roc_points():
    roc = roc_points([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    assert list(roc.columns) == ["fpr", "tpr", "threshold"]
    assert (roc["fpr"].iloc[0], roc["tpr"].iloc[0]) == (0.0, 0.0)
    assert (roc["fpr"].iloc[-1], roc["tpr"].iloc[-1]) == (1.0, 1.0)
    assert roc["fpr"].is_monotonic_increasing and roc["tpr"].is_monotonic_increasing
    assert auc(roc["fpr"], roc["tpr"]) == pytest.approx(0.75)


def test_video_mean():
    frames = pd.DataFrame({"media_id": ["b", "a", "b", "a", "a"], "label": [1, 0, 1, 0, 0],
                           "score": [0.9, 0.1, 0.5, 0.2, 0.6]})
    v = video_scores(frames)
    assert list(v["media_id"]) == ["a", "b"]
    assert v["score"].tolist() == pytest.approx([0.3, 0.7])
    assert v["label"].tolist() == [0, 1] and v["n_frames"].tolist() == [3, 2]
    # video level then feeds the same metrics
    assert detection_metrics(v["label"], v["score"])["auc"] == 1.0


def test_video_mixed_label_raises_naming_the_media():
    frames = pd.DataFrame({"media_id": ["ok", "ok", "bad", "bad"], "label": [0, 0, 0, 1],
                           "score": [0.1, 0.2, 0.3, 0.4]})
    with pytest.raises(ValueError, match="bad") as err:
        video_scores(frames)
    assert "ok" not in str(err.value)


def test_video_other_key_column():
    frames = pd.DataFrame({"video": [1, 1, 2], "label": [1, 1, 0], "score": [0.2, 0.4, 0.8]})
    v = video_scores(frames, by="video")
    assert v.set_index("video")["score"].to_dict() == pytest.approx({1: 0.3, 2: 0.8})


def test_attack_success_rate_hand_case():
    # fakes 0-3, reals 4-5, threshold 0.5.
    # fakes called real after the attack (adv < .5): #0, #2, #3 -> asr 3/4.
    # fakes detected before (clean >= .5): #0, #1, #2 (#3 was already missed); of them #0, #2
    # are fooled -> asr_detected 2/3.
    # after the attack, called fake [0,1,0,0,0,0] vs labels [1,1,1,1,0,0]: #1, #4, #5 right -> 1/2.
    labels = [1, 1, 1, 1, 0, 0]
    clean = [0.9, 0.8, 0.7, 0.3, 0.2, 0.6]
    adv = [0.2, 0.9, 0.4, 0.1, 0.3, 0.4]
    r = attack_success_rate(labels, clean, adv)
    assert r["asr"] == pytest.approx(3 / 4)
    assert r["asr_detected"] == pytest.approx(2 / 3)
    assert r["robust_acc"] == pytest.approx(1 / 2)
    assert (r["n_fake"], r["n_fake_detected"]) == (4, 3)


def test_attack_success_rate_without_fakes_or_detections():
    r = attack_success_rate([0, 0], [0.1, 0.9], [0.1, 0.2])
    assert math.isnan(r["asr"]) and math.isnan(r["asr_detected"]) and r["robust_acc"] == 1.0
    r = attack_success_rate([1, 1], [0.1, 0.2], [0.1, 0.9])
    assert r["asr"] == 0.5 and math.isnan(r["asr_detected"])


def test_balanced_threshold_sits_in_the_gap_of_separable_scores_and_balances_errors():
    from robust_deepfake.detectors.scoring import balanced_threshold

    # separable, far from 0.5: the gap between the highest real (0.2) and lowest fake (0.3)
    assert balanced_threshold([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.25)
    # one real (0.7) above two fakes: (TPR + TNR) / 2 is best (5/6) between the reals 0.2 and the
    # fake 0.5 (every fake caught, one real lost); at 0.55 or 0.8 it is 4/6
    assert balanced_threshold([0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.7, 0.5, 0.6, 0.9]) == pytest.approx(0.35)
    assert balanced_threshold([1, 1], [0.2, 0.3]) == 0.5  # one class: nothing to calibrate


def test_weighted_precision_weighs_each_false_alarm_alpha_times():
    # at threshold 0.5: fakes 0.9, 0.7 called fake (TP 2), 0.3 missed; reals 0.6 called fake (FP 1), 0.1 not.
    labels, scores = [1, 1, 1, 0, 0], [0.9, 0.7, 0.3, 0.6, 0.1]
    assert weighted_precision(labels, scores, 0.5, alpha=1) == pytest.approx(2 / 3)  # plain precision
    assert weighted_precision(labels, scores, 0.5, alpha=100) == pytest.approx(2 / 102)
    assert weighted_precision(labels, scores, 0.65, alpha=100) == 1.0  # the false alarm is gone
    assert math.isnan(weighted_precision(labels, scores, 0.95))  # nothing called fake
    assert detection_metrics(labels, scores, 0.5, alpha=10)["wp"] == pytest.approx(2 / 12)
