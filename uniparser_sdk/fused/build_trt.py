"""TensorRT builds: finding TensorRT, the plugin library, the compile check against every header set and the CPU
plugin harness (see :mod:`uniparser_sdk.fused.build`).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .build_cuda import CudaToolkit, _gencode, find_cuda, machine_archs
from ..io_utils import atomic_output
from .toolchain import (CUDA_HEADERS, CUDA_SOURCE, HARNESS_SOURCE, PLUGIN_HEADERS, PLUGIN_LIBRARY_NAME, PLUGIN_SOURCE,
                        STRICT_FLAGS, KernelBuildError, _check_sources, _compiler, _digest, _Lock, _out_dir, _run,
                        header_version, shared_dir, trt_header_sets)


# ---------------------------------------------------------------------------------------------- TensorRT

@dataclass
class TensorRTInstall:
    include_dir: Path
    lib_dir: Path
    nvinfer: Path  # the library file to link (libnvinfer.so or libnvinfer.so.<major>)
    source: str  # where it was found (for messages)
    version: str = ""
    notes: list = field(default_factory=list)


def _nvinfer_in(d: Path) -> Path | None:
    if not d.is_dir():
        return None
    for name in ("libnvinfer.so", *sorted((p.name for p in d.glob("libnvinfer.so.*")), key=len)):
        p = d / name
        if p.is_file():
            return p
    return None


def _pip_tensorrt_libs() -> Path | None:
    try:
        spec = importlib.util.find_spec("tensorrt_libs")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def find_tensorrt() -> TensorRTInstall:
    """Headers + libnvinfer of a TensorRT install; raises :class:`KernelBuildError` saying what is missing."""
    looked = []
    inc_env = os.environ.get("TENSORRT_INCLUDE_DIR")
    roots = [os.environ.get(v) for v in ("TENSORRT_ROOT", "TensorRT_ROOT")]
    for root in filter(None, roots):
        r = Path(root)
        inc = Path(inc_env) if inc_env else r / "include"
        lib = next((x for x in (_nvinfer_in(r / "lib"), _nvinfer_in(r / "lib64"), _nvinfer_in(r / "targets" /
                                "x86_64-linux-gnu" / "lib")) if x), None)
        looked.append(f"TENSORRT_ROOT={root} (include/NvInferRuntime.h, lib/libnvinfer.so*)")
        if (inc / "NvInferRuntime.h").is_file() and lib is not None:
            return TensorRTInstall(inc, lib.parent, lib, f"TENSORRT_ROOT={root}", header_version(inc))
    pip_libs = _pip_tensorrt_libs()
    sys_inc = Path("/usr/include/x86_64-linux-gnu")
    sys_lib = Path("/usr/lib/x86_64-linux-gnu")
    if pip_libs is not None:
        lib = _nvinfer_in(pip_libs)
        looked.append(f"pip wheel libraries {pip_libs}")
        inc = Path(inc_env) if inc_env else (sys_inc if (sys_inc / "NvInferRuntime.h").is_file() else None)
        if lib is not None and inc is not None and (inc / "NvInferRuntime.h").is_file():
            return TensorRTInstall(inc, pip_libs, lib, f"pip tensorrt_libs ({pip_libs}) + headers {inc}",
                                   header_version(inc))
        if lib is not None:
            raise KernelBuildError(
                f"TensorRT libraries found in {pip_libs} (pip wheel), but no headers: the tensorrt wheels ship no "
                "C++ headers. Set TENSORRT_INCLUDE_DIR to a directory with NvInferRuntime.h of the SAME major "
                "version (from the TensorRT tar/zip, or the libnvinfer-headers-dev package), or TENSORRT_ROOT to a "
                "tar install")
    lib = _nvinfer_in(sys_lib)
    inc = Path(inc_env) if inc_env else sys_inc
    looked.append(f"system {inc} + {sys_lib}")
    if lib is not None and (inc / "NvInferRuntime.h").is_file():
        return TensorRTInstall(inc, sys_lib, lib, f"system ({inc}, {sys_lib})", header_version(inc))
    raise KernelBuildError("TensorRT not found; looked at: " + "; ".join(looked) + ". Install TensorRT (pip install "
                           "'uniparser-sdk[trt]' gives the libraries; headers from the TensorRT tar: set TENSORRT_ROOT "
                           "or TENSORRT_INCLUDE_DIR)")


def _lib_major(lib: Path) -> str | None:
    m = re.search(r"\.so\.(\d+)", lib.name)
    if m:
        return m.group(1)
    try:
        real = lib.resolve().name
    except OSError:
        return None
    m = re.search(r"\.so\.(\d+)", real)
    return m.group(1) if m else None


def compile_plugin_object(include_dir: Path, out: Path, cuda: CudaToolkit | None = None, cxx: str | None = None,
                          extra=(), verbose: bool = False) -> Path:
    """Object-compile the plugin against one TensorRT header set, warning-free (-Wall -Wextra -Werror on our
    sources; the headers come in with -isystem)."""
    cxx = _compiler(cxx)
    cuda = cuda or find_cuda()
    if cuda is None:
        raise KernelBuildError("the plugin includes cuda_runtime_api.h: no CUDA toolkit found (set CUDA_HOME)")
    src = _check_sources((PLUGIN_SOURCE,) + PLUGIN_HEADERS + CUDA_HEADERS)[0]
    cmd = [cxx, "-c", "-std=c++17", "-O2", "-fPIC", "-fvisibility=hidden", *STRICT_FLAGS, *extra,
           "-isystem", include_dir, "-isystem", cuda.include_dir, src, "-o", out]
    _run(cmd, f"compiling the TensorRT plugin against {include_dir}", verbose)
    return out


def build_trt_plugin(archs=None, trt: TensorRTInstall | None = None, force: bool = False,
                     verbose: bool = False) -> Path:
    """``<build dir>/libuniparser_trt_plugin.so``: the plugin + the CUDA kernels, linked to libnvinfer and cudart
    (static), with an rpath to libnvinfer's directory (pip's tensorrt_libs works without LD_LIBRARY_PATH)."""
    cuda = find_cuda()
    if cuda is None:
        raise KernelBuildError("nvcc not found: the TensorRT plugin needs the CUDA toolkit (set CUDA_HOME or NVCC)")
    trt = trt or find_tensorrt()
    hmaj, lmaj = trt.version.split(".")[0], _lib_major(trt.nvinfer)
    if lmaj and hmaj != "?" and hmaj != lmaj:
        raise KernelBuildError(f"TensorRT headers {trt.include_dir} are version {trt.version} but {trt.nvinfer} is "
                               f"major {lmaj}: use headers of the installed TensorRT")
    archs = tuple(archs or machine_archs())
    files = _check_sources((CUDA_SOURCE, PLUGIN_SOURCE) + PLUGIN_HEADERS + CUDA_HEADERS)
    out_dir = _out_dir()
    lib = out_dir / PLUGIN_LIBRARY_NAME
    stamp = out_dir / f".{PLUGIN_LIBRARY_NAME}.stamp"
    key = _digest(files, f"{cuda.nvcc} {trt.include_dir} {trt.nvinfer} {archs}")
    with _Lock(out_dir / ".build.lock"):
        if lib.is_file() and stamp.is_file() and stamp.read_text() == key and not force:
            return lib
        with tempfile.TemporaryDirectory(prefix="uniparser-trt-", dir=out_dir) as tmp:
            cu_o, pl_o, tmp_lib = Path(tmp) / "decode.o", Path(tmp) / "plugin.o", Path(tmp) / PLUGIN_LIBRARY_NAME
            _run([cuda.nvcc, "-c", "-O3", "-std=c++17", "-Xcompiler", "-fPIC,-fvisibility=hidden", *_gencode(archs),
                  files[0], "-o", cu_o], "nvcc (plugin kernels)", verbose)
            compile_plugin_object(trt.include_dir, pl_o, cuda, verbose=verbose)
            link = ["-l:" + trt.nvinfer.name] if trt.nvinfer.name != "libnvinfer.so" else ["-lnvinfer"]
            _run([_compiler(None), "-shared", "-o", tmp_lib, pl_o, cu_o, f"-L{trt.lib_dir}", *link,
                  f"-Wl,-rpath,{trt.lib_dir}", cuda.cudart_static, "-ldl", "-lpthread", "-lrt"],
                 "linking the TensorRT plugin", verbose)
            os.replace(tmp_lib, lib)
        stamp.write_text(key)
    return lib


def plugin_node_fields() -> dict:
    """The plugin identity and fields of the node ``uniparser-export --plugin`` writes: a tiny raw-v1 graph
    rewritten by :func:`uniparser_sdk.export.plugin_rewrite.rewrite_to_plugin` (needs onnx), else the contract
    constants. Returns dict(name, version, namespace, fields={name: (onnx_type, value)}, source)."""
    from ..contract.layouts import PLUGIN_ATTRIBUTES, PLUGIN_NAME, plugin_attributes
    values = dict(max_instances=37, ctr_score=0.25, mask_thr=0.45, cate_score_thr=0.275)
    try:
        import numpy as np
        from onnx import TensorProto, helper

        from ..export.plugin_rewrite import plugin_nodes, rewrite_to_plugin
    except ImportError:
        attrs = plugin_attributes(**values)
        fields = {k: ("INT" if PLUGIN_ATTRIBUTES[k] is int else "FLOAT", v) for k, v in attrs.items()
                  if k in PLUGIN_ATTRIBUTES}
        return dict(name=PLUGIN_NAME, version=attrs["plugin_version"], namespace=attrs["plugin_namespace"],
                    op_type=PLUGIN_NAME, fields=fields, source="contract constants (onnx not installed)")
    outs = [helper.make_tensor_value_info("center_logits", TensorProto.FLOAT, ["batch", 1, 40, 40]),
            helper.make_tensor_value_info("ins_feats", TensorProto.FLOAT, ["batch", 8, "fh", "fw"]),
            helper.make_tensor_value_info("sem_feats", TensorProto.FLOAT, ["batch", 8, "fh", "fw"])]
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    nodes = [helper.make_node("Identity", ["images"], [o.name]) for o in outs]  # shapes do not matter here
    raw = helper.make_model(helper.make_graph(nodes, "raw", [inp], outs), opset_imports=[helper.make_opsetid("", 17)])
    model = rewrite_to_plugin(raw, np.ones((5, 8), np.float32), **values)
    node = plugin_nodes(model)[0]
    fields, version, namespace = {}, None, None
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if a.name == "plugin_version":
            version = v.decode()
        elif a.name == "plugin_namespace":
            namespace = v.decode()
        else:
            fields[a.name] = ({1: "FLOAT", 2: "INT"}.get(a.type, f"type{a.type}"), v)
    return dict(name=node.op_type, version=version, namespace=namespace, op_type=node.op_type, fields=fields,
                source="export.plugin_rewrite.rewrite_to_plugin")


def _harness_cuda_object(cuda: CudaToolkit, src: Path, verbose: bool) -> Path:
    """The CUDA kernels for the harness (one architecture; cached in the build dir by a hash of the sources)."""
    files = _check_sources((CUDA_SOURCE,) + CUDA_HEADERS)
    out_dir = _out_dir()
    obj = out_dir / f"harness-decode-{_digest(files, str(cuda.nvcc))}.o"
    with _Lock(out_dir / ".build.lock"):
        if not obj.is_file():
            with atomic_output(obj, suffix=".o") as tmp:
                _run([cuda.nvcc, "-c", "-O2", "-std=c++17", "-Xcompiler", "-fPIC", *_gencode([75]), src, "-o", tmp],
                     "nvcc (harness kernels)", verbose)
    return obj


def build_plugin_harness(include_dir: Path, out_dir: Path, verbose: bool = False, sanitize: bool = True) -> Path:
    """Link the CPU plugin harness for one header set: plugin object (strict flags) + harness + the CUDA kernels
    (nvcc) + static cudart. The harness defines the two libnvinfer symbols the plugin uses (getPluginRegistry,
    getLogger) itself; no GPU and no TensorRT library are needed."""
    cuda = find_cuda()
    if cuda is None:
        raise KernelBuildError("nvcc not found: the plugin harness links the CUDA kernels (set CUDA_HOME or NVCC)")
    cxx = _compiler(None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = _check_sources((HARNESS_SOURCE, CUDA_SOURCE, PLUGIN_SOURCE) + PLUGIN_HEADERS + CUDA_HEADERS)
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"] if sanitize else []
    cu_o = _harness_cuda_object(cuda, files[1], verbose)
    pl_o = compile_plugin_object(include_dir, out_dir / "plugin.o", cuda, cxx, extra=san, verbose=verbose)
    h_o = out_dir / "harness.o"
    _run([cxx, "-c", "-std=c++17", "-O1", "-g", *STRICT_FLAGS, *san, "-isystem", include_dir, "-isystem",
          cuda.include_dir, files[0], "-o", h_o], f"compiling the plugin harness against {include_dir}", verbose)
    exe = out_dir / "trt_plugin_harness"
    _run([cxx, *san, h_o, pl_o, cu_o, cuda.cudart_static, "-ldl", "-lpthread", "-lrt", "-o", exe],
         "linking the plugin harness", verbose)
    return exe


def harness_args(node: dict) -> list[str]:
    """Command-line of the harness for a node description from :func:`plugin_node_fields`."""
    args = ["--name", node["name"], "--version", node["version"], "--namespace", node["namespace"]]
    for k, (typ, v) in node["fields"].items():
        args += ["--field", f"{k}:{'i' if typ == 'INT' else 'f'}:{v!r}"]
    return args


def run_harness(exe: Path, node: dict, timeout: float = 120) -> dict:
    """Run the harness; returns its JSON report (raises KernelBuildError when a check failed)."""
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:protect_shadow_gap=0", UBSAN_OPTIONS="halt_on_error=1")
    res = subprocess.run([str(exe), *harness_args(node)], capture_output=True, text=True, timeout=timeout, env=env)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    report = json.loads(lines[-1]) if lines else {}
    if res.returncode != 0 or not report.get("ok"):
        raise KernelBuildError(f"plugin harness {exe} failed (exit {res.returncode}):\n{res.stdout}\n{res.stderr}")
    return report


def trt_check(header_dirs=None, verbose: bool = False) -> list[dict]:
    """For every TensorRT header set: object-compile the plugin warning-free, link the CPU harness and run it with
    the exporter's node fields. Returns one report per header set; raises on the first failure."""
    dirs = [Path(d) for d in (header_dirs or trt_header_sets())]
    if not dirs:
        raise KernelBuildError(
            f"no TensorRT header set found for --trt-check: looked for {shared_dir()}/third_party/tensorrt/*/include "
            "(CI clones shared/ beside the repository; UNIPARSER_SHARED_DIR moves it, UNIPARSER_TRT_HEADERS lists "
            "include dirs directly)")
    node = plugin_node_fields()
    reports = []
    with tempfile.TemporaryDirectory(prefix="uniparser-trtcheck-") as tmp:
        for d in dirs:
            ver = header_version(d)
            exe = build_plugin_harness(d, Path(tmp) / ver, verbose=verbose)
            rep = run_harness(exe, node)
            rep.update(headers=str(d), tensorrt_headers=ver, node_source=node["source"])
            print(f"TensorRT {ver} headers ({d}): plugin compiles warning-free; harness: {rep['checks']} checks ok",
                  file=sys.stderr)
            reports.append(rep)
    return reports
