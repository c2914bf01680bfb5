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

import numpy as np

# The TensorRT plugin node contract (name, version, namespace, inputs, outputs, attributes, part_maps
# packing) is part of the graph contract: uniparser_sdk.contract.layouts (PLUGIN_V1); re-exported here.
from ..contract.layouts import (PART_MAPS_PACKING, PLUGIN_ATTRIBUTES, PLUGIN_INPUT_SPECS,  # noqa: F401
                                PLUGIN_INPUTS, PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_OUTPUTS, PLUGIN_VERSION,
                                plugin_attributes, unpack_part_maps)

PLUGIN_LIBRARY_NAME = "libuniparser_trt_plugin.so"
CUDA_LIBRARY_NAME = "libuniparser_decode_cuda.so"
KERNELS_DIR = Path(__file__).resolve().parents[2] / "kernels"


def load_trt_plugin(path: str | os.PathLike | None = None) -> ctypes.CDLL:
    """Load the TensorRT plugin library and register ``UniParserDecode`` with TensorRT's global plugin registry.

    path: the library; default ``UNIPARSER_TRT_PLUGIN`` or ``kernels/build/libuniparser_trt_plugin.so``
    (``cmake -S kernels -B kernels/build -DTensorRT_ROOT=...``). Alternatively pass the same file to
    ``trt.get_plugin_registry().load_library(path)`` (the library exports getCreators / setLoggerFinder);
    registration is idempotent, either way works once TensorRT itself is loaded.
    """
    p = Path(path or os.environ.get("UNIPARSER_TRT_PLUGIN") or KERNELS_DIR / "build" / PLUGIN_LIBRARY_NAME)
    if not p.is_file():
        raise FileNotFoundError(
            f"TensorRT plugin library {p} not found: build it on a machine with CUDA and TensorRT "
            "(cmake -S kernels -B kernels/build -DTensorRT_ROOT=/path/to/TensorRT && cmake --build kernels/build), "
            "or set UNIPARSER_TRT_PLUGIN")
    lib = ctypes.CDLL(str(p), mode=ctypes.RTLD_GLOBAL)
    lib.uniparser_trt_register_plugin.restype = ctypes.c_int
    if lib.uniparser_trt_register_plugin() != 0:
        raise RuntimeError(f"registering {PLUGIN_NAMESPACE}::{PLUGIN_NAME} v{PLUGIN_VERSION} from {p} failed")
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
           "plugin_attributes", "unpack_part_maps", "load_trt_plugin", "decode_cpu", "peaks_cpu", "DecodeError",
           "KernelBuildError"]
