"""OpenVINO backend: Intel's CPU runtime, the SDK's low-precision CPU path (bf16 / int8).

- :mod:`.convert`: an exported ``.onnx`` -> OpenVINO IR (``.xml`` + ``.bin``) with the UniParser metadata
  in the IR's ``rt_info`` (ONNX ``DeformConv`` is mapped by a conversion extension);
- :mod:`.calibrate`: int8 post-training quantisation of the network's convolutions (NNCF), calibrated on
  the user's images, deterministic;
- :mod:`.runner`: :class:`OpenVINOBackend`, the runtime over an IR; ``Parser("model.xml")`` picks it.

Importing this package imports neither openvino nor nncf.
"""
from .runner import OpenVINOBackend

__all__ = ["OpenVINOBackend"]
