"""Ingest: list a dataset root into the media manifest, one row per video or image.

Nothing is decoded here; the adapters read only the folder layout and the dataset's own label and
split files. The workflow reruns this stage when `listing_fingerprint` of the root changes, which
is cheap enough to compute at every Snakemake start.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pandas as pd

from robust_deepfake import datasets
from robust_deepfake.manifest import ATTR_PREFIX, MEDIA_COLUMNS, shard_count, shard_of, write_manifest

log = logging.getLogger(__name__)


def options_from_config(layout: str, dataset_config: dict) -> dict:
    """The keys of the config's `dataset:` block that `layout`'s adapter takes (FF++ takes
    compression and methods; the other layouts none), so the workflow needs no per-layout code."""
    return {k: dataset_config[k] for k in datasets.layout_options(layout) if k in dataset_config}


def build_media_table(layout: str, root: str | Path, dataset: str, max_shards: int, media_per_shard: int,
                      layout_options: dict, max_per_label: int | None, seed: int) -> pd.DataFrame:
    """The media manifest of one dataset root: adapter rows plus dataset name and shard, with the
    shard count sized from the number of media (`manifest.shard_count`)."""
    df = datasets.list_media(layout, root, **layout_options)
    if df.empty:
        raise datasets.DatasetLayoutError(f"{root}: the {layout} layout found no media")
    if not (df["label"] == 0).any():
        raise datasets.DatasetLayoutError(
            f"{root}: the {layout} layout found {len(df)} media and none is real (label 0): the pipeline poisons, "
            "purifies and makes fakes from real faces, so it cannot run; check that the real files listed by the "
            "dataset exist on disk (the warnings above name missing ones)")
    duplicated = df["media_id"][df["media_id"].duplicated()]
    if len(duplicated):
        raise ValueError(f"{root}: {len(duplicated)} duplicate media ids, e.g. {sorted(duplicated)[:3]}")
    if max_per_label is not None:
        df = _subset_per_label(df, max_per_label, seed)
    n_shards = shard_count(len(df), max_shards, media_per_shard)
    df = df.assign(dataset=dataset, shard=[shard_of(m, n_shards) for m in df["media_id"]])
    attrs = sorted(c for c in df.columns if c.startswith(ATTR_PREFIX))
    return df[MEDIA_COLUMNS + attrs].sort_values("media_id").reset_index(drop=True)


def _subset_per_label(df: pd.DataFrame, max_per_label: int, seed: int) -> pd.DataFrame:
    """At most `max_per_label` media of each label, chosen by a seeded hash of the media id:
    the same seed gives the same subset on any machine, and adding media to the dataset changes
    the subset only where a new media ranks in (a shuffle would reshuffle everything)."""
    rank = df["media_id"].map(lambda m: hashlib.sha256(f"{seed}:{m}".encode()).hexdigest())
    keep = rank.groupby(df["label"]).rank(method="first") <= max_per_label
    return df[keep]


def ingest(layout: str, root: str | Path, dataset: str, max_shards: int, media_per_shard: int, layout_options: dict,
           max_per_label: int | None, seed: int, out_path: str | Path) -> pd.DataFrame:
    """Build the media manifest and write it to `out_path` (atomically); returns the table."""
    df = build_media_table(layout, root, dataset, max_shards, media_per_shard, layout_options, max_per_label, seed)
    write_manifest(df, out_path, columns=MEDIA_COLUMNS)
    counts = df.groupby(["label", "method"]).size()
    log.info("%s: %d media from %s (%s layout) in %d shards -> %s", dataset, len(df), root, layout,
             df["shard"].nunique(), out_path)
    for (label, method), n in counts.items():
        log.info("  label %d %-20s %d", label, method, n)
    return df


def listing_fingerprint(root: str | Path) -> str:
    """sha256 (16 hex digits) of every file's relative path, size and mtime under `root`.

    The workflow passes it as a param of the ingest rule, so adding, removing or touching a file
    reruns ingest while an unchanged dataset does not. Only a directory walk and one stat per
    file: 100 000 files take a few seconds. Hidden files are skipped as the adapters skip them."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} does not exist or is not a folder")
    digest = hashlib.sha256()
    for rel, entry in datasets.iter_files(root):
        info = entry.stat()
        digest.update(f"{rel}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]
