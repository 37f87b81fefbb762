"""The A / B / C split: A trains the defence model, B the detector (after poisoning and
purification), C validates. Parts must not share a person, or every later number is inflated by
identity leakage; so media are first grouped by identity (a fake links its target and source
identities), and whole groups are assigned to parts.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from robust_deepfake.logs import console
from robust_deepfake.manifest import CROP_COLUMNS, SPLIT_COLUMNS, require_columns

log = logging.getLogger(__name__)

PARTS = ("A", "B", "C")
OVERLAP_POLICIES = ("drop", "move")


class _UnionFind:
    """Connected components of identities: a chain of fakes links all persons it touches."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # the smaller name wins so group names do not depend on row order
            lo, hi = sorted((ra, rb))
            self.parent[hi] = lo


def media_identities(row) -> list[str]:
    """Every person a media shows or was made from (FF++ fakes: target and source)."""
    ids = [row.identity, row.source_id, row.target_id]
    return sorted({str(i) for i in ids if isinstance(i, str) and i})


def identity_groups(media: pd.DataFrame) -> pd.Series:
    """Group name per media row: the smallest identity of its connected component."""
    uf = _UnionFind()
    per_row = [media_identities(r) for r in media.itertuples(index=False)]
    for ids in per_row:
        for other in ids[1:]:
            uf.union(ids[0], other)
    return pd.Series([uf.find(ids[0]) for ids in per_row], index=media.index, dtype="string")


@dataclass
class _Part:
    name: str
    targets: dict[int, float]
    counts: dict[int, int] = field(default_factory=dict)

    def deficit_for(self, group_counts: dict[int, int], totals: dict[int, int]) -> float:
        """How much this part still lacks of the group's labels, relative to each label's total
        (higher = needier). Largest deficit first fills a 10 % part as soon as it lacks more
        than the others, so small parts are not left empty when groups are few."""
        return sum(n * (self.targets.get(label, 0.0) - self.counts.get(label, 0)) / max(totals[label], 1)
                   for label, n in group_counts.items())

    def add(self, group_counts: dict[int, int]) -> None:
        for label, n in group_counts.items():
            self.counts[label] = self.counts.get(label, 0) + n


def _cover_labels(per_group: pd.DataFrame, order: list[str], parts: list[_Part], label_totals: dict[int, int]
                  ) -> dict[str, str]:
    """Give every part one group of each label first, wherever enough groups hold it.

    A part without a label cannot train or test anything (a C with no fakes measures nothing), and
    with few groups the greedy rule alone can leave one so: five groups carrying every fake went
    four to A and one to B. A label held by at least as many groups as there are parts is handed
    out here, smallest part first, each part taking the smallest group that holds it (preferring a
    group that also holds another label the part still lacks), so small parts are not overfilled.
    """
    assignment: dict[str, str] = {}
    holders = {label: [g for g in order if per_group.loc[g, label] > 0] for label in label_totals}
    for part in sorted(parts, key=lambda p: sum(p.targets.values())):
        for label in sorted(label_totals, key=lambda l: len(holders[l])):
            if len(holders[label]) < len(parts) or part.counts.get(label, 0) > 0:
                continue
            free = [g for g in holders[label] if g not in assignment]
            if not free:
                continue
            lacking = [l for l in label_totals if part.counts.get(l, 0) == 0]
            group = min(free, key=lambda g: (-sum(per_group.loc[g, l] > 0 for l in lacking),
                                             int(per_group.loc[g].sum()), order.index(g)))
            part.add({int(l): int(n) for l, n in per_group.loc[group].items() if n})
            assignment[group] = part.name
    return assignment


def assign_groups(media: pd.DataFrame, fractions: dict[str, float], seed: int) -> pd.Series:
    """Label-stratified assignment of identity groups to parts.

    First every part gets one group of each label where the groups allow it (`_cover_labels`);
    then the other groups are visited largest first (ties in a seeded random order), each going to
    the part with the largest deficit for the group's labels. This keeps parts identity-disjoint
    by construction while label proportions stay close to the fractions; with few groups it is
    as close as whole groups allow.
    """
    parts_names = [p for p in PARTS if fractions.get(p, 0) > 0]
    per_group = media.groupby(["group", "label"]).size().unstack(fill_value=0)
    totals = per_group.sum(axis=0)
    label_totals = {int(l): int(totals[l]) for l in per_group.columns}
    per_group.columns = [int(c) for c in per_group.columns]
    parts = [_Part(p, {l: fractions[p] * n for l, n in label_totals.items()}) for p in parts_names]

    groups = sorted(per_group.index)
    random.Random(seed).shuffle(groups)
    groups.sort(key=lambda g: -int(per_group.loc[g].sum()))  # stable: seeded order within a size
    assignment = _cover_labels(per_group, groups, parts, label_totals)
    for g in groups:
        if g in assignment:
            continue
        counts = {int(l): int(n) for l, n in per_group.loc[g].items() if n}
        best = max(parts, key=lambda p: p.deficit_for(counts, label_totals))
        best.add(counts)
        assignment[g] = best.name
    return media["group"].map(assignment)


