"""Snakemake entry point of rule train_detector; the logic is robust_deepfake.stages.detector_training."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
from robust_deepfake.atomic import atomic_path  # noqa: E402
from robust_deepfake.detectors.holdout import holdout_split  # noqa: E402
from robust_deepfake.stages.detector_training import (HISTORY_COLUMNS, NothingToTrain, train_detector,
                                                      training_set)  # noqa: E402
from robust_deepfake.devices import Compute  # noqa: E402
from robust_deepfake.manifest import read_manifest  # noqa: E402
from robust_deepfake.detectors.network import DetectorConfig, save_untrained  # noqa: E402
from robust_deepfake.seeding import seed_everything  # noqa: E402
from robust_deepfake.checkpoints import training_state  # noqa: E402

p, w = snakemake.params, snakemake.wildcards
compute = Compute.for_job(p.device, snakemake.threads, p.compute)
seed_everything(p.seed)
scenario = "/".join(w[k] for k in ("backbone", "training", "generator", "attack", "loss", "rate", "defence")) + f"/seed{w.seed}"
config = DetectorConfig(backbone=w.backbone, image_size=p.settings["image_size"], mean=tuple(p.settings["mean"]),
                        std=tuple(p.settings["std"]), extra=p.settings["network"])
try:
    faces = training_set(read_manifest(snakemake.input.reals), read_manifest(snakemake.input.fakes), scenario)
except NothingToTrain as exc:
    # the scenario's outcome, not a failure: its row in the table says that no detector exists
    log.warning("%s; recording an untrained detector", exc)
    save_untrained(config, snakemake.output.model, str(exc))
    history = pd.DataFrame(columns=HISTORY_COLUMNS)
else:
    train, val = holdout_split(faces, p.settings["val_fraction"], p.seed, p.settings["validation"],
                               p.settings["kmeans_clusters"])
    log.info("%s: %d training faces (%d fake), %d validation faces", scenario, len(train),
             int(train["label"].sum()), len(val))
    with training_state(Path(snakemake.output.model).parent, p, snakemake.input) as work_dir:
        history = train_detector(train, val, config, p.settings, w.training, seed=p.seed,
                                 out_path=snakemake.output.model, work_dir=work_dir, compute=compute,
                                 pretrained_file=p.settings["pretrained"], init_file=snakemake.input.get("init"),
                                 input_record=p.crop)
with atomic_path(snakemake.output.history) as tmp:
    history.to_parquet(tmp, index=False)
