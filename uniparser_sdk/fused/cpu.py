"""ctypes binding of the fused-decode CPU twin (``kernels/uniparser_decode_cpu.cpp``).

numpy only (no torch): usable by the torch-free runtime. The shared library is built on first use with g++
(:mod:`uniparser_sdk.fused.build`; cached, rebuilt when the sources change) or taken from
``UNIPARSER_DECODE_LIB``.

:func:`decode_cpu` has the semantics of :func:`uniparser_sdk.model.decode.decode_single` for one image.
"""
from __future__ import annotations

import ctypes
import threading

import numpy as np

from .build import KernelBuildError, find_or_build_cpu
from ..errors import UniParserError

_LIB = None
_LIB_LOCK = threading.Lock()

_F32P = ctypes.POINTER(ctypes.c_float)
_I32P = ctypes.POINTER(ctypes.c_int)
_U8P = ctypes.POINTER(ctypes.c_ubyte)

# return codes of kernels/uniparser_decode.h
ERROR_CODES = {
    -1: "UNIPARSER_ERR_NULL_POINTER",
    -2: "UNIPARSER_ERR_BAD_DIMS",
    -3: "UNIPARSER_ERR_BAD_GEOMETRY",
    -4: "UNIPARSER_ERR_TOO_MANY_CLASSES",
    -5: "UNIPARSER_ERR_BAD_MAX_MAPS",
    -6: "UNIPARSER_ERR_BAD_THRESHOLD",
    -7: "UNIPARSER_ERR_OUT_OF_MEMORY",
    -8: "UNIPARSER_ERR_CUDA",
    -9: "UNIPARSER_ERR_WORKSPACE",
    -10: "UNIPARSER_ERR_SIZE_OVERFLOW",
}
ABI_VERSION = 1


class DecodeError(UniParserError, RuntimeError):
    """The C decode returned an error code (``code``, ``name``)."""

    def __init__(self, code: int, message: str):
        self.code = code
        self.name = ERROR_CODES.get(code, "UNKNOWN")
        super().__init__(f"uniparser_decode_cpu failed: {self.name} ({code}): {message}")


def load_library(path=None) -> ctypes.CDLL:
    """Load (building it if needed) the CPU twin and declare its C signatures. Cached per process."""
    global _LIB
    with _LIB_LOCK:
        if _LIB is not None and path is None:
            return _LIB
        lib_path = path or find_or_build_cpu()
        try:
            lib = ctypes.CDLL(str(lib_path))
        except OSError as e:
            raise KernelBuildError(f"cannot load the decode CPU library {lib_path}: {e}") from e
        lib.uniparser_decode_error_string.argtypes = [ctypes.c_int]
        lib.uniparser_decode_error_string.restype = ctypes.c_char_p
        lib.uniparser_decode_abi_version.argtypes = []
        lib.uniparser_decode_abi_version.restype = ctypes.c_int
        lib.uniparser_decode_cpu_has_openmp.argtypes = []
        lib.uniparser_decode_cpu_has_openmp.restype = ctypes.c_int
        lib.uniparser_decode_peaks_cpu.argtypes = [_F32P, ctypes.c_int, ctypes.c_int, ctypes.c_float, _F32P, _I32P,
                                                   _I32P]
        lib.uniparser_decode_peaks_cpu.restype = ctypes.c_int
        lib.uniparser_decode_cpu.argtypes = (
            [_F32P, ctypes.c_int, _F32P, _F32P, _F32P]
            + [ctypes.c_int] * 5
            + [ctypes.c_float] * 3
            + [ctypes.c_int] * 4
            + [_F32P, _I32P, _I32P, _U8P, _U8P, ctypes.c_int])
        lib.uniparser_decode_cpu.restype = ctypes.c_int
        abi = lib.uniparser_decode_abi_version()
        if abi != ABI_VERSION:
            raise KernelBuildError(f"{lib_path}: ABI version {abi}, this binding expects {ABI_VERSION}")
        if path is None:
            _LIB = lib
        return lib


def has_openmp() -> bool:
    return bool(load_library().uniparser_decode_cpu_has_openmp())


def _ptr(a: np.ndarray, typ):
    return a.ctypes.data_as(typ)


