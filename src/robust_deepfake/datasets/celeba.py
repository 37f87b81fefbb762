"""CelebA (aligned images) with its attribute, identity and partition files.

    img_align_celeba/000001.jpg ...
    list_attr_celeba.txt     line 1: image count; line 2: the 40 attribute names;
                             then `000001.jpg -1 1 ...` (one -1/1 value per attribute)
    identity_CelebA.txt      optional: `000001.jpg 2880`
    list_eval_partition.txt  optional: `000001.jpg 0` (0 train, 1 val, 2 test)

All images are real. Only images listed in the attribute file are kept (each row needs its
attributes); the attribute header has one name fewer than a data row has fields, which is what
makes naive readers shift every column by one, so the header is read on its own.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from robust_deepfake.datasets import (DatasetLayoutError, adapter_frame, media_path, require_dir, scan_media,
                                      warn_ignored)
from robust_deepfake.logs import console
from robust_deepfake.manifest import ATTR_PREFIX

IMAGES = "img_align_celeba"
ATTRIBUTES = "list_attr_celeba.txt"
IDENTITIES = "identity_CelebA.txt"
PARTITION = "list_eval_partition.txt"
PARTITION_SPLITS = {"0": "train", "1": "val", "2": "test"}


def list_media(root: Path) -> pd.DataFrame:
    """Every image that has an attribute row, with its 40 attributes as attr_<Name> int8 columns."""
    images = _images_by_name(require_dir(root, IMAGES, "celeba"))
    attrs = _read_attributes(root / ATTRIBUTES)
    listed = attrs.index.isin(list(images))
    warn_ignored(int((~listed).sum()), f"{ATTRIBUTES} rows without an image", root / IMAGES)
    warn_ignored(len(set(images) - set(attrs.index)), f"images not listed in {ATTRIBUTES}", root / IMAGES)
    attrs = attrs[listed]
    identities = _read_pairs(root / IDENTITIES)
    if identities is None:
        console.warning("%s: %s not found; identity = image name, so the split cannot keep one person's "
                        "images on one side", root, IDENTITIES)
    splits = _read_pairs(root / PARTITION)
    rows = [_row(root, images[name], name, identities, splits) for name in attrs.index]
    df = adapter_frame(rows, root)
    names = df["media_id"].str.rsplit("/", n=1).str[-1]
    return pd.concat([df, attrs.loc[names].reset_index(drop=True)], axis=1)


def _images_by_name(folder: Path) -> dict[str, str]:
    """file name -> media id. Some copies nest the images one folder deeper; the attribute file
    names only the file, so the name must be unique."""
    images: dict[str, str] = {}
    media, other = scan_media(folder)
    for rel, kind in media:
        name = rel.rsplit("/", 1)[-1]
        if kind != "image":
            other += 1
        elif name in images:
            raise DatasetLayoutError(f"{folder}: image name {name} occurs twice ({images[name]}, {IMAGES}/{rel})")
        else:
            images[name] = f"{IMAGES}/{rel}"
    warn_ignored(other, "files that are not images", folder)
    return images


def _read_attributes(path: Path) -> pd.DataFrame:
    """Attribute table indexed by file name, columns attr_<Name> as int8, count and values checked."""
    if not path.is_file():
        raise DatasetLayoutError(f"{path.parent}: expected file {path.name} of the celeba layout is missing")
    with open(path) as f:
        count_line, names_line = f.readline(), f.readline()
    names = names_line.split()
    if not count_line.strip().isdigit() or not names:
        raise DatasetLayoutError(f"{path}: expected an image count on line 1 and attribute names on line 2")
    try:
        table = pd.read_csv(path, sep=r"\s+", skiprows=2, header=None, dtype=str)
    except pd.errors.EmptyDataError:
        raise DatasetLayoutError(f"{path}: no image rows after the two header lines") from None
    if table.shape[1] != len(names) + 1:
        raise DatasetLayoutError(f"{path}: rows have {table.shape[1] - 1} values for {len(names)} attribute names")
    if len(table) != int(count_line):
        raise DatasetLayoutError(f"{path}: line 1 says {int(count_line)} images, the file lists {len(table)}")
    values = table.iloc[:, 1:]
    if not values.isin(["-1", "1"]).all().all():
        raise DatasetLayoutError(f"{path}: attribute values must be -1 or 1")
    attrs = values.astype("int8").set_axis([f"{ATTR_PREFIX}{n}" for n in names], axis=1)
    attrs.index = table.iloc[:, 0]
    if attrs.index.duplicated().any():
        raise DatasetLayoutError(f"{path}: image {attrs.index[attrs.index.duplicated()][0]} is listed twice")
    return attrs


def _read_pairs(path: Path) -> dict[str, str] | None:
    """`file value` lines as a dict, or None when the optional file is absent."""
    if not path.is_file():
        return None
    pairs = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise DatasetLayoutError(f"{path}:{number}: expected '<file> <value>', got {line!r}")
        pairs[fields[0]] = fields[1]
    return pairs


def _row(root: Path, media_id: str, name: str, identities: dict | None, splits: dict | None) -> dict:
    if identities is None:
        identity = Path(name).stem
    elif name in identities:
        identity = f"celeba:{identities[name]}"
    else:
        raise DatasetLayoutError(f"{root / IDENTITIES}: no identity for {name}")
    split = None
    if splits is not None:
        if splits.get(name) not in PARTITION_SPLITS:
            raise DatasetLayoutError(f"{root / PARTITION}: no partition 0/1/2 for {name}")
        split = PARTITION_SPLITS[splits[name]]
    return {"media_id": media_id, "path": media_path(root, media_id), "kind": "image", "label": 0, "method": "real",
            "source_id": None, "target_id": None, "identity": identity, "official_split": split}
