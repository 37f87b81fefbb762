"""Atomic writes: a failed write leaves the previous file intact and no partial file, and a full
disk is reported as such, whatever the writer (PNG, torch, Parquet)."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from robust_deepfake.atomic import atomic_path, readable_size, write_image
from robust_deepfake.checkpoints import save_checkpoint
from robust_deepfake.manifest import MEDIA_COLUMNS, write_manifest


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs: a real full disk (needs root and mount; skipped otherwise)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        gc.collect()  # a failed writer's file handle may sit in a reference cycle with its traceback
        subprocess.run(["umount", str(mount)], check=True)


def fill(folder: Path, keep: int = 8 << 10) -> None:
    """Fill `folder`'s file system until about `keep` bytes are left."""
    with open(folder / "filler", "wb") as handle:
        while shutil.disk_usage(folder).free > keep:
            handle.write(b"\0" * 4096)
            handle.flush()


def test_a_full_disk_says_no_space_left_and_loses_nothing(tiny_disk):
    earlier = tiny_disk / "face.png"
    write_image(earlier, np.zeros((8, 8, 3), np.uint8))
    before = earlier.read_bytes()
    fill(tiny_disk)
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    media = pd.DataFrame({c: ["x" * 100] * 2000 for c in MEDIA_COLUMNS}).assign(label=0, shard=0)
    writers = {"face.png": lambda p: write_image(p, noise),
               "model.pt": lambda p: save_checkpoint({"w": torch.rand(200_000)}, p),
               "media.parquet": lambda p: write_manifest(media.astype({"label": "int8", "shard": "int32"}), p)}
    for name, write in writers.items():
        free = readable_size(shutil.disk_usage(tiny_disk).free)
        with pytest.raises(OSError) as error:
            write(tiny_disk / name)
        assert "No space left on device" in str(error.value) and str(tiny_disk / name) in str(error.value), name
        # the space there was, not what the failed writer's still-open file left (it said "0 bytes free")
        assert f"({free} free in {tiny_disk} when the write began" in str(error.value), name
    assert earlier.read_bytes() == before  # the file that was there is intact
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["face.png", "filler"]  # no partial files


def test_a_failed_write_removes_its_temporary_file(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "x.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed half-way")
    assert list(tmp_path.iterdir()) == []
