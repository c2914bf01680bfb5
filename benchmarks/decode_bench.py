"""Decode benchmark: the fused C++ CPU twin vs the PyTorch reference decodes (and the CUDA op on a GPU).

Same inputs for every method: a synthetic scene at the size of a 1333x800 image (resized 800x1333, padded
800x1344, so stride-4 features h=200, w=336), D=128-dim features, C=58 categories (MHPv2), S=40 grid,
3 persons with several parts each, K=100 slots. Methods:

  cpu-twin        uniparser_sdk.fused.decode_cpu (C++, OpenMP): fused, count-only, box-restricted
  torch-single    uniparser_sdk.model.decode.decode_single (the specification; K-slot products,
                  per-person separable finishing)
  torch-official  uniparser_sdk.model.decode.decode_official_style (per person, full C x H x W upsample)
  cuda-op         uniparser_sdk.fused.torch_op.decode_cuda (with --device cuda, when available)

Median (and p90) milliseconds over --runs runs after --warmup runs; every method's label maps are compared with
torch-single's. Timings are a benchmark, not a test. Example:

  python benchmarks/decode_bench.py --runs 10
  python benchmarks/decode_bench.py --device cuda --json $OUT/decode_bench.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time


def _bench_radius_bounds(h, w):
    return (h // 6, h // 3), (w // 10, w // 5)


def make_scene(seed=0, S=40, D=128, h=200, w=336, C=58, persons=3, parts=8):
    """Synthetic features in which persons and parts survive the decode
    (:func:`uniparser_sdk.data.decode_scenes.structured_scene`, with this benchmark's person sizes)."""
    from uniparser_sdk.data.decode_scenes import structured_scene

    return structured_scene(seed, S=S, D=D, h=h, w=w, C=C, persons=persons, parts=parts,
                            radius_bounds=_bench_radius_bounds)


def timeit(fn, runs, warmup, sync=None):
    out = None
    for _ in range(warmup):
        out = fn()
        if sync:
            sync()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        if sync:
            sync()
        times.append((time.perf_counter() - t0) * 1000.0)
    times.sort()
    p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
    return statistics.median(times), p90, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--runs", type=int, default=10, help="timed runs per method (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    ap.add_argument("--official-runs", type=int, default=3,
                    help="timed runs of the slow official-style decode (default 3; 0 skips it)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="cuda: also time the CUDA op (and the torch decodes on the GPU)")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for torch and the CPU twin (sets OMP_NUM_THREADS; default: library defaults)")
    ap.add_argument("--image", type=int, nargs=2, default=(1333, 800), metavar=("W", "H"),
                    help="original image size (default 1333 800)")
    ap.add_argument("--persons", type=int, default=3)
    ap.add_argument("--classes", type=int, default=58, help="C = num_classes - 1 (default 58, MHPv2)")
    ap.add_argument("--dim", type=int, default=128, help="feature dimension D (default 128)")
    ap.add_argument("--max-instances", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)

    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from uniparser_sdk.fused import cpu as kcpu
    from uniparser_sdk.model.configs import DecodeConfig
    from uniparser_sdk.model.decode import decode_official_style, decode_single

    ow, oh = args.image
    scale = min(1333 / max(oh, ow), 800 / min(oh, ow))
    ih, iw = int(round(oh * scale)), int(round(ow * scale))
    ph, pw = -(-ih // 32) * 32, -(-iw // 32) * 32
    h, w = ph // 4, pw // 4
    logits, ins, sem, seg = make_scene(args.seed, D=args.dim, h=h, w=w, C=args.classes, persons=args.persons)
    cfg = DecodeConfig(ctr_score=0.2, mask_thr=0.5, cate_score_thr=0.3, max_instances=args.max_instances)
    img, ori = (ih, iw), (oh, ow)
    print(f"scene: original {ow}x{oh}, resized {iw}x{ih}, padded {pw}x{ph}, features D={args.dim} h={h} w={w}, "
          f"C={args.classes}, S=40, K={args.max_instances}, persons={args.persons}")
    print(f"host: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), CPU twin OpenMP={kcpu.has_openmp()}")

    results = []
    tensors = [torch.from_numpy(a) for a in (logits, ins, sem, seg)]

    def record(name, device, med, p90, maps, ref_maps):
        diff = None if ref_maps is None else int((np.asarray(maps) != ref_maps).sum())
        results.append(dict(method=name, device=device, median_ms=round(med, 3), p90_ms=round(p90, 3),
                            persons=int(len(maps)), label_pixels=int((np.asarray(maps) > 0).sum()),
                            pixels_differing_from_torch_single=diff))

    med, p90, ref = timeit(lambda: decode_single(tensors[0][None], *tensors[1:], img, ori, cfg), args.runs, args.warmup)
    ref_maps = ref.part_maps.numpy()
    record("torch-single", "cpu", med, p90, ref_maps, ref_maps)

    med, p90, out = timeit(lambda: kcpu.decode_cpu(logits, ins, sem, seg, img, ori, cfg.ctr_score, cfg.mask_thr,
                                                   cfg.cate_score_thr, cfg.max_instances), args.runs, args.warmup)
    record("cpu-twin", "cpu", med, p90, out["part_maps"], ref_maps)

    if args.official_runs > 0:
        med, p90, off = timeit(lambda: decode_official_style(tensors[0][None], *tensors[1:], img, ori, cfg),
                               args.official_runs, min(args.warmup, 1))
        record("torch-official", "cpu", med, p90, off.numpy(), ref_maps)

    if args.device == "cuda":
        if not torch.cuda.is_available():
            print("--device cuda: no CUDA device, GPU rows skipped", file=sys.stderr)
        else:
            dev = [t.cuda() for t in tensors]
            sync = torch.cuda.synchronize
            med, p90, g = timeit(lambda: decode_single(dev[0][None], *dev[1:], img, ori, cfg), args.runs, args.warmup,
                                 sync)
            record("torch-single", "cuda", med, p90, g.part_maps.cpu().numpy(), ref_maps)
            if args.official_runs > 0:
                med, p90, g = timeit(lambda: decode_official_style(dev[0][None], *dev[1:], img, ori, cfg),
                                     args.official_runs, min(args.warmup, 1), sync)
                record("torch-official", "cuda", med, p90, g.cpu().numpy(), ref_maps)
            from uniparser_sdk.fused import torch_op
            if torch_op.is_available():
                torch_op.load()
                med, p90, g = timeit(lambda: torch_op.decode_cuda(*dev, img, ori, cfg.ctr_score, cfg.mask_thr,
                                                                  cfg.cate_score_thr, cfg.max_instances),
                                     args.runs, args.warmup, sync)
                record("cuda-op", "cuda", med, p90, g["part_maps"].cpu().numpy(), ref_maps)
                med, p90, g = timeit(lambda: torch_op.decode_cuda(*dev, img, ori, cfg.ctr_score, cfg.mask_thr,
                                                                  cfg.cate_score_thr, cfg.max_instances,
                                                                  max_maps=cfg.max_instances),
                                     args.runs, args.warmup, sync)
                record("cuda-op (K maps)", "cuda", med, p90, g["part_maps"][: ref.count].cpu().numpy(), ref_maps)
            else:
                print("CUDA op unavailable (needs nvcc / CUDA_HOME): cuda-op row skipped", file=sys.stderr)

    base = next(r["median_ms"] for r in results if r["method"] == "torch-single" and r["device"] == "cpu")
    print()
    print(f"{'method':<18}{'device':<8}{'median ms':>11}{'p90 ms':>10}{'vs torch-single':>17}{'persons':>9}"
          f"{'diff px':>9}")
    for r in results:
        speed = base / r["median_ms"] if r["median_ms"] > 0 else float("inf")
        diff = "-" if r["pixels_differing_from_torch_single"] is None else r["pixels_differing_from_torch_single"]
        print(f"{r['method']:<18}{r['device']:<8}{r['median_ms']:>11.2f}{r['p90_ms']:>10.2f}{speed:>16.2f}x"
              f"{r['persons']:>9}{diff:>9}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(scene=dict(image=[ow, oh], resized=[iw, ih], features=[args.dim, h, w],
                                      classes=args.classes, persons=args.persons, max_instances=args.max_instances),
                           torch=torch.__version__, threads=torch.get_num_threads(), cpus=os.cpu_count(),
                           results=results), f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
