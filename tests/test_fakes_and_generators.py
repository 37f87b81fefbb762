"""Stages train_generator (generators.py) and generate_fakes (fakes.py) on a tiny split written to
tmp_path from scikit-image's photographs: the records they write and the rules they keep."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import skimage.data
import torch

from robust_deepfake.stages.fakes import fake_sources, generate_fakes, plan_fakes
from robust_deepfake.stages.generator_training import check_trainable_data, train_generator, training_faces
from robust_deepfake.generators.loading import load_generator
from robust_deepfake.generators.faceswap_ae import FaceSwapAutoencoder, save_faceswap
from robust_deepfake.seeding import item_seed

SETTINGS = {"image_size": 32, "channels": 8, "latent_dim": 16, "max_identities": 8, "steps": 4,
            "batch_size": 4, "lr": 5e-4, "save_every": 2, "checkpoint": None}
LANDMARKS = np.array([22, 26, 42, 26, 32, 36, 24, 46, 40, 46], np.float32)  # in a 64 px crop


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> pd.DataFrame:
    """Two crops each of three 'identities' (photographs scikit-image ships), as a split table."""
    root = tmp_path_factory.mktemp("faces")
    sources = {"astronaut": skimage.data.astronaut()[40:200, 160:320], "cat": skimage.data.chelsea()[20:240, 100:320],
               "coffee": skimage.data.coffee()[100:300, 200:400]}
    rows = []
    for identity, image in sources.items():
        for k in range(2):
            crop = cv2.resize(np.ascontiguousarray(image[k * 4:, k * 4:]), (64, 64), interpolation=cv2.INTER_AREA)
            path = root / f"{identity}_{k}.png"
            cv2.imwrite(str(path), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
            rows.append({"media_id": f"real/{identity}/clip.mp4", "frame_idx": k, "identity": identity, "label": 0,
                         "face_path": str(path), "crop_landmarks": LANDMARKS, "part": "A",
                         "poisoned": k == 0, "image_path": str(path)})
    return pd.DataFrame(rows)


def test_surrogate_trains_on_half_the_identities_of_a(faces):
    main = training_faces(faces, "main", seed=0)
    surrogate = training_faces(faces, "surrogate", seed=1)
    assert set(main["identity"]) == {"astronaut", "cat", "coffee"}
    assert surrogate["identity"].nunique() == 2 and set(surrogate["identity"]) < set(main["identity"])
    with pytest.raises(ValueError, match="variant"):
        training_faces(faces, "shadow", seed=0)


def test_stargan_without_attributes_says_how_to_fix():
    faces = pd.DataFrame({"identity": ["a", "b"], "face_path": ["x", "y"]})
    with pytest.raises(ValueError, match=r"attr_Black_Hair.*stargan.checkpoint"):
        check_trainable_data("stargan", faces, {"attributes": ["Black_Hair"], "checkpoint": None})


def test_train_then_load_gives_a_face_generator(faces, tmp_path):
    history = train_generator("faceswap_ae", faces, SETTINGS, seed=0, out_path=tmp_path / "model.pt",
                              work_dir=tmp_path / "work", device="cpu")
    assert list(history["step"]) == [1, 2, 3, 4]
    generator = load_generator("faceswap_ae", tmp_path / "model.pt", SETTINGS)
    assert set(generator.conditions()) == {"astronaut", "cat", "coffee"}
    x = torch.zeros(2, 3, 64, 64)
    out = generator.generate(x, "cat")
    assert out.shape == x.shape and out.dtype == torch.float32 and out.abs().max() <= 1


def test_configured_checkpoint_replaces_training(faces, tmp_path):
    torch.manual_seed(0)
    pretrained = tmp_path / "pretrained.pt"
    save_faceswap(FaceSwapAutoencoder(["p", "q"], 32, 8, 16), pretrained)
    train_generator("faceswap_ae", faces, {**SETTINGS, "checkpoint": str(pretrained)}, 0, tmp_path / "m.pt",
                    tmp_path / "work", "cpu")
    assert (tmp_path / "m.pt").read_bytes() == pretrained.read_bytes()
    assert not (tmp_path / "work").exists()  # nothing was trained
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        train_generator("faceswap_ae", faces, {**SETTINGS, "checkpoint": str(tmp_path / "missing.pt")}, 0,
                        tmp_path / "n.pt", tmp_path / "work", "cpu")


def test_plan_never_swaps_a_face_onto_its_own_identity_and_is_order_free(faces):
    plan = plan_fakes(faces, ["astronaut", "cat", "coffee"], per_face=3, seed=7)
    assert len(plan) == 3 * len(faces)
    own = faces["identity"].to_numpy()[plan["real_index"]]
    assert (plan["condition"].to_numpy() != own).all()
    reversed_plan = plan_fakes(faces.iloc[::-1].reset_index(drop=True), ["astronaut", "cat", "coffee"], 3, 7)
    key = ["media_id", "frame_idx", "k"]
    pd.testing.assert_frame_equal(plan.drop(columns="real_index").sort_values(key).reset_index(drop=True),
                                  reversed_plan.drop(columns="real_index").sort_values(key).reset_index(drop=True))
    assert item_seed(7, "m", 0, 0) != item_seed(8, "m", 0, 0)


@pytest.mark.parametrize("name", ["faceswap_ae", "landmark_swap"])
def test_generate_fakes_writes_traceable_rows(faces, tmp_path, name):
    generator = None
    if name == "faceswap_ae":
        torch.manual_seed(0)
        from robust_deepfake.generators.faceswap_ae import FaceSwapGenerator
        generator = FaceSwapGenerator(FaceSwapAutoencoder(["astronaut", "cat", "coffee"], 32, 8, 16))
    fakes = generate_fakes(faces, name, tmp_path, per_face=2, seed=0, image_format="png", generator=generator,
                           sources=faces)
    assert len(fakes) == 2 * len(faces)
    assert (fakes["label"] == 1).all() and (fakes["generator"] == name).all()
    assert set(fakes["real_media_id"]) == set(faces["media_id"])
    assert fakes["media_id"].str.startswith(f"{name}/").all() and fakes["condition"].notna().all()
    for path in fakes["face_path"]:
        image = cv2.imread(path)
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert fakes["poisoned"].tolist() == faces["poisoned"].repeat(2).tolist()  # the real's flag travels
    assert {"generator", "real_media_id", "condition", "fake_seed", "face_path", "image_path"} <= set(fakes.columns)


def test_diffusion_without_a_model_makes_no_fakes(faces, tmp_path, caplog):
    settings = {"inpaint_model_dir": None, "text2img_model_dir": None, "prompt": "a face", "negative_prompt": "",
                "steps": 2, "guidance_scale": 1.0, "strength": 1.0}
    fakes = generate_fakes(faces, "sd_inpaint", tmp_path, per_face=1, seed=0, image_format="png",
                           diffusion_settings=settings)
    assert fakes.empty
    assert "no Stable Diffusion model folder configured (diffusion.inpaint_model_dir)" in caplog.text


def test_the_attackers_own_fakes_are_made_from_the_poisoned_faces(faces):
    """A poisoned manifest (no reject step: the attacker releases what they poisoned) gives its
    faces as the attacker left them."""
    poisoned = faces.assign(poisoned_path=[f"/poisoned/{k}.png" for k in range(len(faces))])
    assert fake_sources(poisoned)["image_path"].tolist() == poisoned.loc[poisoned["label"] == 0, "poisoned_path"].tolist()
    assert fake_sources(faces)["image_path"].tolist() == faces.loc[faces["label"] == 0, "face_path"].tolist()


def test_a_reject_step_that_kept_nothing_gives_no_sources_and_no_fakes(faces, tmp_path):
    """At poison rate 1 a strict purifier can reject every real face: no face is a fake source
    (pandas would otherwise bring the rejected rows back as empty records) and no fake is made."""
    purified = faces.assign(purified_path=faces["face_path"], kept=False)
    reals = fake_sources(purified)
    assert reals.empty
    assert fake_sources(purified.assign(kept=[True] + [False] * (len(faces) - 1)))["image_path"].tolist() == \
        [faces["face_path"].iloc[0]]
    fakes = generate_fakes(reals, "landmark_swap", tmp_path, per_face=2, seed=0, image_format="png", sources=faces)
    assert fakes.empty and {"generator", "real_media_id", "face_path"} <= set(fakes.columns)
