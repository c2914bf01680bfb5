"""Host probes of ``uniparser-bench``: CPU, memory, threads, GPU and library versions (no torch needed).

* :func:`host_info` -- the ``host`` object of the bench's JSON (python, versions, CPU model, CPUs
  available to the process, load average, GPU, ONNX Runtime providers);
* peak RSS: :func:`reset_peak_rss` (Linux: ``/proc/self/clear_refs`` = 5 resets VmHWM) and
  :func:`peak_rss_mib` (VmHWM, else ``ru_maxrss``); :func:`rss_mib` is the current VmRSS;
* GPU memory: :func:`gpu_used_mib` samples ``nvidia-smi`` (None without a GPU).
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
from typing import Optional

import numpy as np

__all__ = ["host_info", "cpus_available", "rss_mib", "reset_peak_rss", "peak_rss_mib", "gpu_used_mib",
           "library_version", "cpu_model", "load_average"]


def _read_status(key: str) -> Optional[float]:
    """A /proc/self/status field in MiB (VmRSS, VmHWM), None where unavailable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def rss_mib() -> Optional[float]:
    return _read_status("VmRSS")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> Optional[float]:
    v = _read_status("VmHWM")
    if v is None:
        try:
            import resource

            v = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        except Exception:
            return None
    return v


def _nvidia_smi(query: str) -> Optional[list[str]]:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run([smi, f"--query-gpu={query}", "--format=csv,noheader,nounits"], capture_output=True,
                             text=True, timeout=20, check=True).stdout
    except Exception:
        return None
    lines = [ln.strip() for ln in out.strip().splitlines() if ln.strip()]
    return lines or None


def gpu_used_mib(index: int = 0) -> Optional[float]:
    lines = _nvidia_smi("memory.used")
    if not lines or index >= len(lines):
        return None
    try:
        return float(lines[index])
    except ValueError:
        return None


def library_version(mod: str) -> Optional[str]:
    try:
        m = __import__(mod)
        return str(getattr(m, "__version__", "?"))
    except Exception:
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpus_available() -> int:
    """CPUs this process may run on (its affinity mask), else the logical CPU count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load_average() -> Optional[list]:
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def host_info() -> dict:
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "cpus_available": cpus_available(),
        "load_average": load_average(),
        "numpy": np.__version__,
        "opencv": library_version("cv2"),
        "torch": library_version("torch"),
        "onnxruntime": library_version("onnxruntime"),
        "onnx": library_version("onnx"),
        "onnxsim": library_version("onnxsim"),
        "uniparser_sdk": library_version("uniparser_sdk"),
    }
    try:
        import onnxruntime as ort

        info["onnxruntime_providers_available"] = list(ort.get_available_providers())
    except Exception:
        info["onnxruntime_providers_available"] = []
    gpus = _nvidia_smi("name,driver_version,memory.total")
    info["gpu"] = gpus[0] if gpus else None
    try:
        import torch

        info["torch_cuda"] = torch.version.cuda if torch.cuda.is_available() else None
        if torch.cuda.is_available() and not info["gpu"]:
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:
        info["torch_cuda"] = None
    try:
        import tensorrt  # noqa: F401

        info["tensorrt"] = str(tensorrt.__version__)
    except Exception:
        info["tensorrt"] = None
    return info
