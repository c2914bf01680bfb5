"""ONNX Runtime backend: ``.onnx`` files (every layout but plugin-v1)."""
from .runner import OnnxRuntimeBackend

__all__ = ["OnnxRuntimeBackend"]
