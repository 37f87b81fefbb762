"""Snakemake entry point of rule evaluate_detector; the logic is robust_deepfake.stages.evaluation."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

import pandas as pd  # noqa: E402
from robust_deepfake.atomic import atomic_path  # noqa: E402
from robust_deepfake.devices import Compute  # noqa: E402
from robust_deepfake.stages.evaluation import evaluation_faces, metrics_table, score_all  # noqa: E402
from robust_deepfake.manifest import read_manifest  # noqa: E402
from robust_deepfake.detectors.network import UntrainedDetector, calibrated_threshold, load_detector  # noqa: E402
from robust_deepfake.seeding import seed_everything  # noqa: E402

p = snakemake.params
seed_everything(p.seed)
compute = Compute.for_job(p.device, snakemake.threads, p.compute)
try:
    model = compute.model(load_detector(snakemake.input.model, compute.device))
except UntrainedDetector as exc:
    # nothing to evaluate; empty tables keep the scenario's row (marked) in the experiment table
    log.warning("%s", exc)
    scores = metrics = pd.DataFrame()
else:
    released = dict(zip(p.released, (read_manifest(f) for f in snakemake.input.released_fakes)))
    faces = evaluation_faces(read_manifest(snakemake.input.part), [read_manifest(f) for f in snakemake.input.test_fakes],
                             released)
    log.info("split C: %d real and %d fake faces (%s)", int((faces["label"] == 0).sum()), int(faces["label"].sum()),
             ", ".join(f"{k} {v}" for k, v in faces["test_set"].value_counts().sort_index().items()))
    # every detector meets the same attacks' starts and distortions: the run's seed, not the detector's
    video_distorted = {(path.split("/")[-3], int(path.split("/")[-2])): read_manifest(path)
                       for path in snakemake.input.video_distorted}
    scores = score_all(model, faces, p.settings, p.seed, model.config.image_size, compute, video_distorted)
    threshold = (calibrated_threshold(snakemake.input.model) if p.settings["threshold"] == "calibrated"
                 else p.settings["threshold"])
    log.info("decision threshold %.4f (%s)", threshold, p.settings["threshold"])
    metrics = metrics_table(scores, threshold, p.settings["wp_alpha"]).assign(threshold=threshold)
    clean = metrics[(metrics["condition"] == "clean") & (metrics["unit"] == "frame") & (metrics["test_set"] == "all")]
    log.info("clean, all test fakes: AUC %.4f, acc %.4f, EER %.4f", *clean[["auc", "acc", "eer"]].iloc[0])
for path, table in ((snakemake.output.scores, scores), (snakemake.output.metrics, metrics)):
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)
