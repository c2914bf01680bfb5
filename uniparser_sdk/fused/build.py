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
import glob
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UniParserError

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
#: every file a build needs (the wheel ships exactly these; tests/test_kernel_package.py checks it)
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
            fd, tmp = tempfile.mkstemp(prefix=f".{stem}-", suffix=".so", dir=out_dir)
            os.close(fd)
            try:
                res = _compile(cxx, flags, srcs, Path(tmp))
                if verbose:
                    print(" ".join([cxx, *flags, *map(str, srcs)]), file=sys.stderr)
                    if res.stderr:
                        print(res.stderr, file=sys.stderr)
                if res.returncode == 0:
                    os.replace(tmp, lib)
                    return lib
                errors.append(f"{' '.join(flags)}:\n{res.stderr.strip()}")
                failed.write_text(res.stderr)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
    raise KernelBuildError(f"building {stem} failed:\n" + "\n\n".join(errors))


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


# ---------------------------------------------------------------------------------------------- CUDA

@dataclass
class CudaToolkit:
    nvcc: Path
    include_dir: Path
    lib_dir: Path

    @property
    def cudart_static(self) -> Path:
        return self.lib_dir / "libcudart_static.a"


def find_cuda(nvcc: str | None = None) -> CudaToolkit | None:
    """The CUDA toolkit (nvcc, include/, lib64/), or None when no nvcc is found."""
    cand = nvcc or os.environ.get("NVCC")
    if not cand:
        for env in ("CUDA_HOME", "CUDA_PATH"):
            if os.environ.get(env) and (Path(os.environ[env]) / "bin" / "nvcc").is_file():
                cand = str(Path(os.environ[env]) / "bin" / "nvcc")
                break
    cand = cand or shutil.which("nvcc") or (
        "/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").is_file() else None)
    if not cand or not Path(cand).is_file():
        return None
    root = Path(cand).resolve().parent.parent
    if not (root / "include" / "cuda_runtime_api.h").is_file():
        root = _nvcc_top(cand) or root  # a wrapper script (e.g. /usr/local/bin/nvcc -> exec the real one)
    inc = root / "include"
    lib = next((d for d in (root / "lib64", root / "lib", *map(Path, glob.glob(str(root / "targets/*/lib"))))
                if (d / "libcudart_static.a").is_file() or (d / "libcudart.so").is_file()), root / "lib64")
    return CudaToolkit(Path(cand), inc, lib)


def _nvcc_top(nvcc: str) -> Path | None:
    """The toolkit root nvcc itself reports (``TOP=`` of ``nvcc --dryrun``)."""
    with tempfile.TemporaryDirectory(prefix="uniparser-nvcc-") as tmp:
        src = Path(tmp) / "e.cu"
        src.write_text("")
        try:
            res = subprocess.run([nvcc, "--dryrun", "-c", str(src), "-o", str(Path(tmp) / "e.o")], capture_output=True,
                                 text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return None
    m = re.search(r"TOP=(\S+)", res.stderr + res.stdout)
    return Path(m.group(1)).resolve() if m else None


def _gencode(archs) -> list[str]:
    return [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]


def machine_archs() -> tuple:
    """Architectures to build for this machine: UNIPARSER_CUDA_ARCHS, else the visible GPUs', else all."""
    env = os.environ.get("UNIPARSER_CUDA_ARCHS")
    if env:
        return tuple(int(a) for a in re.split(r"[;, ]+", env.strip()) if a)
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=30).stdout
            caps = sorted({int(float(x) * 10 + 0.5) for x in out.split() if re.fullmatch(r"\d+\.\d+", x)})
            if caps:
                return tuple(caps)
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    return CUDA_ARCHS


