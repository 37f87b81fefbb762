"""Snakemake entry point of rule render_demo; the logic is the layout's renderer
(robust_deepfake.datasets.rendered)."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

from robust_deepfake.datasets.rendered import RENDERERS  # noqa: E402
from robust_deepfake.seeding import seed_everything  # noqa: E402

p = snakemake.params
seed_everything(p.seed)
table = RENDERERS[p.layout](snakemake.output[0], **p.settings, seed=p.seed, workers=snakemake.threads)
log.info("rendered %d %s media for %d identities", len(table), p.layout, table["identity"].nunique())
