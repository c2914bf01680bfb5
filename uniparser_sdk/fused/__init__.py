"""Fused decode kernels: CPU twin (ctypes), CUDA / TensorRT plugin contract, torch op loader.

Importing this package imports numpy only (no torch, no compilation). The pieces:

- :func:`decode_cpu` / :func:`peaks_cpu` (:mod:`.cpu`): the C++ CPU twin of
  :func:`uniparser_sdk.model.decode.decode_single`, built on first use with g++ (:mod:`.build`).
- the TensorRT plugin node contract (constants below; ``kernels/PLUGIN_CONTRACT.md`` is the prose version)
  and :func:`load_trt_plugin`;
- :mod:`.torch_op`: the CUDA implementation bound as a PyTorch extension (GPU machines only).
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path


# The TensorRT plugin node contract (name, version, namespace, inputs, outputs, attributes, part_maps
# packing) is part of the graph contract: uniparser_sdk.contract.layouts (PLUGIN_V1); re-exported here.
from ..contract.layouts import (PART_MAPS_PACKING, PLUGIN_ATTRIBUTES, PLUGIN_INPUT_SPECS,  # noqa: F401
                                PLUGIN_INPUTS, PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_OUTPUTS, PLUGIN_VERSION,
                                plugin_attributes, unpack_part_maps)

PLUGIN_LIBRARY_NAME = "libuniparser_trt_plugin.so"
CUDA_LIBRARY_NAME = "libuniparser_decode_cuda.so"
KERNELS_DIR = Path(__file__).resolve().parents[2] / "kernels"

_LOADED: dict = {}  # resolved path -> ctypes.CDLL (a library is loaded and registered once per process)


def default_plugin_path() -> Path:
    """``UNIPARSER_TRT_PLUGIN``, else the library ``python -m uniparser_sdk.fused.build --trt`` writes."""
    env = os.environ.get("UNIPARSER_TRT_PLUGIN")
    if env:
        return Path(env)
    from .build import build_dir
    return build_dir() / PLUGIN_LIBRARY_NAME


def _registered_creator(trt_module=None):
    """The UniParserDecode creator in TensorRT's registry, or None (also None when tensorrt is not importable)."""
    trt = trt_module
    if trt is None:
        try:
            import tensorrt as trt  # noqa: F811
        except ImportError:
            return None
    try:
        reg = trt.get_plugin_registry()
        getter = getattr(reg, "get_creator", None) or getattr(reg, "get_plugin_creator")
        return getter(PLUGIN_NAME, PLUGIN_VERSION, PLUGIN_NAMESPACE)
    except Exception:  # noqa: BLE001 - older bindings / no registry: fall back to loading
        return None


def is_plugin_registered(trt_module=None) -> bool:
    """True when ``uniparser::UniParserDecode`` v1 is already in TensorRT's plugin registry."""
    return _registered_creator(trt_module) is not None


def load_trt_plugin(path: str | os.PathLike | None = None):
    """Make ``UniParserDecode`` available in TensorRT's global plugin registry; safe to call any number of times.

    path: the library; default :func:`default_plugin_path`. If the plugin is registered already (an earlier call,
    ``trt.get_plugin_registry().load_library(path)``, an engine build in this process) nothing is loaded again:
    TensorRT's ``load_library`` returns None for a library whose creators are registered, so callers must check
    the registry first (this function does). Otherwise the library is loaded with ctypes (RTLD_GLOBAL) and
    ``uniparser_trt_register_plugin()`` registers the creator (idempotent on the C++ side too). Loaded this way
    TensorRT never calls ``setLoggerFinder``; the plugin then logs through libnvinfer's ``getLogger()``.

    Returns the ctypes handle (None when the plugin was registered by someone else before)."""
    p = Path(path) if path else default_plugin_path()
    key = str(p.resolve()) if p.exists() else str(p)
    if key in _LOADED:
        return _LOADED[key]
    if is_plugin_registered():
        return None
    if not p.is_file():
        raise FileNotFoundError(
            f"TensorRT plugin library {p} not found: build it with `python -m uniparser_sdk.fused.build --trt` "
            "(needs CUDA and TensorRT headers + libnvinfer), or set UNIPARSER_TRT_PLUGIN")
    try:
        lib = ctypes.CDLL(str(p), mode=ctypes.RTLD_GLOBAL)
    except OSError as e:
        raise RuntimeError(f"cannot load the TensorRT plugin library {p}: {e} (libnvinfer and the CUDA runtime must "
                           "be loadable: install TensorRT, or put its lib directory on LD_LIBRARY_PATH)") from e
    lib.uniparser_trt_register_plugin.restype = ctypes.c_int
    if lib.uniparser_trt_register_plugin() != 0:
        raise RuntimeError(f"registering {PLUGIN_NAMESPACE}::{PLUGIN_NAME} v{PLUGIN_VERSION} from {p} failed "
                           "(TensorRT's plugin registry refused it; see the TensorRT log)")
    _LOADED[key] = lib
    return lib


def __getattr__(name):  # lazy: the ctypes binding loads/builds the library on first call only
    if name in ("decode_cpu", "peaks_cpu", "DecodeError", "load_library"):
        from . import cpu
        return getattr(cpu, name)
    if name == "KernelBuildError":
        from .build import KernelBuildError
        return KernelBuildError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PLUGIN_NAME", "PLUGIN_VERSION", "PLUGIN_NAMESPACE", "PLUGIN_INPUTS", "PLUGIN_OUTPUTS",
           "PLUGIN_ATTRIBUTES", "PLUGIN_INPUT_SPECS", "PART_MAPS_PACKING",
           "plugin_attributes", "unpack_part_maps", "load_trt_plugin", "is_plugin_registered", "default_plugin_path", "decode_cpu", "peaks_cpu", "DecodeError",
           "KernelBuildError"]
