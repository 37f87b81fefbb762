"""Snakemake entry point of rules generate_fakes (split B's purified, kept reals: the trainer's
fakes), generate_test_fakes (split C's clean reals: the evaluation's) and generate_released_fakes
(split C's reals as a poisoning left them: the attacker's own); the logic is robust_deepfake.stages.fakes."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

from pathlib import Path  # noqa: E402

from robust_deepfake.devices import resolve_device, start_job  # noqa: E402
from robust_deepfake.registry import TRAINED_GENERATORS  # noqa: E402
from robust_deepfake.stages.fakes import fake_sources, generate_fakes  # noqa: E402
from robust_deepfake.generators.loading import load_generator  # noqa: E402
from robust_deepfake.manifest import FAKE_ADDED_COLUMNS, read_manifest, write_manifest  # noqa: E402
from robust_deepfake.seeding import seed_everything  # noqa: E402

start_job(snakemake.threads)
p = snakemake.params
name = snakemake.wildcards.generator
seed_everything(p.seed)
device = resolve_device(p.device)
manifest = read_manifest(snakemake.input.reals)
reals = fake_sources(manifest)
log.info("fakes from %d of %d real faces of %s", len(reals), int((manifest["label"] == 0).sum()), snakemake.input.reals)
sources = read_manifest(snakemake.input.sources)
sources = sources[sources["label"] == 0].reset_index(drop=True)
generator = load_generator(name, snakemake.input.model[0], p.settings, device) if name in TRAINED_GENERATORS else None
Path(snakemake.output.images).mkdir(parents=True, exist_ok=True)
fakes = generate_fakes(reals, name, snakemake.output.images, per_face=p.per_face, seed=p.seed,
                       image_format=p.image_format, generator=generator, sources=sources,
                       diffusion_settings=p.settings, device=device)
columns = [c for c in manifest.columns if c not in FAKE_ADDED_COLUMNS] + FAKE_ADDED_COLUMNS
write_manifest(fakes, snakemake.output.manifest, columns=columns)
log.info("%s: %d fakes from %d real faces", name, len(fakes), len(reals))
