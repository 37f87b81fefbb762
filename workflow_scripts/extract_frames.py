"""Snakemake entry point of rule extract_frames; the logic is robust_deepfake.stages.frames."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

from robust_deepfake.stages.frames import extract_frames  # noqa: E402
from robust_deepfake.manifest import FRAME_COLUMNS, read_manifest, write_manifest  # noqa: E402

p = snakemake.params
media = read_manifest(snakemake.input.media)
media = media[media["shard"] == p.shard].reset_index(drop=True)
log.info("shard %d: %d media", p.shard, len(media))
frames = extract_frames(media, snakemake.output.frames, mode=p.mode, per_video=p.per_video, stride=p.stride,
                        max_per_video=p.max_per_video, image_format=p.image_format)
write_manifest(frames, snakemake.output.manifest, columns=FRAME_COLUMNS)
