"""Snakemake entry point of rule train_generator; the logic is robust_deepfake.stages.generator_training."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

from pathlib import Path  # noqa: E402

from robust_deepfake.devices import start_job  # noqa: E402

from robust_deepfake.atomic import atomic_path  # noqa: E402
from robust_deepfake.stages.generator_training import (check_trainable_data, train_generator, training_faces)  # noqa: E402
from robust_deepfake.manifest import read_manifest  # noqa: E402
from robust_deepfake.seeding import seed_everything  # noqa: E402
from robust_deepfake.checkpoints import training_state  # noqa: E402

start_job(snakemake.threads)
p = snakemake.params
name, variant = snakemake.wildcards.generator, snakemake.wildcards.variant
seed_everything(p.seed)
faces = training_faces(read_manifest(snakemake.input.faces), variant, p.seed)
check_trainable_data(name, faces, p.settings)
with training_state(Path(snakemake.output.model).parent, p, snakemake.input) as work_dir:
    history = train_generator(name, faces, p.settings, p.seed, snakemake.output.model, work_dir, p.device)
    with atomic_path(snakemake.output.history) as tmp:
        history.to_parquet(tmp, index=False)
