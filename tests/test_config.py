import copy
from pathlib import Path

import pytest
import yaml

from robust_deepfake.config import ConfigError, validate_config

REPO = Path(__file__).resolve().parents[1]


def default_config():
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_default_config_is_valid():
    cfg = validate_config(default_config())
    assert cfg["crop"]["margin"] == 0.3
    assert cfg["split"]["fractions"] == {"A": 0.7, "B": 0.2, "C": 0.1}


@pytest.mark.parametrize("layers", [["smoke.yaml"], ["study.yaml"], ["defences.yaml"], ["stargan.yaml"],
                                    ["stargan.yaml", "smoke_stargan.yaml"], ["threat_faceswap.yaml"],
                                    ["stargan.yaml", "threat_stargan.yaml"]])
def test_config_layers_are_valid_over_the_default(layers):
    """The layers are used as `--configfile config/config.yaml config/<layer> ...`: Snakemake
    merges nested keys, so validate exactly that merge."""
    from snakemake.utils import update_config

    cfg = default_config()
    for layer in layers:
        update_config(cfg, yaml.safe_load((REPO / "config" / layer).read_text()))
    validated = validate_config(cfg)
    if layers[0] in ("study.yaml", "stargan.yaml", "threat_faceswap.yaml"):
        assert validated["dataset"]["name"] != "demo"  # its own results, the demo's stay intact
    if "threat" in layers[-1]:  # the loss is the question: both, and none of the evasion attacks' cost
        assert validated["poison"]["loss"] == ["mse", "target"] and validated["evaluate"]["attacks"] == []
        assert validated["dataset"]["name"] not in ("demo", "stargan_demo")
    if layers[0] == "study.yaml":
        assert {0, 1} <= set(validated["poison"]["poison_rate"])


def test_negative_margin_names_key_and_bound():
    cfg = default_config()
    cfg["crop"]["margin"] = -0.2
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    msg = str(err.value)
    assert "crop.margin" in msg and "-0.2" in msg and ">= 0" in msg


def test_enum_lists_allowed_values():
    cfg = default_config()
    cfg["dataset"]["layout"] = "ffpp"
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    msg = str(err.value)
    assert "dataset.layout" in msg and "'faceforensics'" in msg and "'celebdf'" in msg


def test_unknown_key_is_reported_with_allowed_keys():
    cfg = default_config()
    cfg["crop"]["marign"] = 0.2
    with pytest.raises(ConfigError, match=r"crop.*marign.*allowed keys: center_size, image_format, margin, mode, size"):
        validate_config(cfg)


def test_all_problems_reported_at_once():
    cfg = default_config()
    cfg["crop"]["margin"] = -1
    cfg["shards"] = 0
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert "crop.margin" in str(err.value) and "shards" in str(err.value)


def test_fractions_must_sum_to_one():
    cfg = default_config()
    cfg["split"]["fractions"] = {"A": 0.5, "B": 0.2, "C": 0.1}
    with pytest.raises(ConfigError, match="split.fractions"):
        validate_config(cfg)


