"""Disruption losses and measures on hand-computed cases, the choice of poisoned media, and the
poisoning stage on tiny crops: files, columns, and measures that describe what the files hold."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from robust_deepfake.attacks.disruption import (DISRUPTION_METRICS, PERTURBATION_METRICS, disruption_loss,
                                        disruption_table, generator_outputs, image_measures, per_image,
                                        perturbation_table, summarise)
from robust_deepfake.images import MediaError
from robust_deepfake.manifest import POISON_ADDED_COLUMNS
from robust_deepfake.stages.poison import LEVEL, poison_faces, select_poisoned
from robust_deepfake.tensors import bgr_to_signed

CROP = 24


class TinyGenerator(torch.nn.Module):
    """A fixed random conditional conv net; fully convolutional, so any crop size keeps its shape."""

    image_size = 16

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.net = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.Tanh(),
                                           torch.nn.Conv2d(8, 3, 3, padding=1), torch.nn.Tanh())

    def conditions(self):
        return ("smile", "old")

    def generate(self, images, condition):
        code = images.new_full((images.shape[0], 1, *images.shape[-2:]), 1.0 if condition == "old" else -1.0)
        return self.net(torch.cat([images, code], dim=1))


class Identity:
    """G(x, c) = x for two conditions: losses become closed-form."""

    image_size = 4

    def conditions(self):
        return ("a", "b")

    def generate(self, images, condition):
        return images


# ---- disruption losses and measures -------------------------------------------------------------

def test_mse_loss_is_zero_at_the_clean_image_and_sums_conditions():
    g = Identity()
    x = torch.zeros(2, 3, 4, 4)
    clean = generator_outputs(g, x)
    assert torch.equal(disruption_loss(g, x, clean, "mse"), torch.zeros(2))
    assert torch.allclose(disruption_loss(g, x + 0.1, clean, "mse"), torch.full((2,), 2 * 0.01))


def test_target_loss_pulls_towards_black():
    g = Identity()
    x = torch.zeros(1, 3, 4, 4)
    clean = generator_outputs(g, x)
    assert torch.allclose(disruption_loss(g, x, clean, "target"), torch.tensor([-2.0]))  # 2 x MSE(0, -1)
    assert torch.equal(disruption_loss(g, x - 1, clean, "target"), torch.zeros(1))  # black: the maximum
    with pytest.raises(ValueError, match="unknown disruption loss"):
        disruption_loss(g, x, clean, "l1")


def test_disruption_table_matches_hand_computed_values():
    ref = torch.zeros(2, 3, 2, 2)
    other = torch.zeros(2, 3, 2, 2)
    other[0] = 0.1
    other[1, 2, 1, 0] = 0.5
    table = disruption_table({"c": ref}, {"c": other})
    assert list(table.columns) == ["image", "condition"] + DISRUPTION_METRICS
    first, second = table.iloc[0], table.iloc[1]
    assert first["dist_l1"] == pytest.approx(0.1) and first["dist_l2"] == pytest.approx(0.01)
    assert first["dist_l0"] == 1.0 and first["dist_linf"] == pytest.approx(0.1)
    assert second["dist_l1"] == pytest.approx(0.5 / 12) and second["dist_l2"] == pytest.approx(0.25 / 12)
    assert second["dist_l0"] == 0.25  # one pixel of four changed (in one channel)
    assert second["dist_linf"] == pytest.approx(0.5)


def test_l0_ignores_differences_within_half_an_8_bit_level():
    ref = torch.zeros(1, 3, 2, 2)
    other = ref.clone()
    other[0, 0, 0, 0] = 0.9 / 255
    other[0, 0, 0, 1] = 1.1 / 255
    assert disruption_table({"c": ref}, {"c": other})["dist_l0"].item() == 0.25


def test_prop_dist_counts_mse_strictly_above_0_05():
    ref = torch.zeros(3, 1, 4, 5)  # 20 values per image
    other = ref.clone()
    other[0, 0, 0, 0] = 1.0   # MSE = 1 / 20 = 0.05 exactly: not disrupted
    other[1, 0, 0, 0] = 1.01  # MSE just above: disrupted
    other[2, 0, 0, 0] = 0.5   # MSE 0.0125
    table = disruption_table({"c": ref}, {"c": other})
    assert table["dist_l2"].iloc[0] == np.float32(0.05)
    assert table["dist_prop"].tolist() == [0.0, 1.0, 0.0]
    assert summarise(table)["prop_dist"] == pytest.approx(1 / 3)


def test_per_image_averages_conditions_and_prop_dist_keeps_the_paper_meaning():
    ref = torch.zeros(2, 1, 4, 5)
    hit = ref.clone()
    hit[:, 0, 0, 0] = 2.0  # MSE 0.2 for both images
    table = disruption_table({"a": ref, "b": ref}, {"a": hit, "b": ref})
    images = per_image(table)
    assert images["dist_l2"].tolist() == pytest.approx([0.1, 0.1])
    assert images["dist_prop"].tolist() == [0.5, 0.5]
    assert summarise(images)["prop_dist"] == summarise(table)["prop_dist"] == 0.5


def test_perturbation_table_psnr_on_data_range_2():
    clean = torch.zeros(2, 3, 4, 4)
    perturbed = clean.clone()
    perturbed[0] += 0.02
    table = perturbation_table(clean, perturbed)
    assert list(table.columns) == ["image"] + PERTURBATION_METRICS
    assert table["pert_linf"].iloc[0] == pytest.approx(0.02)
    assert table["pert_l2"].iloc[0] == pytest.approx(0.02 * math.sqrt(48))
    assert table["pert_psnr"].iloc[0] == pytest.approx(40.0)  # 10 log10(2^2 / 0.02^2)
    assert table["pert_psnr"].iloc[1] == math.inf


# ---- which faces are poisoned -------------------------------------------------------------------

@pytest.fixture
def split_b() -> pd.DataFrame:
    rows = [{"media_id": f"real/p{m:02d}.mp4", "frame_idx": f, "label": 0} for m in range(10) for f in range(3)]
    rows += [{"media_id": f"fake/q{m}.mp4", "frame_idx": f, "label": 1} for m in range(2) for f in range(3)]
    return pd.DataFrame(rows)


def chosen_media(df: pd.DataFrame, rate: float, seed: int) -> set[str]:
    return set(df.loc[select_poisoned(df, rate, seed), "media_id"])


def test_rates_0_and_1_are_exact_and_fakes_are_never_poisoned(split_b):
    assert not select_poisoned(split_b, 0.0, 0).any()
    all_reals = select_poisoned(split_b, 1.0, 0)
    assert all_reals.tolist() == split_b["label"].eq(0).tolist()


def test_half_rate_poisons_half_the_videos_whole(split_b):
    mask = select_poisoned(split_b, 0.5, 0)
    assert mask.dtype == bool and mask.index.equals(split_b.index)
    assert split_b.loc[mask, "media_id"].nunique() == 5
    per_media = mask.groupby(split_b["media_id"]).agg(["all", "any"])
    assert (per_media["all"] == per_media["any"]).all()  # every video wholly in or out


def test_choice_is_deterministic_seeded_and_nested_across_rates(split_b):
    assert select_poisoned(split_b, 0.5, 0).equals(select_poisoned(split_b, 0.5, 0))
    assert chosen_media(split_b, 0.5, 0) != chosen_media(split_b, 0.5, 1)
    assert chosen_media(split_b, 0.3, 4) < chosen_media(split_b, 0.5, 4)  # a higher rate adds media
    with pytest.raises(ValueError, match="poison_rate"):
        select_poisoned(split_b, 1.5, 0)


# ---- the poisoning stage ------------------------------------------------------------------------

@pytest.fixture
def crops(tmp_path) -> pd.DataFrame:
    """Four 24 px crops of two videos, values spanning the full 0..255 range (edges included)."""
    rng = np.random.default_rng(0)
    rows = []
    for k in range(4):
        media_id = f"real/v{k // 2}.mp4"
        image = rng.integers(0, 256, (CROP, CROP, 3), dtype=np.uint8)
        image[0] = 0
        image[1] = 255
        path = tmp_path / "crops" / media_id.replace("/", "__") / f"{k:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), image)
        rows.append({"media_id": media_id, "frame_idx": k, "label": 0, "face_path": str(path)})
    return pd.DataFrame(rows)


def read_bgr(path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)


def poison(crops, tmp_path, **overrides):
    args = dict(mask=[True, True, False, True], generator=TinyGenerator(), attack="pgd", epsilon=0.05, steps=3,
                step_size=0.01, loss_kind="mse", batch_size=2, seed=0, out_dir=tmp_path / "poisoned",
                image_format="png")
    args.update(overrides)
    return poison_faces(crops, **args)


def test_poison_faces_writes_files_and_columns(crops, tmp_path):
    out = poison(crops, tmp_path, grid_path=tmp_path / "grid.png")
    assert list(out.columns) == list(crops.columns) + POISON_ADDED_COLUMNS
    assert out["poisoned"].tolist() == [True, True, False, True]
    assert out.loc[2, "poisoned_path"] == crops.loc[2, "face_path"]
    assert out.loc[~out["poisoned"], ["attack", "epsilon", "dist_l2", "pert_linf"]].isna().all().all()
    done = out[out["poisoned"]]
    assert (done["attack"] == "pgd").all() and (done["epsilon"] == np.float32(0.05)).all()
    for i in (0, 1, 3):
        path = Path(out.loc[i, "poisoned_path"])
        assert path.is_file() and path.is_relative_to(tmp_path / "poisoned")
        delta = read_bgr(path).astype(int) - read_bgr(crops.loc[i, "face_path"]).astype(int)
        assert 0 < np.abs(delta).max() <= math.floor(0.05 / LEVEL)  # within eps, in whole 8-bit levels
    assert (done["dist_l2"] > 0).all()
    grid = read_bgr(tmp_path / "grid.png")
    assert grid.shape == (2 + 2 * (CROP + 2), 2 + 4 * (CROP + 2), 3)  # 2 faces (first batch) x 4 panels


@pytest.mark.parametrize("image_format", ["png", "jpg"])
def test_measures_describe_the_written_files(crops, tmp_path, image_format):
    out = poison(crops, tmp_path, image_format=image_format)
    done = out[out["poisoned"]].reset_index(drop=True)
    clean = bgr_to_signed(np.stack([read_bgr(p) for p in done["face_path"]]))
    written = bgr_to_signed(np.stack([read_bgr(p) for p in done["poisoned_path"]]))
    generator = TinyGenerator().eval()
    with torch.no_grad():
        expected = image_measures(clean, written, generator_outputs(generator, clean),
                                  generator_outputs(generator, written))
    for name in PERTURBATION_METRICS + DISRUPTION_METRICS:
        np.testing.assert_allclose(done[name].to_numpy(), expected[name].to_numpy(dtype=np.float32), rtol=1e-4,
                                   err_msg=name)
    if image_format == "png":
        assert (done["pert_linf"] <= 0.05 + 1e-6).all()


def test_poison_faces_is_deterministic(crops, tmp_path):
    a = poison(crops, tmp_path / "a")
    b = poison(crops, tmp_path / "b")
    for pa_, pb in zip(a["poisoned_path"][a["poisoned"]], b["poisoned_path"][b["poisoned"]]):
        assert np.array_equal(read_bgr(pa_), read_bgr(pb))
    pd.testing.assert_frame_equal(a[DISRUPTION_METRICS], b[DISRUPTION_METRICS])


def test_poison_faces_refuses_settings_that_write_no_poison(crops, tmp_path):
    with pytest.raises(ValueError, match="zero gradient"):
        poison(crops, tmp_path, attack="bim")
    with pytest.raises(ValueError, match="below one 8-bit level"):
        poison(crops, tmp_path, epsilon=1 / 255)
    with pytest.raises(MediaError, match="missing.png: file not found"):
        poison(crops.assign(face_path=str(tmp_path / "missing.png")), tmp_path)


def test_the_clean_scenario_needs_no_generator_nor_attack_settings(crops, tmp_path):
    """Attack none at rate 0 records B's reals as they are: the workflow gives it no generator
    and no attack setting, so that changing them never reruns the clean scenario."""
    out = poison(crops, tmp_path, mask=[False] * 4, generator=None, attack="none", epsilon=None, steps=None,
                 step_size=None, loss_kind=None, batch_size=None)
    assert list(out.columns) == list(crops.columns) + POISON_ADDED_COLUMNS
    assert not out["poisoned"].any() and out["poisoned_path"].tolist() == crops["face_path"].tolist()
    assert out["epsilon"].isna().all() and out["attack"].isna().all()
    assert not (tmp_path / "poisoned").exists() or not any((tmp_path / "poisoned").iterdir())


def test_poisoning_a_stargan_attacks_each_face_through_its_own_targets(crops, tmp_path):
    """Against StarGAN the stage binds each batch's attribute labels: the disruption it records is
    the one measured through the targets StarGAN builds from each face's own attributes (never the
    all-absent labels an unlabelled call would use)."""
    from robust_deepfake.attacks.disruption import generator_disruption
    from robust_deepfake.generators.stargan import StarGANFaceGenerator, StarGANGenerator
    from robust_deepfake.images import read_images
    from robust_deepfake.tensors import bgr_to_signed

    torch.manual_seed(0)
    model = StarGANFaceGenerator(StarGANGenerator(conv_dim=8, c_dim=5, repeat_num=1), image_size=CROP)
    labelled = crops.assign(attr_Black_Hair=[1, -1, 1, -1], attr_Blond_Hair=-1, attr_Brown_Hair=[-1, 1, -1, 1],
                            attr_Male=[1, 1, -1, -1], attr_Young=[-1, 1, 1, -1])
    out = poison(labelled, tmp_path, generator=model, mask=[True, True, True, True])
    clean = bgr_to_signed(read_images(labelled["face_path"].tolist()))
    poisoned = bgr_to_signed(read_images(out["poisoned_path"].tolist()))
    own = generator_disruption(model, clean, poisoned, labelled)
    assert out["dist_l2"].to_numpy() == pytest.approx(own["dist_l2"].to_numpy(), rel=1e-4)
    with pytest.raises(KeyError, match="attr_Male"):
        poison(crops, tmp_path, generator=model)  # no attributes: refused, never silently all-absent
