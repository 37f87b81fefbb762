"""Snakemake entry point of rule measure_fakes; the logic is robust_deepfake.stages.fake_distance."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

import pandas as pd  # noqa: E402
from robust_deepfake.devices import start_job  # noqa: E402

from robust_deepfake.atomic import atomic_path  # noqa: E402
from robust_deepfake.stages.fake_distance import distance_row, inception_extractor, load_extractor  # noqa: E402
from robust_deepfake.manifest import read_manifest  # noqa: E402

start_job(snakemake.threads)
p, w = snakemake.params, snakemake.wildcards
extractor = inception_extractor(p.inception_weights) if p.inception_weights else load_extractor(snakemake.input.extractor[0])
reference = read_manifest(snakemake.input.reference)
rows = [{"generator": w.generator, "attack": w.attack, "loss": w.loss, "poison_rate": float(w.rate), "defence": defence,
         **distance_row(extractor, read_manifest(path), reference, p.seed)}
        for defence, path in zip(p.defences, snakemake.input.fakes)]
table = pd.DataFrame(rows)
with atomic_path(snakemake.output[0]) as tmp:
    table.to_csv(tmp, sep="\t", index=False)
log.info("\n%s", table.to_string(index=False))
