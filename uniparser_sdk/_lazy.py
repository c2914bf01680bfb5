"""Lazy imports of optional heavy dependencies with a message naming the pip extra."""
import importlib
from .errors import UniParserError

_EXTRA_OF = {
    "torch": "torch",
    "onnx": "export",
    "onnxsim": "export",
    "onnxruntime": "(default install)",
    "tensorrt": "trt",
    "pycuda": "trt",
    "openvino": "openvino",
    "nncf": "openvino",
}


class MissingDependency(UniParserError, ImportError):
    pass


def require(module: str, purpose: str = ""):
    """Import ``module`` or raise :class:`MissingDependency` with the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = _EXTRA_OF.get(top)
        hint = f"pip install 'uniparser-sdk[{extra}]'" if extra and not extra.startswith("(") else f"pip install {top}"
        what = f" (needed for {purpose})" if purpose else ""
        raise MissingDependency(f"{top} is not installed{what}; install it with: {hint}") from exc
