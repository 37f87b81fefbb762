# Config validation, paths and input/param functions shared by all rules.

import itertools
import os
import sys
from functools import lru_cache
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.io import is_flagged

# The package lives in src/; jobs (local, conda or SLURM) import it through PYTHONPATH, so the
# workflow also runs from a checkout where it is not pip-installed.
SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)
# (set, not required from the user: hence no envvars: directive)
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p))

from robust_deepfake.config import as_list, validate_config
from robust_deepfake.fingerprint import script_fingerprint
from robust_deepfake.stages.ingest import listing_fingerprint, options_from_config
from robust_deepfake.manifest import shard_digests, shard_name
from robust_deepfake.paths import unsafe_output_folders
from robust_deepfake.registry import (ADAPTIVE_ATTACKS, ADVERSARIAL_GENERATOR_MODELS, DEFENCES, DETECTOR_FAMILIES,
                                      GENERATORS, POISON_ATTACKS, POISON_LOSSES, PURIFIER_CONFIG_KEYS, RENDERED_LAYOUTS,
                                      TRAINED_GENERATORS, TRAINING_MODES, DISTORTION_KINDS, released_test_set)

validate_config(config, schema_path=workflow.source_path("../config/config.schema.json"))

DATASET = config["dataset"]["name"]
RESULTS = f"results/{DATASET}"
LOGS = f"logs/{DATASET}"
BENCHMARKS = f"benchmarks/{DATASET}"
# one rendering per dataset name, so that a study with other demo settings leaves the demo intact
DEMO_ROOT = f"resources/{DATASET}"
# a layout the pipeline renders itself (the demos) is read back with its adapter's layout
RENDERED = RENDERED_LAYOUTS.get(config["dataset"]["layout"])
INGEST_LAYOUT = RENDERED.read_as if RENDERED else config["dataset"]["layout"]

# Scheduling priorities (`priority:`) along the detectors' critical path: split A -> face swap ->
# poisoning -> purification -> fakes -> detector training -> evaluation. When cores are scarce, the
# job more work waits on goes first; a rule not named here (the fake distances, the summaries)
# fills the gaps. Only the order changes, never a result. On the demo the face swap starts before
# the DDPM and the feature extractor, and the poisoned scenario's fakes are no longer made last.
PRIORITY = {"train_generator": 10, "train_ddpm": 5, "poison": 5, "poison_adaptive": 5, "purify": 4,
            "generate_fakes": 3, "generate_test_fakes": 3, "train_detector": 2, "evaluate_detector": 1}

ATTACKS = config["poison"]["attacks"]
# the attacker's objective is an axis like the attack (one name or a list): it names a folder of
# every poisoned scenario, so results of one loss never overwrite the other's
LOSSES = as_list(config["poison"]["loss"])
RATES = [f"{rate:g}" for rate in config["poison"]["poison_rate"]]
# At poison rate 0 nothing is attacked: the clean scenario exists once, under the attack and loss
# name "none", instead of once per configured attack and loss; an attack that follows no loss (the
# noise baseline) exists once per rate, under the loss name "none".
CLEAN_ATTACK = NO_LOSS = "none"


def attacked_only(value):
    """A poisoning setting as a param: `value` in an attacked scenario, None in the clean one,
    which attacks nothing, so that no attack or generator setting reruns the clean scenario and
    everything after it."""
    return lambda wildcards: None if wildcards.attack == CLEAN_ATTACK else value


DEFENCE_AXIS = config["defences"]
# Neural rules declare `resources: gpu=GPU_PER_JOB`: one GPU each unless the one device setting says
# cpu. A cluster profile turns it into --gpus; locally `--resources gpu=K` caps concurrent GPU jobs.
GPU_PER_JOB = 0 if config["device"] == "cpu" else 1
# Which frames of a video are decoded (detect_faces, and save_frames when frame images are wanted).
FRAME_SAMPLING = {key: config["frames"][key] for key in ("mode", "per_video", "stride", "max_per_video")}
# The face settings that finding a face reads (detect_faces, and again after a whole-video distortion).
FACE_DETECTION_KEYS = ("min_face_size", "skip_levels", "thresholds", "scale_factor", "max_side", "min_confidence", "keep")
# How the faces are found and cut (detect_faces, crop_faces), recorded in every detector's checkpoint
# (train_detector) so that `predict` finds and cuts faces in new media the same way: each mode's own
# settings only, so that editing another mode's reruns nothing.
DETECTOR_INPUT = {
    "mode": config["crop"]["mode"],
    "size": config["crop"]["size"],
    "margin": config["crop"]["margin"] if config["crop"]["mode"] == "mtcnn" else None,
    "center_size": config["crop"]["center_size"] if config["crop"]["mode"] == "center" else None,
    "faces": {key: config["faces"][key] for key in FACE_DETECTION_KEYS} if config["crop"]["mode"] == "mtcnn" else None,
}

