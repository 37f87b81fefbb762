"""Snakemake entry point of checkpoint ingest; the logic is robust_deepfake.stages.ingest."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

from robust_deepfake.stages.ingest import ingest  # noqa: E402

p = snakemake.params
ingest(layout=p.layout, root=p.root, dataset=p.dataset, max_shards=p.shards, media_per_shard=p.media_per_shard,
       layout_options=p.options, max_per_label=p.max_per_label, seed=p.seed, out_path=snakemake.output.media)
