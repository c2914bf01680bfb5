"""The CUDA memory layer of the TensorRT backend: one interface, two adapters.

* :class:`CudaPython` (default; ``pip install 'uniparser-sdk[trt]'``): NVIDIA's ``cuda-python``
  (``cuda.bindings.runtime``), which TensorRT's own samples use since 10.14. Runtime API on the device's
  primary context (the one TensorRT uses), page-locked host buffers from ``cudaMallocHost``, non-blocking
  streams, ``cudaMemcpyAsync``.
* :class:`PyCuda` (``pip install 'uniparser-sdk[trt-pycuda]'``): pycuda's driver API on the retained
  primary context, ``pagelocked_empty`` host buffers, ``memcpy_*_async``.

Pick one with ``cuda_binding(index, prefer=...)`` or ``$UNIPARSER_CUDA_BINDING`` (``cuda-python`` or
``pycuda``); by default cuda-python, then pycuda. Every call of an adapter into its binding is listed in
:data:`CUDA_PYTHON_API` / :data:`PYCUDA_API`; the tests check each name against the real packages.

Interface (all the runner uses): ``compute_capability()``, ``active()`` (context manager making the
device current on this thread), ``stream() -> (stream, int handle)``, ``alloc(n) -> (allocation, int
pointer)``, ``host(shape, dtype) -> pinned numpy array``, ``htod(dev, host, stream)``, ``dtoh(host, dev,
stream)`` (both asynchronous on ``stream``), ``sync(stream)``, ``free(dev)``, ``free_host(array)``,
``free_stream(stream)``, ``close()``.
"""
from __future__ import annotations

import ctypes
import importlib
import os
from contextlib import contextmanager

import numpy as np

from ..._lazy import MissingDependency
from ...errors import UniParserError

__all__ = ["CudaPython", "PyCuda", "cuda_binding", "CudaError", "CUDA_PYTHON_API", "PYCUDA_API", "BINDING_ENV"]

BINDING_ENV = "UNIPARSER_CUDA_BINDING"

#: every name CudaPython reads from ``cuda.bindings.runtime`` (checked against the real package in the tests)
CUDA_PYTHON_API = (
    "cudaSetDevice", "cudaDeviceGetAttribute", "cudaDeviceAttr.cudaDevAttrComputeCapabilityMajor",
    "cudaDeviceAttr.cudaDevAttrComputeCapabilityMinor", "cudaStreamCreateWithFlags", "cudaStreamNonBlocking",
    "cudaStreamDestroy", "cudaStreamSynchronize", "cudaMalloc", "cudaFree", "cudaMallocHost", "cudaFreeHost",
    "cudaMemcpyAsync", "cudaMemcpyKind.cudaMemcpyHostToDevice", "cudaMemcpyKind.cudaMemcpyDeviceToHost",
    "cudaError_t.cudaSuccess", "cudaGetErrorString",
)
#: every name PyCuda reads from ``pycuda.driver`` (Class.member for methods of its objects)
PYCUDA_API = (
    "init", "Device", "Device.compute_capability", "Device.retain_primary_context", "Context.push",
    "Context.pop", "Context.detach", "Stream", "Stream.synchronize", "Stream.handle", "mem_alloc",
    "DeviceAllocation.free", "pagelocked_empty", "memcpy_htod_async", "memcpy_dtoh_async",
)


class CudaError(UniParserError, RuntimeError):
    """A CUDA call failed (the message names the call and CUDA's error string)."""


