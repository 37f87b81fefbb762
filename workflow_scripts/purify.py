"""Snakemake entry point of rule purify; the logic is robust_deepfake.purify."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

import math  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from robust_deepfake.atomic import atomic_path  # noqa: E402
from robust_deepfake.calibration import defence_faces  # noqa: E402
from robust_deepfake.devices import resolve_device  # noqa: E402
from robust_deepfake.disruption import DISRUPTION_METRICS, generator_disruption  # noqa: E402
from robust_deepfake.generators import load_generator  # noqa: E402
from robust_deepfake.manifest import PURIFY_COLUMNS, read_manifest, write_manifest  # noqa: E402
from robust_deepfake.poison import read_crops, to_tensor  # noqa: E402
from robust_deepfake.purify import (DIFFUSION_PURIFIERS, calibration_threshold, purify_split,  # noqa: E402
                                    settings_from_config, summarise_purification)
from robust_deepfake.seeding import seed_everything  # noqa: E402

torch.set_num_threads(snakemake.threads)
p = snakemake.params
name = snakemake.wildcards.purifier
seed_everything(p.seed)
device = resolve_device(p.device)
# adv_generator purifies nothing: its defence is the generator the fakes are made with
purifier = "none" if name == "adv_generator" else name
settings = settings_from_config(purifier, p.purifier_config)
model_dir = Path(snakemake.input.ddpm[0]).parent if snakemake.input.ddpm else None  # <model>/unet
unet, scheduler = None, None
if purifier in DIFFUSION_PURIFIERS:  # diffusers' import costs the other purifiers' jobs 5 s
    from robust_deepfake.models.ddpm import load_ddpm

    unet, scheduler = load_ddpm(model_dir, device)

# calibrated on split A's held-out people, whom the DDPM never saw (calibration.py); without any,
# on the faces it trained on
trained_on, held_out = defence_faces(read_manifest(snakemake.input.calibration), p.calibration_identities, p.seed)
calibration = held_out if len(held_out) else trained_on
calibration = calibration.sample(n=min(p.calibration_faces, len(calibration)), random_state=p.seed).reset_index(drop=True)
threshold = calibration_threshold(purifier, to_tensor(read_crops(calibration["face_path"].tolist())), calibration,
                                  settings, p.reject["rule"], p.reject["value"], p.seed, p.batch_size, unet, scheduler)
log.info("reject threshold %s (%s rule, value %s) from %d clean faces of %d held-out identities of split A", threshold,
         p.reject["rule"], p.reject["value"], len(calibration), calibration["identity"].nunique())

reals = read_manifest(snakemake.input.reals)
purified, cost = purify_split(reals, purifier, settings, snakemake.output.crops, seed=p.seed,
                              batch_size=p.batch_size, threshold=threshold, unet=unet, scheduler=scheduler)
purified["purifier"] = name

generator = load_generator(p.generator, snakemake.input.generator, p.generator_settings, device)
clean = to_tensor(read_crops(reals["face_path"].tolist()))
after = generator_disruption(generator, clean, to_tensor(read_crops(purified["purified_path"].tolist())))
for column in DISRUPTION_METRICS:
    purified["p" + column] = after[column].to_numpy()
write_manifest(purified, snakemake.output.manifest, columns=PURIFY_COLUMNS)

poisoned = purified["poisoned"]
summary = {"attack": snakemake.wildcards.attack, "poison_rate": float(snakemake.wildcards.rate), "purifier": name,
           "faces": len(purified), "poisoned_faces": int(poisoned.sum()),
           "reject_threshold": threshold, "reject_rate": float(1 - purified["kept"].mean()),
           "reject_rate_poisoned": float(1 - purified.loc[poisoned, "kept"].mean()) if poisoned.any() else None,
           "reject_rate_clean": float(1 - purified.loc[~poisoned, "kept"].mean()) if (~poisoned).any() else None,
           "prop_dist_poisoned": float(purified.loc[poisoned, "dist_prop"].mean()) if poisoned.any() else None,
           "prop_dist_purified": float(purified.loc[poisoned, "pdist_prop"].mean()) if poisoned.any() else None,
           "mse_g_poisoned": float(purified.loc[poisoned, "dist_l2"].mean()) if poisoned.any() else None,
           "mse_g_purified": float(purified.loc[poisoned, "pdist_l2"].mean()) if poisoned.any() else None,
           **{f"{k}_vs_clean": v for k, v in summarise_purification(purified).items() if k.startswith("pur_")},
           # every face of a batch goes through each of the batch's UNet evaluations
           "unet_evals_per_image": cost["unet_evals"] / max(math.ceil(len(purified) / p.batch_size), 1),
           "seconds_per_image": cost["seconds"] / max(len(purified), 1)}
table = pd.DataFrame([summary])
with atomic_path(snakemake.output.summary) as tmp:
    table.to_csv(tmp, sep="\t", index=False)
log.info("summary:\n%s", table.T.to_string())
