"""Snakemake entry point of rule train_adv_generator; the logic is robust_deepfake.stages.defence_training."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

from pathlib import Path  # noqa: E402

from robust_deepfake.devices import start_job  # noqa: E402

from robust_deepfake.atomic import atomic_path  # noqa: E402
from robust_deepfake.stages.defence_training import train_adversarial_generator  # noqa: E402
from robust_deepfake.stages.generator_training import training_faces  # noqa: E402
from robust_deepfake.manifest import read_manifest  # noqa: E402
from robust_deepfake.seeding import seed_everything  # noqa: E402
from robust_deepfake.checkpoints import training_state  # noqa: E402

start_job(snakemake.threads)
p = snakemake.params
seed_everything(p.seed)
faces = training_faces(read_manifest(snakemake.input.faces), "main", p.seed)
with training_state(Path(snakemake.output.model).parent, p, snakemake.input) as work_dir:
    history = train_adversarial_generator(faces, p.family, snakemake.input.generator, p.generator_settings,
                                          p.settings, p.attack, p.seed, snakemake.output.model, work_dir, p.device)
    with atomic_path(snakemake.output.history) as tmp:
        history.to_parquet(tmp, index=False)