def _import(module: str, extra: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(f"{module} is not importable ({exc}); the TensorRT backend needs a CUDA binding: "
                                f"pip install 'uniparser-sdk[{extra}]'") from exc


class CudaPython:
    """cuda-python (``cuda.bindings.runtime``) adapter."""

    name = "cuda-python"

    def __init__(self, device_index: int = 0):
        try:
            from cuda.bindings import runtime as rt  # cuda-python >= 12.6
        except ImportError:
            rt = _import("cuda.bindings.runtime", "trt")
        self.rt = rt
        self.index = int(device_index)
        self._pinned: dict[int, int] = {}  # id(host array) -> cudaMallocHost pointer
        self._call("cudaSetDevice", self.index)

    def _call(self, fn: str, *args):
        res = getattr(self.rt, fn)(*args)
        err, rest = (res[0], res[1:]) if isinstance(res, tuple) else (res, ())
        if err != self.rt.cudaError_t.cudaSuccess:
            msg = self.rt.cudaGetErrorString(err)
            msg = msg[1] if isinstance(msg, tuple) else msg
            msg = msg.decode() if isinstance(msg, bytes) else str(msg)
            raise CudaError(f"{fn} failed: {err!r} ({msg})")
        return rest[0] if len(rest) == 1 else rest

    def compute_capability(self) -> tuple[int, int]:
        major = self._call("cudaDeviceGetAttribute", self.rt.cudaDeviceAttr.cudaDevAttrComputeCapabilityMajor,
                           self.index)
        minor = self._call("cudaDeviceGetAttribute", self.rt.cudaDeviceAttr.cudaDevAttrComputeCapabilityMinor,
                           self.index)
        return int(major), int(minor)

    @contextmanager
    def active(self):
        self._call("cudaSetDevice", self.index)  # per thread: the runtime's current device is thread-local
        yield

    def stream(self):
        s = self._call("cudaStreamCreateWithFlags", self.rt.cudaStreamNonBlocking)
        return s, int(s)

    def alloc(self, nbytes: int):
        ptr = self._call("cudaMalloc", int(nbytes))
        return ptr, int(ptr)

    def host(self, shape, dtype) -> np.ndarray:
        """A page-locked numpy array (``cudaMallocHost``): copies from it are truly asynchronous."""
        dtype = np.dtype(dtype)
        count = int(np.prod(tuple(shape), dtype=np.int64))
        nbytes = max(1, count * dtype.itemsize)  # CUDA refuses 0-byte allocations
        ptr = int(self._call("cudaMallocHost", nbytes))
        arr = np.frombuffer((ctypes.c_uint8 * nbytes).from_address(ptr), dtype=dtype, count=count)
        arr = arr.reshape(tuple(shape))
        self._pinned[id(arr)] = ptr
        return arr

    def htod(self, dev_mem, host: np.ndarray, stream) -> None:
        self._call("cudaMemcpyAsync", dev_mem, host.ctypes.data, host.nbytes,
                   self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream)

    def dtoh(self, host: np.ndarray, dev_mem, stream) -> None:
        self._call("cudaMemcpyAsync", host.ctypes.data, dev_mem, host.nbytes,
                   self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream)

    def sync(self, stream) -> None:
        self._call("cudaStreamSynchronize", stream)

    def free(self, dev_mem) -> None:
        self._call("cudaFree", dev_mem)

    def free_host(self, host: np.ndarray) -> None:
        ptr = self._pinned.pop(id(host), None)
        if ptr is not None:
            self._call("cudaFreeHost", ptr)

    def free_stream(self, stream) -> None:
        self._call("cudaStreamDestroy", stream)

    def close(self) -> None:
        for ptr in list(self._pinned.values()):
            self._call("cudaFreeHost", ptr)
        self._pinned = {}


class PyCuda:
    """pycuda (``pycuda.driver``) adapter on the device's retained primary context (shared with TensorRT)."""

    name = "pycuda"

    def __init__(self, device_index: int = 0):
        self.cuda = cuda = _import("pycuda.driver", "trt-pycuda")
        cuda.init()
        self.dev = cuda.Device(int(device_index))
        self.ctx = self.dev.retain_primary_context()

    def compute_capability(self) -> tuple[int, int]:
        major, minor = self.dev.compute_capability()
        return int(major), int(minor)

    @contextmanager
    def active(self):
        self.ctx.push()
        try:
            yield
        finally:
            self.cuda.Context.pop()

    def stream(self):
        s = self.cuda.Stream()
        return s, int(s.handle)

    def alloc(self, nbytes: int):
        mem = self.cuda.mem_alloc(int(nbytes))
        return mem, int(mem)

    def host(self, shape, dtype) -> np.ndarray:
        return self.cuda.pagelocked_empty(tuple(shape), dtype)

    def htod(self, dev_mem, host: np.ndarray, stream) -> None:
        self.cuda.memcpy_htod_async(dev_mem, host, stream)

    def dtoh(self, host: np.ndarray, dev_mem, stream) -> None:
        self.cuda.memcpy_dtoh_async(host, dev_mem, stream)

    def sync(self, stream) -> None:
        stream.synchronize()

    def free(self, dev_mem) -> None:
        dev_mem.free()

    def free_host(self, host) -> None:
        pass  # pycuda frees page-locked memory with its array

    def free_stream(self, stream) -> None:
        pass  # released with its Python object

    def close(self) -> None:
        try:
            self.ctx.detach()
        except Exception:  # pragma: no cover - already released
            pass


ADAPTERS = {"cuda-python": CudaPython, "pycuda": PyCuda}


def cuda_binding(device_index: int = 0, prefer: str | None = None):
    """The CUDA adapter for ``device_index``: ``prefer`` (or ``$UNIPARSER_CUDA_BINDING``) if given, else
    cuda-python, else pycuda. Raises :class:`MissingDependency` naming the extras when neither imports."""
    prefer = prefer or os.environ.get(BINDING_ENV) or None
    if prefer is not None:
        if prefer not in ADAPTERS:
            raise ValueError(f"unknown CUDA binding {prefer!r}; choose one of {sorted(ADAPTERS)}")
        return ADAPTERS[prefer](device_index)
    try:
        return CudaPython(device_index)
    except MissingDependency as first:
        try:
            return PyCuda(device_index)
        except MissingDependency:
            raise MissingDependency(f"{first}; or pycuda: pip install 'uniparser-sdk[trt-pycuda]'") from None
