"""Snakemake entry point of rule purify; the logic is robust_deepfake.stages.purification."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])


from robust_deepfake.atomic import atomic_path  # noqa: E402
from robust_deepfake.attacks.disruption import DISRUPTION_METRICS, generator_disruption  # noqa: E402
from robust_deepfake.defences.calibration import defence_faces  # noqa: E402
from robust_deepfake.defences.loading import load_purifier_model  # noqa: E402
from robust_deepfake.defences.purifiers import settings_from_config  # noqa: E402
from robust_deepfake.devices import per_device, resolve_device, start_job  # noqa: E402
from robust_deepfake.generators.loading import load_generator  # noqa: E402
from robust_deepfake.images import read_images  # noqa: E402
from robust_deepfake.tensors import bgr_to_signed  # noqa: E402
from robust_deepfake.manifest import PURIFY_COLUMNS, read_manifest, write_manifest  # noqa: E402
from robust_deepfake.registry import DEFENCES, purifier_of  # noqa: E402
from robust_deepfake.seeding import seed_everything  # noqa: E402
from robust_deepfake.stages.purification import calibration_threshold, purification_summary, purify_split  # noqa: E402

start_job(snakemake.threads)
p, w = snakemake.params, snakemake.wildcards
seed_everything(p.seed)
device = resolve_device(p.device)
batch_size = per_device(p.batch_size, device)
purifier = purifier_of(w.defence)
settings = settings_from_config(purifier, p.purifier_config)
model = load_purifier_model(DEFENCES[w.defence].model, (snakemake.input.purifier_model or [None])[0], device)

# calibrated on split A's held-out people, whom the DDPM never saw (calibration.py); without any,
# on the faces it trained on
trained_on, held_out = defence_faces(read_manifest(snakemake.input.calibration), p.calibration_identities, p.seed)
calibration = held_out if len(held_out) else trained_on
calibration = calibration.sample(n=min(p.calibration_faces, len(calibration)), random_state=p.seed).reset_index(drop=True)
threshold = calibration_threshold(purifier, bgr_to_signed(read_images(calibration["face_path"].tolist())), calibration,
                                  settings, p.reject["rule"], p.reject["value"], p.seed, batch_size, model)
log.info("reject threshold %s (%s rule, value %s) from %d clean faces of %d held-out identities of split A", threshold,
         p.reject["rule"], p.reject["value"], len(calibration), calibration["identity"].nunique())

reals = read_manifest(snakemake.input.reals)
purified, cost = purify_split(reals, purifier, settings, snakemake.output.crops, seed=p.seed,
                              batch_size=batch_size, threshold=threshold, model=model)
purified["defence"] = w.defence

generator = load_generator(p.generator, snakemake.input.generator, p.generator_settings, device)
clean = bgr_to_signed(read_images(reals["face_path"].tolist()))
after = generator_disruption(generator, clean, bgr_to_signed(read_images(purified["purified_path"].tolist())), reals)
for column in DISRUPTION_METRICS:
    purified["p" + column] = after[column].to_numpy()
write_manifest(purified, snakemake.output.manifest, columns=PURIFY_COLUMNS)
summary = purification_summary(purified, w.attack, w.loss, float(w.rate), w.defence, threshold, cost, batch_size)
with atomic_path(snakemake.output.summary) as tmp:
    summary.to_csv(tmp, sep="\t", index=False)
log.info("summary:\n%s", summary.T.to_string())
