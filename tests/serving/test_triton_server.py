"""End to end against a real tritonserver (the one in the nvidia-pytriton wheel, Python backend only).

The embedded default model is exported with the SDK's exporter (products-v2 for the server, products-v1
for the in-process reference), the repository is written with the network as a Python-backend ONNX
Runtime model (the bundled server has no onnxruntime backend; same inputs/outputs as the
onnxruntime_onnx config), the server is started on 127.0.0.1 on free ports, the bundled samples are
sent over HTTP and gRPC concurrently (files and raw pixels, model and overridden thresholds) and every
result must equal ``Parser.predict``'s exactly; bad requests get clear errors and the server keeps
serving; the server and all its stubs are gone afterwards.

The server's environment (numpy<2 for the stub) is a separate virtual environment, created once and
cached under build/ (uniparser_sdk.serving.local.ensure_env). Without a package index the test is
skipped, except under CI (CI=true), where it must run.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from uniparser_sdk.serving import write_triton_repository  # noqa: E402
from uniparser_sdk.serving.local import (EnvironmentUnavailable, LocalTritonServer, ensure_env,  # noqa: E402
                                         env_python)
from uniparser_sdk.serving.repository import RepositoryOptions  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "uniparser_sdk" / "assets" / "samples").glob("*.png"))
DRIVER = ROOT / "tests" / "serving" / "triton_driver.py"
OVERRIDE = (0.35, 0.6, 0.3)  # per-request thresholds, other than the model's


def server_env():
    try:
        return ensure_env(ROOT / "build", log=lambda m: print(m, flush=True))
    except EnvironmentUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"cannot create the tritonserver test environment (needs PyPI): {exc}")


def export_default(out_dir: Path, layouts=("products-v1", "products-v2")) -> dict:
    """The embedded default model through the SDK's exporter at a small trace size."""
    from uniparser_sdk.export import onnx_export as ox
    from uniparser_sdk.model.checkpoint import load_model

    model, info = load_model(ROOT / "uniparser_sdk" / "assets" / "default_model.pth")
    paths = {}
    for layout in layouts:
        path = out_dir / f"default-{layout}.onnx"
        ox.export_onnx(model, path, ox.build_meta(model, info, layout=layout), sample_hw=(96, 128), log=lambda m: None)
        paths[layout] = path
    return paths


def run_driver(env, *args, timeout=240) -> dict:
    out = Path(args[-1])
    r = subprocess.run([str(env_python(env)), str(DRIVER), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=str(ROOT))
    assert r.returncode == 0, f"driver failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    env = server_env()
    d = tmp_path_factory.mktemp("triton")
    paths = export_default(d)
    repo = write_triton_repository(paths["products-v2"], d / "repo", network_backend="python",
                                   options=RepositoryOptions(max_batch_size=4, cpu_instances=1, threads=1))
    return env, d, paths, repo


def test_served_results_equal_parser_predict(served):
    from uniparser_sdk.runtime import Parser

    env, d, paths, repo = served
    keys = dict(zip(("ctr_score", "mask_thr", "cate_score_thr"), OVERRIDE))
    ref = {"samples": np.array([str(s) for s in SAMPLES]), "override": np.array(OVERRIDE, np.float32)}
    with Parser(paths["products-v1"], device="cpu") as parser:
        ref["classes"] = np.array(parser.classes)
        for i, s in enumerate(SAMPLES):
            for key, opts in ((f"{i}", {}), (f"{i}_override", keys)):
                r = parser.predict(str(s), **opts)
                ref[f"scores_{key}"] = np.array([p.score for p in r.persons], np.float64)
                ref[f"maps_{key}"] = (np.stack([p.parts for p in r.persons]) if r.persons
                                      else np.zeros((0,) + r.image_shape, np.uint8))
    assert sum(len(ref[f"scores_{i}"]) for i in range(len(SAMPLES))) > 0, "comparison would be vacuous"
    assert any(len(ref[f"scores_{i}"]) != len(ref[f"scores_{i}_override"]) or
               not np.array_equal(ref[f"maps_{i}"], ref[f"maps_{i}_override"]) for i in range(len(SAMPLES))), \
        "the threshold override must change some result"
    np.savez(d / "ref.npz", **ref)

    t0 = time.monotonic()
    server = LocalTritonServer(repo, env, log_path=d / "tritonserver.log", start_timeout=150)
    server.start()
    try:
        assert server.http_url.startswith("127.0.0.1:") and server.grpc_url.startswith("127.0.0.1:")
        assert len(server.group_pids()) >= 4  # the server and one stub per Python model instance
        report = run_driver(env, "clients", server.http_url, server.grpc_url, d / "ref.npz", d / "report.json")
    finally:
        code = server.stop()
        pids = server.group_pids()
    assert pids == [], f"processes left behind: {pids}"
    assert code == 0, f"tritonserver exited with {code}:\n{server.log_tail()}"
    assert time.monotonic() - t0 < 240

    assert report["errors"] == []
    assert report["requests"] == 2 * 3 * len(SAMPLES)
    assert report["mismatches"] == [], report["mismatches"]
    assert sum(report["persons"]) > 0
    bad = report["bad"]
    assert "not an image" in bad["not_an_image"] and "not an image" in bad["grpc_not_an_image"]
    assert "'FP32'" in bad["wrong_dtype"] and "expects 'UINT8'" in bad["wrong_dtype"], bad["wrong_dtype"]
    assert "ctr_score" in bad["bad_threshold"] and "[0.0, 1.0]" in bad["bad_threshold"]
    assert "exactly one of" in bad["no_image"]
    assert report["after_bad_ok"] and report["server_live"]
