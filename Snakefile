# Robust deepfake detection under data poisoning: the workflow.
# Stages, in order: render_demo (demo only) -> ingest -> extract_frames -> detect_faces -> crop_faces -> split
#   -> train_generator (on A) -> poison (B's reals) -> train_ddpm / train_adv_generator (on A) -> purify (B's reals)
#   -> generate_fakes (from B's purified, kept reals).
# Each stage is rules/<stage>.smk -> workflow_scripts/<stage>.py -> src/robust_deepfake/<module>.py.

from snakemake.utils import min_version

min_version("8.0")


configfile: "config/config.yaml"


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


rule all:
    input:
        split_outputs(),
        attack_outputs(),
    default_target: True
