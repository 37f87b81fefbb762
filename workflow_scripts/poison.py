"""Snakemake entry point of rules poison, poison_adaptive (which adds the defence wildcard: the
poison is then optimised through that defence) and poison_test (every real face of split C, at
rate 1); the logic is robust_deepfake.stages.poison."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

from pathlib import Path  # noqa: E402

from robust_deepfake.atomic import atomic_path  # noqa: E402
from robust_deepfake.attacks.adaptive import identity  # noqa: E402
from robust_deepfake.defences.anticipated import anticipated_purifier  # noqa: E402
from robust_deepfake.defences.loading import load_purifier_model  # noqa: E402
from robust_deepfake.defences.purifiers import settings_from_config  # noqa: E402
from robust_deepfake.registry import DEFENCES, POISON_ATTACKS, purifier_of  # noqa: E402
from robust_deepfake.devices import per_device, resolve_device, start_job  # noqa: E402
from robust_deepfake.generators.loading import load_generator  # noqa: E402
from robust_deepfake.manifest import POISON_COLUMNS, read_manifest, write_manifest  # noqa: E402
from robust_deepfake.stages.poison import blank_grid, poison_faces, poisoning_summary, select_poisoned  # noqa: E402
from robust_deepfake.seeding import seed_everything  # noqa: E402

start_job(snakemake.threads)
p = snakemake.params
attack, loss = snakemake.wildcards.attack, snakemake.wildcards.loss
if (attack == "none") != (p.rate == 0) or (loss == "none") != (attack == "none" or not POISON_ATTACKS[attack].optimised):
    raise ValueError(f"{snakemake.output.manifest}: the clean scenario is attack and loss 'none' at poison rate 0, and "
                     f"only it; an attack without a loss has loss 'none' (got attack {attack!r}, loss {loss!r} at "
                     f"rate {p.rate:g})")
seed_everything(p.seed)
device = resolve_device(p.device)
batch_size = per_device(p.batch_size, device)
part_b = read_manifest(snakemake.input.part)
reals = part_b[part_b["label"] == 0].reset_index(drop=True)
mask = select_poisoned(reals, p.rate, p.seed)
if attack == "none":
    log.info("the clean scenario: split B's %d real faces, none attacked", len(reals))
    generator = None
else:
    log.info("%s (%s loss) at rate %g: %d of %d real faces (%d of %d media) of split B, %s attack on %s",
             attack, loss, p.rate, int(mask.sum()), len(reals), reals.loc[mask, "media_id"].nunique(),
             reals["media_id"].nunique(), p.threat, p.generator)
    generator = load_generator(p.generator, snakemake.input.model, p.generator_settings, device)
through, eot_samples = identity, 1  # the plain attacker: nothing between the poison and G
defence = snakemake.wildcards.get("defence")
if defence is not None:  # the adaptive attacker anticipates this defence's purification
    purifier = purifier_of(defence)
    model = load_purifier_model(DEFENCES[defence].model, (snakemake.input.purifier_model or [None])[0], device)
    through = anticipated_purifier(purifier, settings_from_config(purifier, p.purifier_config), model, p.seed)
    eot_samples = p.eot_samples
    log.info("adaptive: optimised through %s, %d purifier draws per step", defence, eot_samples)
Path(snakemake.output.crops).mkdir(parents=True, exist_ok=True)  # a complete output also at rate 0
poisoned = poison_faces(reals, mask, generator, attack, p.epsilon, p.steps, p.step_size, p.loss, batch_size,
                        p.seed, snakemake.output.crops, device=device, grid_path=snakemake.output.grid,
                        through=through, eot_samples=eot_samples)
if not mask.any():
    blank_grid(snakemake.output.grid, f"no face poisoned at rate {p.rate:g}")
write_manifest(poisoned, snakemake.output.manifest, columns=POISON_COLUMNS)
summary = poisoning_summary(poisoned, attack, loss, p.rate, p.threat, p.generator)
if defence is not None:
    summary.insert(1, "against", defence)
with atomic_path(snakemake.output.summary) as tmp:
    summary.to_csv(tmp, sep="\t", index=False)
log.info("summary:\n%s", summary.T.to_string())
