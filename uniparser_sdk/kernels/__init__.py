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

# ---------------------------------------------------------------------------------------------------------
# TensorRT plugin node contract ("UniParserDecode", version "1", namespace "uniparser").
# The export pipeline writes an ONNX node with op_type PLUGIN_NAME, attributes plugin_version /
# plugin_namespace plus PLUGIN_ATTRIBUTES, inputs PLUGIN_INPUTS and outputs PLUGIN_OUTPUTS, in this order.
# ---------------------------------------------------------------------------------------------------------
PLUGIN_NAME = "UniParserDecode"
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = "uniparser"

PLUGIN_INPUTS = ("center_logits", "ins_feats", "sem_feats", "seg_kernels")
PLUGIN_OUTPUTS = ("scores", "num_instances", "part_maps")

#: attribute name -> python type (ONNX INT / FLOAT attribute)
PLUGIN_ATTRIBUTES = {"max_instances": int, "ctr_score": float, "mask_thr": float, "cate_score_thr": float}

#: name -> (dtype, shape); symbols: B batch, S grid, D feature dim, (h, w) stride-4 feature size of the padded
#: input, C = num_classes - 1, K = max_instances. seg_kernels is an initializer (constant).
PLUGIN_INPUT_SPECS = {
    "center_logits": ("float32", ("B", 1, "S", "S")),
    "ins_feats": ("float32", ("B", "D", "h", "w")),
    "sem_feats": ("float32", ("B", "D", "h", "w")),
    "seg_kernels": ("float32", ("C", "D")),
}

#: TensorRT plugins cannot have UINT8 (or BOOL) inputs/outputs (TensorRT 10 PluginTensorDesc: "DataType::kBOOL
#: and DataType::kUINT8 are not supported"), so ``part_maps`` is declared int32 of shape (B, K, 4h, w) whose
#: raw bytes ARE the uint8 labels of shape (B, K, 4h, 4w) (the kernel writes bytes; no endianness involved):
#: use :func:`unpack_part_maps`. Labels are at the padded input resolution (4h, 4w): crop to the resized image
#: and resize with nearest to the original size on the host.
PLUGIN_OUTPUT_SPECS = {
    "scores": ("float32", ("B", "K")),
    "num_instances": ("int32", ("B",)),
    "part_maps": ("int32", ("B", "K", "4h", "w")),
}
PART_MAPS_PACKING = "uint8x4_in_int32"

PLUGIN_LIBRARY_NAME = "libuniparser_trt_plugin.so"
CUDA_LIBRARY_NAME = "libuniparser_decode_cuda.so"
KERNELS_DIR = Path(__file__).resolve().parents[2] / "kernels"


def plugin_attributes(max_instances: int, ctr_score: float, mask_thr: float, cate_score_thr: float) -> dict:
    """The node attributes (plus plugin_version / plugin_namespace) with the contract's types."""
    return {"plugin_version": PLUGIN_VERSION, "plugin_namespace": PLUGIN_NAMESPACE,
            "max_instances": int(max_instances), "ctr_score": float(ctr_score), "mask_thr": float(mask_thr),
            "cate_score_thr": float(cate_score_thr)}


def unpack_part_maps(packed) -> np.ndarray:
    """Plugin output ``part_maps`` int32 (B, K, 4h, w) -> uint8 labels (B, K, 4h, 4w) (a view, no copy)."""
    a = np.ascontiguousarray(packed)
    if a.dtype == np.uint8:
        return a
    if a.dtype.itemsize != 4:
        raise TypeError(f"packed part_maps must be int32, got {a.dtype}")
    return a.view(np.uint8).reshape(*a.shape[:-1], a.shape[-1] * 4)


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
           "PLUGIN_ATTRIBUTES", "PLUGIN_INPUT_SPECS", "PLUGIN_OUTPUT_SPECS", "PART_MAPS_PACKING",
           "plugin_attributes", "unpack_part_maps", "load_trt_plugin", "decode_cpu", "peaks_cpu", "DecodeError",
           "KernelBuildError"]
