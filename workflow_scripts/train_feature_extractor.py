"""Snakemake entry point of rule train_feature_extractor; the logic is robust_deepfake.stages.fake_distance."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

import pandas as pd  # noqa: E402
from robust_deepfake.devices import start_job  # noqa: E402

from robust_deepfake.atomic import atomic_path  # noqa: E402
from robust_deepfake.tensors import read_unit  # noqa: E402
from robust_deepfake.stages.fake_distance import save_extractor, train_identity_extractor  # noqa: E402
from robust_deepfake.manifest import read_manifest  # noqa: E402
from robust_deepfake.seeding import seed_everything  # noqa: E402

start_job(snakemake.threads)
p = snakemake.params
seed_everything(p.seed)
faces = read_manifest(snakemake.input.faces)
faces = faces[faces["label"] == 0].reset_index(drop=True)
pixels = read_unit(faces["face_path"].tolist())
extractor, history = train_identity_extractor(pixels, faces["identity"].tolist(), steps=p.settings["steps"],
                                              batch_size=p.settings["batch_size"], lr=p.settings["lr"], seed=p.seed,
                                              size=p.settings["image_size"])
save_extractor(extractor, snakemake.output.model)
with atomic_path(snakemake.output.history) as tmp:
    pd.DataFrame(history).to_parquet(tmp, index=False)
log.info("identity feature extractor: %d faces of %d identities, final loss %.4f", len(faces),
         faces["identity"].nunique(), history[-1]["loss"])
