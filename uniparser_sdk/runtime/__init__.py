"""Runtime: :class:`Parser` over ONNX Runtime, TensorRT or PyTorch backends (see ``backends``).

``Parser`` is exported lazily so that ``import uniparser_sdk.runtime`` stays cheap.
"""
__all__ = ["Parser"]


def __getattr__(name):
    if name == "Parser":
        from .parser import Parser
        return Parser
    raise AttributeError(f"module 'uniparser_sdk.runtime' has no attribute {name!r}")
