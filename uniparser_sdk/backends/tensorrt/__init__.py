"""TensorRT backend, owning its format end to end.

- :mod:`.build`: ONNX -> serialized engine for TensorRT 10.x and 11.x (profile, strongly-typed precision,
  timing cache; the static ONNX check of :mod:`uniparser_sdk.export.trt_check` runs first);
- :mod:`.sidecar`: the engine's JSON sidecar (model metadata, TensorRT version, GPU, profile);
- :mod:`.plugin`: registry-first loading of the UniParserDecode plugin library (idempotent);
- :mod:`.cuda`: the CUDA memory layer (cuda-python by default, pycuda as the alternative);
- :mod:`.api`: every TensorRT name the backend uses (tested against the real 10.16 / 11.4 bindings);
- :mod:`.runner`: :class:`TensorRTBackend`, the runtime over an engine.

Importing this package imports neither tensorrt nor a CUDA binding; they load when an engine is opened
or built.
"""
from .runner import TensorRTBackend

__all__ = ["TensorRTBackend"]
