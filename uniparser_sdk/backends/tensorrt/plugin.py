"""Loading the ``UniParserDecode`` plugin library into TensorRT's plugin registry, once per process.

TensorRT's ``IPluginRegistry::loadLibrary`` returns null when the library's creators are already
registered, so loading the same library twice (two ``build_engine(plugin_lib=...)`` calls, a build then
a ``Parser`` in one process) used to fail. :func:`load_plugin_library` therefore asks the registry first
(``get_creator(name, version, namespace)``) and only loads when the creator is missing; a null handle is
an error only if the creator is still not registered afterwards.
"""
from __future__ import annotations

import ctypes
import threading
from pathlib import Path

from ...errors import UniParserError
from ...fused import PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION

__all__ = ["PluginLoadError", "plugin_registered", "load_plugin_library"]

_LOCK = threading.Lock()
_HANDLES: dict[str, object] = {}  # resolved library path -> what load_library / ctypes returned


class PluginLoadError(UniParserError, RuntimeError):
    """The plugin library is missing or TensorRT could not register its creators."""


def plugin_registered(trt, name: str = PLUGIN_NAME, version: str = PLUGIN_VERSION,
                      namespace: str = PLUGIN_NAMESPACE) -> bool:
    """Whether TensorRT's registry has a creator ``namespace::name`` version ``version``."""
    registry = trt.get_plugin_registry()
    lookup = getattr(registry, "get_creator", None) or getattr(registry, "get_plugin_creator", None)
    if lookup is None:  # pragma: no cover - every TensorRT >= 10 has get_creator
        return False
    try:
        return lookup(name, version, namespace) is not None
    except Exception:  # some bindings raise instead of returning None for an unknown creator
        return False


def load_plugin_library(trt, plugin_lib, name: str = PLUGIN_NAME, version: str = PLUGIN_VERSION,
                        namespace: str = PLUGIN_NAMESPACE) -> str:
    """Make sure the plugin of ``plugin_lib`` is registered; returns ``"registered"`` when it already was,
    ``"loaded"`` when this call loaded the library. Raises :class:`PluginLoadError`."""
    path = Path(plugin_lib)
    if not path.is_file():
        raise PluginLoadError(f"plugin library not found: {path}")
    key = str(path.resolve())
    with _LOCK:
        if plugin_registered(trt, name, version, namespace):
            return "registered"
        registry = trt.get_plugin_registry()
        if hasattr(registry, "load_library"):
            handle = registry.load_library(key)
        else:  # pragma: no cover - bindings without IPluginRegistry.load_library
            handle = ctypes.CDLL(key, mode=ctypes.RTLD_GLOBAL)
        if handle is None and not plugin_registered(trt, name, version, namespace):
            raise PluginLoadError(f"TensorRT could not load the plugin library {path} (its {namespace}::{name} "
                                  f"v{version} creator is not registered; see the TensorRT log)")
        if not plugin_registered(trt, name, version, namespace):
            raise PluginLoadError(f"{path} loaded but registered no {namespace}::{name} v{version} creator")
        _HANDLES[key] = handle
        return "loaded"
