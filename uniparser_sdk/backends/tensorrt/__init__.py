"""TensorRT backend, owning its format end to end.

- :mod:`.build`: ONNX -> serialized engine (profile, precision, timing cache, plugin loading);
- :mod:`.sidecar`: the engine's JSON sidecar (model metadata, TensorRT version, GPU, profile);
- :mod:`.runner`: :class:`TensorRTBackend`, the runtime over an engine (CUDA memory layer inside).

Importing this package imports neither tensorrt nor a CUDA binding; they load when an engine is opened
or built.
"""
from .runner import TensorRTBackend

__all__ = ["TensorRTBackend"]
