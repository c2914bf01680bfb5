"""Issue 17 item 6: a user who pip-installs the SDK can build the kernels. The wheel is built from this checkout
(`pip wheel --no-deps`), installed into a fresh venv outside the checkout, and the CPU twin is built from the
sources the wheel ships and run there (the checkout is not on sys.path; numpy comes from the dev venv through a
.pth line; the SDK itself comes only from the wheel)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

from uniparser_sdk.fused import build as kbuild

REPO = Path(__file__).resolve().parents[2]


def _sources(repo: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=repo,
                         capture_output=True, text=True, check=True).stdout.split("\n")
    return [p for p in out if p and (repo / p).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout")
    src = tmp_path_factory.mktemp("src")
    for rel in _sources(REPO):  # a copy: pip builds in-tree and must not write into the shared checkout
        if rel.startswith(("tests/", "docs/")) or rel.endswith(".pth"):
            continue
        dst = src / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dst)
    out = tmp_path_factory.mktemp("wheel")
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(src),
                          "-w", str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    (whl,) = out.glob("uniparser_sdk-*.whl")
    return whl


def test_wheel_ships_every_kernel_source(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for rel in kbuild.ALL_SOURCES:
        assert f"uniparser_sdk/fused/kernel_sources/{rel}" in names, rel
    assert not [n for n in names if n.endswith((".so", ".o"))]  # no build outputs


def test_wheel_builds_and_runs_the_cpu_twin_in_a_fresh_venv(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    res = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                          str(wheel)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    # numpy (and nothing of the SDK) from the dev venv, AFTER the fresh venv's own site-packages
    dev_site = sysconfig.get_paths()["purelib"]
    (site / "zz_dev_site.pth").write_text(dev_site + "\n")
    cache = tmp_path / "cache"
    site.chmod(0o555)  # site-packages read-only, like a system install: outputs must go to the user cache
    try:
        script = textwrap.dedent("""
            import json, sys
            import numpy as np
            import uniparser_sdk
            from uniparser_sdk.fused import build
            from uniparser_sdk.fused.cpu import decode_cpu
            from uniparser_sdk.data.decode_scenes import structured_scene
            assert all(p.rstrip("/") != "/work/main" for p in sys.path), sys.path
            lib = build.build_cpu()
            out = decode_cpu(*structured_scene(0), (90, 120), (90, 120), 0.2, 0.5, 0.3, 10)
            print(json.dumps(dict(sdk=uniparser_sdk.__file__, src=str(build.sources_dir()), lib=str(lib),
                                  count=out["count"], labelled=int((out["part_maps"] > 0).sum()))))
        """).replace("/work/main", str(REPO))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("UNIPARSER_", "PYTHON"))}
        env.update(XDG_CACHE_HOME=str(cache), HOME=str(tmp_path))
        res = subprocess.run([str(py), "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=300)
        assert res.returncode == 0, res.stderr
        info = __import__("json").loads(res.stdout.strip().splitlines()[-1])
        assert info["sdk"].startswith(str(site)), info
        assert info["src"] == str(site / "uniparser_sdk" / "fused" / "kernel_sources")
        assert info["lib"].startswith(str(cache / "uniparser_sdk")), info  # not into read-only site-packages
        assert info["count"] >= 1 and info["labelled"] > 1000
        # the one command a user runs: everything this machine can build, the rest reported with the reason
        res = subprocess.run([str(py), "-m", "uniparser_sdk.fused.build", "--all", "--arch", "75"], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        lines = dict(ln.split(None, 1) for ln in res.stdout.splitlines() if ln.strip())
        assert lines["cpu"] == info["lib"]
        assert lines["torch-op"].startswith("skipped:")  # no torch in the fresh venv / no GPU here
        assert lines["trt"].startswith("skipped:") and "TensorRT" in lines["trt"]
    finally:
        site.chmod(0o755)
