"""Resident memory of a Parser over many different input sizes: ONNX Runtime's memory arena on vs off.

    python -m uniparser_sdk.benchmarks.soak_memory [MODEL.onnx] [--images 60] [--scale 800 480] [--threads N]

Each mode runs in a fresh subprocess: open the Parser (``low_memory=False``: ONNX Runtime defaults, CPU
memory arena + memory patterns; ``low_memory=True``: both off), one warm-up image, then ``--images``
images of random sizes (seeded; height and width 160..1400, so the padded network input changes
nearly every call). It prints VmRSS after the warm-up, the largest VmRSS seen, VmRSS at the end and
the mean ms per image, and the MiB held by the finishing's per-geometry interpolation cache
(``--clear-geometry-cache`` adds two runs that empty it after every image, to isolate ONNX Runtime's
share). Without MODEL the bundled default model is exported to a temporary ONNX file
first (needs torch). A script, not a test: the numbers depend on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _geometry_cache():
    from uniparser_sdk.runtime import finish

    return getattr(finish, "_cached_geometry", None)


def _geometry_cache_mib() -> float:
    """Bytes held by the finishing's per-geometry interpolation cache (runtime/finish.py)."""
    import gc

    import numpy as np

    from uniparser_sdk.runtime.finish import FinishGeometry

    total = 0
    for obj in gc.get_objects():
        if isinstance(obj, FinishGeometry):
            total += sum(v.nbytes for v in vars(obj).values() if isinstance(v, np.ndarray))
    return total / 2 ** 20


def _clear_geometry_cache() -> None:
    cache = _geometry_cache()
    if cache is not None and hasattr(cache, "cache_clear"):
        cache.cache_clear()


def _child(model: str, low_memory: bool, n: int, scale, threads, seed: int, clear_cache: bool = False) -> dict:
    import numpy as np

    from uniparser_sdk.runtime import Parser

    rng = np.random.default_rng(seed)
    sizes = [(int(rng.integers(160, 1401)), int(rng.integers(160, 1401))) for _ in range(n)]
    base = np.random.default_rng(0).integers(0, 256, (1400, 1400, 3), dtype=np.uint8)
    with Parser(model, device="cpu", scale=scale, threads=threads, low_memory=low_memory) as parser:
        parser.predict(base[:480, :640])
        start = peak = _rss_mib()
        t0 = time.perf_counter()
        for h, w in sizes:
            parser.predict(base[:h, :w])
            if clear_cache:
                _clear_geometry_cache()
            peak = max(peak, _rss_mib())
        ms = (time.perf_counter() - t0) * 1e3 / n
        end = _rss_mib()
    return {"low_memory": low_memory, "clear_cache": clear_cache, "geometry_cache_mib": round(_geometry_cache_mib(), 1),
            "images": n, "rss_start_mib": round(start, 1), "rss_peak_mib": round(peak, 1),
            "rss_end_mib": round(end, 1), "ms_per_image": round(ms, 1), "threads": parser.threads}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="soak_memory", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", help=".onnx model (default: export the bundled default model)")
    ap.add_argument("--images", type=int, default=60)
    ap.add_argument("--scale", type=int, nargs=2, default=(800, 480), metavar=("LONG", "SHORT"))
    ap.add_argument("--threads", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clear-geometry-cache", action="store_true",
                    help="also run both modes emptying the finishing's per-geometry cache after every image "
                         "(isolates ONNX Runtime's share of the growth)")
    ap.add_argument("--child", choices=("arena", "low"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.model, args.child == "low", args.images, tuple(args.scale), args.threads,
                                args.seed, args.clear_geometry_cache)))
        return 0
    tmp = None
    model = args.model
    if model is None:
        from pathlib import Path

        from uniparser_sdk.export.onnx_export import build_meta, export_onnx
        from uniparser_sdk.model.checkpoint import load_model

        ckpt = Path(__file__).resolve().parents[1] / "uniparser_sdk" / "assets" / "default_model.pth"
        if not ckpt.is_file():  # installed layout: benchmarks/ lives inside uniparser_sdk/
            ckpt = Path(__file__).resolve().parent.parent / "assets" / "default_model.pth"
        tmp = tempfile.TemporaryDirectory()
        model = os.path.join(tmp.name, "default.onnx")
        net, info = load_model(ckpt)
        export_onnx(net, model, build_meta(net, info), sample_hw=(128, 160), parity=False, simplify=False,
                    log=lambda *_: None)
    rows = []
    runs = [(m, False) for m in ("arena", "low")]
    if args.clear_geometry_cache:
        runs += [(m, True) for m in ("arena", "low")]
    for mode, clear in runs:
        cmd = [sys.executable, "-m", "uniparser_sdk.benchmarks.soak_memory", model, "--child", mode,
               "--images", str(args.images), "--scale", *map(str, args.scale), "--seed", str(args.seed)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        if clear:
            cmd += ["--clear-geometry-cache"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for r in rows:
        label = "arena off (low_memory=True) " if r["low_memory"] else "arena on  (default)         "
        print(f"{label} RSS {r['rss_start_mib']:7.1f} -> {r['rss_end_mib']:7.1f} MiB (peak {r['rss_peak_mib']:.1f}, "
              f"+{r['rss_end_mib'] - r['rss_start_mib']:.1f}) over {r['images']} sizes, {r['ms_per_image']:.1f} ms/img, "
              f"{r['threads']} thread(s); finish geometry cache "
              + ("emptied after each image" if r["clear_cache"] else f"{r['geometry_cache_mib']:.1f} MiB at the end"))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
