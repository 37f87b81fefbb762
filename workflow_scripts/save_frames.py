"""Snakemake entry point of rule save_frames; the logic is robust_deepfake.stages.frames."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

from functools import partial  # noqa: E402

from robust_deepfake.manifest import FRAME_COLUMNS, read_shard, write_manifest  # noqa: E402
from robust_deepfake.stages.frames import save_frames  # noqa: E402
from robust_deepfake.video import frame_indices  # noqa: E402

p = snakemake.params
media = read_shard(snakemake.input.media, p.shard)
log.info("shard %d: %d media", p.shard, len(media))
sample = partial(frame_indices, **p.sampling)
frames = save_frames(media, snakemake.output.frames, sample, image_format=p.image_format)
write_manifest(frames, snakemake.output.manifest, columns=FRAME_COLUMNS + ["frame_path"])
