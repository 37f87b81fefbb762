"""The manifest: one Parquet record that every stage reads and extends.

Stages never re-derive facts from file names: ingest writes one row per video or image, face
detection expands it to one row per sampled frame and adds the face, cropping adds the crop, the
split adds `part`.
Failures stay in the table as rows with an `error` text, so nothing is lost silently and every
later count can say how many media were dropped and why.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from robust_deepfake.atomic import atomic_path

# name -> (Arrow type, meaning). Columns named `attr_<Name>` (CelebA's 40 attributes) are allowed
# in addition and stored as int8 (-1/1 as the dataset gives them).
COLUMNS: dict[str, tuple[pa.DataType, str]] = {
    # ingest
    "media_id": (pa.string(), "stable unique id: the media's path relative to the dataset root"),
    "dataset": (pa.string(), "dataset name from the config"),
    "path": (pa.string(), "absolute path of the video or image"),
    "kind": (pa.string(), "video | image"),
    "label": (pa.int8(), "0 real, 1 fake"),
    "method": (pa.string(), "manipulation method for fakes, 'real' for real media"),
    "source_id": (pa.string(), "id of the face/video that drives a fake (FF++: second id)"),
    "target_id": (pa.string(), "id of the video a fake was made on (FF++: first id)"),
    "identity": (pa.string(), "person shown (reals) or target person (fakes)"),
    "official_split": (pa.string(), "train | val | test where the dataset defines one"),
    "shard": (pa.int32(), "stable hash of media_id modulo the shard count"),
    # frames
    "frame_idx": (pa.int32(), "presentation-order index of the frame in its video (0 for images)"),
    "frame_count": (pa.int32(), "number of frames in the video"),
    "frame_path": (pa.string(), "the frame as an image (rule save_frames, only when frames.save_images)"),
    "width": (pa.int32(), "frame width after rotation"),
    "height": (pa.int32(), "frame height after rotation"),
    "error": (pa.string(), "why this media/frame was dropped, null when fine"),
    # detect
    "has_face": (pa.bool_(), "a face above the confidence threshold was found"),
    "n_faces": (pa.int16(), "faces found above the confidence threshold"),
    "box": (pa.list_(pa.float32(), 4), "kept face box x1, y1, x2, y2 in frame pixels"),
    "landmarks": (pa.list_(pa.float32(), 10), "5 landmarks (eyes, nose, mouth corners) x, y in frame pixels"),
    "confidence": (pa.float32(), "detector confidence of the kept face"),
    # crop
    "crop_box": (pa.list_(pa.int32(), 4), "square crop x1, y1, x2, y2 in frame pixels"),
    "crop_landmarks": (pa.list_(pa.float32(), 10), "landmarks in crop pixels (after resize)"),
    "face_path": (pa.string(), "the face crop image"),
    # split
    "group": (pa.string(), "identity group: media linked by any shared identity"),
    "part": (pa.string(), "A (defence model) | B (detector training) | C (validation)"),
    # poison (split B's real faces)
    "poisoned": (pa.bool_(), "this face was attacked"),
    "poisoned_path": (pa.string(), "the face as the attacker left it: the poisoned crop, or face_path if untouched"),
    "attack": (pa.string(), "attack that made the poisoned crop; null when not poisoned"),
    "epsilon": (pa.float32(), "L-inf budget on [-1, 1] images; null when not poisoned"),
    "pert_linf": (pa.float32(), "L-inf of the perturbation actually written"),
    "pert_l2": (pa.float32(), "L2 norm of the perturbation actually written"),
    "pert_psnr": (pa.float32(), "PSNR (dB, data range 2) of the poisoned crop against the clean one"),
    "dist_l1": (pa.float32(), "mean |G(poisoned) - G(clean)| over the generator's conditions"),
    "dist_l2": (pa.float32(), "MSE of G(poisoned) against G(clean), mean over conditions"),
    "dist_l0": (pa.float32(), "share of pixels where G(poisoned) and G(clean) differ by > 1/255"),
    "dist_linf": (pa.float32(), "max |G(poisoned) - G(clean)|, mean over conditions"),
    "dist_prop": (pa.float32(), "share of conditions whose MSE exceeds 0.05 (its mean is prop_dist)"),
    # purify
    "defence": (pa.string(), "defence applied to split B's real faces before fakes were made (registry.DEFENCES)"),
    "purified_path": (pa.string(), "the purified crop (8-bit PNG)"),
    "kept": (pa.bool_(), "the purified face passed the reject step and goes on to fake generation"),
    "pur_distance": (pa.float32(), "mean |purified - input|: the reject step's measure"),
    "pur_l2": (pa.float32(), "MSE of the purified face against the clean (unpoisoned) crop"),
    "pur_psnr": (pa.float32(), "PSNR (dB, data range 2) of the purified face against the clean crop"),
    "pur_ssim": (pa.float32(), "SSIM of the purified face against the clean crop (8-bit RGB)"),
    "pdist_l1": (pa.float32(), "mean |G(purified) - G(clean)| over conditions"),
    "pdist_l2": (pa.float32(), "MSE of G(purified) against G(clean), mean over conditions"),
    "pdist_l0": (pa.float32(), "share of pixels where G(purified) and G(clean) differ by > 1/255"),
    "pdist_linf": (pa.float32(), "max |G(purified) - G(clean)|, mean over conditions"),
    "pdist_prop": (pa.float32(), "share of conditions whose MSE(G(purified), G(clean)) exceeds 0.05"),
    # fakes
    "image_path": (pa.string(), "the face as the detector's trainer has it (poisoned/purified crop, or the fake)"),
    "generator": (pa.string(), "generator that made this fake"),
    "real_media_id": (pa.string(), "media_id of the real face the fake was made from"),
    "condition": (pa.string(), "target identity, attribute, source face or prompt of the fake"),
    "fake_seed": (pa.int64(), "seed of this fake"),
}

MEDIA_COLUMNS = ["media_id", "dataset", "path", "kind", "label", "method", "source_id", "target_id",
                 "identity", "official_split", "shard"]
FRAME_COLUMNS = MEDIA_COLUMNS + ["frame_idx", "frame_count", "width", "height", "error"]
DETECT_COLUMNS = FRAME_COLUMNS + ["has_face", "n_faces", "box", "landmarks", "confidence"]
CROP_COLUMNS = DETECT_COLUMNS + ["crop_box", "crop_landmarks", "face_path"]
SPLIT_COLUMNS = CROP_COLUMNS + ["group", "part"]
POISON_ADDED_COLUMNS = ["poisoned", "poisoned_path", "attack", "epsilon", "pert_linf", "pert_l2", "pert_psnr",
                        "dist_l1", "dist_l2", "dist_l0", "dist_linf", "dist_prop"]
POISON_COLUMNS = SPLIT_COLUMNS + POISON_ADDED_COLUMNS
PURIFY_COLUMNS = POISON_COLUMNS + ["defence", "purified_path", "kept", "pur_distance", "pur_l2", "pur_psnr",
                                   "pur_ssim", "pdist_l1", "pdist_l2", "pdist_l0", "pdist_linf", "pdist_prop"]
FAKE_ADDED_COLUMNS = ["image_path", "generator", "real_media_id", "condition", "fake_seed"]
FAKE_COLUMNS = PURIFY_COLUMNS + FAKE_ADDED_COLUMNS

ATTR_PREFIX = "attr_"


def shard_of(media_id: str, n_shards: int) -> int:
    """Stable across Python runs and machines (unlike hash()), so adding media moves nothing."""
    digest = hashlib.sha1(media_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n_shards


def shard_count(n_media: int, max_shards: int, media_per_shard: int) -> int:
    """How many shards a dataset of `n_media` gets: about `media_per_shard` media each, at most
    `max_shards`. A small dataset thus never pays one job per empty shard, and the count is a power
    of two, so it changes (and reshuffles the shards) only when the dataset doubles or halves."""
    wanted = max(1, math.ceil(n_media / media_per_shard))
    return min(max_shards, 1 << (wanted - 1).bit_length())


def frames_table(rows: list[dict], media: pd.DataFrame, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """Frame rows (FRAME_COLUMNS, the media's attr_* columns, then `extra`) as a table whose media
    columns keep the media manifest's types; the frame numbers are nullable, since a media that
    could not be read is one row without them."""
    carried = MEDIA_COLUMNS + [c for c in media.columns if c.startswith(ATTR_PREFIX)]
    columns = FRAME_COLUMNS + carried[len(MEDIA_COLUMNS):] + list(extra)
    frames = pd.DataFrame(rows, columns=columns).astype(media.dtypes[carried].to_dict())
    for column in ("frame_idx", "frame_count", "width", "height"):
        frames[column] = frames[column].astype("Int32")
    return frames


def shard_name(shard: int) -> str:
    return f"{shard:04d}"


def arrow_schema(columns) -> pa.Schema:
    fields = []
    for name in columns:
        if name in COLUMNS:
            fields.append(pa.field(name, COLUMNS[name][0]))
        elif name.startswith(ATTR_PREFIX):
            fields.append(pa.field(name, pa.int8()))
        else:
            raise KeyError(f"column {name!r} is not part of the manifest schema (manifest.COLUMNS)")
    return pa.schema(fields)


def require_columns(df: pd.DataFrame, columns, where: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: manifest lacks columns {missing}")


def write_manifest(df: pd.DataFrame, path: str | Path, columns=None) -> None:
    """Write `df` with the manifest's column types, atomically (a killed job leaves no half file)."""
    columns = list(columns) if columns is not None else list(df.columns)
    extra = [c for c in df.columns if c.startswith(ATTR_PREFIX) and c not in columns]
    columns += extra
    require_columns(df, columns, str(path))
    table = pa.Table.from_pandas(df[columns], schema=arrow_schema(columns), preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_manifest(path: str | Path, columns=None, filters=None) -> pd.DataFrame:
    """The manifest at `path` (its `columns`, its rows passing Parquet's row `filters`)."""
    try:
        return pd.read_parquet(path, columns=columns, filters=filters)
    except FileNotFoundError:
        raise FileNotFoundError(f"manifest not found: {path}") from None


def read_manifests(paths, columns=None) -> pd.DataFrame:
    frames = [read_manifest(p, columns) for p in paths]
    frames = [f for f in frames if len(f)]
    if not frames:
        return read_manifest(paths[0], columns) if paths else pd.DataFrame(columns=columns or [])
    return pd.concat(frames, ignore_index=True)


def read_shard(path: str | Path, shard: int) -> pd.DataFrame:
    """The media of one shard: what each shard job of a stage works on. Parquet's row filter reads
    only that shard's rows, which matters when the manifest holds 100 000 media."""
    return read_manifest(path, filters=[("shard", "==", shard)]).reset_index(drop=True)


def shard_digests(path: str | Path) -> dict[int, str]:
    """Per shard, a digest of its rows: what the workflow compares to decide which shards are stale."""
    df = read_manifest(path).sort_values("media_id", kind="stable")
    hashes = pd.util.hash_pandas_object(df.astype("string"), index=False)
    digests = {}
    for shard, values in hashes.groupby(df["shard"].to_numpy()):
        digests[int(shard)] = hashlib.sha1(values.to_numpy().tobytes()).hexdigest()[:16]
    return digests
