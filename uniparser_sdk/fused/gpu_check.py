"""GPU check of the fused decode (run by scripts/gpu_check.sh on a machine with a CUDA GPU; nothing here runs in the
CPU test suite). Writes one JSON report:

- ``cuda_op``: the fused CUDA op against the reference decode (uniparser_sdk.model.decode.decode_single) on
  structured scenes (mask_thr 0.3 / 0.5 / 0.6, identity / shrink / enlarge / equal-area geometries) and at real
  photo sizes: counts, grid cells, keep and every label identical, scores within 1e-5; max_maps=None returns
  exactly ``count`` maps that own their memory; K above the grid limit is refused;
- ``torch_backend``: whether the torch CUDA backend uses the fused op (a note when it does not yet);
- ``timings``: CUDA-event timings (median / p90 ms) of the decode (fused op vs the reference decode on the GPU) and
  of the network at 1333 x 800 (padded 800 x 1344) for r50 and r50-light, fp32 and fp16 (random weights).

    python -m uniparser_sdk.fused.gpu_check --json gpu_check_out/fused_gpu.json
Exit status 1 when a label differs or the op fails (the timings never fail the check).
"""
from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
import traceback


def _cuda_events_ms(fn, runs: int, warmup: int):
    import torch
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return {"median_ms": round(times[len(times) // 2], 3), "p90_ms": round(times[min(len(times) - 1,
                                                                                   int(0.9 * len(times)))], 3),
            "runs": runs}


