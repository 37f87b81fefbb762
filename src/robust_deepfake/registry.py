"""The members of the pipeline's algorithm families, by name: the one list the workflow
(rules/common.smk), the config check and the code that builds each member read. It imports nothing
heavy, since the workflow and the config check read it while Snakemake parses the Snakefile, before
any job runs: a wrong name stops the run at once, and a new generator, defence or attack is one
entry here plus its code.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RenderedLayout:
    """A dataset the pipeline renders itself from faces that installed packages ship, so that a
    configuration runs with no outside data (its renderer: `datasets.rendered.RENDERERS`). It is
    read back with the adapter of layout `read_as`; `settings` are the `demo:` config keys its
    renderer takes, so that a key it does not read cannot rerun it."""

    what: str
    read_as: str
    settings: tuple[str, ...]


RENDERED_LAYOUTS = {
    "demo": RenderedLayout("short videos and stills of the demo's identities", "folders",
                           ("identities", "videos_per_identity", "frames_per_video", "fps", "size",
                            "images_per_identity")),
    "demo_celeba": RenderedLayout("aligned stills with five rendered attributes in CelebA's layout: StarGAN's data",
                                  "celeba", ("identities", "images_per_identity")),
}


@dataclass(frozen=True)
class Generator:
    """A face generator: `trained` ones are fitted on split A by train_generator (or read from a
    configured checkpoint), and `attackable` ones are differentiable models the poison can target.
    `adversarial_settings` are the `adv_generator` config keys its adversarial fine-tuning reads
    (None: it has none, so the adversarially trained generator defences refuse it)."""

    what: str
    trained: bool = False
    attackable: bool = False
    adversarial_settings: tuple[str, ...] | None = None


_ADVERSARIAL_SETTINGS = ("steps", "attack_steps", "batch_size", "lr", "save_every")
GENERATORS = {
    "faceswap_ae": Generator("the autoencoder face swap of the original Deepfakes method", trained=True,
                             attackable=True, adversarial_settings=_ADVERSARIAL_SETTINGS),
    "stargan": Generator("StarGAN attribute editing (the official architecture)", trained=True, attackable=True,
                         adversarial_settings=(*_ADVERSARIAL_SETTINGS, "critic_warmup")),
    "landmark_swap": Generator("the graphics face swap of FaceForensics++'s FaceSwap, no training"),
    "sd_inpaint": Generator("Stable Diffusion inpainting of the face, from a local diffusers folder"),
    "sd_text2img": Generator("Stable Diffusion text-to-image faces, from a local diffusers folder"),
}
TRAINED_GENERATORS = tuple(name for name, g in GENERATORS.items() if g.trained)
ATTACKABLE_GENERATORS = tuple(name for name, g in GENERATORS.items() if g.attackable)


@dataclass(frozen=True)
class Defence:
    """A value of the defence axis. A `purifier` transforms split B's real faces before fakes are
    made (its settings come from the config's `purify` section: setting name -> config key), with
    the trained `model` it names, if any (`PURIFIER_MODELS`); an `adversarial_generator` defence
    makes the fakes with that adversarially trained version of the attacked generator (a key of
    `ADVERSARIAL_GENERATOR_MODELS`; after purifying, when both are set). `generators` names the attacked generators the defence works for (None: any),
    so the config check can refuse the others."""

    what: str
    purifier: bool = True
    model: str | None = None
    config_keys: dict[str, str] = field(default_factory=dict)
    adversarial_generator: str | None = None
    generators: tuple[str, ...] | None = None
    differentiable: bool = False  # torch gradients flow through its purifier (the adaptive attack uses them)

    @property
    def diffusion(self) -> bool:
        return self.model == "ddpm"


# the defenders' trained purification models (a Defence's `model`): name -> what it is
PURIFIER_MODELS = {
    "ddpm": "the diffusion model (diffusers UNet2DModel + DDPMScheduler) trained on split A",
    "magnet": "MagNet's denoising autoencoders trained on split A with Gaussian noise",
}


# the defenders' adversarially trained generators (a Defence's `adversarial_generator`), each
# written to defences/<name>/model.pt: name -> what it is
ADVERSARIAL_GENERATOR_MODELS = {
    "adv_generator": "the attacked generator fine-tuned on its own PGD-disrupted inputs (Ruiz et al.)",
    "adv_generator_blur": "the same with a Gaussian blur in front of the generator, fine-tuned through it",
}
# the attacked generators that have an adversarial fine-tuning
ADVERSARIALLY_TRAINABLE = tuple(name for name, g in GENERATORS.items() if g.adversarial_settings is not None)

DIFFPURE_KEYS = {"t_star": "t_star", "sampler": "sampler", "ddim_steps": "ddim_steps"}
DEFENCES = {
    "none": Defence("no defence"),
    "diffpure": Defence("DiffPure: noise to t*, denoise back with the DDPM", model="ddpm", config_keys=DIFFPURE_KEYS,
                        differentiable=True),
    "ddpm_reverse": Defence("the reverse DDPM process run on the face itself (the reference's `ddpm` mode)",
                            model="ddpm", config_keys={"start_step": "reverse_start"}, differentiable=True),
    "defensive_model_1": Defence("MagNet's defensive model 1: a denoising autoencoder with a pooling bottleneck",
                                 model="magnet", differentiable=True),
    "defensive_model_2": Defence("MagNet's defensive model 2: a denoising autoencoder without pooling",
                                 model="magnet", differentiable=True),
    "jpeg": Defence("JPEG re-compression", config_keys={"quality": "jpeg_quality"}),
    "gaussian_blur": Defence("Gaussian blur", config_keys={"sigma": "blur_sigma"}),
    "median": Defence("median filter", config_keys={"kernel": "median_kernel"}),
    "bit_depth": Defence("bit-depth reduction", config_keys={"bits": "bits"}),
    "adv_generator": Defence("the attacked generator fine-tuned on its own disrupted inputs; no purification",
                             purifier=False, adversarial_generator="adv_generator",
                             generators=ADVERSARIALLY_TRAINABLE),
    "adv_generator_blur": Defence("Ruiz et al.'s blur variant: StarGAN with a Gaussian blur in front, fine-tuned "
                                  "through it on disrupted inputs; no purification", purifier=False,
                                  adversarial_generator="adv_generator_blur", generators=("stargan",)),
    "both": Defence("the reference's `both`: DiffPure, then fakes from the adversarially trained generator",
                    model="ddpm", config_keys=DIFFPURE_KEYS, adversarial_generator="adv_generator",
                    generators=ADVERSARIALLY_TRAINABLE, differentiable=True),
}
PURIFIERS = tuple(name for name, d in DEFENCES.items() if d.purifier)


def purifier_of(defence: str) -> str:
    """The purifier a defence runs on split B's faces: its own, or `none` for a defence that
    purifies nothing (the adversarially trained generator passes the faces on as they are)."""
    return defence if DEFENCES[defence].purifier else "none"

DIFFUSION_PURIFIERS = tuple(name for name, d in DEFENCES.items() if d.diffusion)
# which `purify.*` config keys each purifier reads (setting name -> config key), so that editing
# t_star reruns diffpure's scenarios, not jpeg's
PURIFIER_CONFIG_KEYS = {name: DEFENCES[name].config_keys for name in PURIFIERS}


@dataclass(frozen=True)
class Attack:
    """An L-inf attack (`attacks.linf`): `starts_at_input` ones take their first step at the clean
    image, where a loss comparing G(x + d) with G(x) has zero gradient; one that is not
    `optimised` follows no loss (noise), so the loss axis does not apply to it."""

    what: str
    starts_at_input: bool = False
    optimised: bool = True
    adaptive: bool = False  # optimised through the defence it meets (attacks.adaptive): one poison per defence
    algorithm: str | None = None  # the `attacks.linf` attack it runs, when not its own name


POISON_ATTACKS = {
    "pgd": Attack("projected gradient descent from a random start"),
    "adaptive_pgd": Attack("PGD through the defence it meets: EOT over the purifier's randomness, straight-through "
                           "gradients where it is not differentiable", adaptive=True, algorithm="pgd"),
    "bim": Attack("basic iterative method (I-FGSM)", starts_at_input=True),
    "fgsm": Attack("one signed-gradient step", starts_at_input=True),
    "gaussian": Attack("Gaussian noise of the same L-inf size: the baseline", optimised=False),
}
ADAPTIVE_ATTACKS = tuple(name for name, a in POISON_ATTACKS.items() if a.adaptive)


# What the poisoning attacker maximises (attacks/disruption.disruption_loss); each names a folder
# of the poisoned scenarios, beside the attack.
POISON_LOSSES = {
    "mse": "MSE(G(x+d), G(x)): push the generator's output away from the clean one (Ruiz et al.)",
    "target": "-MSE(G(x+d), black): pull the generator's output towards a black image (the DDPM-purification paper)",
}


def linf_attack(name: str) -> str:
    """The `attacks.linf` attack that poisoning attack `name` runs."""
    return POISON_ATTACKS[name].algorithm or name


EVASION_ATTACKS = ("fgsm", "pgd")  # the evaluation's attacks on the detector
RELEASED_PREFIX = "released_"  # the evaluation's test sets of the attacker's own fakes


def released_test_set(attack: str, loss: str) -> str:
    """The test set of the fakes made from C's real faces as poisoning `attack` / `loss` left them."""
    return f"{RELEASED_PREFIX}{attack}_{loss}"
# DeeperForensics-1.0's distortions (attacks/distortions.py), on crops or on whole videos
DISTORTION_KINDS = ("CS", "CC", "BW", "GNC", "GB", "JPEG", "VC")


@dataclass(frozen=True)
class TrainingMode:
    """How a detector is trained: the evasion attack every training batch meets (none: plain
    training), and the mode whose detector of the same scenario and seed it starts from (none:
    from the backbone's initial weights) for `detector.adversarial.finetune_epochs` epochs."""

    description: str
    attack: str | None = None
    starts_from: str | None = None


TRAINING_MODES = {
    "plain": TrainingMode("binary cross-entropy on the clean faces"),
    "fgsm": TrainingMode("adversarial training from the start, FGSM on every batch", attack="fgsm"),
    "pgd": TrainingMode("adversarial training from the start, PGD on every batch", attack="pgd"),
    "fgsm_finetune": TrainingMode("the robust-detector reference's schedule: the plain detector, then adversarial "
                                  "fine-tuning with FGSM", attack="fgsm", starts_from="plain"),
    "pgd_finetune": TrainingMode("the plain detector, then adversarial fine-tuning with PGD", attack="pgd",
                                 starts_from="plain"),
}



@dataclass(frozen=True)
class DetectorFamily:
    """A detector backbone that is not one timm model (any timm model name is a backbone too).
    `settings` is the `detector:` config key holding its network's own settings (None: it has
    none); they reach only this family's jobs and are recorded in its checkpoints."""

    what: str
    settings: str | None = None


DETECTOR_FAMILIES = {
    "spectrum": DetectorFamily("Durall et al. 2019: azimuthally averaged log power spectrum of the grey face, "
                               "linear head"),
    "ensemble": DetectorFamily("the image-track winner's expert ensemble: timm experts with two-class heads, "
                               "CE + KL + NCE, mean fake probability", settings="ensemble"),
    "recce": DetectorFamily("RECCE (Cao et al. 2022): reconstruction of the real faces guides the classifier",
                            settings="recce"),
}

# the config schema's list-valued keys whose allowed values are a family above (config.load_schema)
SCHEMA_ENUMS = {
    ("fakes", "generators"): tuple(GENERATORS),
    ("poison", "generator"): ATTACKABLE_GENERATORS,
    ("poison", "attacks"): tuple(POISON_ATTACKS),
    ("defences",): tuple(DEFENCES),
    ("evaluate", "attacks"): EVASION_ATTACKS,
    ("evaluate", "distortions"): DISTORTION_KINDS,
    ("evaluate", "video_distortions"): DISTORTION_KINDS,
    ("experiments", "training"): tuple(TRAINING_MODES),
    ("$defs", "poison_loss"): tuple(POISON_LOSSES),  # poison.loss and experiments[].loss
}
