"""Load benchmark of the served pipeline: N concurrent clients x M requests against a local tritonserver
(the nvidia-pytriton bundle; network as ONNX Runtime in the Python backend), dynamic batching on and
off, beside in-process ``Parser`` on the same images with the same concurrency.

    .venv/bin/python benchmarks/triton_load.py --clients 4 --requests 25 [--protocol grpc] [--json out.json]

Reports requests/s, p50/p99 latency per configuration, the network's executions per batch size (from
Triton's statistics: what the dynamic batcher did), and that no request failed or was lost (every
response counted; each result compared with Parser.predict's on that image). A benchmark, not a test:
numbers depend on the machine and its load. Traffic goes to 127.0.0.1 only; the servers are stopped.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "uniparser_sdk" / "assets" / "samples").glob("*.png"))


def _stats(lat_ms: list, seconds: float) -> dict:
    a = np.asarray(lat_ms, np.float64)
    return {"requests": int(a.size), "seconds": round(seconds, 3), "rps": round(a.size / seconds, 2) if seconds else 0,
            "p50_ms": round(float(np.percentile(a, 50)), 1) if a.size else None,
            "p99_ms": round(float(np.percentile(a, 99)), 1) if a.size else None}


def run_load(url: str, protocol: str, clients: int, requests: int, ref_path: str, out: str) -> None:
    """(inside the server's environment) N threads x M requests; every response checked."""
    from uniparser_sdk.serving.client import TritonParserClient

    ref = json.loads(Path(ref_path).read_text())
    client = TritonParserClient(url, protocol=protocol)
    data = [Path(s).read_bytes() for s in ref["samples"]]
    lat, failures, wrong = [], [], []
    lock = threading.Lock()

    def worker(c):
        for r in range(requests):
            i = (c + r) % len(data)
            t0 = time.perf_counter()
            try:
                res = client.predict(data[i])
            except Exception as exc:  # noqa: BLE001 - counted and reported
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}")
                continue
            ms = (time.perf_counter() - t0) * 1e3
            ok = [round(p.score, 6) for p in res.persons] == ref["scores"][i]
            with lock:
                lat.append(ms)
                if not ok:
                    wrong.append(i)

    client.predict(data[0])  # warm-up (first requests load lazily inside the stubs)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    stats = _stats(lat, seconds)
    stats.update(failed=len(failures), wrong_results=len(wrong), expected=clients * requests,
                 lost=clients * requests - len(lat) - len(failures), failures=failures[:5])
    import tritonclient.http as httpclient

    if protocol == "http":
        st = httpclient.InferenceServerClient(url).get_inference_statistics("uniparser_network")
        batches = st["model_stats"][0].get("batch_stats", [])
        stats["network_batches"] = {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in batches}
    client.close()
    Path(out).write_text(json.dumps(stats))


def parser_load(model: str, clients: int, requests: int) -> dict:
    from uniparser_sdk.runtime import Parser

    with Parser(model, device="cpu") as p:
        p.predict(str(SAMPLES[0]))
        lat = []
        lock = threading.Lock()

        def worker(c):
            for r in range(requests):
                t0 = time.perf_counter()
                p.predict(str(SAMPLES[(c + r) % len(SAMPLES)]))
                with lock:
                    lat.append((time.perf_counter() - t0) * 1e3)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(worker, range(clients)))
        return _stats(lat, time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=25, help="requests per client")
    ap.add_argument("--protocol", choices=("http", "grpc"), default="http")
    ap.add_argument("--max-batch-size", type=int, default=8)
    ap.add_argument("--queue-delay-us", type=int, default=5000)
    ap.add_argument("--cpu-instances", type=int, default=2, help="instances of each Python step")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (server and Parser)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds allowed per configuration")
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--load", nargs=4, metavar=("URL", "PROTOCOL", "REF", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.load:
        url, proto, ref, out = args.load
        run_load(url, proto, args.clients, args.requests, ref, out)
        return 0

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from uniparser_sdk.serving import write_triton_repository
    from uniparser_sdk.serving.local import LocalTritonServer, ensure_env, env_python
    from uniparser_sdk.serving.repository import RepositoryOptions

    env = ensure_env(ROOT / "build")
    work = Path(tempfile.mkdtemp(prefix="uniparser-triton-load-"))
    sys.path.insert(0, str(ROOT / "tests"))
    from test_triton_server import export_default  # the tests' export of the embedded default model

    paths = export_default(work)
    from uniparser_sdk.runtime import Parser

    with Parser(paths["products-v1"], device="cpu", threads=args.threads) as p:
        scores = [[round(x.score, 6) for x in p.predict(str(s)).persons] for s in SAMPLES]
    (work / "ref.json").write_text(json.dumps({"samples": [str(s) for s in SAMPLES], "scores": scores}))

    rows = {"parser (in-process, threads)": parser_load(str(paths["products-v1"]), args.clients, args.requests)}
    for batching in (True, False):
        name = f"triton {args.protocol}, dynamic batching {'on' if batching else 'off'}"
        opts = RepositoryOptions(max_batch_size=args.max_batch_size, dynamic_batching=batching,
                                 max_queue_delay_us=args.queue_delay_us, cpu_instances=args.cpu_instances,
                                 threads=args.threads)
        repo = write_triton_repository(paths["products-v2"], work / f"repo-{batching}", network_backend="python",
                                       options=opts)
        with LocalTritonServer(repo, env, threads=args.threads) as srv:
            url = srv.http_url if args.protocol == "http" else srv.grpc_url
            out = work / f"load-{batching}.json"
            cmd = [str(env_python(env)), __file__, "--clients", str(args.clients), "--requests", str(args.requests),
                   "--load", url, args.protocol, str(work / "ref.json"), str(out)]
            r = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                               timeout=args.timeout)
            if r.returncode != 0:
                print(r.stdout[-2000:], r.stderr[-2000:], file=sys.stderr)
                return 1
            rows[name] = json.loads(out.read_text())
    print(f"\n{args.clients} clients x {args.requests} requests, {len(SAMPLES)} bundled samples "
          f"({SAMPLES[0].name} ...), cpu count {os.cpu_count()}, load avg {os.getloadavg()[0]:.1f}")
    print(f"{'configuration':<42} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8}  failed/lost/wrong  network batches")
    for name, s in rows.items():
        extra = (f"  {s.get('failed', 0)}/{s.get('lost', 0)}/{s.get('wrong_results', 0)}"
                 f"{'':14}{s.get('network_batches', '')}" if "expected" in s else "")
        print(f"{name:<42} {s['rps']:>7} {s['p50_ms']:>8} {s['p99_ms']:>8}{extra}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    ok = all(s.get("failed", 0) == 0 and s.get("lost", 0) == 0 and s.get("wrong_results", 0) == 0 for s in rows.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
