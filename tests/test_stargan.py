"""StarGAN: official parameter layout, checkpoint IO, the FaceGenerator behaviour, training+resume."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import torch
from torch.utils.data import TensorDataset

from robust_deepfake.attacks.disruption import disruption_table, generator_disruption, per_image
from robust_deepfake.generators.base import for_faces
from robust_deepfake.generators.stargan import (ResidualBlock, StarGANFaceGenerator, StarGANGenerator,
                                                labels_from_attributes, load_stargan, save_stargan, target_labels)
from robust_deepfake.generators.stargan_training import TRAIN_STATE_NAME, StarGANTrainConfig, train_stargan

SIZE = 32  # tiny models: conv_dim 8, 2 residual blocks, 32 px


def _instance_norm(prefix: str, channels: int) -> list[tuple[str, tuple[int, ...]]]:
    """nn.InstanceNorm2d(channels, affine=True, track_running_stats=True) in the reference."""
    return [(f"{prefix}.weight", (channels,)), (f"{prefix}.bias", (channels,)),
            (f"{prefix}.running_mean", (channels,)), (f"{prefix}.running_var", (channels,)),
            (f"{prefix}.num_batches_tracked", ())]


# Read off yunjey/stargan model.py, Generator(conv_dim=64, c_dim=5, repeat_num=6): `self.main` is
# conv7 (0) IN (1) ReLU (2), two down convs (3, 6) with IN (4, 7), six ResidualBlocks (9..14, each
# `main` = conv3 IN ReLU conv3 IN), two ConvTranspose2d (15, 18) with IN (16, 19), conv7 (21), Tanh.
OFFICIAL_G_KEYS = [
    ("main.0.weight", (64, 8, 7, 7)), *_instance_norm("main.1", 64),
    ("main.3.weight", (128, 64, 4, 4)), *_instance_norm("main.4", 128),
    ("main.6.weight", (256, 128, 4, 4)), *_instance_norm("main.7", 256),
    *[entry for block in range(9, 15) for entry in [
        (f"main.{block}.main.0.weight", (256, 256, 3, 3)), *_instance_norm(f"main.{block}.main.1", 256),
        (f"main.{block}.main.3.weight", (256, 256, 3, 3)), *_instance_norm(f"main.{block}.main.4", 256)]],
    ("main.15.weight", (256, 128, 4, 4)), *_instance_norm("main.16", 128),  # ConvTranspose2d: (in, out, k, k)
    ("main.18.weight", (128, 64, 4, 4)), *_instance_norm("main.19", 64),
    ("main.21.weight", (3, 64, 7, 7)),
]


def _tiny(seed: int = 0) -> StarGANFaceGenerator:
    torch.manual_seed(seed)
    return StarGANFaceGenerator(StarGANGenerator(conv_dim=8, c_dim=5, repeat_num=2), image_size=SIZE)


def _images(n: int = 2, size: int = SIZE, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_generator_parameters_equal_the_official_names_and_shapes():
    ours = {k: tuple(v.shape) for k, v in StarGANGenerator(64, 5, 6).state_dict().items()}
    assert len(OFFICIAL_G_KEYS) == 103
    assert ours == dict(OFFICIAL_G_KEYS)


def test_official_style_checkpoint_and_save_load_round_trip(tmp_path):
    model = _tiny()
    official = tmp_path / "200000-G.ckpt"
    torch.save(model.generator.state_dict(), official)  # the official format: a plain state_dict
    ours = tmp_path / "ours" / "G.ckpt"
    save_stargan(load_stargan(official, image_size=SIZE), ours)

    reloaded = load_stargan(ours, image_size=SIZE)
    blocks = sum(isinstance(m, ResidualBlock) for m in reloaded.generator.main)
    assert (reloaded.generator.main[0].out_channels, blocks) == (8, 2)  # architecture read off the file
    x = _images()
    with torch.no_grad():
        assert torch.equal(reloaded.generate(x, "Male"), model.generate(x, "Male"))
    assert not list(ours.parent.glob(".*tmp*"))  # the atomic write left no temporary file


def test_a_state_dict_saved_before_pytorch_0_4_1_loads(tmp_path):
    """The official 200000-G.ckpt predates the norm layers' `num_batches_tracked`: the same
    weights written without those keys load and generate the same images."""
    model = _tiny()
    state = {k: v for k, v in model.generator.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(state) < len(model.generator.state_dict())
    old = tmp_path / "old-G.ckpt"
    torch.save(state, old)
    x = _images()
    with torch.no_grad():
        assert torch.equal(load_stargan(old, image_size=SIZE).generate(x, "Young"), model.generate(x, "Young"))
    del state["main.1.running_mean"]  # only the counters may be missing
    torch.save(state, old)
    with pytest.raises(ValueError, match=r"old-G\.ckpt.*missing keys \(1\): main\.1\.running_mean"):
        load_stargan(old, image_size=SIZE)


def test_checkpoint_with_a_wrong_key_names_the_file_and_key(tmp_path):
    state = _tiny().generator.state_dict()
    state["main.3.weights"] = state.pop("main.3.weight")
    path = tmp_path / "broken-G.ckpt"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"broken-G\.ckpt.*missing keys \(1\): main\.3\.weight;"
                                         r" unexpected keys \(1\): main\.3\.weights"):
        load_stargan(path, image_size=SIZE)


def test_missing_or_mismatched_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere-G.ckpt"):
        load_stargan(tmp_path / "nowhere-G.ckpt")
    path = tmp_path / "five-G.ckpt"
    torch.save(_tiny().generator.state_dict(), path)
    with pytest.raises(ValueError, match=r"five-G\.ckpt was trained on 5 attributes, but 2"):
        load_stargan(path, attributes=["Male", "Young"])


@pytest.mark.parametrize("size", [SIZE, 40, 24])  # native, and resized in and out
def test_output_shape_dtype_and_range(size):
    model = _tiny()
    with torch.no_grad():
        model.generator.main[-2].weight.mul_(50)  # saturate tanh: resizing must not leave [-1, 1]
        y = model.generate(_images(3, size), "Blond_Hair")
    assert y.shape == (3, 3, size, size) and y.dtype == torch.float32
    assert y.min() >= -1 and y.max() <= 1 and y.abs().max() > 0.99


def test_conditions_and_official_target_labels():
    model = _tiny()
    assert model.conditions() == ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
    c_org = torch.tensor([[1., 0, 0, 1, 0],
                          [0., 0, 1, 0, 1]])
    expected = {
        "Black_Hair": [[1, 0, 0, 1, 0], [1, 0, 0, 0, 1]],  # one-hot over the hair colours
        "Blond_Hair": [[0, 1, 0, 1, 0], [0, 1, 0, 0, 1]],
        "Brown_Hair": [[0, 0, 1, 1, 0], [0, 0, 1, 0, 1]],
        "Male": [[1, 0, 0, 0, 0], [0, 0, 1, 1, 1]],  # flipped
        "Young": [[1, 0, 0, 1, 1], [0, 0, 1, 0, 0]],
    }
    for condition, labels in expected.items():
        assert target_labels(c_org, model.attributes, condition).tolist() == labels, condition
    x = _images()
    with torch.no_grad():
        assert torch.equal(model.generate(x, "Male", c_org), model.generator(x, torch.tensor(expected["Male"])))
        bound = model.with_labels(c_org)  # the protocol's two-argument generate, labels bound
        assert bound.conditions() == model.conditions() and bound.image_size == SIZE
        assert torch.equal(bound.generate(x, "Male"), model.generate(x, "Male", c_org))
        # no labels given: every original attribute absent, so "Male" means "make male"
        assert torch.equal(model.generate(x, "Male"), model.generator(x, torch.tensor([[0., 0, 0, 1, 0]] * 2)))
    with pytest.raises(ValueError, match="0/1"):
        model.generate(x, "Male", c_org * 2 - 1)  # CelebA's -1/1 convention must be converted first
    with pytest.raises(ValueError, match="unknown StarGAN condition 'Bald'"):
        model.generate(x, "Bald")


def test_each_face_gets_the_targets_its_own_attributes_give():
    """A hand-made CelebA row (black hair, male, not young; -1/1 as in list_attr_celeba.txt) and
    another: bound through `for_faces`, each face's targets are StarGAN's own for its labels."""
    model = _tiny()
    faces = pd.DataFrame({"attr_Black_Hair": [1, -1], "attr_Blond_Hair": [-1, -1], "attr_Brown_Hair": [-1, 1],
                          "attr_Male": [1, -1], "attr_Young": [-1, 1]})
    bound = for_faces(model, faces)
    assert bound.c_org.tolist() == [[1, 0, 0, 1, 0], [0, 0, 1, 0, 1]]
    x = _images()
    with torch.no_grad():
        assert torch.equal(bound.generate(x, "Blond_Hair"),
                           model.generator(x, torch.tensor([[0., 1, 0, 1, 0], [0., 1, 0, 0, 1]])))
        assert torch.equal(bound.generate(x, "Male"),  # flipped from each face's own
                           model.generator(x, torch.tensor([[1., 0, 0, 0, 0], [0., 0, 1, 1, 1]])))
    swap = object()
    assert for_faces(swap, faces) is swap  # a generator without per-face targets is unchanged
    with pytest.raises(KeyError, match="attr_Black_Hair"):
        for_faces(model, faces.drop(columns="attr_Black_Hair"))


def test_the_disruption_measure_uses_each_faces_own_targets():
    """The purification measure binds each batch's labels: the disruption it records is measured against
    G(x, targets of x's own attributes), the same outputs a trainer's fakes would be."""
    model = _tiny().eval()
    faces = pd.DataFrame({"attr_Black_Hair": [1, -1], "attr_Blond_Hair": [-1, 1], "attr_Brown_Hair": [-1, -1],
                          "attr_Male": [1, -1], "attr_Young": [1, 1]})
    x, y = _images(seed=1), _images(seed=2)
    table = generator_disruption(model, x, y, faces)
    with torch.no_grad():
        own = {c: model.generate(x, c, labels_from_attributes(faces)) for c in model.conditions()}
        other = {c: model.generate(y, c, labels_from_attributes(faces)) for c in model.conditions()}
        unlabelled = generator_disruption(model, x, y, faces.assign(attr_Male=-1, attr_Young=-1, attr_Black_Hair=-1,
                                                                     attr_Blond_Hair=-1))
    expected = per_image(disruption_table(own, other))
    assert table["dist_l2"].tolist() == pytest.approx(expected["dist_l2"].tolist())
    assert table["dist_l2"].tolist() != pytest.approx(unlabelled["dist_l2"].tolist())


def test_labels_from_manifest_attribute_columns():
    table = pd.DataFrame({"attr_Male": [1, -1], "attr_Young": [-1, 1], "attr_Bald": pd.array([1, None], dtype="Int8")})
    assert labels_from_attributes(table, ["Male", "Young"]).tolist() == [[1, 0], [0, 1]]
    with pytest.raises(KeyError, match="attr_Black_Hair"):
        labels_from_attributes(table)
    with pytest.raises(ValueError, match="1 manifest rows have no value"):
        labels_from_attributes(table, ["Male", "Bald"])


def test_generate_is_differentiable_and_the_same_in_eval_mode():
    model = _tiny()
    x = _images(2, 40).requires_grad_(True)
    out = model.generate(x, "Young")
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # the official code never calls eval(): outputs must use per-image statistics in both modes,
    # and running statistics must not change
    running = model.generator.main[1].running_mean.clone()
    with torch.no_grad():
        assert torch.equal(model.eval().generate(x, "Young"), out)
    assert torch.equal(model.generator.main[1].running_mean, running)


def _data(n: int = 8, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    images = torch.nn.functional.avg_pool2d(torch.rand(n, 3, SIZE, SIZE, generator=g) * 2 - 1, 5, 1, 2)
    return TensorDataset(images, (torch.rand(n, 5, generator=g) > 0.5).float())


def _config(steps: int, **overrides) -> StarGANTrainConfig:
    tiny = dict(image_size=SIZE, conv_dim=8, repeat_num=2, steps=steps, batch_size=4, lr=1e-3)
    return StarGANTrainConfig(**{**tiny, **overrides})


def test_training_reduces_the_reconstruction_loss():
    result = train_stargan(_data(), _config(20, n_critic=1))
    rec = [h["G/loss_rec"] for h in result.history]
    assert len(rec) == 20 and result.step == 20
    assert sum(rec[-3:]) < 0.75 * sum(rec[:3])
    assert all(key in result.history[0] for key in ("D/loss_real", "D/loss_fake", "D/loss_cls", "D/loss_gp"))


def test_training_resumes_from_its_checkpoint_like_an_uninterrupted_run(tmp_path, caplog):
    data = _data()
    # no lr decay: the schedule depends on `steps`, and this test extends a run from 4 to 6 steps
    config = dict(n_critic=2, lr_decay_fraction=0.0)
    first = train_stargan(data, _config(4, **config), checkpoint_dir=tmp_path, save_every=2)
    saved = torch.load(tmp_path / TRAIN_STATE_NAME, weights_only=True)
    assert saved["step"] == 4 and [h["step"] for h in first.history] == [1, 2, 3, 4]

    # resuming at the saved step runs nothing and returns exactly the saved weights
    again = train_stargan(data, _config(4, **config), checkpoint_dir=tmp_path)
    assert again.history == [] and again.step == 4
    for key, value in again.generator.generator.state_dict().items():
        assert torch.equal(value, saved["G"][key]), key

    resumed = train_stargan(data, _config(6, **config), checkpoint_dir=tmp_path, save_every=2)
    assert [h["step"] for h in resumed.history] == [5, 6] and resumed.step == 6
    assert torch.load(tmp_path / TRAIN_STATE_NAME, weights_only=True)["step"] == 6
    straight = train_stargan(data, _config(6, **config))
    assert resumed.history == straight.history[4:]
    for key, value in straight.generator.generator.state_dict().items():
        assert torch.equal(resumed.generator.generator.state_dict()[key], value), key

    # a state of another configuration is discarded, logged, and training starts from step 0
    with caplog.at_level("WARNING"):
        other = train_stargan(data, _config(2, **config, conv_dim=16), checkpoint_dir=tmp_path)
    assert [h["step"] for h in other.history] == [1, 2]
    assert re.search(rf"{TRAIN_STATE_NAME} was trained with another configuration: conv_dim 8 -> 16.*; discarding "
                     "this StarGAN training state and training from the start", caplog.text)
