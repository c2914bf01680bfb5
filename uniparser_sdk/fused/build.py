"""Build the fused-decode libraries for this machine, and the compile checks CI runs.

One command builds what a user needs (each target is built, or skipped with one line saying what is missing)::

    python -m uniparser_sdk.fused.build --all      # CPU twin + CUDA library + PyTorch CUDA op + TensorRT plugin
    python -m uniparser_sdk.fused.build            # the CPU twin only (g++), prints its path
    python -m uniparser_sdk.fused.build --cpu --trt   # any subset: --cpu --cuda --torch-op --trt

CI checks (no GPU, no TensorRT libraries needed)::

    python -m uniparser_sdk.fused.build --cuda-check            # nvcc -c of the .cu for sm_75 .. sm_120
    python -m uniparser_sdk.fused.build --cuda-check --trt-check
        # + the TensorRT plugin compiled against every header set found (-Wall -Wextra -Werror on our sources),
        #   linked into the CPU plugin harness (kernels/testing/trt_plugin_harness.cpp) which is then run with the
        #   names and fields that `uniparser-export --plugin` writes

Where things are looked up:

- kernel sources: ``UNIPARSER_KERNELS_DIR``; else ``kernels/`` of a source checkout; else the copy shipped in
  the wheel (``uniparser_sdk/fused/kernel_sources``);
- build outputs: ``UNIPARSER_KERNELS_BUILD_DIR``; else ``kernels/build`` in a writable checkout; else a
  user cache (``$XDG_CACHE_HOME`` or ``~/.cache``)``/uniparser_sdk/kernels-<version>`` (site-packages is
  often read-only);
- CUDA: ``NVCC``, ``CUDA_HOME`` / ``CUDA_PATH``, ``nvcc`` on PATH, ``/usr/local/cuda``; architectures:
  ``UNIPARSER_CUDA_ARCHS`` (``"80;90"``), else the visible GPUs' (``nvidia-smi``), else sm_75 .. sm_120;
- TensorRT: ``TENSORRT_ROOT`` / ``TensorRT_ROOT`` (a tar install: ``include/`` + ``lib/``), the pip wheel's
  libraries (``site-packages/tensorrt_libs``; the wheel has no headers: give them with
  ``TENSORRT_INCLUDE_DIR``), ``/usr/include/x86_64-linux-gnu`` + ``/usr/lib/x86_64-linux-gnu`` (deb packages);
- header sets for ``--trt-check``: ``UNIPARSER_TRT_HEADERS`` (include dirs separated by ``os.pathsep``), else
  ``<repo>/../shared/third_party/tensorrt/*/include`` (``UNIPARSER_SHARED_DIR`` moves ``shared``).

Libraries carry a hash of their sources, compiler and flags in the name (a changed source is rebuilt, an
unchanged one reused); builds are atomic (temporary file + rename) and serialised by a lock file.
``UNIPARSER_DECODE_LIB=/path/libuniparser_decode_cpu.so`` skips the CPU build (deployments without a compiler).
No torch import here: the torch-free runtime can use this module.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .build_cuda import (CudaToolkit, build_cuda_lib, build_torch_op, cuda_check, find_cuda,  # noqa: F401
                         machine_archs, ptxas_registers)
from .build_trt import (TensorRTInstall, build_plugin_harness, build_trt_plugin, compile_plugin_object,  # noqa: F401
                        find_tensorrt, harness_args, plugin_node_fields, run_harness, trt_check)
from .toolchain import (ALL_SOURCES, BASE_FLAGS, CPU_HEADERS, CPU_SOURCES, CUDA_ARCHS, CUDA_SOURCE,  # noqa: F401
                        KERNELS_DIR, LIB_STEM, OPENMP_FLAGS, PLUGIN_LIBRARY_NAME, PROBE_SOURCE, STRICT_FLAGS,
                        KernelBuildError, _build_cached, _compiler, build_dir, header_version, shared_dir,
                        sources_dir, trt_header_sets, user_cache_dir)

# the one build entry point re-exports the CUDA / TensorRT / toolchain pieces (tests and tools import them from here)
__all__ = ["build_cpu", "build_core_probe", "find_or_build_cpu", "build_all", "main", "CudaToolkit", "build_cuda_lib",
           "build_torch_op", "cuda_check", "find_cuda", "machine_archs", "ptxas_registers", "TensorRTInstall",
           "build_plugin_harness", "build_trt_plugin", "compile_plugin_object", "find_tensorrt", "harness_args",
           "plugin_node_fields", "run_harness", "trt_check", "ALL_SOURCES", "BASE_FLAGS", "CPU_HEADERS", "CPU_SOURCES",
           "CUDA_ARCHS", "CUDA_SOURCE", "KERNELS_DIR", "LIB_STEM", "OPENMP_FLAGS", "PLUGIN_LIBRARY_NAME",
           "PROBE_SOURCE", "STRICT_FLAGS", "KernelBuildError", "build_dir", "header_version", "shared_dir",
           "sources_dir", "trt_header_sets", "user_cache_dir"]


# ---------------------------------------------------------------------------------------------- CPU twin

def build_cpu(force: bool = False, verbose: bool = False, cxx: str | None = None, openmp: bool | None = None) -> Path:
    """Build (or reuse) the CPU twin; return the path of the shared library.

    openmp: None tries ``-fopenmp`` and falls back to a serial build when it does not compile."""
    cxx = _compiler(cxx)
    if openmp is None:
        env = os.environ.get("UNIPARSER_KERNELS_OPENMP")
        openmp = None if env is None else env not in ("0", "false", "no", "")
    omp_variants = [True, False] if openmp is None else [bool(openmp)]
    variants = [list(BASE_FLAGS) + (list(OPENMP_FLAGS) if v else []) for v in omp_variants]
    return _build_cached(LIB_STEM, CPU_SOURCES, CPU_HEADERS, variants, cxx, force=force, verbose=verbose)


def build_core_probe(cxx: str | None = None) -> Path:
    """Test-only host build of uniparser_decode_core.h (kernels/testing/core_probe.cpp)."""
    cxx = _compiler(cxx)
    flags = ["-O2", "-fPIC", "-shared", "-std=c++17", "-fvisibility=hidden", *STRICT_FLAGS]
    return _build_cached("libuniparser_core_probe", (PROBE_SOURCE,), CPU_HEADERS, [flags], cxx)


def find_or_build_cpu() -> Path:
    """The library to load: ``UNIPARSER_DECODE_LIB`` when set, else :func:`build_cpu`."""
    env = os.environ.get("UNIPARSER_DECODE_LIB")
    if env:
        p = Path(env)
        if not p.is_file():
            raise KernelBuildError(f"UNIPARSER_DECODE_LIB={env!r} does not exist")
        return p
    return build_cpu()


# ---------------------------------------------------------------------------------------------- CLI

def build_all(targets, archs=None, force: bool = False, verbose: bool = False, strict: bool = False) -> dict:
    """Build the named targets ("cpu", "cuda", "torch-op", "trt"); returns {target: path or 'skipped: why'}.
    strict: raise on the first target that cannot be built (otherwise it is reported as skipped)."""
    results = {}
    steps = {"cpu": lambda: build_cpu(force=force, verbose=verbose),
             "cuda": lambda: build_cuda_lib(archs, force=force, verbose=verbose),
             "torch-op": lambda: build_torch_op(verbose=verbose),
             "trt": lambda: build_trt_plugin(archs, force=force, verbose=verbose)}
    for t in targets:
        try:
            results[t] = str(steps[t]())
        except KernelBuildError as e:
            if strict:
                raise
            results[t] = f"skipped: {e}"
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m uniparser_sdk.fused.build", description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="build every target this machine can (CPU twin, CUDA "
                    "library, PyTorch CUDA op, TensorRT plugin); missing prerequisites are reported, not fatal")
    ap.add_argument("--cpu", action="store_true", help="the CPU twin (default when no target is named)")
    ap.add_argument("--cuda", action="store_true", help="the CUDA decode library (nvcc)")
    ap.add_argument("--torch-op", action="store_true", help="the PyTorch CUDA op (torch with CUDA, a GPU, nvcc)")
    ap.add_argument("--trt", action="store_true", help="the TensorRT plugin (CUDA + TensorRT headers and libnvinfer)")
    ap.add_argument("--cuda-check", action="store_true",
                    help="compile check: nvcc -c of kernels/uniparser_decode.cu for sm_75 .. sm_120")
    ap.add_argument("--trt-check", action="store_true",
                    help="compile check: the plugin against every TensorRT header set + the CPU plugin harness")
    ap.add_argument("--arch", type=int, action="append", help="restrict to these sm versions (e.g. --arch 90)")
    ap.add_argument("--force", action="store_true", help="rebuild even if a cached library exists")
    ap.add_argument("--no-openmp", action="store_true", help="build the CPU library without OpenMP")
    ap.add_argument("--json", help="write the results as JSON to this file")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    archs = tuple(args.arch) if args.arch else None
    named = [t for t, on in (("cpu", args.cpu), ("cuda", args.cuda), ("torch-op", args.torch_op), ("trt", args.trt))
             if on]
    results: dict = {}
    rc = 0
    try:
        if args.all:
            results = build_all(["cpu", "cuda", "torch-op", "trt"], archs, args.force, args.verbose)
            if args.no_openmp:
                results["cpu"] = str(build_cpu(force=args.force, verbose=args.verbose, openmp=False))
        elif named:
            results = build_all(named, archs, args.force, args.verbose, strict=True)
        else:
            results["cpu"] = str(build_cpu(force=args.force, verbose=args.verbose,
                                           openmp=False if args.no_openmp else None))
        for t, r in results.items():
            print(f"{t:9s} {r}")
        if "cpu" in results and not results["cpu"].startswith("skipped"):
            rc = 0
        elif args.all:
            rc = 1  # not even the CPU twin
        if args.cuda_check:
            results["cuda_check"] = cuda_check(archs or CUDA_ARCHS, verbose=args.verbose)
        if args.trt_check:
            results["trt_check"] = trt_check(verbose=args.verbose)
    except KernelBuildError as e:
        print(f"error: {e}", file=sys.stderr)
        rc = 1
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return rc


if __name__ == "__main__":
    # run the imported module's main, not this __main__ copy: its KernelBuildError is the class the other modules
    # (torch_op, cpu) raise
    from uniparser_sdk.fused import build as _imported
    sys.exit(_imported.main())
