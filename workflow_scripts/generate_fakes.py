"""Snakemake entry point of rule generate_fakes; the logic is robust_deepfake.fakes."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from robust_deepfake.devices import resolve_device  # noqa: E402
from robust_deepfake.fakes import MODEL_GENERATORS, generate_fakes  # noqa: E402
from robust_deepfake.generators import load_generator  # noqa: E402
from robust_deepfake.manifest import FAKE_COLUMNS, read_manifest, write_manifest  # noqa: E402
from robust_deepfake.seeding import seed_everything  # noqa: E402

torch.set_num_threads(snakemake.threads)
p = snakemake.params
name = snakemake.wildcards.generator
seed_everything(p.seed)
device = resolve_device(p.device)
reals = read_manifest(snakemake.input.reals)
log.info("%d of %d real faces passed the reject step", int(reals["kept"].sum()), len(reals))
reals = reals[reals["kept"]].reset_index(drop=True)
reals["image_path"] = reals["purified_path"]  # the faces as the attacker left them, then purified
sources = read_manifest(snakemake.input.sources)
sources = sources[sources["label"] == 0].reset_index(drop=True)
generator = load_generator(name, snakemake.input.model[0], p.settings, device) if name in MODEL_GENERATORS else None
Path(snakemake.output.images).mkdir(parents=True, exist_ok=True)
fakes = generate_fakes(reals, name, snakemake.output.images, per_face=p.per_face, seed=p.seed,
                       image_format=p.image_format, generator=generator, sources=sources,
                       diffusion_settings=p.settings, device=device)
write_manifest(fakes, snakemake.output.manifest, columns=FAKE_COLUMNS)
log.info("%s: %d fakes from %d real faces", name, len(fakes), len(reals))