# One detector per scenario and training seed; its path names every setting its result depends on.
SCENARIO = "{backbone}/{training}/{generator}/{attack}/{loss}/{rate}/{defence}/seed{seed}"
# the same axes, as one file name (logs, benchmarks)
SCENARIO_FILE = "{backbone}_{training}_{generator}_{attack}_{loss}_{rate}_{defence}_seed{seed}"
# The experiment table and figures of one named study (its grid), so several grids over one
# dataset keep their own tables while sharing every scenario's detector and evaluation.
STUDY = f"{RESULTS}/studies/{config['study']}"


wildcard_constraints:
    shard=r"\d{4}",
    part="A|B|C",
    generator="|".join(dict.fromkeys(config["fakes"]["generators"] + list(TRAINED_GENERATORS))),
    variant="main|surrogate",
    attack="|".join([*POISON_ATTACKS, CLEAN_ATTACK]),
    loss="|".join([*POISON_LOSSES, NO_LOSS]),
    rate=r"\d+(\.\d+)?",
    defence="|".join(DEFENCE_AXIS),
    # as the schema's model_name: never "." or "..", which would name a folder above the scenario's
    backbone=r"[A-Za-z0-9_][A-Za-z0-9_.]*",
    training="|".join(TRAINING_MODES),
    distortion="|".join(DISTORTION_KINDS),
    level=r"[1-5]",
    seed=r"\d+",
    adversarial="|".join(ADVERSARIAL_GENERATOR_MODELS),


def check_directory_outputs():
    """Stop before any job runs when a rule's directory() output is the checkout, results/,
    resources/ or a folder above them: Snakemake deletes such an output before rerunning its rule.
    The schema's folder names already forbid it; this holds whatever a future rule or key does."""
    protected = [workflow.basedir, os.getcwd(), "results", "resources", "logs", "benchmarks", ".snakemake"]
    folders = [(rule.name, output) for rule in workflow.rules for output in rule.output if is_flagged(output, "directory")]
    problems = unsafe_output_folders(folders, protected)
    if problems:
        raise WorkflowError("unsafe output folders:\n  " + "\n  ".join(problems))


def script_code(script):
    """A rule's `code` param: the fingerprint of its workflow script and of the package code the
    script runs, so that editing any of it reruns the rule."""
    return script_fingerprint(Path(workflow.basedir) / "workflow_scripts" / script)


def dataset_root():
    """The demos render their own media; every other layout reads the configured root."""
    return DEMO_ROOT if RENDERED else config["dataset_root"]


def ingest_input(wildcards):
    return [DEMO_ROOT] if RENDERED else []


def dataset_listing(wildcards):
    """Fingerprint of the dataset's files, so that adding or replacing a video reruns ingest.
    A function (not a parse-time value) so that jobs not involving ingest never walk the dataset."""
    if RENDERED:
        return "rendered by render_demo"
    return listing_fingerprint(dataset_root())


def media_manifest():
    return f"{RESULTS}/media.parquet"


def shard_rows(wildcards):
    """Digest of this shard's rows of the media manifest.

    Shard rules take the manifest as ancient() input, so a rewritten manifest neither makes every
    shard stale by time nor propagates "must rerun" from ingest; this digest (a param, seen by
    Snakemake's params trigger) does, only for the shards whose rows changed: one added video
    reruns one shard. ingest is a checkpoint, so after it runs Snakemake re-evaluates this for
    the jobs that depend on it; before the first ingest there is nothing to digest yet.
    """
    manifest = media_manifest()
    if not os.path.exists(manifest):
        return "awaiting ingest"
    return current_shard_digests(manifest).get(int(wildcards.shard), "empty")


def current_shard_digests(manifest):
    """Per shard, the digest of its rows in the manifest as it is on disk now (read once per version
    of the file, though every shard job's params, threads and the aggregates ask)."""
    return _cached_shard_digests(manifest, os.path.getmtime(manifest))


