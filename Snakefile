# Robust deepfake detection under data poisoning: the workflow.
# Stages, in order: render_demo (demo only) -> ingest -> detect_faces -> crop_faces -> split
#   (save_frames: frame images, only with frames.save_images)
#   -> train_generator (on A) -> poison (B's reals) -> train_ddpm / train_magnet / train_adv_generator (on A)
#   -> poison_adaptive (adaptive attacks: B's reals, once per defence) -> purify (B's reals, one job per defence) -> generate_fakes (from B's defended, kept reals)
#   / generate_test_fakes (from C's clean reals) -> train_feature_extractor (on A) -> measure_fakes
#   -> train_detector (per experiment scenario and seed) -> distort_test_videos (C's media as whole videos)
#   -> evaluate_detector (on C) -> summarise_experiments;
#   summarise_poisoning / summarise_purification / summarise_fake_distance stack the per-scenario tables.
# Each stage is rules/<stage>.smk -> workflow_scripts/<rule>.py -> src/robust_deepfake/stages/<stage>.py
# (render_demo: src/robust_deepfake/datasets/demo.py); the algorithms live in attacks/, defences/,
# generators/, detectors/ and faces/, their names in registry.py.

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
include: "rules/face_detection.smk"
include: "rules/crop.smk"
include: "rules/split.smk"
include: "rules/generator_training.smk"
include: "rules/poison.smk"
include: "rules/defence_training.smk"
include: "rules/purification.smk"
include: "rules/fakes.smk"
include: "rules/fake_distance.smk"
include: "rules/detector_training.smk"
include: "rules/video_distortion.smk"
include: "rules/evaluation.smk"
include: "rules/report.smk"


check_directory_outputs()


rule all:
    input:
        split_outputs(),
        frame_images,
        attack_outputs(),
        experiment_outputs(),
    default_target: True
