"""Snakemake entry point of rule distort_test_videos; the logic is robust_deepfake.stages.video_distortion."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

import pandas as pd  # noqa: E402
from robust_deepfake.devices import start_job  # noqa: E402

from robust_deepfake.atomic import atomic_path  # noqa: E402
from robust_deepfake.faces.cropping import DetectorInput  # noqa: E402
from robust_deepfake.faces.detection import build_detector  # noqa: E402
from robust_deepfake.manifest import read_manifest  # noqa: E402
from robust_deepfake.stages.video_distortion import distort_and_cut  # noqa: E402

start_job(snakemake.threads)
p, w = snakemake.params, snakemake.wildcards
fakes = [read_manifest(f) for f in snakemake.input.test_fakes]
fakes = pd.concat([f for f in fakes if len(f)], ignore_index=True) if any(len(f) for f in fakes) else pd.DataFrame()
detector = build_detector(p.device, p.faces["min_face_size"], p.faces["thresholds"], p.faces["scale_factor"],
                          p.faces["skip_levels"])
table = distort_and_cut(read_manifest(snakemake.input.part), fakes, w.distortion, int(w.level), p.seed, detector,
                        p.faces, DetectorInput(**p.crop), snakemake.output.crops, p.image_format)
with atomic_path(snakemake.output.manifest) as tmp:
    table.to_parquet(tmp, index=False)
