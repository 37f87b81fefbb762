"""Atomic file writes: a job killed half-way must never leave a file Snakemake would trust."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path` (same suffix, so writers pick the right format);
    on success it replaces `path` in one rename, on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_image(path: str | Path, image_bgr, jpeg_quality: int = 95) -> None:
    """Write an OpenCV (BGR) image atomically; the format follows the suffix."""
    import cv2

    with atomic_path(path) as tmp:
        params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if Path(path).suffix.lower() in (".jpg", ".jpeg") else []
        if not cv2.imwrite(str(tmp), image_bgr, params):
            raise OSError(f"could not write image {path}")
