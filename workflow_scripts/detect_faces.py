"""Snakemake entry point of rule detect_faces; the logic is robust_deepfake.stages.face_detection."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

import torch  # noqa: E402

from robust_deepfake.stages.face_detection import detect_faces  # noqa: E402
from robust_deepfake.manifest import DETECT_COLUMNS, read_manifest, write_manifest  # noqa: E402

torch.set_num_threads(snakemake.threads)
p = snakemake.params
frames = read_manifest(snakemake.input.frames)
detections = detect_faces(frames, device=p.device, batch_size=p.batch_size, min_face_size=p.min_face_size,
                          thresholds=p.thresholds, scale_factor=p.scale_factor, max_side=p.max_side,
                          min_confidence=p.min_confidence, keep=p.keep)
write_manifest(detections, snakemake.output.manifest, columns=DETECT_COLUMNS)
