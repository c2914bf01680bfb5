"""CUDA builds: the toolkit, the compile check for sm_75 .. sm_120, the register check, the CUDA decode library
and the PyTorch CUDA op (see :mod:`uniparser_sdk.fused.build`).
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..io_utils import atomic_output
from .toolchain import (CUDA_ARCHS, CUDA_HEADERS, CUDA_LIB_STEM, CUDA_SOURCE, KernelBuildError, _check_sources,
                        _digest, _Lock, _out_dir, _run)


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
        with atomic_output(lib, suffix=".so") as tmp:
            _run([tk.nvcc, *flags, files[0], "-o", tmp, "-cudart", "shared"], "nvcc (CUDA decode library)", verbose)
    return lib


def build_torch_op(verbose: bool = False) -> Path:
    """The PyTorch CUDA op (torch.utils.cpp_extension); needs torch with CUDA, a GPU and nvcc."""
    from . import torch_op
    mod = torch_op.load(verbose=verbose)
    return Path(mod.__file__)
