"""Atomic file writes: a job killed half-way must never leave a file Snakemake would trust."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

# Below this many free bytes a failed write is taken for a full disk: torch.save and some encoders
# report ENOSPC as an unrelated error ("unexpected pos 576 vs 534"), and the user must hear the cause.
FULL_DISK_BYTES = 1 << 20


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path` (same suffix, so writers pick the right format);
    on success it replaces `path` in one rename, on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    free_before = _free_bytes(path.parent)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException as exc:
        full = isinstance(exc, Exception) and _disk_full(exc, path.parent)
        if os.path.exists(tmp):
            os.unlink(tmp)
        if full:
            raise OSError(errno.ENOSPC, f"No space left on device ({readable_size(free_before)} free in {path.parent} "
                                        f"when the write began, {readable_size(_free_bytes(path.parent))} now that "
                                        "the partial file is removed)", str(path)) from exc
        raise


def _free_bytes(folder: Path) -> int | None:
    """Free bytes for this user in `folder`'s file system; None where it cannot be asked."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def readable_size(count: int | None) -> str:
    """Bytes as a person reads them (kB below a megabyte: a near-full disk must not read "0.0 MB")."""
    if count is None:
        return "an unknown amount"
    return f"{count / 1e3:.0f} kB" if count < 1e6 else f"{count / 1e6:.1f} MB"


def _disk_full(exc: Exception, folder: Path) -> bool:
    """Whether a failed write failed for want of space (checked before its partial file goes)."""
    if getattr(exc, "errno", None) == errno.ENOSPC:
        return True
    free = _free_bytes(folder)
    return free is not None and free < FULL_DISK_BYTES


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_image(path: str | Path, image_bgr, jpeg_quality: int = 95) -> None:
    """Write an OpenCV (BGR) image atomically; the format follows the suffix. The image is encoded
    in memory and written by Python, so a failed write raises the system's reason (cv2.imwrite
    only returns False and prints "libpng error: Write Error")."""
    import cv2

    suffix = Path(path).suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if suffix in (".jpg", ".jpeg") else []
    ok, encoded = cv2.imencode(suffix, image_bgr, params)
    if not ok:
        raise ValueError(f"could not encode an image of shape {getattr(image_bgr, 'shape', None)} as {suffix} for {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())