def merged(base, override):
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = merged(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


@pytest.mark.parametrize("preset", sorted((REPO / "config" / "presets").glob("*.yaml")), ids=lambda p: p.stem)
def test_presets_need_only_the_root(preset):
    cfg = merged(default_config(), yaml.safe_load(preset.read_text()))
    with pytest.raises(ConfigError, match="dataset_root"):
        validate_config(copy.deepcopy(cfg))
    cfg["dataset_root"] = "/data/somewhere"
    validate_config(cfg)


def test_the_celebdf_preset_holds_xception_and_efficientnet_at_their_own_input():
    cfg = merged(default_config(), yaml.safe_load((REPO / "config" / "presets" / "celebdf.yaml").read_text()))
    cfg["dataset_root"] = "/data/celebdf"
    validate_config(cfg)
    own = cfg["detector"]["backbone_settings"]
    assert (own["legacy_xception"]["image_size"], own["legacy_xception"]["mean"]) == (299, [0.5, 0.5, 0.5])
    assert (own["efficientnet_b4"]["image_size"], own["efficientnet_b4"]["std"]) == (380, [0.229, 0.224, 0.225])
    assert cfg["split"]["frames_per_video"]["C"] == 20 and cfg["frames"]["per_video"] == 25
    assert cfg["experiments"] == [{"backbone": ["legacy_xception", "efficientnet_b4"],
                                   "training": ["plain", "pgd_finetune"]}]


def test_defaults_fill_a_short_config():
    cfg = {"dataset": {"name": "x", "layout": "demo"}, "shards": 2, "frames": {}, "faces": {}, "crop": {}, "split": {}}
    validate_config(cfg)
    assert cfg["frames"]["per_video"] == 8 and cfg["faces"]["keep"] == "largest" and cfg["seed"] == 0


def test_strings_from_snakemake_cli_are_coerced_to_schema_types():
    # `--config 'crop={margin: 0.45}'` reaches the config as {"crop": {"margin": "0.45"}}
    cfg = default_config()
    cfg["crop"]["margin"] = "0.45"
    cfg["faces"]["thresholds"] = ["0.5", "0.6", "0.7"]
    cfg["split"]["use_official_test"] = "false"
    cfg["dataset"]["max_per_label"] = "null"
    validate_config(cfg)
    assert cfg["crop"]["margin"] == 0.45 and cfg["faces"]["thresholds"] == [0.5, 0.6, 0.7]
    assert cfg["split"]["use_official_test"] is False and cfg["dataset"]["max_per_label"] is None
    cfg["crop"]["margin"] = "wide"
    with pytest.raises(ConfigError, match="crop.margin"):
        validate_config(cfg)


def test_bim_with_mse_loss_is_refused_with_the_reason():
    cfg = default_config()
    cfg["poison"] = {"attacks": ["pgd", "bim"], "loss": "mse"}
    with pytest.raises(ConfigError, match=r"poison.attacks.*\['bim'\].*gradient"):
        validate_config(cfg)
    cfg["poison"] = {"attacks": ["pgd", "bim"], "loss": "target"}
    validate_config(cfg)


def test_an_unknown_backbone_is_refused_before_any_job():
    cfg = default_config()
    cfg["experiments"][0]["backbone"] = ["resnet999"]
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    msg = str(err.value)
    assert "experiments.0.backbone" in msg and "'resnet999' is neither a detector family of this pipeline " \
        "(spectrum, ensemble, recce) nor a timm model" in msg and "resnet18" in msg
    cfg["experiments"][0]["backbone"] = ["legacy_xception", "efficientnet_b4", "resnet18.a1_in1k", "spectrum", "ensemble"]
    validate_config(cfg)
    cfg["detector"]["ensemble"]["experts"] = ["convnextv2_tiny", "efficientnet_b9"]
    with pytest.raises(ConfigError, match="'detector.ensemble.experts': 'efficientnet_b9' is not a timm model"):
        validate_config(cfg)
    cfg["detector"]["ensemble"]["experts"] = ["resnet18", "resnet34"]
    cfg["detector"]["recce"]["encoder"] = "xceptoin"
    with pytest.raises(ConfigError, match="'detector.recce.encoder': 'xceptoin' is not a timm model"):
        validate_config(cfg)


def test_the_timm_names_read_from_its_sources_are_timms_own():
    import timm

    from robust_deepfake.config import timm_model_names

    assert set(timm.list_models()) <= timm_model_names()


def test_a_threshold_is_calibrated_or_a_number_also_from_the_command_line():
    cfg = default_config()
    assert validate_config(copy.deepcopy(cfg))["evaluate"]["threshold"] == "calibrated"
    cfg["evaluate"]["threshold"] = "0.6"  # as `--config 'evaluate={threshold: 0.6}'` hands it over
    assert validate_config(copy.deepcopy(cfg))["evaluate"]["threshold"] == 0.6
    cfg["evaluate"]["threshold"] = "tuned"
    with pytest.raises(ConfigError, match="evaluate.threshold"):
        validate_config(cfg)


def test_per_backbone_settings_change_training_keys_only():
    cfg = default_config()
    cfg["detector"]["backbone_settings"] = {"spectrum": {"lr": 0.01, "epochs": 20}}
    validate_config(copy.deepcopy(cfg))
    cfg["detector"]["backbone_settings"] = {"spectrum": {"lr": -1, "seeds": [1], "colour": "red"}}
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    msg = str(err.value)
    assert "detector.backbone_settings.spectrum.lr" in msg and "detector.backbone_settings.spectrum.seeds" in msg
    assert "detector.backbone_settings.spectrum.colour': not a per-backbone setting" in msg


def test_renamed_keys_are_refused_with_their_new_name():
    cfg = default_config()
    cfg["purify"]["purifiers"] = cfg.pop("defences")
    cfg["experiments"][0]["purifier"] = cfg["experiments"][0].pop("defence")
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    msg = str(err.value)
    assert "config key 'purify.purifiers' was renamed: use defences" in msg
    assert "config key 'experiments.0.purifier' was renamed: use defence" in msg


def test_the_family_names_come_from_the_registry():
    from robust_deepfake.config import load_schema
    from robust_deepfake.registry import DEFENCES, GENERATORS

    schema = load_schema()
    assert schema["properties"]["defences"]["items"]["enum"] == list(DEFENCES)
    assert schema["properties"]["fakes"]["properties"]["generators"]["items"]["enum"] == list(GENERATORS)
    cfg = default_config()
    cfg["defences"] = ["none", "dffpure"]
    with pytest.raises(ConfigError, match="'dffpure' is not one of"):
        validate_config(cfg)


def test_a_defence_built_for_another_generator_is_refused():
    """StarGAN's blur variant has no face-swap counterpart (its fine-tuning would get a face swap
    to blur): refused at config time, with the defence and the generator named. The adversarially
    trained generator itself exists for both attacked families."""
    cfg = default_config()
    cfg["defences"] = ["none", "diffpure", "adv_generator_blur"]
    with pytest.raises(ConfigError, match=r"'adv_generator_blur' works only when the attacked generator is one of "
                                          r"\['stargan'\], but poison.generator is 'faceswap_ae'"):
        validate_config(cfg)
    cfg["poison"]["generator"] = "stargan"
    cfg["adv_generator"]["steps"] = 200
    validate_config(cfg)
    cfg["defences"] = ["none", "diffpure", "adv_generator", "both"]
    validate_config(cfg)


def test_a_stargan_fine_tuning_that_never_moves_the_generator_is_refused():
    cfg = default_config()
    cfg["poison"]["generator"] = "stargan"
    cfg["defences"] = ["none", "diffpure", "adv_generator"]
    cfg["adv_generator"].update(steps=50, critic_warmup=50)
    with pytest.raises(ConfigError, match=r"adv_generator.critic_warmup.*50 critic-only steps of adv_generator.steps 50"):
        validate_config(cfg)
    cfg["poison"]["generator"] = "faceswap_ae"  # the face swap's fine-tuning has no critic
    validate_config(cfg)


def test_batch_sizes_may_be_given_per_device_and_compute_is_checked():
    cfg = default_config()
    cfg["faces"]["batch_size"] = {"cpu": 16, "cuda": 256}
    cfg["purify"]["batch_size"] = 32
    validate_config(cfg)
    assert cfg["compute"] == {"precision": "fp32", "channels_last": False, "loader_workers": "auto"}
    cfg["evaluate"]["batch_size"] = {"cuda": 512}
    with pytest.raises(ConfigError, match="evaluate.batch_size"):
        validate_config(cfg)
    cfg = default_config()
    cfg["compute"]["precision"] = "fp16"
    with pytest.raises(ConfigError, match="compute.precision"):
        validate_config(cfg)


# Every config value that becomes a folder of an output path, and how to set it. `dataset.name: ..`
# made render_demo's directory() output `resources/..`, the checkout, which its next rerun deleted.
PATH_FORMING_KEYS = {
    "dataset.name": lambda cfg, v: cfg["dataset"].update(name=v),
    "study": lambda cfg, v: cfg.update(study=v),
    "experiments.0.backbone.0": lambda cfg, v: cfg["experiments"][0].update(backbone=[v]),
    "detector.ensemble.experts.1": lambda cfg, v: cfg["detector"].setdefault("ensemble", {}).update(
        experts=["resnet18", v]),
    "detector.recce.encoder": lambda cfg, v: cfg["detector"].setdefault("recce", {}).update(encoder=v),
}


@pytest.mark.parametrize("value", ["..", ".", "a/b", "../x", "", "x" * 65, ".hidden"])
@pytest.mark.parametrize("key", list(PATH_FORMING_KEYS))
def test_a_value_that_could_leave_its_folder_is_refused(key, value):
    cfg = default_config()
    PATH_FORMING_KEYS[key](cfg, value)
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert f"config key '{key}': {value!r} is not allowed" in str(err.value)
    assert "1-64 letters" in str(err.value) and "not starting with '.'" in str(err.value)


@pytest.mark.parametrize("key", list(PATH_FORMING_KEYS))
def test_ordinary_names_still_pass(key):
    cfg = default_config()
    PATH_FORMING_KEYS[key](cfg, "resnet18.a1_in1k" if "backbone" in key or "detector" in key else "ff-c40_v2.1")
    validate_config(cfg)


def test_the_poisoning_loss_is_one_name_or_an_axis_of_names():
    """Both losses side by side need the loss as an axis: each names a folder of its scenarios."""
    cfg = default_config()
    cfg["poison"]["loss"] = ["mse", "target"]
    cfg["experiments"][0]["loss"] = ["target"]
    validate_config(cfg)
    for value, words in ((["mse", "x"], "config key 'poison.loss.1': 'x' is not one of ['mse', 'target']"),
                         ("msee", "config key 'poison.loss': 'msee' is not one of ['mse', 'target']"),
                         ([], "config key 'poison.loss': [] should be non-empty")):
        cfg = default_config()
        cfg["poison"]["loss"] = value
        with pytest.raises(ConfigError) as err:
            validate_config(cfg)
        assert words in str(err.value)
    cfg = default_config()
    cfg["experiments"][0]["loss"] = ["target"]
    with pytest.raises(ConfigError, match=r"'experiments.0.loss': \['target'\] not in 'poison.loss' \['mse'\]"):
        validate_config(cfg)
