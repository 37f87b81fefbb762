"""Snakemake entry point of rule render_demo; the logic is robust_deepfake.datasets.demo."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

from robust_deepfake.datasets.demo import render_demo  # noqa: E402
from robust_deepfake.seeding import seed_everything  # noqa: E402

p = snakemake.params
seed_everything(p.seed)
table = render_demo(snakemake.output[0], identities=p.identities, videos_per_identity=p.videos_per_identity,
                    frames_per_video=p.frames_per_video, fps=p.fps, size=p.size,
                    images_per_identity=p.images_per_identity, seed=p.seed)
log.info("rendered %d demo media for %d identities", len(table), table["identity"].nunique())
