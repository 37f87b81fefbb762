"""Which clean faces calibrate the reject step: people of split A whom the defence's models never
saw in training.

The reject step drops a purified face that changed more than clean faces change. Calibrated on
faces the purifier's DDPM was trained on, the threshold is too low for the faces it will judge:
split B's people are new to the DDPM, which changes them more (on the earlier demo DiffPure
dropped 96-100 % of B, poisoned or not). So a seeded share of A's identities is held out of the
defence models' training and used only to measure how much the purifier changes a clean face it
has not seen, as B's clean faces are.
"""

from __future__ import annotations

import hashlib
import logging
import math

import pandas as pd

log = logging.getLogger(__name__)


def calibration_identities(part_a: pd.DataFrame, share: float, seed: int) -> list[str]:
    """A seeded `share` of split A's real identities (at least one when share > 0 and A has two or
    more), chosen by a hash of the name: adding people to A moves no one else in or out."""
    identities = sorted(part_a.loc[part_a["label"] == 0, "identity"].dropna().astype(str).unique())
    if share <= 0 or len(identities) < 2:
        return []
    count = min(len(identities) - 1, max(1, math.ceil(share * len(identities))))
    ranked = sorted(identities, key=lambda name: hashlib.sha256(f"{seed}:calibration:{name}".encode()).hexdigest())
    return sorted(ranked[:count])


def defence_faces(part_a: pd.DataFrame, share: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training, calibration): split A's real faces with a crop, the calibration identities' apart."""
    reals = part_a[(part_a["label"] == 0) & part_a["face_path"].notna()]
    held_out = reals["identity"].astype(str).isin(calibration_identities(part_a, share, seed))
    return reals[~held_out].reset_index(drop=True), reals[held_out].reset_index(drop=True)


def model_training_faces(part_a: pd.DataFrame, share: float, seed: int, what: str) -> pd.DataFrame:
    """The faces a defence model (`what`: the DDPM, a MagNet autoencoder) trains on: split A's but
    those of the calibration identities, which it must never see."""
    faces, held_out = defence_faces(part_a, share, seed)
    log.info("%s: %d faces of %d identities of split A; %d identities held out to calibrate the reject step",
             what, len(faces), faces["identity"].nunique(), held_out["identity"].nunique())
    return faces
