"""How many CPUs this process may really use: the default thread count of the runtime.

``os.cpu_count()`` counts the host's CPUs. A process may be allowed fewer:

- CPU affinity (``taskset``, ``cpuset`` cgroups, Kubernetes static CPU manager):
  ``os.sched_getaffinity(0)``;
- a CPU bandwidth quota (Docker ``--cpus``, Kubernetes CPU limits): cgroup v2 ``cpu.max``
  (``"<quota> <period>"`` or ``"max <period>"``), cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``
  (quota -1 = unlimited). Every cgroup from the process's own up to the root of the hierarchy is read;
  the smallest limit wins.

:func:`available_cpus` = min(affinity, floor(quota / period)), at least 1. It is what ``Parser`` gives
ONNX Runtime as ``intra_op_num_threads`` when the caller does not choose (``threads=None``), and the
default of ``--threads`` on the CLIs. Linux-only sources; elsewhere it falls back to ``os.cpu_count()``.
Pure standard library.
"""
from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Optional

from ..errors import UserInputError

__all__ = ["affinity_cpus", "cgroup_cpu_limit", "available_cpus", "resolve_threads"]


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (``os.cpu_count()`` where the OS has no affinity call)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _v2_limit(d: Path) -> Optional[float]:
    text = _read(d / "cpu.max")
    if not text:
        return None
    parts = text.split()
    if len(parts) < 1 or parts[0] == "max":
        return None
    try:
        quota = float(parts[0])
        period = float(parts[1]) if len(parts) > 1 else 100000.0
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v1_limit(d: Path) -> Optional[float]:
    q, p = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
    try:
        quota, period = float(q), float(p)
    except (TypeError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def _mounts(mountinfo: str) -> list[tuple[str, str, str, set]]:
    """(fstype, mount root, mount point, super options) of the cgroup mounts in /proc/<pid>/mountinfo."""
    out = []
    text = _read(Path(mountinfo)) or ""
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        out.append((tail[0], fields[3], fields[4].replace("\\040", " "), set(tail[2].split(","))))
    return out


def _walk_min(leaf: Path, top: Path, read) -> Optional[float]:
    """Smallest limit ``read`` finds from ``leaf`` up to ``top`` (inclusive)."""
    best = None
    d = leaf
    while True:
        v = read(d)
        if v is not None:
            best = v if best is None else min(best, v)
        if d == top or top not in d.parents:
            break
        d = d.parent
    return best


def cgroup_cpu_limit(cgroup_file: str = "/proc/self/cgroup",
                     mountinfo: str = "/proc/self/mountinfo") -> Optional[float]:
    """CPU bandwidth limit of this process's cgroups in CPUs (e.g. 1.5), or None when unlimited or
    unknown. ``cgroup_file`` / ``mountinfo`` default to the process's own (parameters for tests)."""
    text = _read(Path(cgroup_file))
    if not text:
        return None
    limits = []
    mounts = _mounts(mountinfo)
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        ctrl = set(controllers.split(",")) if controllers else set()
        v2 = parts[0] == "0" and not controllers
        for fstype, root, point, opts in mounts:
            if v2 and fstype != "cgroup2":
                continue
            if not v2 and (fstype != "cgroup" or "cpu" not in ctrl or "cpu" not in opts):
                continue
            rel = path
            if root != "/" and (path == root or path.startswith(root.rstrip("/") + "/")):
                rel = path[len(root.rstrip("/")):]  # the container sees its own cgroup as the mount root
            elif root != "/":
                rel = "/"
            top = Path(point)
            leaf = top / rel.lstrip("/")
            limit = _walk_min(leaf, top, _v2_limit if v2 else _v1_limit)
            if limit is not None:
                limits.append(limit)
    return min(limits) if limits else None


def available_cpus() -> int:
    """CPUs this process may use: min(affinity, floor(cgroup quota)), at least 1."""
    n = affinity_cpus()
    limit = cgroup_cpu_limit()
    if limit is not None:
        n = min(n, max(1, int(math.floor(limit + 1e-9))))
    return max(1, n)


def resolve_threads(threads: Optional[int]) -> int:
    """``threads`` validated (a positive int; UserInputError otherwise), or :func:`available_cpus` when None."""
    if threads is None:
        return available_cpus()
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
        raise UserInputError(f"threads must be a positive integer, got {threads!r}")
    return int(threads)
