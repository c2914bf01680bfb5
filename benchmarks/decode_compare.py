"""The complete decode (steps 1-5), implementation against implementation, on the same inputs.

Methods (each gives the label maps of the persons it found; the first one is the reference every
other one is compared with, pixel by pixel):

  official-style per-person loop   uniparser_sdk.model.decode.decode_official_style (each person's
                                   C x h x w stack upsampled to full size, then argmax)
  reference decode_single          uniparser_sdk.model.decode.decode_single (the specification)
  SDK products-v1 split            ONNX Runtime steps 1-4 (the decode cut from the products graph) +
                                   the numpy finishing: what Parser runs for .onnx models
  numpy raw-v1 path                uniparser_sdk.runtime.finish.finish_raw (numpy steps 1-5)
  fused CPU twin (C++)             uniparser_sdk.fused.cpu.decode_cpu
  fused CUDA op                    uniparser_sdk.fused.torch_op.decode_cuda (on a GPU)

``uniparser-bench`` runs them on a benchmark model's network outputs (:func:`compare_decodes`); run
alone, this module times them on a synthetic scene the size of a 1333x800 image
(:func:`uniparser_sdk.data.decode_scenes.structured_scene`: D=128, C=58, S=40, 3 persons, K=100):

  python -m uniparser_sdk.benchmarks.decode_compare --runs 10
  python -m uniparser_sdk.benchmarks.decode_compare --device cuda --json decode.json

Timings are a benchmark, never a test.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Callable, Optional

import numpy as np

from .timing import decode_feed, stats

__all__ = ["decode_methods", "run_methods", "compare_decodes", "main"]


def _stack(res, ori_shape) -> np.ndarray:
    return np.stack([q.parts for q in res]) if len(res) else np.zeros((0,) + tuple(ori_shape), np.uint8)


def decode_methods(c, ins, sem, seg, meta, dcfg: Callable, k: int, *, decode_onnx=None,
                   threads: Optional[int] = None, cuda: bool = False, official: bool = True):
    """-> ([(name, how, fn(i) -> label maps (n, H, W))], {skipped name: reason}). ``dcfg(i)``: the
    DecodeConfig of call ``i``; ``c`` (1, S, S), ``ins``/``sem`` (D, h, w), ``seg`` (C, D) numpy;
    ``meta``: the image's :class:`~uniparser_sdk.runtime.geometry.ImageMeta`."""
    import torch

    from uniparser_sdk.classes import classes_for
    from uniparser_sdk.model.decode import decode_official_style, decode_single
    from uniparser_sdk.runtime.finish import finish_products, finish_raw

    c = np.asarray(c, np.float32).reshape(1, *np.shape(c)[-2:])
    img_shape, ori_shape = tuple(meta.img_shape), tuple(meta.ori_shape)
    classes = classes_for(int(seg.shape[0]) + 1)
    tc, ti, ts, tk = (torch.from_numpy(np.ascontiguousarray(a)) for a in (c, ins, sem, seg))
    methods, skipped = [], {}
    if official:
        methods.append(("official-style per-person loop (torch)",
                        "each person's C x h x w stack upsampled to full size, then argmax",
                        lambda i: decode_official_style(tc, ti, ts, tk, img_shape, ori_shape, dcfg(i)).numpy()))
    methods.append(("reference decode_single (torch)",
                    "K-slot products, per-person separable finishing inside the mask box",
                    lambda i: decode_single(tc, ti, ts, tk, img_shape, ori_shape, dcfg(i)).part_maps.numpy()))
    if decode_onnx:
        import onnxruntime as ort

        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = int(threads)
        sess = ort.InferenceSession(decode_onnx, so, providers=["CPUExecutionProvider"])
        feed, params = decode_feed(sess, (c, ins, sem))
        names = [o.name for o in sess.get_outputs()]

        def sdk_split(i):
            d = dcfg(i)
            p = params({"ctr_score": d.ctr_score, "mask_thr": d.mask_thr, "cate_score_thr": d.cate_score_thr})
            outs = dict(zip(names, sess.run(None, {**feed, "decode_params": p})))
            return _stack(finish_products(outs, meta, classes, 0, mask_thr=d.mask_thr), ori_shape)

        methods.append(("SDK products-v1 split (onnxruntime steps 1-4 + numpy finishing)",
                        "what Parser runs for .onnx models", sdk_split))

    def numpy_raw(i):
        d = dcfg(i)
        res = finish_raw({"center_logits": c[None], "ins_feats": ins[None], "sem_feats": sem[None]}, meta,
                         classes, {"ctr_score": d.ctr_score, "mask_thr": d.mask_thr,
                                   "cate_score_thr": d.cate_score_thr, "max_instances": k}, seg_kernels=seg)
        return _stack(res, ori_shape)

    methods.append(("numpy raw-v1 path (numpy steps 1-5)", "uniparser_sdk.runtime.finish.finish_raw", numpy_raw))
    try:
        from uniparser_sdk.fused import cpu as kcpu

        kcpu.load_library()

        def twin(i):
            d = dcfg(i)
            return kcpu.decode_cpu(c, ins, sem, seg, img_shape, ori_shape, d.ctr_score, d.mask_thr,
                                   d.cate_score_thr, k)["part_maps"]

        methods.append(("fused CPU twin (C++, uniparser_sdk.fused)", "fused, count-only, box-restricted", twin))
    except Exception as exc:
        skipped["fused CPU twin (C++)"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
    if cuda and torch.cuda.is_available():
        try:
            from uniparser_sdk.fused import torch_op

            if torch_op.is_available():
                torch_op.load()
                dev = [x.cuda() for x in (tc, ti, ts, tk)]

                def cuda_op(i):
                    d = dcfg(i)
                    out = torch_op.decode_cuda(*dev, img_shape, ori_shape, d.ctr_score, d.mask_thr,
                                               d.cate_score_thr, k)
                    torch.cuda.synchronize()
                    return out["part_maps"].cpu().numpy()

                methods.append(("fused CUDA op (GPU)", "uniparser_sdk.fused.torch_op", cuda_op))
            else:
                skipped["fused CUDA op"] = "torch_op unavailable (needs nvcc / CUDA_HOME)"
        except Exception as exc:
            skipped["fused CUDA op"] = f"{type(exc).__name__}: {exc}"[:200]
    return methods, skipped


def run_methods(methods, iters: int, warm: int, n_img: int, skipped: dict) -> list[dict]:
    """Time every method (``warm`` untimed calls, then ``iters``; call i uses image i % n_img) and
    count the label pixels of call 0 that differ from the first method's."""
    ref_maps, results = None, []
    for name, how, fn in methods:
        times, persons, maps0 = [], [], None
        try:
            for it in range(warm + iters):
                i = it % n_img if it < warm else (it - warm) % n_img
                t0 = time.perf_counter()
                maps = fn(i)
                dt = (time.perf_counter() - t0) * 1e3
                if i == 0 and maps0 is None:
                    maps0 = np.asarray(maps)
                if it >= warm:
                    times.append(dt)
                    persons.append(int(np.asarray(maps).shape[0]))
        except Exception as exc:
            skipped[name] = f"{type(exc).__name__}: {exc}"[:200]
            continue
        if ref_maps is None:
            ref_maps = maps0
        diff = None
        if maps0 is not None and ref_maps is not None:
            m = maps0[: ref_maps.shape[0]]
            diff = int((m != ref_maps[: m.shape[0]]).sum()) if m.shape[1:] == ref_maps.shape[1:] else None
        results.append({"method": name, "how": how, "ms": stats(times),
                        "persons_per_call": round(statistics.fmean(persons), 3) if persons else None,
                        "pixels_differing_from_official": diff})
    off = results[0]["ms"]["median"] if results and results[0]["method"].startswith("official") else None
    for r in results:
        r["speedup_vs_official"] = round(off / r["ms"]["median"], 2) if off and r["ms"]["median"] > 0 else None
    return results


def compare_decodes(t, image_meta, counts, args, log, decode_onnx=None) -> dict:
    """Complete decodes of image 0's network outputs of target ``t``, ``n`` persons per call following
    ``counts`` (the planted thresholds; the config's ctr_score for model files)."""
    import torch

    from uniparser_sdk.model.configs import DecodeConfig

    c, ins, sem = t.features
    seg, base, k = t.seg_kernels, t.config.decode, args.max_instances
    img_shape, ori_shape = tuple(image_meta.img_shape), tuple(image_meta.ori_shape)

    def dcfg(i):
        thr = t.planted.threshold(counts[i]) if t.planted is not None else base.ctr_score
        return DecodeConfig(ctr_score=thr, mask_thr=base.mask_thr, cate_score_thr=base.cate_score_thr, max_instances=k)

    methods, skipped = decode_methods(c, ins, sem, seg, image_meta, dcfg, k, decode_onnx=decode_onnx,
                                      threads=args.threads, cuda=args.device != "cpu")
    iters = max(1, args.decode_iters if args.decode_iters is not None else args.iters)
    warm = min(args.warmup, 1)
    results = run_methods(methods, iters, warm, len(counts), skipped)
    return {"model": t.name, "feature_shape": list(ins.shape), "num_categories": int(seg.shape[0]),
            "image": {"resized": list(img_shape), "original": list(ori_shape)}, "iters": iters, "warmup": warm,
            "threads": {"torch": torch.get_num_threads(), "onnxruntime_intra_op": args.threads},
            "methods": results, "skipped": skipped}


def format_decode_comparison(d: dict) -> list[str]:
    lines = [f"Complete decode (steps 1-5) on {d['model']}'s network outputs (features {d['feature_shape']}, "
             f"C={d['num_categories']}, image {d['image']['original'][1]}x{d['image']['original'][0]}), "
             f"median of {d['iters']} calls, threads {d['threads']}:"]
    for m in d["methods"]:
        sp = f"{m['speedup_vs_official']:.1f}x" if m.get("speedup_vs_official") else "-"
        diff = m["pixels_differing_from_official"]
        lines.append(f"  {m['method']:<66}{m['ms']['median']:>10.2f} ms  p90 {m['ms']['p90']:>9.2f}  "
                     f"vs official {sp:>7}  persons {m['persons_per_call']}  "
                     f"label px differing {diff if diff is not None else '-'}")
    for k, v in d["skipped"].items():
        lines.append(f"  {k}: skipped: {v}")
    return lines


def main(argv=None) -> int:
    from uniparser_sdk.cli.common import run_cli, size_arg

    ap = argparse.ArgumentParser(prog="decode_compare", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--runs", type=int, default=10, help="timed runs per method (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    ap.add_argument("--no-official", dest="official", action="store_false",
                    help="skip the slow official-style loop (the reference becomes decode_single)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda: also time the CUDA op")
    ap.add_argument("--threads", type=int, default=None, help="torch / OpenMP threads (default: library defaults)")
    ap.add_argument("--image", type=size_arg("--image"), default=(800, 1333), metavar="WIDTHxHEIGHT",
                    help="original image size (default 1333x800)")
    ap.add_argument("--persons", type=int, default=3)
    ap.add_argument("--classes", type=int, default=58, help="C = num_classes - 1 (default 58, MHPv2)")
    ap.add_argument("--dim", type=int, default=128, help="feature dimension D (default 128)")
    ap.add_argument("--max-instances", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    try:
        args = ap.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)

    def body():
        if args.threads:
            os.environ["OMP_NUM_THREADS"] = str(args.threads)
        import torch

        from uniparser_sdk.data.decode_scenes import structured_scene
        from uniparser_sdk.model.configs import DecodeConfig
        from uniparser_sdk.runtime.geometry import ImageMeta
        from uniparser_sdk.runtime.preprocess import DEFAULT_SCALE, pad_size

        if args.threads:
            torch.set_num_threads(args.threads)
        oh, ow = args.image
        s = min(max(DEFAULT_SCALE) / max(oh, ow), min(DEFAULT_SCALE) / min(oh, ow))
        ih, iw = int(round(oh * s)), int(round(ow * s))
        ph, pw = pad_size(ih, iw)
        h, w = ph // 4, pw // 4
        logits, ins, sem, seg = structured_scene(args.seed, S=40, D=args.dim, h=h, w=w, C=args.classes,
                                                 persons=args.persons, parts=min(8, args.classes),
                                                 radius_bounds=lambda hh, ww: ((hh // 6, hh // 3), (ww // 10, ww // 5)))
        cfg = DecodeConfig(ctr_score=0.2, mask_thr=0.5, cate_score_thr=0.3, max_instances=args.max_instances)
        print(f"scene: original {ow}x{oh}, resized {iw}x{ih}, padded {pw}x{ph}, features D={args.dim} h={h} w={w}, "
              f"C={args.classes}, S=40, K={args.max_instances}, persons={args.persons}; torch {torch.__version__} "
              f"({torch.get_num_threads()} threads)")
        methods, skipped = decode_methods(logits, ins, sem, seg, ImageMeta((oh, ow), (ih, iw), (ph, pw)), lambda i: cfg,
                                          args.max_instances, threads=args.threads, cuda=args.device == "cuda",
                                          official=args.official)
        results = run_methods(methods, max(1, args.runs), args.warmup, 1, skipped)
        d = {"model": "structured_scene", "feature_shape": list(ins.shape), "num_categories": args.classes,
             "image": {"resized": [ih, iw], "original": [oh, ow]}, "iters": args.runs, "warmup": args.warmup,
             "threads": {"torch": torch.get_num_threads()}, "methods": results, "skipped": skipped}
        print("\n".join(format_decode_comparison(d)))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(d, f, indent=2)
        return 0

    return run_cli("decode_compare", body)


if __name__ == "__main__":
    sys.exit(main())
