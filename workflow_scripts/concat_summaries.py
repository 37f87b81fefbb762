"""Snakemake entry point of rules summarise_poisoning, summarise_purification and
summarise_fake_distance: one table of
all scenarios, the per-scenario summary.tsv files stacked."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

import pandas as pd  # noqa: E402

from robust_deepfake.atomic import atomic_path  # noqa: E402

table = pd.concat([pd.read_csv(path, sep="\t") for path in snakemake.input], ignore_index=True)
with atomic_path(snakemake.output[0]) as tmp:
    table.to_csv(tmp, sep="\t", index=False)
log.info("\n%s", table.to_string(index=False))
