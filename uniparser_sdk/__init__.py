"""UniParser SDK: deployment toolkit for the UniParser multi-human parsing network.

Importing this package (and running ``Parser`` on an ``.onnx`` file) needs numpy, opencv and
onnxruntime only; torch is imported lazily by the modules that need it.
"""
__version__ = "0.1.0"

__all__ = ["__version__", "Parser"]


def __getattr__(name):  # lazy: keep `import uniparser_sdk` light
    if name == "Parser":
        from .runtime.parser import Parser
        return Parser
    raise AttributeError(f"module 'uniparser_sdk' has no attribute {name!r}")