def split_media(media: pd.DataFrame, fractions: dict[str, float], seed: int,
                use_official_test: bool = True, official_overlap: str = "drop") -> pd.DataFrame:
    """Return `media` with `group` and `part` columns; rows whose part is null were excluded.

    With an official test list, C is that list; A and B share the remaining fractions. Media
    outside the list that share a person with it are dropped (`official_overlap="drop"`, keeps C
    equal to the official list) or moved into C (`"move"`, loses no data), and the count is logged.
    """
    if official_overlap not in OVERLAP_POLICIES:
        raise ValueError(f"official_overlap must be one of {OVERLAP_POLICIES}, got {official_overlap!r}")
    media = media.copy()
    media["group"] = identity_groups(media)
    media["part"] = pd.Series(pd.NA, index=media.index, dtype="string")

    official_test = media["official_split"].eq("test").fillna(False).astype(bool)
    if use_official_test and official_test.any():
        media.loc[official_test, "part"] = "C"
        test_groups = set(media.loc[official_test, "group"])
        overlap = ~official_test & media["group"].isin(test_groups)
        if overlap.any():
            log.warning("%d media share a person with the official test list: %s", int(overlap.sum()),
                        "moved to C" if official_overlap == "move" else "dropped (split.official_overlap: move keeps them in C)")
            if official_overlap == "move":
                media.loc[overlap, "part"] = "C"
        rest = ~official_test & ~overlap
        ab = {p: fractions[p] / (fractions["A"] + fractions["B"]) for p in ("A", "B")}
        media.loc[rest, "part"] = assign_groups(media.loc[rest], ab, seed)
    else:
        media["part"] = assign_groups(media, fractions, seed)

    empty = [p for p in PARTS if not media["part"].eq(p).any()]
    if empty:
        log.warning("parts %s are empty: %d identity groups are too few for fractions %s",
                    empty, media["group"].nunique(), fractions)
    return media


def check_disjoint(media: pd.DataFrame) -> None:
    """Raise if any identity appears in two parts: the split's one promise, checked on output."""
    seen: dict[str, str] = {}
    for row in media.dropna(subset=["part"]).itertuples(index=False):
        for ident in media_identities(row):
            other = seen.setdefault(ident, row.part)
            if other != row.part:
                raise AssertionError(f"identity {ident!r} is in parts {other} and {row.part}")


def thin_frames(parted: pd.DataFrame, frames_per_video: dict[str, int | None]) -> pd.DataFrame:
    """Keep at most `frames_per_video[part]` faces per media of each part, evenly spaced over the
    media's faces in frame order (None: all). The robust-detector reference trains on 25 frames a
    video and tests on 20 (DFDC: 5 for training); frames are extracted before the split knows
    which media will be tested, so every part's count is taken from the extracted frames here."""
    kept = []
    for (part, _), group in parted.sort_values(["media_id", "frame_idx"]).groupby(["part", "media_id"], sort=False):
        count = frames_per_video.get(part)
        if count is not None and len(group) > count:
            group = group.iloc[np.unique(np.round(np.linspace(0, len(group) - 1, count)).astype(int))]
        kept.append(group)
    return pd.concat(kept) if kept else parted


def split_faces(faces: pd.DataFrame, fractions: dict[str, float], seed: int, use_official_test: bool,
                official_overlap: str,
                frames_per_video: dict[str, int | None] | None = None) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Split the face-crop manifest by media; return one table per part and a summary table.

    Only media with at least one usable face crop are split; the summary counts the others by
    reason, so a report can say what was lost between ingest and the split. Each part keeps its
    own number of frames per media (`thin_frames`).
    """
    require_columns(faces, CROP_COLUMNS, "split input")
    usable = faces["face_path"].notna()
    media_cols = ["media_id", "label", "identity", "source_id", "target_id", "official_split"]
    media = faces.loc[usable, media_cols].drop_duplicates("media_id").sort_values("media_id")
    media = split_media(media.reset_index(drop=True), fractions, seed, use_official_test, official_overlap)
    check_disjoint(media)
    check_reals(media, faces, fractions)

    parted = faces.loc[usable].merge(media[["media_id", "group", "part"]], on="media_id", how="left")
    parted = thin_frames(parted, frames_per_video or {})
    kept = pd.MultiIndex.from_frame(parted[["media_id", "frame_idx"]])
    faces = faces[~usable | pd.MultiIndex.from_frame(faces[["media_id", "frame_idx"]]).isin(kept)]
    tables = {p: parted[parted["part"] == p].sort_values(["media_id", "frame_idx"])[SPLIT_COLUMNS +
              [c for c in faces.columns if c.startswith("attr_")]].reset_index(drop=True) for p in PARTS}
    return tables, split_summary(faces, media)


class SplitError(ValueError):
    """A split no later stage can use; the message names the part and why."""


def check_reals(media: pd.DataFrame, faces: pd.DataFrame, fractions: dict[str, float]) -> None:
    """Stop when a part that should hold media has no real media: A trains the defences on real
    faces, B's reals are poisoned and made into fakes, C measures reals against fakes. Without this
    a dataset whose real videos are missing or faceless fails hours later, inside a model's training."""
    wanted = [p for p in PARTS if fractions.get(p, 0) > 0 or media["part"].eq(p).any()]
    lacking = [p for p in wanted if not (media["part"].eq(p) & media["label"].eq(0)).any()]
    if not lacking:
        return
    real_media = _per_media(faces[faces["label"] == 0])
    usable = media.loc[media["label"] == 0]
    if real_media.empty:
        why = "the dataset's manifest lists no real media (label 0) at all: check its labels and that its real files exist"
    elif usable.empty:
        why = f"none of its {len(real_media)} real media kept a usable face ({_as_text(_lost_reasons(real_media))})"
    else:
        why = (f"its real media that kept a face belong to {usable['group'].nunique()} identity group(s), and each of "
               f"{', '.join(wanted)} needs one; add real media of more people or change split.fractions")
    raise SplitError(f"split: part{'s' if len(lacking) > 1 else ''} {', '.join(lacking)} would hold no real media: {why}")