def cuda_check(archs=CUDA_ARCHS, nvcc: str | None = None, verbose: bool = False) -> bool:
    """``nvcc -c`` the CUDA source once per architecture. Returns False (with a message) when nvcc is
    missing; raises :class:`KernelBuildError` on a compile error."""
    tk = find_cuda(nvcc)
    if tk is None:
        print("nvcc not found: CUDA compile check skipped", file=sys.stderr)
        return False
    src = _check_sources((CUDA_SOURCE,) + CUDA_HEADERS)[0]
    with tempfile.TemporaryDirectory(prefix="uniparser-nvcc-") as tmp:
        for arch in archs:
            out = Path(tmp) / f"decode_sm{arch}.o"
            cmd = [tk.nvcc, "-c", "-std=c++17", "-O3", *_gencode([arch]), "-Xcompiler", "-fPIC,-Wall,-Wextra",
                   "-Werror", "all-warnings", src, "-o", out]
            res = _run(cmd, f"nvcc for sm_{arch}", verbose)
            print(f"sm_{arch}: ok {res.stderr.strip()}".rstrip(), file=sys.stderr)
    return True


def ptxas_registers(arch: int = 75, debug: bool = True, nvcc: str | None = None) -> dict:
    """{kernel name: registers per thread} from ``nvcc -c [-G] -Xptxas -v`` of the CUDA source."""
    tk = find_cuda(nvcc)
    if tk is None:
        raise KernelBuildError("nvcc not found (set NVCC or CUDA_HOME)")
    src = _check_sources((CUDA_SOURCE,) + CUDA_HEADERS)[0]
    with tempfile.TemporaryDirectory(prefix="uniparser-ptxas-") as tmp:
        cmd = [tk.nvcc, "-c", "-std=c++17", *(["-G"] if debug else ["-O3"]), "-Xptxas", "-v", *_gencode([arch]),
               src, "-o", Path(tmp) / "d.o"]
        res = _run(cmd, "nvcc -Xptxas -v")
    regs, current = {}, None
    for line in res.stderr.splitlines():
        m = re.search(r"Compiling entry function '([^']+)'", line)
        if m:
            current = m.group(1)
            continue
        m = re.search(r"Used (\d+) registers", line)
        if m and current:
            name = re.search(r"(k_[a-z_]+)", current)
            key = name.group(1) if name else current
            if "ILb1E" in current:
                key += "<true>"
            elif "ILb0E" in current:
                key += "<false>"
            regs[key] = int(m.group(1))
            current = None
    return regs


def build_cuda_lib(archs=None, force: bool = False, verbose: bool = False) -> Path:
    """The CUDA decode library (C ABI of uniparser_decode_cuda.h) for ``archs`` (default: this machine's)."""
    tk = find_cuda()
    if tk is None:
        raise KernelBuildError("nvcc not found: the CUDA library needs the CUDA toolkit (set CUDA_HOME or NVCC)")
    archs = tuple(archs or machine_archs())
    files = _check_sources((CUDA_SOURCE,) + CUDA_HEADERS)
    flags = ["-O3", "-std=c++17", "-shared", "-Xcompiler", "-fPIC,-fvisibility=hidden", *_gencode(archs)]
    out_dir = _out_dir()
    tag = _digest(files, str(tk.nvcc) + " " + " ".join(flags))
    lib = out_dir / f"{CUDA_LIB_STEM}-{tag}.so"
    with _Lock(out_dir / ".build.lock"):
        if lib.is_file() and not force:
            return lib
        tmp = out_dir / f".{lib.name}.tmp"
        _run([tk.nvcc, *flags, files[0], "-o", tmp, "-cudart", "shared"], "nvcc (CUDA decode library)", verbose)
        os.replace(tmp, lib)
    return lib


def build_torch_op(verbose: bool = False) -> Path:
    """The PyTorch CUDA op (torch.utils.cpp_extension); needs torch with CUDA, a GPU and nvcc."""
    from . import torch_op
    mod = torch_op.load(verbose=verbose)
    return Path(mod.__file__)


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
    from ..contract.layouts import PLUGIN_ATTRIBUTES, PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION, plugin_attributes
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
            tmp = out_dir / f".{obj.name}.tmp"
            _run([cuda.nvcc, "-c", "-O2", "-std=c++17", "-Xcompiler", "-fPIC", *_gencode([75]), src, "-o", tmp],
                 "nvcc (harness kernels)", verbose)
            os.replace(tmp, obj)
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
