"""Run a model repository on this machine with the ``tritonserver`` bundled in the ``nvidia-pytriton``
wheel: for the tests, the load benchmark and trying a repository without a container.

That bundle has the Python backend only (no onnxruntime / TensorRT backend): write the repository
with ``network_backend="python"`` for it. Its Python-backend stub needs ``numpy<2`` (and this SDK's
runtime needs OpenCV, whose wheels from 4.11 need numpy 2), so it gets its own virtual environment:
:func:`ensure_env` creates one, cached under a build directory keyed by the requirements and the
Python version. The server binds 127.0.0.1 only, on free ports, and :meth:`LocalTritonServer.stop`
ends it and every Python stub it started (its own process group) -- nothing is left behind.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional, Sequence

from ..errors import UniParserError

__all__ = ["ENV_REQUIREMENTS", "EnvironmentUnavailable", "ServerError", "ensure_env", "env_python", "free_port",
           "LocalTritonServer"]

#: what the server's Python environment needs (the Python-backend stub and the SDK's runtime)
ENV_REQUIREMENTS = ("nvidia-pytriton==0.7.0", "numpy>=1.23,<2", "opencv-python-headless>=4.8,<4.11",
                    "onnxruntime>=1.25,<2")
SDK_ROOT = Path(__file__).resolve().parents[2]


class EnvironmentUnavailable(UniParserError, RuntimeError):
    """The server's virtual environment could not be created (no package index reachable?)."""


class ServerError(UniParserError, RuntimeError):
    """tritonserver did not start, or did not stop cleanly (the message carries its log tail)."""


def env_key(requirements: Sequence[str] = ENV_REQUIREMENTS, python: str = sys.executable) -> str:
    text = json.dumps({"req": list(requirements), "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
                       "exe": str(Path(python).resolve())})
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def env_python(env_dir) -> Path:
    return Path(env_dir) / "bin" / "python"


