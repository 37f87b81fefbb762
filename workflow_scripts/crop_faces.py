"""Snakemake entry point of rule crop_faces; the logic is robust_deepfake.stages.crop."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

from robust_deepfake.stages.crop import crop_faces  # noqa: E402
from robust_deepfake.manifest import CROP_COLUMNS, read_manifest, write_manifest  # noqa: E402

p = snakemake.params
detections = read_manifest(snakemake.input.detections)
crops = crop_faces(detections, snakemake.output.crops, margin=p.margin, size=p.size, image_format=p.image_format,
                   mode=p.mode, center_size=p.center_size, threads=snakemake.threads)
write_manifest(crops, snakemake.output.manifest, columns=CROP_COLUMNS)
