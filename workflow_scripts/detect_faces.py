"""Snakemake entry point of rule detect_faces; the logic is robust_deepfake.stages.face_detection."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

from functools import partial  # noqa: E402

from robust_deepfake.devices import start_job  # noqa: E402

from robust_deepfake.manifest import DETECT_COLUMNS, read_shard, write_manifest  # noqa: E402
from robust_deepfake.stages.face_detection import detect_faces  # noqa: E402
from robust_deepfake.video import frame_indices  # noqa: E402

cpus = start_job(snakemake.threads)
p = snakemake.params
media = read_shard(snakemake.input.media, p.shard)
log.info("shard %d: %d media", p.shard, len(media))
detections = detect_faces(media, partial(frame_indices, **p.sampling), device=p.device, batch_size=p.batch_size,
                          min_face_size=p.min_face_size, skip_levels=p.skip_levels, thresholds=p.thresholds,
                          scale_factor=p.scale_factor, max_side=p.max_side, min_confidence=p.min_confidence,
                          keep=p.keep, threads=cpus)
write_manifest(detections, snakemake.output.manifest, columns=DETECT_COLUMNS)
