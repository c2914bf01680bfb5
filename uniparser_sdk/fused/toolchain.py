"""Where the kernel sources and build outputs are, the compilers, and atomic cached builds (shared by the CPU,
CUDA and TensorRT builds of :mod:`uniparser_sdk.fused.build`). No torch import.
"""
from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import UniParserError
from ..io_utils import atomic_output


PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parents[1]
CHECKOUT_KERNELS = REPO_ROOT / "kernels"
PACKAGED_KERNELS = PACKAGE_DIR / "kernel_sources"
#: kept for callers that spell the old name: the sources this module uses (checkout, else the wheel's copy)
KERNELS_DIR = CHECKOUT_KERNELS if (CHECKOUT_KERNELS / "uniparser_decode_cpu.cpp").is_file() else PACKAGED_KERNELS

CPU_SOURCES = ("uniparser_decode_cpu.cpp",)
CPU_HEADERS = ("uniparser_decode.h", "uniparser_decode_core.h")
CUDA_SOURCE = "uniparser_decode.cu"
CUDA_HEADERS = ("uniparser_decode_cuda.h", "uniparser_decode.h", "uniparser_decode_core.h")
PLUGIN_SOURCE = "trt_plugin/uniparser_decode_plugin.cpp"
PLUGIN_HEADERS = ("trt_plugin/uniparser_decode_plugin.h",)
HARNESS_SOURCE = "testing/trt_plugin_harness.cpp"
PROBE_SOURCE = "testing/core_probe.cpp"
#: every file a build needs (the wheel ships exactly these; tests/fused/test_kernel_package.py checks it)
ALL_SOURCES = (CPU_SOURCES + CPU_HEADERS + (CUDA_SOURCE, "uniparser_decode_cuda.h", PLUGIN_SOURCE) + PLUGIN_HEADERS
               + ("torch_op/uniparser_decode_op.cpp", "CMakeLists.txt", HARNESS_SOURCE, PROBE_SOURCE))
CUDA_ARCHS = (75, 80, 86, 89, 90, 100, 120)
LIB_STEM = "libuniparser_decode_cpu"
CUDA_LIB_STEM = "libuniparser_decode_cuda"
PLUGIN_LIBRARY_NAME = "libuniparser_trt_plugin.so"
BASE_FLAGS = ("-O3", "-fPIC", "-shared", "-std=c++17", "-fvisibility=hidden")
OPENMP_FLAGS = ("-fopenmp",)
#: our own C++ must compile without a warning; the TensorRT headers come in with -isystem, which silences the
#: warnings *inside* them (their deprecation notices) but not a use of a deprecated API in our code
STRICT_FLAGS = ("-Wall", "-Wextra", "-Werror")


class _CompileFailed(Exception):
    def __init__(self, stderr: str):
        super().__init__(stderr)
        self.stderr = stderr


class KernelBuildError(UniParserError, RuntimeError):
    """The C++ / CUDA sources could not be compiled (the message carries the compiler output), or a
    prerequisite (compiler, CUDA, TensorRT) is missing (the message says what and where it looked)."""


# ---------------------------------------------------------------------------------------------- locations

def sources_dir() -> Path:
    env = os.environ.get("UNIPARSER_KERNELS_DIR")
    if env:
        return Path(env)
    if (CHECKOUT_KERNELS / "uniparser_decode_cpu.cpp").is_file():
        return CHECKOUT_KERNELS
    return PACKAGED_KERNELS


def _version() -> str:
    try:
        from .. import __version__
        return __version__
    except ImportError:  # pragma: no cover
        return "0"


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "uniparser_sdk" / f"kernels-{_version()}"


def _writable(d: Path) -> bool:
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(d, os.W_OK | os.X_OK)


def build_dir() -> Path:
    env = os.environ.get("UNIPARSER_KERNELS_BUILD_DIR")
    if env:
        return Path(env)
    src = sources_dir()
    if src == CHECKOUT_KERNELS and _writable(src / "build"):
        return src / "build"
    return user_cache_dir()


