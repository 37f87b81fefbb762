"""The detector's hold-out: which of split B's source media select the best epoch and calibrate
the threshold (split C is never used for that). A real media and every fake made from it share a
source and always fall on the same side, so no face of a held-out media, nor a fake made from
it, is trained on.

Two rules (`detector.validation`):
- `random`: each source by its own seeded draw, so adding media moves no other media, but never
  every source of a person who has several (`keep_every_person`);
- `kmeans`: the image-track winner's hard validation set, carved by unsupervised clustering
  instead of at random. Each source is described by the mean 8 x 8 RGB thumbnail of its faces
  (the person, the scene, the light), k-means groups the sources, and whole clusters, taken in a
  seeded order, make the hold-out: it then holds looks the training part has not seen, as a
  test set of new media will, where a random hold-out resembles the training data.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans

from robust_deepfake.images import read_rgb
from robust_deepfake.seeding import item_seed

log = logging.getLogger(__name__)

THUMBNAIL = 8


def random_sources(faces: pd.DataFrame, fraction: float, seed: int, clusters: int) -> set:
    """Each source held out with probability `fraction`, by a draw keyed on its name, except
    that no person with several sources is held out whole (`keep_every_person`)."""
    draws = {s: item_seed(seed, "holdout", s) for s in faces["source_media_id"].unique()}
    held = {s for s, draw in draws.items() if (draw % 10_000) / 10_000 < fraction}
    return keep_every_person(faces, held, draws)


def keep_every_person(faces: pd.DataFrame, held: set, draws: dict) -> set:
    """`held` less, for each person (`identity`) whose every source it holds, the source with the
    lowest draw, when that person has more than one. On a split B of a handful of people, one
    held-out person is the whole hold-out's notion of "unseen": measured on the demo (6 people,
    README), a hold-out that held out all of one person, whose real faces resemble the face
    swap's targets, scored every model near 0.4 AUC, and best-epoch selection kept an untrained
    second epoch (test AUC 0.54; 0.99 with that person's clips in training). Unseen people are
    what split C measures; the hold-out picks the epoch and the threshold."""
    if "identity" not in faces.columns:
        return held
    sources = faces.drop_duplicates("source_media_id").set_index("source_media_id")["identity"].dropna()
    for _, mine in sources.groupby(sources):
        if len(mine) > 1 and held.issuperset(mine.index):
            held = held - {min(mine.index, key=draws.__getitem__)}
    return held


def source_features(faces: pd.DataFrame) -> pd.DataFrame:
    """One row per source: the mean thumbnail of its faces, in [0, 1]."""
    thumbnails = np.stack([read_rgb(p, THUMBNAIL).astype(np.float32).ravel() / 255 for p in faces["image_path"]])
    return pd.DataFrame(thumbnails, index=faces["source_media_id"].to_numpy()).groupby(level=0).mean()


def kmeans_sources(faces: pd.DataFrame, fraction: float, seed: int, clusters: int) -> set:
    """Whole k-means clusters of the sources, in a seeded order, until `fraction` of the sources
    is reached; a cluster that would take the hold-out past 1.5 x its target is passed over
    (unless nothing is held out yet and it is the smallest), so one large cluster cannot swallow
    the training data."""
    features = source_features(faces)
    if fraction <= 0 or len(features) < 2:
        return set()
    k = min(clusters, len(features))
    assignment = KMeans(n_clusters=k, n_init=10, random_state=seed % 2**31).fit_predict(features.to_numpy())
    members = {c: set(features.index[assignment == c]) for c in range(k)}
    target = fraction * len(features)
    held: set = set()
    for c in np.random.default_rng(item_seed(seed, "kmeans")).permutation(k):
        if len(held) >= target:
            break
        if len(held) + len(members[c]) <= 1.5 * target:
            held |= members[c]
    if not held:
        held = min(members.values(), key=len)
    log.info("k-means hold-out: %d of %d sources, from clusters of sizes %s", len(held), len(features),
             sorted(len(m) for m in members.values()))
    return held


VALIDATION_RULES = {"random": random_sources, "kmeans": kmeans_sources}


def holdout_split(faces: pd.DataFrame, fraction: float, seed: int, rule: str = "random",
                  clusters: int = 8) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, validation) by source media under `rule`. A hold-out (or a training part) that
    lacks a class cannot rank anything: then every face is used for both, with a warning."""
    if rule not in VALIDATION_RULES:
        raise ValueError(f"unknown validation rule {rule!r}; known: {', '.join(VALIDATION_RULES)}")
    held = VALIDATION_RULES[rule](faces, fraction, seed, clusters)
    in_val = faces["source_media_id"].isin(held)
    train, val = faces[~in_val], faces[in_val]
    if fraction > 0 and (val["label"].nunique() < 2 or train["label"].nunique() < 2):
        log.warning("validation hold-out of %d faces lacks a class; selecting on the training faces instead",
                    len(val))
        return faces.reset_index(drop=True), faces.reset_index(drop=True)
    return train.reset_index(drop=True), val.reset_index(drop=True)
