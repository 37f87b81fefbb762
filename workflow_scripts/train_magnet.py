"""Snakemake entry point of rule train_magnet; the logic is robust_deepfake.stages.defence_training."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

from robust_deepfake.devices import start_job  # noqa: E402

from robust_deepfake.atomic import atomic_path  # noqa: E402
from robust_deepfake.defences.calibration import model_training_faces  # noqa: E402
from robust_deepfake.manifest import read_manifest  # noqa: E402
from robust_deepfake.seeding import seed_everything  # noqa: E402
from robust_deepfake.stages.defence_training import train_magnet_purifier  # noqa: E402

start_job(snakemake.threads)
p = snakemake.params
seed_everything(p.seed)
faces = model_training_faces(read_manifest(snakemake.input.faces), p.calibration_identities, p.seed,
                             snakemake.wildcards.defence)
history = train_magnet_purifier(faces, snakemake.wildcards.defence, p.settings, p.seed, snakemake.output.model,
                                p.checkpoint, p.device)
with atomic_path(snakemake.output.history) as tmp:
    history.to_parquet(tmp, index=False)
