"""One seed from the config for every source of randomness a stage uses."""

from __future__ import annotations

import hashlib
import os
import random

import numpy as np


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and (when it is installed) torch; return a NumPy generator to pass on.

    Stages that need no torch do not import it, so CPU-only stages start fast.
    """
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import torch
    except ImportError:
        pass
    else:
        torch.manual_seed(seed)
    return np.random.default_rng(seed)


def item_seed(seed: int, *keys: object) -> int:
    """A seed for one item (a face, a fake) derived from the run's seed and the item's keys, not
    from its position: results do not change when other items are added or batches are re-cut."""
    digest = hashlib.sha256(":".join(str(k) for k in (seed, *keys)).encode()).digest()
    return int.from_bytes(digest[:7], "big")
