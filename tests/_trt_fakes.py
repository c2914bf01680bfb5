"""Fakes of TensorRT and cuda-python GENERATED from the real bindings' dumps (tests/backends/tensorrt/
api_dumps, proven equal to the real modules in test_tensorrt_api.py): a name the real module of that version
lacks raises. Shared by the TensorRT backend tests and the Triton repository tests."""
from __future__ import annotations

import ctypes
import sys
import threading
import types

import numpy as np
import onnx
import onnxruntime as ort

import _trt_env as env

_NP = {"FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8,
       "BOOL": np.bool_, "INT8": np.int8}
_ONNX_TO_TRT = {onnx.TensorProto.FLOAT: "FLOAT", onnx.TensorProto.FLOAT16: "HALF", onnx.TensorProto.INT32: "INT32",
                onnx.TensorProto.INT64: "INT64", onnx.TensorProto.UINT8: "UINT8", onnx.TensorProto.BOOL: "BOOL"}


class DeviceMemory:
    """'Device' and pinned memory for the fakes: real host buffers addressed by pointer."""

    def __init__(self):
        self.buffers, self.pinned, self.lock = {}, {}, threading.Lock()

    def alloc(self, n, pinned=False):
        buf = ctypes.create_string_buffer(max(1, int(n)))
        with self.lock:
            (self.pinned if pinned else self.buffers)[ctypes.addressof(buf)] = buf
        return ctypes.addressof(buf)

    def read(self, ptr, n):
        return ctypes.string_at(int(ptr), int(n))

    def write(self, ptr, data: bytes):
        ctypes.memmove(int(ptr), data, len(data))


def trt_fake(major: int, mem: DeviceMemory | None = None, cc=(8, 6)):
    """A tensorrt module generated from the real bindings' dump, with the behaviours the SDK needs."""
    version = env.TRT_BINDINGS[major][1]
    dump = env.load_dump("tensorrt", version)
    names = dump["names"]
    box = {}
    state = {"creators": set(), "load_library": [], "contexts": []}

    def peek(path):
        return box["fake"].peek(path)

    def parse(self, data, path=None):
        proto = onnx.load_from_string(bytes(data))
        init = {t.name for t in proto.graph.initializer}
        net = self._state["network"]
        net._state["inputs"] = [
            box["fake"].new("ITensor", name=i.name, shape=tuple(d.dim_value if d.HasField("dim_value") else -1
                                                               for d in i.type.tensor_type.shape.dim))
            for i in proto.graph.input if i.name not in init]
        return True

    class Engine:  # what ICudaEngine wraps: the ONNX run by ONNX Runtime
        def __init__(self, data):
            self.sess = ort.InferenceSession(bytes(data), providers=["CPUExecutionProvider"])
            self.inputs = [i.name for i in self.sess.get_inputs()]
            self.outputs = [o.name for o in self.sess.get_outputs()]
            proto = onnx.load_from_string(bytes(data))
            self.types = {v.name: _ONNX_TO_TRT[v.type.tensor_type.elem_type]
                          for v in list(proto.graph.input) + list(proto.graph.output)}
            self.shapes = {v.name: tuple(d.dim_value if d.HasField("dim_value") else -1
                                         for d in v.type.tensor_type.shape.dim)
                           for v in list(proto.graph.input) + list(proto.graph.output)}

    def execute(self, stream):
        eng, shapes, addr = self._state["engine"], self._state["shapes"], self._state["addr"]
        feed = {n: np.frombuffer(mem.read(addr[n], int(np.prod(shapes[n])) * np.dtype(_NP[eng.types[n]]).itemsize),
                                 _NP[eng.types[n]]).reshape(shapes[n]) for n in eng.inputs}
        outs = eng.sess.run(eng.outputs, feed)
        self._state["out_shapes"] = {n: v.shape for n, v in zip(eng.outputs, outs)}
        for n, v in zip(eng.outputs, outs):
            mem.write(addr[n], np.ascontiguousarray(v, _NP[eng.types[n]]).tobytes())
        return True

    def ctx_shape(self, name):
        eng = self._state["engine"]
        if name in self._state["shapes"]:
            return self._state["shapes"][name]
        # run once on zeros to learn the output shapes for the current input shapes (ORT is the engine)
        feed = {n: np.zeros(self._state["shapes"][n], _NP[eng.types[n]]) for n in eng.inputs}
        outs = dict(zip(eng.outputs, eng.sess.run(eng.outputs, feed)))
        return outs[name].shape

    def set_input_shape(self, name, shape):
        prof = self._state["profile"].get(name)
        shape = tuple(int(v) for v in shape)
        if prof is not None and not all(a <= s <= b for a, s, b in zip(prof[0], shape, prof[2])):
            return False
        self._state["shapes"][name] = shape
        return True

    def new_context(self):
        c = box["fake"].new("IExecutionContext", engine=self._state["engine"], shapes={}, addr={},
                            profile=self._state["profile"])
        state["contexts"].append((threading.get_ident(), c))
        return c

    def get_creator(self, name, version, namespace):
        return object() if (name, version, namespace) in state["creators"] else None

    def load_library(self, path):
        state["load_library"].append(path)
        from uniparser_sdk.fused import PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION
        key = (PLUGIN_NAME, PLUGIN_VERSION, PLUGIN_NAMESPACE)
        if key in state["creators"]:
            return None  # TensorRT: null for an already registered library
        state["creators"].add(key)
        return object()

    registry = {}

    def get_registry():
        if "r" not in registry:
            registry["r"] = box["fake"].new("IPluginRegistry")
        return registry["r"]

    b = {
        "Logger.__init__": lambda self, *a: None,
        "init_libnvinfer_plugins": lambda logger, ns: True,
        "get_plugin_registry": get_registry,
        "IPluginRegistry.get_creator": get_creator,
        "IPluginRegistry.load_library": load_library,
        "nptype": lambda t: _NP[t.name],
        # build
        "Builder.__init__": lambda self, logger: None,
        "Builder.create_network": lambda self, flags: box["fake"].new("INetworkDefinition", flags=int(flags), inputs=[]),
        "Builder.create_builder_config": lambda self: box["fake"].new("IBuilderConfig", flags=[], pools={}, profiles=[]),
        "Builder.create_optimization_profile": lambda self: box["fake"].new("IOptimizationProfile", shapes={}),
        "Builder.build_serialized_network": lambda self, network, config: b"PLAN",
        "INetworkDefinition.num_inputs": lambda self: len(self._state["inputs"]),
        "INetworkDefinition.get_input": lambda self, i: self._state["inputs"][i],
        "OnnxParser.__init__": lambda self, network, logger: self._state.update(network=network),
        "OnnxParser.parse": parse,
        "OnnxParser.num_errors": lambda self: 0,
        "IBuilderConfig.set_memory_pool_limit": lambda self, pool, n: self._state["pools"].update({pool.name: n}),
        "IBuilderConfig.set_flag": lambda self, flag: self._state["flags"].append(flag.name),
        "IBuilderConfig.add_optimization_profile": lambda self, p: self._state["profiles"].append(p) or 0,
        "IBuilderConfig.create_timing_cache": lambda self, data: box["fake"].new("ITimingCache", data=bytes(data)),
        "IBuilderConfig.set_timing_cache": lambda self, c, ignore: self._state.update(cache=c) or True,
        "IBuilderConfig.get_timing_cache": lambda self: self._state["cache"],
        "ITimingCache.serialize": lambda self: self._state["data"] + b"+new",
        "IOptimizationProfile.set_shape": lambda self, n, mn, op, mx: self._state["shapes"].update({n: (mn, op, mx)}),
        # run
        "Runtime.__init__": lambda self, logger: None,
        "Runtime.deserialize_cuda_engine": lambda self, data: box["fake"].new("ICudaEngine", engine=Engine(data),
                                                                             profile=box["profile"]),
        "ICudaEngine.num_io_tensors": lambda self: len(self._state["engine"].inputs + self._state["engine"].outputs),
        "ICudaEngine.get_tensor_name": lambda self, i: (self._state["engine"].inputs + self._state["engine"].outputs)[i],
        "ICudaEngine.get_tensor_mode": lambda self, n: peek("TensorIOMode.INPUT" if n in self._state["engine"].inputs
                                                            else "TensorIOMode.OUTPUT"),
        "ICudaEngine.get_tensor_dtype": lambda self, n: peek("DataType." + self._state["engine"].types[n]),
        "ICudaEngine.get_tensor_shape": lambda self, n: self._state["engine"].shapes[n],
        "ICudaEngine.get_tensor_profile_shape": lambda self, n, i: list(self._state["profile"][n]),
        "ICudaEngine.create_execution_context": new_context,
        "IExecutionContext.set_input_shape": set_input_shape,
        "IExecutionContext.get_tensor_shape": ctx_shape,
        "IExecutionContext.set_tensor_address": lambda self, n, p: self._state["addr"].update({n: int(p)}) or True,
        "IExecutionContext.execute_async_v3": execute,
    }
    if "platform_has_fast_fp16" in names["Builder"]["members"]:
        b["Builder.platform_has_fast_fp16"] = lambda self: True
    fake = env.FakeModule(dump, b, label=f"tensorrt {version}")
    box["fake"], box["profile"] = fake, {}
    fake.state, fake.box = state, box
    return fake


