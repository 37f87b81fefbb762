"""Snakemake entry point of rule train_ddpm; the logic is robust_deepfake.stages.defence_training."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

from pathlib import Path  # noqa: E402

from robust_deepfake.devices import start_job  # noqa: E402

from robust_deepfake.atomic import atomic_path  # noqa: E402
from robust_deepfake.stages.defence_training import train_defense_ddpm  # noqa: E402
from robust_deepfake.defences.calibration import model_training_faces  # noqa: E402
from robust_deepfake.manifest import read_manifest  # noqa: E402
from robust_deepfake.seeding import seed_everything  # noqa: E402
from robust_deepfake.checkpoints import training_state  # noqa: E402

start_job(snakemake.threads)
p = snakemake.params
seed_everything(p.seed)
faces = model_training_faces(read_manifest(snakemake.input.faces), p.calibration_identities, p.seed, "DDPM")
model_dir = Path(snakemake.output.unet).parent
with training_state(model_dir.parent, p, snakemake.input) as work_dir:
    history = train_defense_ddpm(faces, p.settings, p.seed, model_dir, work_dir, p.device)
    with atomic_path(snakemake.output.history) as tmp:
        history.to_parquet(tmp, index=False)