def shared_dir() -> Path:
    """``shared/`` beside the repository (CI clones it there); ``UNIPARSER_SHARED_DIR`` overrides."""
    env = os.environ.get("UNIPARSER_SHARED_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared"


def trt_header_sets() -> list[Path]:
    """The TensorRT include dirs ``--trt-check`` compiles against (see the module docstring)."""
    env = os.environ.get("UNIPARSER_TRT_HEADERS")
    if env:
        dirs = [Path(p) for p in env.split(os.pathsep) if p]
    else:
        dirs = [Path(p) for p in sorted(glob.glob(str(shared_dir() / "third_party" / "tensorrt" / "*" / "include")))]
    return [d for d in dirs if (d / "NvInferRuntime.h").is_file()]


def header_version(include_dir: Path) -> str:
    """TensorRT version of a header set (NvInferVersion.h), e.g. ``"10.16.0"``."""
    text = (Path(include_dir) / "NvInferVersion.h").read_text(errors="replace")

    def num(*names):
        for n in names:
            m = re.search(rf"#define\s+{n}\s+(\d+)", text)
            if m:
                return m.group(1)
        return "?"

    return ".".join((num("TRT_MAJOR_ENTERPRISE", "NV_TENSORRT_MAJOR"), num("TRT_MINOR_ENTERPRISE", "NV_TENSORRT_MINOR"),
                     num("TRT_PATCH_ENTERPRISE", "NV_TENSORRT_PATCH")))


# ---------------------------------------------------------------------------------------------- helpers

def _compiler(cxx: str | None) -> str:
    cxx = cxx or os.environ.get("CXX") or "g++"
    path = shutil.which(cxx)
    if path is None:
        raise KernelBuildError(
            f"C++ compiler {cxx!r} not found: install g++ (or set CXX), or point UNIPARSER_DECODE_LIB at a "
            "prebuilt libuniparser_decode_cpu.so")
    return path


def _compiler_id(cxx: str) -> str:
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    return out.splitlines()[0] if out else cxx


def _digest(files, extra: str) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    h.update(extra.encode())
    return h.hexdigest()[:16]


def _check_sources(names) -> list[Path]:
    src = sources_dir()
    files = [src / n for n in names]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise KernelBuildError(f"kernel sources not found: {missing} (set UNIPARSER_KERNELS_DIR, or "
                               "UNIPARSER_DECODE_LIB to a prebuilt library)")
    return files


class _Lock:
    """Exclusive lock on a file in the build directory (POSIX flock; a no-op elsewhere)."""

    def __init__(self, path: Path):
        self.path = path
        self.fh = None

    def __enter__(self):
        self.fh = open(self.path, "a+")
        try:
            import fcntl
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - non-POSIX
            pass
        return self

    def __exit__(self, *exc):
        try:
            import fcntl
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_UN)
        except ImportError:  # pragma: no cover
            pass
        self.fh.close()


def _run(cmd, what: str, verbose: bool = False) -> subprocess.CompletedProcess:
    cmd = [str(c) for c in cmd]
    if verbose:
        print("+ " + " ".join(cmd), file=sys.stderr)
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise KernelBuildError(f"{what} failed:\n{' '.join(cmd)}\n{(res.stderr or res.stdout).strip()}")
    if verbose and res.stderr.strip():
        print(res.stderr.strip(), file=sys.stderr)
    return res


def _compile(cxx: str, flags, sources, out: Path) -> subprocess.CompletedProcess:
    cmd = [cxx, *flags, *[str(s) for s in sources], "-o", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True)


def _out_dir() -> Path:
    d = build_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise KernelBuildError(f"build directory {d} cannot be created ({e}); set UNIPARSER_KERNELS_BUILD_DIR "
                               "to a writable directory") from e
    return d


def _build_cached(stem: str, sources, headers, flag_variants, cxx: str, force: bool = False,
                  verbose: bool = False) -> Path:
    """Build ``<stem>-<hash>.so`` from ``sources`` with the first flag variant that compiles (cached)."""
    files = _check_sources(tuple(sources) + tuple(headers))
    srcs = files[: len(sources)]
    cid = _compiler_id(cxx)
    out_dir = _out_dir()
    errors = []
    with _Lock(out_dir / ".build.lock"):
        for i, flags in enumerate(flag_variants):
            tag = _digest(files, cid + " " + " ".join(flags))
            lib = out_dir / f"{stem}-{tag}.so"
            failed = out_dir / f".{stem}-{tag}.failed"
            if lib.is_file() and not force:
                return lib
            if failed.is_file() and not force and i < len(flag_variants) - 1:
                continue  # this variant did not compile before: go straight to the fallback
            try:
                with atomic_output(lib, suffix=".so") as tmp:
                    res = _compile(cxx, flags, srcs, tmp)
                    if verbose:
                        print(" ".join([cxx, *flags, *map(str, srcs)]), file=sys.stderr)
                        if res.stderr:
                            print(res.stderr, file=sys.stderr)
                    if res.returncode != 0:
                        raise _CompileFailed(res.stderr)
                return lib
            except _CompileFailed as exc:
                errors.append(f"{' '.join(flags)}:\n{exc.stderr.strip()}")
                failed.write_text(exc.stderr)
    raise KernelBuildError(f"building {stem} failed:\n" + "\n\n".join(errors))