@lru_cache(maxsize=4)
def _cached_shard_digests(manifest, mtime):
    return shard_digests(manifest)


def local_cores():
    """--cores of a local run; None under a cluster executor, where the profile sizes each job,
    and in a cluster job's own Snakemake (exec mode remote), whose cores are the node's: the
    threads it evaluates must equal those the job was submitted with, or srun refuses the step."""
    if not (workflow.is_main_process and workflow.local_exec):
        return None
    try:
        return workflow.cores
    except WorkflowError:
        return None


def shard_threads(wildcards):
    """Threads of a per-shard job: the cores shared out among the shards, so that a dataset of one
    shard uses every core in its one job (MTCNN's torch threads, FFmpeg's decoding threads) and
    one of many shards runs beside the others with one. Under a cluster executor 1."""
    cores = local_cores()
    return 1 if cores is None else max(1, cores // max(1, len(current_shard_digests(media_manifest()))))


def all_cores(wildcards):
    """Threads of a job every other one waits on (rendering the demo): all the cores of a local
    run, 1 under a cluster executor."""
    return local_cores() or 1


def shard_outputs(pattern):
    """`pattern` for every shard that holds media. Ingest sizes the shard count from the media
    count, so the shards exist only once it has run: an input function of its checkpoint."""
    manifest = checkpoints.ingest.get().output.media
    return expand(pattern, shard=[shard_name(s) for s in current_shard_digests(manifest)])


def generator_model(name, variant="main"):
    return f"{RESULTS}/generators/{name}/{variant}/model.pt"


def generator_settings(wildcards):
    """The generator's config section; the grey-box surrogate never adopts the configured
    checkpoint (a copy of the attacked model would make grey-box white-box): the attacker trains
    their own on half of A's identities."""
    settings = config[wildcards.generator]
    return {**settings, "checkpoint": None} if wildcards.variant == "surrogate" else settings


def poison_target_model():
    """White-box: the model that makes the fakes; grey-box: its surrogate."""
    variant = "main" if config["poison"]["threat"] == "white_box" else "surrogate"
    return generator_model(config["poison"]["generator"], variant)


def adversarial_generator_model(defence):
    """The adversarially trained version of the attacked generator that `defence` makes its fakes
    with (`registry.ADVERSARIAL_GENERATOR_MODELS`), or None."""
    name = DEFENCES[defence].adversarial_generator
    return f"{RESULTS}/defences/{name}/model.pt" if name else None


def fake_generator_model(wildcards):
    """The adversarially trained attacked generator in its defences' scenarios, else the trained one."""
    if wildcards.generator not in TRAINED_GENERATORS:
        return []
    adversarial = adversarial_generator_model(wildcards.defence)
    if adversarial and wildcards.generator == config["poison"]["generator"]:
        return [adversarial]
    return [generator_model(wildcards.generator)]


def fake_generation_params():
    """The params of both fake-making rules (training fakes and test fakes): one list to edit."""
    return dict(
        settings=lambda wildcards: config["diffusion"] if wildcards.generator.startswith("sd_") else
            config.get(wildcards.generator, {}),
        per_face=config["fakes"]["per_face"],
        image_format=config["fakes"]["image_format"],
        seed=config["seed"],
        device=config["device"],
        code=script_code("generate_fakes.py"),
    )


def purify_generator_model(wildcards):
    """The generator G of the measures G(purified) vs G(clean): the attacked one, or its
    adversarially trained version in that defence's scenarios."""
    return adversarial_generator_model(wildcards.defence) or generator_model(config["poison"]["generator"])


def adversarial_training_settings(wildcards):
    """The `adv_generator` keys the attacked generator's fine-tuning reads (`registry.GENERATORS`),
    the blur only for the blur variant, so an edit retrains only the models that read it."""
    settings = config["adv_generator"]
    keys = GENERATORS[config["poison"]["generator"]].adversarial_settings or ()
    blur = settings["blur_sigma"] if wildcards.adversarial == "adv_generator_blur" else 0.0
    return {**{key: settings[key] for key in keys}, "blur_sigma": blur}


def purifier_config(wildcards):
    """Only the `purify.*` keys this defence's purifier reads (none for a defence that purifies
    nothing), so an edit reruns exactly the scenarios it changes."""
    keys = PURIFIER_CONFIG_KEYS.get(wildcards.defence, {})
    return {key: config["purify"][key] for key in keys.values()}


def reject_settings(wildcards):
    """The reject rule and only the value it reads (none for the purifiers that change nothing), so
    that editing the factor does not rerun scenarios calibrated by quantile."""
    chosen = config["purify"]["reject_rule"]
    if wildcards.defence == "none" or not DEFENCES[wildcards.defence].purifier or chosen == "none":
        return {"rule": "none", "value": None}
    key = {"quantile": "reject_clean_rate", "factor": "reject_factor"}[chosen]
    return {"rule": chosen, "value": config["purify"][key]}


PURIFIER_MODEL_PATHS = {  # registry.PURIFIER_MODELS -> the training rule's output a purify job reads
    "ddpm": f"{RESULTS}/defences/ddpm/model/unet",
    "magnet": f"{RESULTS}/defences/magnet/{{defence}}/model.pt",
}


def purifier_model(wildcards):
    """The trained model this defence purifies with (the DDPM, its MagNet autoencoder), or none."""
    kind = DEFENCES[wildcards.defence].model
    return [PURIFIER_MODEL_PATHS[kind].format(defence=wildcards.defence)] if kind else []


def poisoned_manifest(wildcards):
    """The poisoned split B a defence receives: the attack's one poisoning, or for an adaptive
    attack the poisoning crafted against this very defence (`poisoned/<attack>/<loss>/<rate>/against/<defence>/`)."""
    scenario = f"{RESULTS}/poisoned/{wildcards.attack}/{wildcards.loss}/{wildcards.rate}"
    if wildcards.attack in ADAPTIVE_ATTACKS:
        return f"{scenario}/against/{wildcards.defence}/manifest.parquet"
    return f"{scenario}/manifest.parquet"


def adaptive_target_model(wildcards):
    """The generator an adaptive attacker optimises through: the one the defence's fakes come
    from where that is an adversarially trained generator (`purify_generator_model`), else the
    attacked one (the grey-box attacker's surrogate included)."""
    if DEFENCES[wildcards.defence].adversarial_generator:
        return purify_generator_model(wildcards)
    return poison_target_model()


def poisoning_summaries():
    """Every poisoning scenario's summary.tsv: one per attack, loss and rate, one per defence as well
    for the adaptive attacks."""
    return [path for attack, loss, rate in poisoning_scenarios() for path in (
        expand(f"{RESULTS}/poisoned/{attack}/{loss}/{rate}/against/{{defence}}/summary.tsv", defence=DEFENCE_AXIS)
        if attack in ADAPTIVE_ATTACKS else [f"{RESULTS}/poisoned/{attack}/{loss}/{rate}/summary.tsv"])]


def poisoning_scenarios():
    """(attack, loss, rate) of every poisoning scenario, the clean one once."""
    return list(dict.fromkeys((*scenario_poisoning(attack, loss, rate), rate)
                              for attack in ATTACKS for loss in LOSSES for rate in RATES))


def scenario_poisoning(attack, loss, rate):
    """(attack, loss) of a scenario: ("none", "none") at rate 0, which attacks nothing, and loss
    "none" for an attack that follows no loss."""
    if float(rate) == 0:
        return CLEAN_ATTACK, NO_LOSS
    return attack, loss if POISON_ATTACKS[attack].optimised else NO_LOSS


def poisoning_paths(pattern, **wildcards):
    """`pattern` expanded over the poisoning scenarios (attack x loss x poison rate, the clean one
    once) and the other `wildcards` lists."""
    return [path for attack, loss, rate in poisoning_scenarios()
            for path in expand(pattern, attack=attack, loss=loss, rate=rate, **wildcards)]


def attack_outputs():
    """Every fake set and the summaries: generators x poisoning scenarios x defences."""
    return poisoning_paths(f"{RESULTS}/fakes/{{generator}}/{{attack}}/{{loss}}/{{rate}}/{{defence}}/manifest.parquet",
                           generator=config["fakes"]["generators"], defence=DEFENCE_AXIS) + [
        f"{RESULTS}/poisoned/summary.tsv",
        f"{RESULTS}/purified/summary.tsv",
        f"{RESULTS}/fakes/distance.tsv",
    ]


def split_outputs():
    return expand(f"{RESULTS}/split/{{part}}.parquet", part=["A", "B", "C"]) + [
        f"{RESULTS}/split/summary.tsv"
    ]


def frame_images(wildcards):
    """The frame images of every shard, wanted only with `frames.save_images` (an input function:
    the shards exist once ingest has run)."""
    if not config["frames"]["save_images"]:
        return []
    return shard_outputs(f"{RESULTS}/frames/{{shard}}.parquet")


def experiment_scenarios():
    """The union of the experiment blocks' products, in config order, each once; an axis a block
    leaves out takes every value its upstream stage makes (the seeds: detector.seeds)."""
    every = {"generator": config["fakes"]["generators"], "attack": ATTACKS, "loss": LOSSES,
             "poison_rate": config["poison"]["poison_rate"], "defence": DEFENCE_AXIS, "seed": config["detector"]["seeds"]}
    scenarios = {}
    for block in config["experiments"]:
        axes = {**every, **block}
        for backbone, training, generator, attack, loss, rate, defence, seed in itertools.product(
                axes["backbone"], axes["training"], axes["generator"], axes["attack"], axes["loss"],
                axes["poison_rate"], axes["defence"], axes["seed"]):
            attack, loss = scenario_poisoning(attack, loss, rate)
            scenario = dict(backbone=backbone, training=training, generator=generator, attack=attack, loss=loss,
                            rate=f"{float(rate):g}", defence=defence, seed=str(seed))
            scenarios[tuple(scenario.values())] = scenario
    return list(scenarios.values())


# the detector keys that hold one family's network settings (registry.DETECTOR_FAMILIES)
FAMILY_SETTINGS = tuple(f.settings for f in DETECTOR_FAMILIES.values() if f.settings)


def detector_settings(wildcards):
    """The detector keys training reads, with this backbone's own settings over them and only its
    pretrained file, so that changing another backbone's retrains nothing; without the seed
    list: a detector's seed is its own path's, so adding a seed retrains no other; and without
    the adversarial keys for a mode that meets no attack, so that they retrain no plain detector."""
    detector = config["detector"]
    fixed = ("pretrained", "seeds", "backbone_settings", *FAMILY_SETTINGS)
    if TRAINING_MODES[wildcards.training].attack is None:
        fixed += ("adversarial",)
    settings = {key: value for key, value in detector.items() if key not in fixed}
    settings.update(detector["backbone_settings"].get(wildcards.backbone, {}))
    settings["pretrained"] = detector["pretrained"].get(wildcards.backbone)
    family = DETECTOR_FAMILIES.get(wildcards.backbone)
    settings["network"] = detector[family.settings] if family and family.settings else {}
    return settings


def starting_detector(wildcards):
    """The checkpoint a fine-tuning training mode starts from: the detector of the same scenario
    and seed trained in the mode it names (registry.TRAINING_MODES); none for the other modes."""
    origin = TRAINING_MODES[wildcards.training].starts_from
    if origin is None:
        return {}
    return {"init": f"{RESULTS}/detectors/{SCENARIO.format(**{**dict(wildcards.items()), 'training': origin})}/model.pt"}


def video_distortion_manifests():
    """The evaluation's whole-video conditions: one distort_test_videos output per kind and level."""
    return expand(f"{RESULTS}/distorted_test/{{distortion}}/{{level}}/manifest.parquet",
                  distortion=config["evaluate"]["video_distortions"], level=config["evaluate"]["levels"])


def test_fake_manifests():
    return expand(f"{RESULTS}/test_fakes/{{generator}}/manifest.parquet", generator=config["fakes"]["generators"])


def released_poisonings():
    """(attack, loss) of every poisoning whose attacker's own fakes are a test set (evaluate.released_fakes):
    the configured ones that attack, but for the adaptive attacks, which are crafted against a defence."""
    if not config["evaluate"]["released_fakes"]:
        return []
    return list(dict.fromkeys((attack, loss) for attack, loss, rate in poisoning_scenarios()
                              if attack != CLEAN_ATTACK and attack not in ADAPTIVE_ATTACKS))


def released_fake_manifests():
    """(test set name, manifest) of the attacker's own fakes, one per released poisoning."""
    generator = config["poison"]["generator"]
    return [(released_test_set(attack, loss),
             f"{RESULTS}/test_fakes/{generator}/released/{attack}/{loss}/manifest.parquet")
            for attack, loss in released_poisonings()]


def experiment_outputs():
    """Every scenario's evaluation, the experiment table and the report's figures."""
    return [f"{RESULTS}/evaluation/{SCENARIO.format(**s)}/metrics.parquet" for s in experiment_scenarios()] + [
        f"{STUDY}/summary.parquet",
    ]
