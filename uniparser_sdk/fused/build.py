"""Build the fused-decode CPU twin with g++ directly (no cmake), and compile-check the CUDA source.

``python -m uniparser_sdk.fused.build``               build (or reuse) the CPU library, print its path
``python -m uniparser_sdk.fused.build --cuda-check``  also ``nvcc -c`` the .cu for sm_75, 80, 86, 89, 90

The library goes to a cache directory, ``kernels/build/`` next to the sources by default
(``UNIPARSER_KERNELS_BUILD_DIR`` overrides), under a name that carries a hash of the sources, the compiler
and the flags: a changed source is rebuilt, an unchanged one is reused. Builds are atomic (temporary file +
rename) and serialised by a lock file, so concurrent test processes are safe.

``UNIPARSER_DECODE_LIB=/path/libuniparser_decode_cpu.so`` skips the build and uses that file (deployments
without a compiler). No torch import here: the torch-free runtime can use this module.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from ..errors import UniParserError

KERNELS_DIR = Path(__file__).resolve().parents[2] / "kernels"
CPU_SOURCES = ("uniparser_decode_cpu.cpp",)
CPU_HEADERS = ("uniparser_decode.h", "uniparser_decode_core.h")
CUDA_SOURCE = "uniparser_decode.cu"
CUDA_HEADERS = ("uniparser_decode_cuda.h", "uniparser_decode.h", "uniparser_decode_core.h")
CUDA_ARCHS = (75, 80, 86, 89, 90)
LIB_STEM = "libuniparser_decode_cpu"
BASE_FLAGS = ("-O3", "-fPIC", "-shared", "-std=c++17", "-fvisibility=hidden")
OPENMP_FLAGS = ("-fopenmp",)


class KernelBuildError(UniParserError, RuntimeError):
    """The C++ / CUDA sources could not be compiled (the message carries the compiler output)."""


def sources_dir() -> Path:
    return Path(os.environ.get("UNIPARSER_KERNELS_DIR", KERNELS_DIR))


def build_dir() -> Path:
    env = os.environ.get("UNIPARSER_KERNELS_BUILD_DIR")
    return Path(env) if env else sources_dir() / "build"


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


def _compile(cxx: str, flags, sources, out: Path) -> subprocess.CompletedProcess:
    cmd = [cxx, *flags, *[str(s) for s in sources], "-o", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True)


def build_cpu(force: bool = False, verbose: bool = False, cxx: str | None = None, openmp: bool | None = None) -> Path:
    """Build (or reuse) the CPU twin; return the path of the shared library.

    openmp: None tries ``-fopenmp`` and falls back to a serial build when it does not compile."""
    cxx = _compiler(cxx)
    files = _check_sources(CPU_SOURCES + CPU_HEADERS)
    sources = files[: len(CPU_SOURCES)]
    cid = _compiler_id(cxx)
    if openmp is None:
        env = os.environ.get("UNIPARSER_KERNELS_OPENMP")
        openmp = None if env is None else env not in ("0", "false", "no", "")
    variants = [True, False] if openmp is None else [bool(openmp)]
    out_dir = build_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    errors = []
    with _Lock(out_dir / ".build.lock"):
        for use_omp in variants:
            flags = list(BASE_FLAGS) + (list(OPENMP_FLAGS) if use_omp else [])
            tag = _digest(files, cid + " " + " ".join(flags))
            lib = out_dir / f"{LIB_STEM}-{tag}.so"
            failed = out_dir / f".{LIB_STEM}-{tag}.failed"
            if lib.is_file() and not force:
                return lib
            if failed.is_file() and not force and use_omp and len(variants) > 1:
                continue  # this variant (OpenMP) did not compile before: go straight to the fallback
            fd, tmp = tempfile.mkstemp(prefix=f".{LIB_STEM}-", suffix=".so", dir=out_dir)
            os.close(fd)
            try:
                res = _compile(cxx, flags, sources, Path(tmp))
                if verbose:
                    print(" ".join([cxx, *flags, *map(str, sources)]), file=sys.stderr)
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
    raise KernelBuildError("building the decode CPU twin failed:\n" + "\n\n".join(errors))


def find_or_build_cpu() -> Path:
    """The library to load: ``UNIPARSER_DECODE_LIB`` when set, else :func:`build_cpu`."""
    env = os.environ.get("UNIPARSER_DECODE_LIB")
    if env:
        p = Path(env)
        if not p.is_file():
            raise KernelBuildError(f"UNIPARSER_DECODE_LIB={env!r} does not exist")
        return p
    return build_cpu()


def cuda_check(archs=CUDA_ARCHS, nvcc: str | None = None, verbose: bool = False) -> bool:
    """``nvcc -c`` the CUDA source once per architecture. Returns False (with a message) when nvcc is
    missing; raises :class:`KernelBuildError` on a compile error."""
    nvcc = nvcc or os.environ.get("NVCC") or shutil.which("nvcc") or (
        "/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").is_file() else None)
    if nvcc is None:
        print("nvcc not found: CUDA compile check skipped", file=sys.stderr)
        return False
    src = _check_sources((CUDA_SOURCE,) + CUDA_HEADERS)[0]
    with tempfile.TemporaryDirectory(prefix="uniparser-nvcc-") as tmp:
        for arch in archs:
            out = Path(tmp) / f"decode_sm{arch}.o"
            cmd = [nvcc, "-c", "-std=c++17", "-O3", f"-gencode=arch=compute_{arch},code=sm_{arch}",
                   "-Xcompiler", "-fPIC", str(src), "-o", str(out)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise KernelBuildError(f"nvcc failed for sm_{arch}:\n{' '.join(cmd)}\n{res.stderr.strip()}")
            if verbose or res.stderr.strip():
                print(f"sm_{arch}: ok {res.stderr.strip()}", file=sys.stderr)
            else:
                print(f"sm_{arch}: ok", file=sys.stderr)
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m uniparser_sdk.fused.build", description=__doc__.splitlines()[0])
    ap.add_argument("--cuda-check", action="store_true",
                    help="also compile kernels/uniparser_decode.cu with nvcc -c for sm_75, 80, 86, 89, 90")
    ap.add_argument("--arch", type=int, action="append", help="restrict --cuda-check to these sm versions")
    ap.add_argument("--force", action="store_true", help="rebuild the CPU library even if a cached one exists")
    ap.add_argument("--no-openmp", action="store_true", help="build the CPU library without OpenMP")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    try:
        lib = build_cpu(force=args.force, verbose=args.verbose, openmp=False if args.no_openmp else None)
        print(lib)
        if args.cuda_check:
            cuda_check(tuple(args.arch) if args.arch else CUDA_ARCHS, verbose=args.verbose)
    except KernelBuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
