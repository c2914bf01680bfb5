"""Runtime backends, one class per model file type, behind :class:`~.base.Backend`.

=====================  =============================================  ==========================
file                   backend                                        heavy imports (lazy)
=====================  =============================================  ==========================
``.onnx``              :class:`.onnxruntime.OnnxRuntimeBackend`       onnxruntime
``.engine``/``.plan``  :class:`.tensorrt.TensorRTBackend`             tensorrt, cuda-python/pycuda
``.xml`` (+ ``.bin``)  :class:`.openvino.OpenVINOBackend`             openvino
``.pth``/``.pt``       :class:`.torch.TorchBackend`                   torch
=====================  =============================================  ==========================

Backend modules are imported only when a file of their type is opened, so the ONNX path never
imports torch or tensorrt.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from .base import Backend, BackendClosedError, InputConstraints
from ..errors import UserInputError

__all__ = ["Backend", "BackendClosedError", "InputConstraints", "BACKENDS", "backend_class", "open_backend"]

# suffix -> (module, class)
BACKENDS = {
    ".onnx": ("onnxruntime", "OnnxRuntimeBackend"),
    ".engine": ("tensorrt", "TensorRTBackend"),
    ".plan": ("tensorrt", "TensorRTBackend"),
    ".trt": ("tensorrt", "TensorRTBackend"),
    ".xml": ("openvino", "OpenVINOBackend"),
    ".pth": ("torch", "TorchBackend"),
    ".pt": ("torch", "TorchBackend"),
}


class UnknownModelType(UserInputError):
    """The model file's extension matches no backend."""


def backend_class(path) -> type:
    suffix = Path(str(path)).suffix.lower()
    if suffix not in BACKENDS:
        raise UnknownModelType(f"unknown model file type {suffix or '(no extension)'!r} for {path}: expected "
                               ".onnx (ONNX Runtime), .engine/.plan (TensorRT), .xml (OpenVINO IR) or .pth/.pt (PyTorch)")
    module, cls = BACKENDS[suffix]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def open_backend(path, device: str = "auto", providers=None, **kwargs) -> Backend:
    """Open ``path`` with the backend its extension selects."""
    cls = backend_class(path)
    p = Path(str(path))
    if not p.exists():
        raise FileNotFoundError(f"model file not found: {p}")
    if not p.is_file():
        raise ValueError(f"model path is not a file: {p}")
    return cls(p, device=device, providers=providers, **kwargs)