def _f32(name: str, a, ndim: int) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be a real-valued array, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _pair(name: str, v) -> tuple[int, int]:
    try:
        a, b = (int(x) for x in v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (height, width), got {v!r}") from None
    if a < 1 or b < 1:
        raise ValueError(f"{name} must be positive, got {(a, b)}")
    return a, b


def _check(lib, rc: int):
    if rc != 0:
        raise DecodeError(rc, lib.uniparser_decode_error_string(rc).decode())


def _center(center_logits) -> np.ndarray:
    c = np.asarray(center_logits)
    if c.ndim == 3:
        if c.shape[0] != 1:
            raise ValueError(f"center_logits must be (S, S) or (1, S, S), got shape {c.shape}")
        c = c[0]
    c = _f32("center_logits", c, 2)
    if c.shape[0] != c.shape[1]:
        raise ValueError(f"center_logits must be square (S, S), got shape {c.shape}")
    return c


def _slots(max_instances):
    """K and the per-slot output buffers (scores, grid index -1, count) of the CPU entry points."""
    k = int(max_instances)
    if k < 1:
        raise ValueError(f"max_instances must be >= 1, got {max_instances}")
    return k, np.zeros(k, np.float32), np.full(k, -1, np.int32), np.zeros(1, np.int32)


def peaks_cpu(center_logits, ctr_score: float, max_instances: int):
    """Step 1 only: (scores (K,) float32, grid_index (K,) int64, count)."""
    lib = load_library()
    c = _center(center_logits)
    k, scores, grid, count = _slots(max_instances)
    _check(lib, lib.uniparser_decode_peaks_cpu(_ptr(c, _F32P), c.shape[0], k, float(ctr_score), _ptr(scores, _F32P),
                                               _ptr(grid, _I32P), _ptr(count, _I32P)))
    return scores, grid.astype(np.int64), int(count[0])


def decode_cpu(center_logits, ins, sem, seg_kernels, img_shape, ori_shape, ctr_score: float, mask_thr: float,
               cate_score_thr: float, max_instances: int, max_maps: int | None = None) -> dict:
    """Fused decode of one image on the CPU.

    center_logits (S, S) or (1, S, S); ins / sem (D, h, w); seg_kernels (C, D) (C <= 255);
    img_shape = resized (h', w') with h' <= 4h, w' <= 4w; ori_shape = original (H, W).
    max_maps: number of label-map slots to return; None = exactly ``count`` maps (the count is learned first
    with the cheap peak step, so no K x H x W buffer is allocated).

    Returns dict(scores (K,) float32, grid_index (K,) int64 (-1 beyond count), count int,
    keep (K, C) bool, part_maps (max_maps, H, W) uint8 (maps of slots >= count are zero)).
    """
    lib = load_library()
    c = _center(center_logits)
    ins = _f32("ins", ins, 3)
    sem = _f32("sem", sem, 3)
    seg = _f32("seg_kernels", seg_kernels, 2)
    if ins.shape != sem.shape:
        raise ValueError(f"ins and sem must have the same shape, got {ins.shape} and {sem.shape}")
    d, h, w = ins.shape
    if seg.shape[1] != d:
        raise ValueError(f"seg_kernels must be (C, {d}) to match the {d}-dim features, got {seg.shape}")
    n_cls = seg.shape[0]
    if not 1 <= n_cls <= 255:
        raise ValueError(f"seg_kernels must have 1..255 rows (uint8 labels), got {n_cls}")
    ih, iw = _pair("img_shape", img_shape)
    oh, ow = _pair("ori_shape", ori_shape)
    if ih > 4 * h or iw > 4 * w:
        raise ValueError(f"resized image {(ih, iw)} larger than the upsampled features {(4 * h, 4 * w)}")
    k, scores, grid, count = _slots(max_instances)
    for name, v in (("ctr_score", ctr_score), ("mask_thr", mask_thr), ("cate_score_thr", cate_score_thr)):
        if np.isnan(float(v)):
            raise ValueError(f"{name} is NaN")
    if float(mask_thr) < 0:
        raise ValueError(f"mask_thr must be >= 0 (it is also the foreground test of the labels), got {mask_thr}")
    if max_maps is None:
        _, _, max_maps = peaks_cpu(c, ctr_score, k)
    max_maps = int(max_maps)
    if max_maps < 0:
        raise ValueError(f"max_maps must be >= 0, got {max_maps}")

    keep = np.zeros((k, n_cls), np.uint8)
    maps = np.empty((max_maps, oh, ow), np.uint8)
    maps_ptr = _ptr(maps, _U8P) if max_maps > 0 else None
    rc = lib.uniparser_decode_cpu(
        _ptr(c, _F32P), c.shape[0], _ptr(ins, _F32P), _ptr(sem, _F32P), _ptr(seg, _F32P), d, h, w, n_cls, k,
        float(ctr_score), float(mask_thr), float(cate_score_thr), ih, iw, oh, ow,
        _ptr(scores, _F32P), _ptr(grid, _I32P), _ptr(count, _I32P), _ptr(keep, _U8P), maps_ptr, max_maps)
    _check(lib, rc)
    return dict(scores=scores, grid_index=grid.astype(np.int64), count=int(count[0]), keep=keep.astype(bool),
                part_maps=maps)
