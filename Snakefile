# Robust deepfake detection under data poisoning: the workflow.
# Stages, in order: render_demo (demo only) -> ingest -> extract_frames -> detect_faces -> crop_faces -> split
#   -> train_generator (on A) -> poison (B's reals) -> train_ddpm / train_adv_generator (on A) -> purify (B's reals)
#   -> generate_fakes (from B's purified, kept reals) / generate_test_fakes (from C's clean reals)
#   -> train_detector (one per experiment scenario) -> evaluate_detector (on C) -> summarise_experiments.
# Each stage is rules/<stage>.smk -> workflow_scripts/<stage>.py -> src/robust_deepfake/<module>.py.

from snakemake.utils import min_version

min_version("8.0")


# The default config, from the checkout whatever the working directory (--directory): presets and
# layers given with --configfile go on top of it.
configfile: f"{workflow.basedir}/config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/ingest.smk"
include: "rules/frames.smk"
include: "rules/detect.smk"
include: "rules/crop.smk"
include: "rules/split.smk"
include: "rules/generators.smk"
include: "rules/poison.smk"
include: "rules/defense.smk"
include: "rules/purify.smk"
include: "rules/fakes.smk"
include: "rules/fake_distance.smk"
include: "rules/detector.smk"
include: "rules/evaluation.smk"
include: "rules/report.smk"


rule all:
    input:
        split_outputs(),
        attack_outputs(),
        experiment_outputs(),
    default_target: True
