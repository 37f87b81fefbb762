"""Snakemake entry point of rule split; the logic is robust_deepfake.stages.split."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

from robust_deepfake.atomic import atomic_path  # noqa: E402
from robust_deepfake.manifest import read_manifests, write_manifest  # noqa: E402
from robust_deepfake.stages.split import PARTS, split_faces  # noqa: E402

p = snakemake.params
faces = read_manifests(list(snakemake.input.crops))
tables, summary = split_faces(faces, fractions=p.fractions, seed=p.seed, use_official_test=p.use_official_test,
                              official_overlap=p.official_overlap, frames_per_video=p.frames_per_video)
for part, path in zip(PARTS, snakemake.output.parts):
    write_manifest(tables[part], path)
with atomic_path(snakemake.output.summary) as tmp:
    summary.to_csv(tmp, sep="\t", index=False)
log.info("split summary:\n%s", summary.to_string(index=False))