def check_cuda_op() -> dict:
    import numpy as np
    import torch

    from ..data.decode_scenes import structured_scene
    from ..model.configs import DecodeConfig
    from ..model.decode import decode_single
    from . import torch_op

    cases = []
    geos = [((90, 120), (90, 120)), ((90, 120), (45, 61)), ((90, 120), (200, 260)), ((70, 101), (33, 47)),
            ((90, 120), (120, 90)), ((90, 120), (60, 190))]
    for seed in range(4):
        for thr in (0.3, 0.5, 0.6):
            for img, ori in geos:
                cases.append((dict(seed=seed), img, ori, thr, 10))
    photo = [((750, 1333), (1080, 1920)), ((384, 576), (704, 1056)), ((800, 1067), (480, 640)),
             ((800, 1067), (3024, 4032))]
    for img, ori in photo:
        hp, wp = -(-img[0] // 32) * 32, -(-img[1] // 32) * 32
        cases.append((dict(seed=7, S=40, D=128, h=hp // 4, w=wp // 4, C=58, persons=4, parts=5), img, ori, 0.5, 100))
    results, failures = [], 0
    for kw, img, ori, thr, k in cases:
        scene = structured_scene(**kw)
        t = [torch.from_numpy(a) for a in scene]
        ref = decode_single(t[0][None], t[1], t[2], t[3], img, ori, DecodeConfig(0.2, thr, 0.3, k))
        dev = [a.cuda() for a in t]
        out = torch_op.decode_cuda(*dev, img, ori, 0.2, thr, 0.3, k)
        maps = out["part_maps"]
        diff = int((maps.cpu().numpy() != ref.part_maps.numpy()).sum()) if maps.shape == ref.part_maps.shape else -1
        ok = (out["count"] == ref.count and diff == 0
              and np.array_equal(out["grid_index"].cpu().numpy(), ref.grid_index.numpy())
              and np.array_equal(out["keep"].cpu().numpy(), ref.keep.numpy())
              and float(np.abs(out["scores"].cpu().numpy() - ref.scores.numpy()).max()) <= 1e-5
              and maps.untyped_storage().nbytes() == ref.count * ori[0] * ori[1])
        failures += 0 if ok else 1
        results.append(dict(scene=kw, img=img, ori=ori, mask_thr=thr, K=k, count=ref.count, label_diff=diff, ok=ok))
    try:
        torch_op.decode_cuda(*[torch.zeros(1, 1).cuda(), torch.zeros(2, 1, 1).cuda(), torch.zeros(2, 1, 1).cuda(),
                               torch.ones(1, 2).cuda()], (4, 4), (4, 4), 0.2, 0.5, 0.3, 65535 * 32 + 1)
        k_cap = "NOT refused"
        failures += 1
    except RuntimeError as e:
        k_cap = "refused: " + str(e).splitlines()[0][:200]
    return dict(cases=len(results), failures=failures, k_cap=k_cap, results=results)


def torch_backend_note() -> dict:
    from ..backends.torch import runner
    src = inspect.getsource(runner)
    uses = "torch_op.decode_cuda" in src or "fused.torch_op" in src.replace(":mod:`uniparser_sdk.fused.torch_op`", "")
    return dict(uses_fused_op=bool(uses), note=None if uses else (
        "the torch CUDA backend (uniparser_sdk/backends/torch/runner.py) does not call the fused CUDA op yet: it runs "
        "decode steps 1-4 as torch ops on the GPU and the shared numpy finishing; wiring it in is open work"))


def time_decode(runs: int, warmup: int) -> dict:
    import torch

    from ..data.decode_scenes import structured_scene
    from ..model.configs import DecodeConfig
    from ..model.decode import decode_single
    from . import torch_op

    scene = structured_scene(11, S=40, D=128, h=200, w=336, C=58, persons=4, parts=5)  # 1333 x 800 -> 800 x 1344
    dev = [torch.from_numpy(a).cuda() for a in scene]
    img = (800, 1333)
    out = {}
    for ori in ((800, 1333), (1080, 1920)):
        key = f"{img[1]}x{img[0]}->{ori[1]}x{ori[0]}"
        out[f"fused_op {key}"] = _cuda_events_ms(
            lambda: torch_op.decode_cuda(*dev, img, ori, 0.2, 0.5, 0.3, 100), runs, warmup)
        out[f"reference_torch_cuda {key}"] = _cuda_events_ms(
            lambda: decode_single(dev[0][None], dev[1], dev[2], dev[3], img, ori, DecodeConfig(0.2, 0.5, 0.3, 100)),
            max(3, runs // 4), 1)
    return out


def time_network(runs: int, warmup: int) -> dict:
    import torch

    from ..model.uniparser import UniParser
    out = {}
    x32 = torch.randn(1, 3, 800, 1344, device="cuda")
    for name in ("r50", "r50-light"):
        model = UniParser(name).cuda().eval()
        for prec in ("fp32", "fp16"):
            key = f"{name} {prec} 1333x800"
            try:
                m = model.half() if prec == "fp16" else model.float()
                x = x32.half() if prec == "fp16" else x32
                with torch.no_grad():
                    out[key] = _cuda_events_ms(lambda: m(x), runs, warmup)
            except Exception as e:  # noqa: BLE001 - report, never fail the check on a timing
                out[key] = {"error": f"{type(e).__name__}: {e}"[:300]}
        del model
        torch.cuda.empty_cache()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m uniparser_sdk.fused.gpu_check", description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args(argv)
    import torch
    report = dict(device=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                  torch=torch.__version__, cuda=torch.version.cuda)
    rc = 0
    for name, fn in (("cuda_op", check_cuda_op), ("torch_backend", torch_backend_note),
                     ("timings_decode", lambda: time_decode(args.runs, args.warmup)),
                     ("timings_network", lambda: time_network(args.runs, args.warmup))):
        t0 = time.perf_counter()
        try:
            report[name] = fn()
        except Exception as e:  # noqa: BLE001 - the report says what broke
            report[name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
            rc = 1 if name == "cuda_op" else rc
        report[name + "_seconds"] = round(time.perf_counter() - t0, 1)
        print(f"{name}: {json.dumps(report[name], default=str)[:400]}", file=sys.stderr)
    if isinstance(report.get("cuda_op"), dict) and report["cuda_op"].get("failures"):
        rc = 1
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2, default=str)
    return rc


if __name__ == "__main__":
    sys.exit(main())
