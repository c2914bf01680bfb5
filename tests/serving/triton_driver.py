"""Run by the Triton tests inside the tritonserver environment (numpy<2, tritonclient; see
uniparser_sdk/serving/local.py), not collected by pytest. Writes a JSON report the test asserts on.

    python tests/serving/triton_driver.py configs REPO OUT.json
        every config.pbtxt parsed as Triton's ModelConfig protobuf (tritonclient.grpc.model_config_pb2)
    python tests/serving/triton_driver.py clients HTTP_URL GRPC_URL REF.npz OUT.json
        the bundled samples over HTTP and gRPC, concurrently, as files and as raw pixels, compared with
        Parser.predict's results in REF.npz; bad requests; the server still serving after them
"""
from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def configs(repo: str, out: str) -> None:
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    report = {}
    for path in sorted(Path(repo).glob("*/config.pbtxt")):
        cfg = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
        report[path.parent.name] = json_format.MessageToDict(cfg, preserving_proto_field_name=True)
    Path(out).write_text(json.dumps(report, indent=1))


def _same(result, scores, maps) -> bool:
    return (result.num_persons == len(scores)
            and all(p.score == float(s) and np.array_equal(p.parts, m) for p, s, m in zip(result.persons, scores, maps)))


def clients(http_url: str, grpc_url: str, ref_path: str, out: str) -> None:
    import tritonclient.http as httpclient

    from uniparser_sdk.io_utils import imread
    from uniparser_sdk.serving.client import TritonParserClient, TritonRequestError

    ref = np.load(ref_path, allow_pickle=False)
    samples = [str(s) for s in ref["samples"]]
    override = {k: float(v) for k, v in zip(("ctr_score", "mask_thr", "cate_score_thr"), ref["override"])}
    report = {"mismatches": [], "errors": [], "requests": 0, "bad": {}, "persons": []}
    cl = {"http": TritonParserClient(http_url, "http"), "grpc": TritonParserClient(grpc_url, "grpc")}
    pixels = [imread(s) for s in samples]

    jobs = []
    for proto in ("http", "grpc"):
        for i in range(len(samples)):
            jobs.append((proto, "file", i, False))
            jobs.append((proto, "pixels", i, False))
            jobs.append((proto, "file", i, True))

    def run(job):
        proto, mode, i, with_override = job
        t0 = time.perf_counter()
        res = cl[proto].predict(samples[i] if mode == "file" else pixels[i], **(override if with_override else {}))
        key = f"{i}_override" if with_override else f"{i}"
        ok = _same(res, ref[f"scores_{key}"], ref[f"maps_{key}"])
        return job, ok, res.num_persons, time.perf_counter() - t0, res.classes == tuple(ref["classes"])

    t0 = time.perf_counter()
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(run, j) for j in jobs]
        for f in futures:
            try:
                job, ok, n, _, classes_ok = f.result(timeout=120)
            except Exception as exc:  # noqa: BLE001 - reported, the test fails on it
                report["errors"].append(f"{type(exc).__name__}: {exc}")
                continue
            report["requests"] += 1
            report["persons"].append(n)
            if not ok or not classes_ok:
                report["mismatches"].append(list(map(str, job)))
    report["seconds"] = time.perf_counter() - t0

    # bad requests: each gets an error naming the problem, and the server goes on serving
    def expect_error(name, call):
        try:
            call()
            report["bad"][name] = None
        except (TritonRequestError, ValueError, TypeError) as exc:
            report["bad"][name] = str(exc)

    c = cl["http"]
    expect_error("not_an_image", lambda: c.predict(b"this is not an image file"))
    expect_error("wrong_dtype", lambda: c.predict(pixels[0].astype(np.float32)))
    expect_error("grpc_not_an_image", lambda: cl["grpc"].predict(b"\x89PNG broken"))
    expect_error("bad_threshold", lambda: _raw_threshold(httpclient, http_url, samples[0]))
    expect_error("no_image", lambda: _no_image(httpclient, http_url))
    after = c.predict(samples[0])
    report["after_bad_ok"] = _same(after, ref["scores_0"], ref["maps_0"])
    report["server_live"] = bool(httpclient.InferenceServerClient(http_url).is_server_live())
    for x in cl.values():
        x.close()
    Path(out).write_text(json.dumps(report, indent=1))


def _raw_threshold(httpclient, url, sample):
    """thresholds out of range, sent with tritonclient directly (the SDK client refuses nothing here)."""
    from tritonclient.utils import InferenceServerException

    from uniparser_sdk.serving.client import TritonRequestError

    c = httpclient.InferenceServerClient(url)
    a = httpclient.InferInput("image_bytes", [1, 1], "BYTES")
    a.set_data_from_numpy(np.array([[Path(sample).read_bytes()]], dtype=np.object_))
    t = httpclient.InferInput("thresholds", [1, 3], "FP32")
    t.set_data_from_numpy(np.array([[1.5, 0.5, 0.3]], np.float32))
    try:
        c.infer("uniparser", [a, t])
    except InferenceServerException as exc:
        raise TritonRequestError(exc.message()) from None


def _no_image(httpclient, url):
    from tritonclient.utils import InferenceServerException

    from uniparser_sdk.serving.client import TritonRequestError

    c = httpclient.InferenceServerClient(url)
    t = httpclient.InferInput("thresholds", [1, 3], "FP32")
    t.set_data_from_numpy(np.array([[0.2, 0.5, 0.3]], np.float32))
    try:
        c.infer("uniparser", [t])
    except InferenceServerException as exc:
        raise TritonRequestError(exc.message()) from None


if __name__ == "__main__":
    cmd, *rest = sys.argv[1:]
    {"configs": configs, "clients": clients}[cmd](*rest)