def cuda_python_fake(mem: DeviceMemory, cc=(8, 6)):
    version = env.CUDA_BINDINGS[0][1]
    dump = env.load_dump("cuda-bindings-runtime", version)
    box = {}

    def ok(*v):
        return (box["fake"].peek("cudaError_t.cudaSuccess"), *v)

    def attr(a, dev):
        return ok(cc[0] if a.name.endswith("Major") else cc[1])

    streams = iter(range(7001, 1 << 30))
    b = {
        "cudaSetDevice": lambda i: ok(),
        "cudaDeviceGetAttribute": attr,
        "cudaStreamCreateWithFlags": lambda flags: ok(next(streams)),
        "cudaStreamDestroy": lambda s: ok(),
        "cudaStreamSynchronize": lambda s: ok(),
        "cudaMalloc": lambda n: ok(mem.alloc(n)),
        "cudaFree": lambda p: ok() if mem.buffers.pop(int(p), None) is not None else (None,),
        "cudaMallocHost": lambda n: ok(mem.alloc(n, pinned=True)),
        "cudaFreeHost": lambda p: ok() if mem.pinned.pop(int(p), None) is not None else (None,),
        "cudaMemcpyAsync": lambda dst, src, n, kind, s: (mem.write(dst, mem.read(src, n)), ok())[1],
        "cudaGetErrorString": lambda e: ok(b"fake error"),
    }
    fake = env.FakeModule(dump, b, label=f"cuda.bindings.runtime {version}")
    box["fake"] = fake
    return fake


def install_cuda_python(monkeypatch, rt):
    cuda_pkg, bindings = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
    bindings.runtime = rt
    cuda_pkg.bindings = bindings
    monkeypatch.setitem(sys.modules, "cuda", cuda_pkg)
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", rt)
