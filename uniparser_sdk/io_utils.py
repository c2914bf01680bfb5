"""Atomic file writers and a robust image reader (numpy + OpenCV only).

Every writer creates a temporary file in the destination directory, writes and fsyncs it, then
``os.replace``-s it onto the target: a reader sees either the old file or the complete new one,
never a partial file, and a failure (encoding error, full disk, interrupt) leaves no temporary
file behind. Parent directories are created as needed.

Images go through ``cv2.imencode`` / ``cv2.imdecode`` + ``np.fromfile`` rather than
``cv2.imwrite`` / ``cv2.imread`` so that non-ASCII paths work on every platform.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence, Union

import cv2
import numpy as np

PathLike = Union[str, os.PathLike]

__all__ = ["IMAGE_EXTENSIONS", "Closing", "atomic_output", "atomic_write_bytes", "atomic_write_text", "atomic_imwrite", "imread"]

# Extensions cv2.imencode handles in a standard opencv-python build.
IMAGE_EXTENSIONS = (
    ".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".tif", ".tiff", ".webp",
    ".pbm", ".pgm", ".ppm", ".pnm", ".pxm", ".sr", ".ras", ".jp2", ".exr", ".hdr", ".pic",
)


# Pixel depths the common encoders take; OpenCV would otherwise silently convert (e.g. float64 ->
# uint8 for PNG), losing data. Formats not listed here are left to OpenCV.
_DEPTHS = {
    ".png": ("uint8", "uint16"),
    ".jpg": ("uint8",), ".jpeg": ("uint8",), ".jpe": ("uint8",),
    ".bmp": ("uint8",), ".dib": ("uint8",), ".webp": ("uint8",),
    ".sr": ("uint8",), ".ras": ("uint8",),
    ".pbm": ("uint8", "uint16"), ".pgm": ("uint8", "uint16"), ".ppm": ("uint8", "uint16"),
    ".pnm": ("uint8", "uint16"), ".pxm": ("uint8", "uint16"),
}


class Closing:
    """Mixin of the SDK's writers and sources: ``with obj: ...`` calls ``obj.close()`` on the way out."""

    def close(self):  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False


def _umask() -> int:
    # os.umask can only be read by setting it; restore immediately.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, fsync, os.replace).

    Returns the destination as a :class:`pathlib.Path`.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write a file over the directory {path}")
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(memoryview(data))
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the file the permissions a plain open() would have.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(parent)
    return path


@contextmanager
def atomic_output(path: PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """For writers that need a file path (a compiler, ``torch.save``, ``onnx.save``, TensorRT): yields a
    temporary path in the destination directory; when the block succeeds and the file exists it is
    fsynced and renamed onto ``path``; on any exception (or if nothing was written) the temporary file is
    removed and ``path`` is untouched. ``suffix``: some tools insist on an extension (e.g. ".so")."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write a file over the directory {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise OSError(f"nothing was written to {path}")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask() | (tmp.stat().st_mode & 0o111))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Persist the rename (POSIX); silently skipped where directories cannot be opened."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8 by default)."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_imwrite(path: PathLike, img: np.ndarray, params: Sequence[int] = ()) -> Path:
    """Encode ``img`` by the extension of ``path`` and write it atomically.

    ``img`` is an HxW, HxWx1, HxWx3 (BGR) or HxWx4 (BGRA) array, as for ``cv2.imwrite``; ``params``
    are the usual ``cv2.IMWRITE_*`` pairs. Raises ``ValueError`` for an unsupported extension or an
    image OpenCV cannot encode -- in both cases nothing is created.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise ValueError(f"unsupported image extension {path.suffix!r} for {path}; "
                         f"use one of {', '.join(IMAGE_EXTENSIONS)}")
    if not isinstance(img, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(img).__name__}")
    if img.size == 0 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)):
        raise ValueError(f"cannot write an image of shape {img.shape}")
    if img.dtype == bool:
        raise TypeError("cannot write a bool array as an image; convert it to uint8 first")
    depths = _DEPTHS.get(ext)
    if depths is not None and img.dtype.name not in depths:
        raise ValueError(f"{ext} images must be {' or '.join(depths)}, got {img.dtype}; "
                         "convert the array first")
    try:
        ok, buf = cv2.imencode(ext, np.ascontiguousarray(img), list(params))
    except cv2.error as exc:
        raise ValueError(f"OpenCV cannot encode a {img.dtype} image of shape {img.shape} "
                         f"as {ext}: {exc}") from exc
    if not ok:
        raise ValueError(f"OpenCV failed to encode a {img.dtype} image of shape {img.shape} as {ext}")
    return atomic_write_bytes(path, buf.tobytes())


def imread(path: PathLike, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Read an image file; by default as a 3-channel BGR uint8 array.

    Works with non-ASCII paths. Raises ``FileNotFoundError`` when ``path`` does not exist and
    ``ValueError`` when it is not a file OpenCV can decode. Pass ``flags=cv2.IMREAD_UNCHANGED`` to
    read label maps (single-channel PNGs) as they were written.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image file not found: {path}")
    if not path.is_file():
        raise ValueError(f"not a regular file: {path}")
    data = np.fromfile(str(path), dtype=np.uint8)
    if data.size == 0:
        raise ValueError(f"image file is empty: {path}")
    img = cv2.imdecode(data, flags)
    if img is None:
        raise ValueError(f"cannot decode image file (corrupt or unsupported format): {path}")
    return img