def ensure_env(build_dir, requirements: Sequence[str] = ENV_REQUIREMENTS, log=print, timeout: float = 900) -> Path:
    """The cached virtual environment ``build_dir/triton-env-<key>`` (created on first use: ``venv`` +
    ``pip install``, run at low priority). Raises :class:`EnvironmentUnavailable` when pip fails."""
    build_dir = Path(build_dir)
    env = build_dir / f"triton-env-{env_key(requirements)}"
    done = env / ".uniparser-complete"
    if done.is_file():
        return env
    build_dir.mkdir(parents=True, exist_ok=True)
    import fcntl

    with open(build_dir / f".{env.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits for the first one's install
        if done.is_file():
            return env
        shutil.rmtree(env, ignore_errors=True)
        log(f"creating the tritonserver environment {env} ({', '.join(requirements)})")
        t0 = time.perf_counter()
        base = getattr(sys, "_base_executable", sys.executable)

        def nice():
            os.nice(10)

        try:
            subprocess.run([base, "-m", "venv", str(env)], check=True, capture_output=True, timeout=120,
                           preexec_fn=nice)
            r = subprocess.run([str(env_python(env)), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                *requirements], capture_output=True, text=True, timeout=timeout, preexec_fn=nice)
        except (OSError, subprocess.SubprocessError) as exc:
            shutil.rmtree(env, ignore_errors=True)
            raise EnvironmentUnavailable(f"cannot create {env}: {exc}") from None
        if r.returncode != 0:
            shutil.rmtree(env, ignore_errors=True)
            tail = "\n".join((r.stderr or r.stdout).strip().splitlines()[-5:])
            raise EnvironmentUnavailable(f"pip install {' '.join(requirements)} failed (no package index "
                                         f"reachable?):\n{tail}")
        done.write_text(json.dumps({"requirements": list(requirements), "seconds": time.perf_counter() - t0}))
        log(f"  ready in {time.perf_counter() - t0:.0f} s")
    return env


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _site_packages(env: Path) -> Path:
    out = subprocess.run([str(env_python(env)), "-c", "import sysconfig, json; print(json.dumps("
                          "[sysconfig.get_paths()['purelib'], sysconfig.get_config_var('LIBDIR'), "
                          "'%d.%d' % __import__('sys').version_info[:2]]))"],
                         check=True, capture_output=True, text=True).stdout
    return out


class LocalTritonServer:
    """tritonserver from ``env`` (see :func:`ensure_env`) serving ``repository`` on 127.0.0.1.

    Use as a context manager; :attr:`http_url` / :attr:`grpc_url` are ``127.0.0.1:PORT``. The SDK
    (``sdk_root``) is put on the stubs' ``PYTHONPATH``, so the repository's Python models import the
    checkout's code. ``log_path``: where the server's log goes (default: a temporary file)."""

    def __init__(self, repository, env, *, sdk_root=SDK_ROOT, log_path=None, start_timeout: float = 180,
                 extra_args: Sequence[str] = (), threads: int = 1):
        self.repository = Path(repository).resolve()
        self.env = Path(env)
        self.sdk_root = Path(sdk_root)
        self.start_timeout = float(start_timeout)
        self.extra_args = list(extra_args)
        self.threads = int(threads)
        self.http_port = self.grpc_port = None
        self.proc: Optional[subprocess.Popen] = None
        self._tmp = None
        self.log_path = Path(log_path) if log_path else None
        self.returncode = None

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def _prepare(self) -> tuple[list, dict]:
        purelib, libdir, version = json.loads(_site_packages(self.env))
        dist = Path(purelib) / "pytriton" / "tritonserver"
        binary = dist / "bin" / "tritonserver"
        stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not binary.is_file() or not stub.is_file():
            raise ServerError(f"{self.env} has no tritonserver / Python {version} backend stub (nvidia-pytriton)")
        self._tmp = Path(tempfile.mkdtemp(prefix="uniparser-triton-"))
        backends = self._tmp / "backends"
        shutil.copytree(dist / "backends", backends)
        shutil.copy2(stub, backends / "python" / "triton_python_backend_stub")
        if self.log_path is None:
            self.log_path = self._tmp / "tritonserver.log"
        libs = [libdir, str(Path(purelib) / "nvidia_pytriton.libs")]
        env = dict(os.environ)
        # the stub links libpython: on a non-Debian Python (pyenv, conda) it must find the interpreter's own
        env["LD_LIBRARY_PATH"] = ":".join(libs + [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p])
        env["PATH"] = f"{self.env / 'bin'}:{env.get('PATH', '')}"
        env["PYTHONPATH"] = ":".join([str(self.sdk_root)] + [p for p in env.get("PYTHONPATH", "").split(":") if p])
        env["OMP_NUM_THREADS"] = str(self.threads)
        env.pop("VIRTUAL_ENV", None)
        self.http_port, self.grpc_port = free_port(), free_port()
        while self.grpc_port == self.http_port:
            self.grpc_port = free_port()
        cmd = [str(binary), f"--model-repository={self.repository}", f"--backend-directory={backends}",
               "--http-address=127.0.0.1", f"--http-port={self.http_port}",
               "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
               "--allow-metrics=false", "--allow-sagemaker=false", "--allow-vertex-ai=false",
               "--disable-auto-complete-config", "--model-control-mode=none", "--exit-timeout-secs=20",
               "--log-verbose=0", *self.extra_args]
        return cmd, env

    def start(self) -> "LocalTritonServer":
        cmd, env = self._prepare()
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, preexec_fn=None)
        deadline = time.monotonic() + self.start_timeout
        url = f"http://{self.http_url}/v2/health/ready"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._cleanup()
                raise ServerError(f"tritonserver exited with code {self.proc.returncode} while starting:\n"
                                  f"{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        self.stop()
        raise ServerError(f"tritonserver not ready after {self.start_timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def group_pids(self) -> list[int]:
        """Live processes of the server's process group (the server and its Python stubs)."""
        if self.proc is None:
            return []
        pgid, out = self.proc.pid, []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(d.name))
        return out

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (Triton drains in-flight requests and unloads the models, ending their stubs), then
        SIGKILL for whatever of the group is left after ``timeout``. Returns the server's exit code."""
        if self.proc is None:
            return self.returncode
        pgid = self.proc.pid
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                self.proc.wait(10)
        deadline = time.monotonic() + 10
        while self.group_pids() and time.monotonic() < deadline:  # stubs exit after their parent
            time.sleep(0.2)
        if self.group_pids():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        self.returncode = self.proc.returncode
        self._cleanup()
        return self.returncode

    def _cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self._log.close()
        if self._tmp is not None and self.log_path is not None and self._tmp in Path(self.log_path).parents:
            keep = Path(tempfile.gettempdir()) / f"uniparser-tritonserver-{self.proc.pid}.log"
            with contextlib.suppress(OSError):
                shutil.copy2(self.log_path, keep)
                self.log_path = keep
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
