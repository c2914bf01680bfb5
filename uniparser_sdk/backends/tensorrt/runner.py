"""TensorRT backend (``.engine`` / ``.plan``), for the TensorRT 10.x and 11.x Python API.

- ``import tensorrt`` and the CUDA memory layer (:mod:`.cuda`: cuda-python by default, pycuda as the
  alternative) happen lazily in the constructor, with a message naming the ``trt`` extra when missing.
  Every TensorRT name used here is declared in :mod:`.api` and tested against the real bindings.
- The engine's sidecar ``<engine>.json`` (format, reader and compatibility rule:
  :mod:`uniparser_sdk.backends.tensorrt.sidecar`, shared with the exporter) gives the model metadata; before
  deserialising, the TensorRT version and the GPU's compute capability are checked against it and a
  mismatch is refused with a clear message (engines are tied to both).
- One execution context and one explicit CUDA stream **per thread** (``threading.local``); per context,
  device + page-locked host buffers are allocated once per input shape (small LRU) and reused; copies
  are asynchronous on the thread's stream.
- Every call sets the input shape with ``context.set_input_shape`` and checks the result against the
  optimisation profile (``engine.get_tensor_profile_shape(name, 0)``), then binds addresses with
  ``set_tensor_address`` and runs ``execute_async_v3(stream)``.

The pure logic (profile checks/fitting, allocation sizes; sidecar parsing and compatibility checks from
:mod:`uniparser_sdk.backends.tensorrt.sidecar`) is module-level and unit-tested without TensorRT; the rest runs in
the GPU tests.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..._lazy import require
from ...devices import parse_device
from .sidecar import (  # noqa: F401  (re-exported: the sidecar format is owned there)
    EngineCompatibilityError, EngineSidecar, SidecarError, TensorProfile, check_compatibility,
    parse_compute_capability, read_sidecar, sidecar_path,
)
from ..base import Backend, InputConstraints, decode_params_feed, validate_batch

log = logging.getLogger(__name__)

__all__ = [
    "TensorRTBackend", "EngineSidecar", "TensorProfile", "EngineCompatibilityError", "SidecarError", "sidecar_path",
    "read_sidecar", "check_compatibility", "parse_compute_capability", "check_input_shape",
    "fit_to_profile", "allocation_plan", "tensor_nbytes",
]

BUFFER_CACHE_SHAPES = 4  # input shapes whose buffers each thread keeps


# --------------------------------------------------------------------------------------------
# Pure logic (no tensorrt needed); the sidecar format itself is uniparser_sdk.backends.tensorrt.sidecar
# --------------------------------------------------------------------------------------------

def check_input_shape(name: str, shape: Sequence[int], profile: TensorProfile) -> None:
    """Raise ValueError naming the offending dimension when ``shape`` lies outside ``profile``."""
    shape = tuple(int(v) for v in shape)
    if len(shape) != len(profile.min):
        raise ValueError(f"input {name!r}: rank {len(shape)} != engine rank {len(profile.min)}")
    if not profile.contains(shape):
        dims = ", ".join(f"dim {i}: {s} not in [{a}, {b}]" for i, (a, s, b)
                         in enumerate(zip(profile.min, shape, profile.max)) if not a <= s <= b)
        raise ValueError(f"input {name!r} shape {shape} outside the engine's optimisation profile "
                         f"(min {profile.min}, max {profile.max}): {dims}; rebuild the engine with a "
                         "larger profile or lower the input scale")


def fit_to_profile(shape: Sequence[int], profile: TensorProfile, divisor: int = 32) -> tuple[int, ...]:
    """Smallest (B, C, H, W) >= ``shape`` the profile accepts, H and W staying multiples of ``divisor``
    (zero padding at the bottom/right and extra zero images are harmless). Raises ValueError when a
    dimension exceeds the maximum."""
    shape = tuple(int(v) for v in shape)
    if len(shape) != len(profile.min):
        raise ValueError(f"rank {len(shape)} != profile rank {len(profile.min)}")
    out = []
    for i, (s, a) in enumerate(zip(shape, profile.min)):
        t = max(s, a)
        if i >= 2 and t != s and t % divisor:
            t = -(-t // divisor) * divisor
        out.append(t)
    check_input_shape("images", out, profile)
    return tuple(out)


def tensor_nbytes(shape: Sequence[int], dtype) -> int:
    shape = tuple(int(v) for v in shape)
    if any(v < 0 for v in shape):
        raise ValueError(f"shape {shape} still has dynamic (-1) dimensions; set all input shapes first")
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


def allocation_plan(tensors: Sequence[tuple[str, Sequence[int], Any]]) -> "OrderedDict[str, tuple]":
    """(name, shape, numpy dtype) per I/O tensor -> {name: (shape, dtype, nbytes to allocate)}.
    Zero-size tensors still get one byte (CUDA allocators refuse 0)."""
    plan = OrderedDict()
    for name, shape, dtype in tensors:
        shape = tuple(int(v) for v in shape)
        plan[name] = (shape, np.dtype(dtype), max(1, tensor_nbytes(shape, dtype)))
    return plan


def _cuda_bindings(device_index: int):
    """The CUDA memory layer (:mod:`.cuda`): cuda-python by default, pycuda as the alternative."""
    from .cuda import cuda_binding

    return cuda_binding(device_index)


# --------------------------------------------------------------------------------------------
# The backend
# --------------------------------------------------------------------------------------------

@dataclass
class _Buffers:
    shape: tuple
    host: dict  # name -> page-locked numpy array (from the CUDA adapter)
    device: dict  # name -> (allocation, int pointer)


class _ThreadState:
    def __init__(self, context, stream, handle):
        self.context = context
        self.stream = stream
        self.handle = handle
        self.buffers: "OrderedDict[tuple, _Buffers]" = OrderedDict()


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, path, device: str = "auto", providers=None, **_ignored):
        dev = parse_device(device)
        if dev.kind == "cpu":
            raise ValueError("TensorRT engines run on a CUDA GPU only; use the .onnx model for device='cpu'")
        index = dev.cuda_index
        sidecar = read_sidecar(path)  # before any heavy import: clear errors first
        trt = require("tensorrt", "running TensorRT engines")
        cuda = _cuda_bindings(index)
        try:
            check_compatibility(sidecar, trt.__version__, cuda.compute_capability())
            super().__init__(path, sidecar.meta)
            self.sidecar = sidecar
            self._trt = trt
            self._cuda = cuda
            self._logger = trt.Logger(trt.Logger.WARNING)
            trt.init_libnvinfer_plugins(self._logger, "")
            if sidecar.meta.layout == "plugin-v1":
                self._load_plugin_library()
            with cuda.active():
                self._runtime = trt.Runtime(self._logger)
                self._engine = self._runtime.deserialize_cuda_engine(Path(path).read_bytes())
            if self._engine is None:
                raise RuntimeError(f"TensorRT could not deserialise {path} (see the TensorRT log above)")
            self._inputs, self._outputs, self._dtypes = [], [], {}
            for i in range(self._engine.num_io_tensors):
                name = self._engine.get_tensor_name(i)
                is_input = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
                (self._inputs if is_input else self._outputs).append(name)
                self._dtypes[name] = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
            if "images" not in self._inputs:
                raise ValueError(f"{path}: engine has no 'images' input (inputs: {self._inputs})")
            self._profiles = {n: TensorProfile(*(tuple(int(v) for v in s)
                                                  for s in self._engine.get_tensor_profile_shape(n, 0)))
                              for n in self._inputs if -1 in tuple(self._engine.get_tensor_shape(n))}
            if "images" not in self._profiles:  # static input shape
                fixed = tuple(int(v) for v in self._engine.get_tensor_shape("images"))
                self._profiles["images"] = TensorProfile(fixed, fixed, fixed)
            self.device = str(dev) if dev.index is not None else "cuda"
            self.providers = [f"TensorRT {trt.__version__}", cuda.name]
        except BaseException:
            cuda.close()
            raise
        self._local = threading.local()
        self._states: list[_ThreadState] = []  # every thread's state, for close()
        self._states_lock = threading.Lock()

    def _load_plugin_library(self) -> None:
        """Register the UniParserDecode plugin (plugin-v1 engines), unless it already is: the library named
        in the sidecar, looked up next to the engine, else ``UNIPARSER_TRT_PLUGIN`` / ``kernels/build``."""
        import os

        from ... import fused as kernels
        from .plugin import load_plugin_library, plugin_registered

        if plugin_registered(self._trt):
            return
        info = self.sidecar.raw.get("plugin") or {}
        lib = info.get("library") if isinstance(info, dict) else None
        path = None
        if lib:
            cand = Path(lib) if Path(lib).is_absolute() else Path(self.path).parent / lib
            path = cand if cand.is_file() else None
        if path is None:
            path = Path(os.environ.get("UNIPARSER_TRT_PLUGIN") or kernels.KERNELS_DIR / "build"
                        / kernels.PLUGIN_LIBRARY_NAME)
        load_plugin_library(self._trt, path)

    # ---- shapes --------------------------------------------------------------------------------

    def input_constraints(self) -> InputConstraints:
        p = self._profiles["images"]
        return InputConstraints(min_hw=(p.min[2], p.min[3]), max_hw=(p.max[2], p.max[3]), max_batch=p.max[0],
                                fixed_batch=p.min[0] if p.min[0] == p.max[0] else None)

    # ---- per-thread state ----------------------------------------------------------------------

    def _state(self) -> _ThreadState:
        st = getattr(self._local, "state", None)
        if st is None:
            with self._cuda.active():
                context = self._engine.create_execution_context()
                if context is None:
                    raise RuntimeError("TensorRT could not create an execution context (out of GPU memory?)")
                stream, handle = self._cuda.stream()
            st = _ThreadState(context, stream, handle)
            self._local.state = st
            with self._states_lock:
                self._states.append(st)
        return st

    def _buffers(self, st: _ThreadState, shapes: dict) -> _Buffers:
        key = tuple(sorted((n, tuple(s)) for n, s in shapes.items()))
        buf = st.buffers.get(key)
        if buf is not None:
            st.buffers.move_to_end(key)
            return buf
        ctx = st.context
        for name, shape in shapes.items():
            if not ctx.set_input_shape(name, tuple(int(v) for v in shape)):
                prof = self._profiles.get(name)
                if prof is not None:
                    check_input_shape(name, shape, prof)  # raises with the details
                raise ValueError(f"TensorRT refused input shape {tuple(shape)} for {name!r}")
        tensors = [(n, shapes[n], self._dtypes[n]) for n in self._inputs]
        tensors += [(n, tuple(ctx.get_tensor_shape(n)), self._dtypes[n]) for n in self._outputs]
        plan = allocation_plan(tensors)
        host, dev = {}, {}
        for name, (shape, dtype, nbytes) in plan.items():
            host[name] = self._cuda.host(shape, dtype)
            dev[name] = self._cuda.alloc(nbytes)
        buf = _Buffers(key, host, dev)
        st.buffers[key] = buf
        while len(st.buffers) > BUFFER_CACHE_SHAPES:
            _, old = st.buffers.popitem(last=False)
            self._free_buffers(old)
        return buf

    def _free_buffers(self, buf: _Buffers) -> None:
        for mem, _ in buf.device.values():
            try:
                self._cuda.free(mem)
            except Exception:  # pragma: no cover
                pass
        for arr in buf.host.values():
            try:
                self._cuda.free_host(arr)
            except Exception:  # pragma: no cover
                pass
        buf.device.clear()
        buf.host.clear()

    # ---- inference -----------------------------------------------------------------------------

    def _infer(self, batch: np.ndarray, decode_params: np.ndarray) -> dict[str, np.ndarray]:
        self._check_open()
        feeds = {"images": validate_batch(batch)}
        if "decode_params" in self._inputs:
            feeds["decode_params"] = decode_params_feed(self.meta.layout, decode_params, feeds["images"].shape[0])
        unknown = [n for n in self._inputs if n not in feeds]
        if unknown:
            raise ValueError(f"engine input(s) {unknown} are not fed by this SDK")
        check_input_shape("images", feeds["images"].shape, self._profiles["images"])
        with self._cuda.active():
            st = self._state()
            buf = self._buffers(st, {n: a.shape for n, a in feeds.items()})
            ctx = st.context
            for name, arr in feeds.items():  # the shapes of this key were set in _buffers; set again,
                ctx.set_input_shape(name, arr.shape)  # another key may have been used since
                np.copyto(buf.host[name], arr, casting="same_kind")
                self._cuda.htod(buf.device[name][0], buf.host[name], st.stream)
            for name, (_, ptr) in buf.device.items():
                ctx.set_tensor_address(name, ptr)
            if not ctx.execute_async_v3(st.handle):
                raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")
            for name in self._outputs:
                self._cuda.dtoh(buf.host[name], buf.device[name][0], st.stream)
            self._cuda.sync(st.stream)
            return {name: np.array(buf.host[name]) for name in self._outputs}  # copies: buffers are reused

    # ---- lifecycle -----------------------------------------------------------------------------

    def _release(self) -> None:
        with self._cuda.active():
            with self._states_lock:
                states, self._states = self._states, []
            for st in states:
                for buf in st.buffers.values():
                    self._free_buffers(buf)
                st.buffers.clear()
                st.context = None
                self._cuda.free_stream(st.stream)
            self._engine = None
            self._runtime = None
        self._cuda.close()