def _per_media(faces: pd.DataFrame) -> pd.DataFrame:
    """One row per media: its label, how many usable faces it kept, its first error."""
    return faces.groupby("media_id").agg(label=("label", "first"), faces=("face_path", "count"),
                                         error=("error", "first"))


def _lost_reasons(per_media: pd.DataFrame) -> pd.Series:
    """How many media kept no usable face, per kind of reason (`_reason_kind`), in name order."""
    lost = per_media[per_media["faces"] == 0]
    return lost["error"].fillna("no usable face").map(_reason_kind).value_counts().sort_index()


def _as_text(counts: pd.Series) -> str:
    return ", ".join(f"{int(n)} {reason}" for reason, n in counts.items())


def split_summary(faces: pd.DataFrame, media: pd.DataFrame) -> pd.DataFrame:
    """Media and face counts per part and label, and the media lost before the split, by reason."""
    rows = []
    per_media = _per_media(faces)
    for part in PARTS:
        ids = media.loc[media["part"] == part, "media_id"]
        for label in (0, 1):
            sel = per_media.loc[per_media.index.isin(ids) & (per_media["label"] == label)]
            rows.append({"part": part, "label": label, "media": len(sel), "faces": int(sel["faces"].sum()),
                         "identities": media.loc[media["media_id"].isin(sel.index), "group"].nunique()})
    excluded = media.loc[media["part"].isna(), "media_id"]
    rows.append({"part": "excluded: shares a person with the official test list", "label": pd.NA,
                 "media": len(excluded), "faces": int(per_media.loc[per_media.index.isin(excluded), "faces"].sum()),
                 "identities": pd.NA})
    rows += _missing_labels(media)
    lost = _lost_reasons(per_media)
    rows += [{"part": f"lost: {reason}", "label": pd.NA, "media": int(n), "faces": 0, "identities": pd.NA}
             for reason, n in lost.items()]
    if len(lost):  # the console, not only summary.tsv and the shard logs
        console.warning("split: %d of %d media lost before the split (%s); their rows in the crop manifests say "
                        "which and why", int(lost.sum()), len(per_media), _as_text(lost))
    return pd.DataFrame(rows)


def _missing_labels(media: pd.DataFrame) -> list[dict]:
    """Summary rows for each part that holds media of one label but none of the other while the
    dataset has both, with why: such a part cannot train (B) or measure (C) a detector, so the
    summary must say so. A dataset of reals only (the demo, CelebA: the fakes are made later) is
    no such case."""
    rows = []
    names = {0: "real", 1: "fake"}
    groups_with = {label: media.loc[media["label"] == label, "group"].nunique() for label in names}
    for part in PARTS:
        here = media[media["part"] == part]
        for label, name in names.items():
            n = groups_with[label]
            if n and len(here) and not (here["label"] == label).any():
                why = f"{n} identity group{'s' if n != 1 else ''} of the dataset hold{'s' if n == 1 else ''} {name} media"
                if n < len(PARTS):
                    why += f"; every part gets both labels when at least {len(PARTS)} do"
                console.warning("split: part %s has no %s media: %s", part, name, why)
                rows.append({"part": f"missing: {part} has no {name} media ({why})", "label": label, "media": 0,
                             "faces": 0, "identities": pd.NA})
    return rows


def _reason_kind(error: str) -> str:
    """Collapse per-file error texts to their kind, so the summary counts kinds, not files:
    '/data/x.mp4: not a readable video: Invalid data' -> 'not a readable video'."""
    segments = [seg.strip() for seg in str(error).split(": ")]
    reasons = [seg for seg in segments if "/" not in seg and "\\" not in seg]
    return reasons[0] if reasons else segments[-1]
