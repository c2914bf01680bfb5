"""uniparser-bench: ms/img per stage, images/s, parameters, GFLOPs and peak memory of UniParser models
on every backend, in the form of the paper's Table 2.

    uniparser-bench --table2 --size 640x384 --iters 5 --warmup 1          # CPU, a few minutes
    uniparser-bench --configs r50,r50-light --backends torch,onnxruntime,tensorrt --size 1333x800 \\
        --iters 50 --json bench.json --plot bench.png                     # the full comparison (GPU)
    uniparser-bench model.pth other.onnx --images photos/ --iters 20      # your own model files
    uniparser-bench --configs r50,r50-light --size 1333x800 --threads 2 --iters 3 --warmup 1 \
        --variants products-fp32,openvino-fp32,openvino-bf16,openvino-int8,torch-fp32,torch-bf16  # CPU precisions

What is measured, per model x backend (see benchmarks/README.md for the full method):

* ``total``: wall time of one ``Parser.predict(image)`` call (time.perf_counter, batch 1, one stream),
  split into ``preprocess`` (resize / normalise / pad), ``network`` (backbone + FPN + head),
  ``decode`` (decode steps 1-4: center peaks, kernels, cosine maps, maskness -- in the exported graph
  for ONNX Runtime / TensorRT) and ``postprocess`` (step 5, per-person finishing in numpy, and the
  result objects). torch: the network is timed by hooks around the network module inside the same
  call, decode = backend stage - network. ONNX Runtime: the decode steps 1-4 are exported alone as a
  graph (cut from the same graph) and timed in the same session settings right after each call on network outputs of the
  benchmark images; network = backend stage - that. TensorRT: network and decode stay one number.
* median and p90 over ``--iters`` timed calls after ``--warmup`` untimed ones (images cycle);
  images/s = timed calls / their summed wall time.
* parameters (M) of the network; GFLOPs of the network at the padded input size (2 x MACs of the
  convolutions; DCN = its conv + offset conv + bilinear sampling; see flops.py).
* side by side (same run, same images): each row's speed ratio to ONNX Runtime FP32 (products-fp32, else
  torch-fp32) and the agreement of its results with that row's (persons matched, mask / part agreement;
  see lowp.py);
* peak RSS of the process while that row ran (VmHWM, reset before each row through
  /proc/self/clear_refs) and, on a GPU, peak GPU memory (torch allocator; nvidia-smi samples for
  ONNX Runtime / TensorRT).

Random weights ("synthetic-persons" mode, the default for --configs): an untrained network finds no
person, so the decode would do no work. The benchmark therefore installs a forward hook on the head
(in PyTorch, and traced into the exported ONNX graph) that (1) keeps the computed center logits but
clamps them below the background level and writes up to ``P`` planted peaks with distinct scores,
(2) adds to the instance features one unit embedding per planted person over an ellipse of a
person's size (relative to the feature norm, x3), and (3) adds to the category features the
direction of one category kernel per body band (8 bands per person). Every call then asks the
decode for exactly ``n`` persons by setting ``ctr_score`` between the n-th and (n+1)-th planted
scores, with ``n`` following a sequence whose mean is ``--persons`` (2.6 as in the paper). The
network still computes everything (the hook only adds a few element-wise operations); the decode
does the work of ``n`` persons of realistic size with ~8 parts each. The persons actually decoded
per image are reported (``persons/img``).
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

from uniparser_sdk.cli.common import format_size, run_cli, size_arg
from uniparser_sdk.errors import UserInputError
from uniparser_sdk.export.variants import TARGETS, default_variant, find_variant, get_variant, variant_names

from . import lowp, report
from .decode_compare import compare_decodes
from .host import cpus_available, host_info
from .paper import PAPER_HARDWARE, PAPER_SOURCE, PAPER_TABLE2, paper_rows
from .planted import SyntheticPersons, load_images, person_counts
from .targets import (artefact, compute_features, decode_graph, default_cache_dir, prepare_target, resolve_targets,
                      tensorrt_unavailable)
from .timing import time_backend

__all__ = ["main", "run", "build_arg_parser", "SyntheticPersons", "PAPER_TABLE2", "person_counts", "row_plan"]

BENCH_FORMAT = "uniparser-bench/1"
DEFAULT_CONFIGS = ("r50", "r50-light")
KNOWN_BACKENDS = ("torch",) + tuple(t for t in TARGETS if t != "torch")  # torch, onnxruntime, tensorrt, openvino
DEFAULT_BACKENDS = ("torch", "onnxruntime", "tensorrt")  # + the targets of --variants
DEFAULT_PLOT = "uniparser-bench-table2.png"
STAGES = ("preprocess", "network", "decode", "postprocess")
MIN_SIDE = 32


def build_arg_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="uniparser-bench", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Benchmark UniParser models on the torch / onnxruntime / tensorrt backends (Table 2 form).",
        epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("models", nargs="*", metavar="MODEL",
                    help="model files: .pth (torch; exported to ONNX for onnxruntime), .onnx, .engine/.plan")
    ap.add_argument("--configs", default=None,
                    help="comma-separated configs with random weights (default r50,r50-light when no MODEL is given): "
                         "r50, r50-light, r101, r101-light, tiny, tiny-light, ...")
    ap.add_argument("--backends", default=None,
                    help=f"comma-separated subset of {','.join(KNOWN_BACKENDS)} (default: {','.join(DEFAULT_BACKENDS)} "
                         "plus the targets of --variants; unavailable ones print 'skipped: <reason>')")
    ap.add_argument("--variants", default=None,
                    help="comma-separated rows of the export variant table (uniparser_sdk.export.variants) run "
                         "instead of each backend's default (products-fp32, products-fp32-tensorrt, openvino-fp32, "
                         "torch-fp32; torch-fp32 still runs when no torch row is named); "
                         f"known: {', '.join(n for n in variant_names() if get_variant(n).target)}")
    ap.add_argument("--size", type=size_arg("--size"), default="1333x800", metavar="WIDTHxHEIGHT",
                    help="test scale WIDTHxHEIGHT (default 1333x800, the official one); synthetic scenes are drawn "
                         "at this size")
    ap.add_argument("--images", default="synthetic", help="a folder of images, or 'synthetic' (default)")
    ap.add_argument("--num-images", type=int, default=5, help="images used, cycled (default 5)")
    ap.add_argument("--persons", type=float, default=2.6,
                    help="mean persons per image for random weights (default 2.6, as the paper's MHPv2 val)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed calls first (default 2)")
    ap.add_argument("--iters", type=int, default=10, help="timed calls per model x backend (default 10)")
    ap.add_argument("--decode-iters", type=int, default=None, help="timed calls per decode method (default --iters)")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads of every backend: torch.set_num_threads, ONNX Runtime intra-op, OpenVINO "
                         "INFERENCE_NUM_THREADS (default: all CPUs available to this process); reported per row")
    ap.add_argument("--calibration", default=None, metavar="DIR",
                    help="openvino-int8: images to calibrate on (default: the bundled samples + 24 synthetic scenes)")
    ap.add_argument("--calibration-limit", type=int, default=None, metavar="N",
                    help="openvino-int8: calibrate on the first N images only")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="where torch / onnxruntime run (auto: the GPU when there is one)")
    ap.add_argument("--max-instances", type=int, default=100, help="K instance slots (default 100)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights, scenes and planted persons")
    ap.add_argument("--no-decode-compare", dest="decode_compare", action="store_false",
                    help="skip the fused-vs-official decode comparison")
    ap.add_argument("--table2", action="store_true",
                    help=f"also print the paper's Table 2 form beside the quoted figures and draw it "
                         f"(--plot, default ./{DEFAULT_PLOT})")
    ap.add_argument("--json", default=None, metavar="OUT", help="write every number to this JSON file")
    ap.add_argument("--plot", default=None, metavar="OUT.png", help="bar chart (ms/img and parameters) as PNG")
    ap.add_argument("--cache-dir", default=None,
                    help="where exported files are cached (default ~/.cache/uniparser/bench or $UNIPARSER_CACHE_DIR)")
    ap.add_argument("--trt-fp16", action="store_true",
                    help="tensorrt runs products-fp16-tensorrt (fp16 graph, FP16 engine) instead of products-fp32-tensorrt")
    return ap


def _check_args(args) -> tuple[list[str], list]:
    """Validate the options (UserInputError -> exit 2); -> (backends, explicit variants or None)."""
    h, w = args.size
    if min(h, w) < MIN_SIDE:
        raise UserInputError(f"--size must be at least {MIN_SIDE}x{MIN_SIDE}, got {format_size(args.size)}")
    if args.iters < 1 or args.warmup < 0 or args.num_images < 1:
        raise UserInputError("--iters and --num-images must be >= 1 and --warmup >= 0")
    if args.threads is not None and args.threads < 1:
        raise UserInputError("--threads must be >= 1")
    variants = None
    if args.variants:
        variants = [get_variant(n) for n in args.variants.split(",") if n.strip()]
    if args.backends is None:
        backends = list(DEFAULT_BACKENDS) + [v.target for v in variants or () if v.target not in DEFAULT_BACKENDS]
    else:
        backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    bad = [b for b in backends if b not in KNOWN_BACKENDS]
    if bad or not backends:
        raise UserInputError(f"unknown backend(s) {bad or backends}; choose from {','.join(KNOWN_BACKENDS)}")
    if args.variants:
        for v in variants:
            if v.target is None:
                raise UserInputError(f"variant {v.name} is an intermediate graph ({v.description}); Parser does "
                                     "not run it")
    return backends, variants


def row_plan(t, backends, variants=None, trt_fp16: bool = False) -> list[tuple]:
    """(backend, variant) of every row of target ``t``: each backend runs a row of the variant table
    (its default, ``variants`` when given; torch-fp32 when ``variants`` names no torch row). An .onnx
    file runs as the variant it is."""
    torch_rows = [v for v in variants or () if v.checkpoint] or [default_variant("torch")]
    plan = [("torch", v) for v in torch_rows] if "torch" in backends else []
    if variants is None:
        variants = [default_variant(b, "fp16" if (b == "tensorrt" and trt_fp16) else "fp32")
                    for b in KNOWN_BACKENDS if b in backends and b != "torch"]
    for v in (v for v in variants if not v.checkpoint):
        if t.kind == "onnx" and t.file_meta is not None and not v.converted:
            try:
                v = find_variant(t.file_meta.layout, t.file_meta.precision, v.target)
            except UserInputError:
                pass  # artefact() says why this file cannot run that variant
        if v.target in backends:
            plan.append((v.target, v))
    return plan


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def run(args, log=print) -> dict:
    """Run the benchmark described by parsed ``args``; print the tables; return the JSON document."""
    wall0 = time.perf_counter()
    backends, variants = _check_args(args)
    h, w = args.size
    scale = (max(w, h), min(w, h))
    from uniparser_sdk.runtime.preprocess import pad_size, preprocess

    pad_hw = pad_size(h, w)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()] if args.configs else []
    if not configs and not args.models:
        configs = list(DEFAULT_CONFIGS)
    targets = resolve_targets(args.models, configs)
    cpus = cpus_available()
    if args.threads is None:
        args.threads = cpus
    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)

    import torch

    torch.set_num_threads(int(args.threads))
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        log("note: --device cuda but torch sees no GPU; onnxruntime decides by its own providers")
    host = host_info()
    load1 = host["load_average"][0] if host.get("load_average") else 0.0
    if load1 >= 1.0 and args.threads >= cpus:
        log(f"  warning: load average {load1:.2f} on {cpus} CPUs before starting: other processes compete for the "
            f"CPUs; with {args.threads} threads OpenMP-based torch can slow down many-fold when a core is taken "
            f"-- timings are noisy (on a busy machine compare with --threads 1)")
    log(f"uniparser-bench  host: {host['cpu']}, {host['cpus_available']}/{host['logical_cpus']} CPUs available, "
        f"load {host['load_average']}; GPU: {host['gpu'] or 'none'}")
    log(f"  python {host['python']}, numpy {host['numpy']}, opencv {host['opencv']}, torch {host['torch']} "
        f"({torch.get_num_threads()} threads), onnxruntime {host['onnxruntime']} "
        f"(providers available {host['onnxruntime_providers_available']}), onnx {host['onnx']}, "
        f"tensorrt {host['tensorrt'] or 'not installed'}")

    imgs, names, img_desc = load_images(args.images, (h, w), args.num_images, args.persons, args.seed)
    counts = person_counts(args.persons, len(imgs))
    log(f"  inputs: {img_desc}; test scale {scale[0]}x{scale[1]} -> padded network input {format_size(pad_hw)}")
    log(f"  timing: {args.warmup} warm-up + {args.iters} timed calls per row, time.perf_counter, batch 1, one stream; "
        f"threads {args.threads}; cache {cache}")

    skipped = []
    trt_reason = tensorrt_unavailable() if "tensorrt" in backends else None
    if trt_reason:
        log(f"  tensorrt: skipped: {trt_reason}")
        skipped.append({"backend": "tensorrt", "reason": trt_reason})
    build = dict(pad_hw=pad_hw, scale=scale, max_instances=args.max_instances, cache=cache, log=log,
                 calibration=(args.calibration, args.calibration_limit))
    rows, decode_cmp = [], None
    for t in targets:
        t0 = time.perf_counter()
        prepare_target(t, seed=args.seed, persons=args.persons, max_instances=args.max_instances, pad_hw=pad_hw,
                       scale=scale, cache=cache, log=log)
        if t.planted is not None:
            log(f"[{t.name}] {t.planted.describe()}; persons per image cycle {counts} (mean "
                f"{statistics.fmean(counts):.2f})")
        log(f"[{t.name}] prepared in {time.perf_counter() - t0:.1f} s: params {t.params / 1e6 if t.params else 0:.2f} M, "
            f"GFLOPs {t.flops['gflops'] if t.flops else '-'} at {format_size(pad_hw)}")
        t_rows, t_results = [], []
        for b, v in row_plan(t, backends, variants, args.trt_fp16):
            if b == "tensorrt" and trt_reason:
                continue
            label = b if v is None or v.name == report.DEFAULT_VARIANTS.get(b) else f"{b} {v.name}"
            path, decode_onnx, reason = t.pth, None, None
            try:
                path = artefact(t, v, **build)
            except Exception as exc:
                reason = f"{v.name}: {exc}" if isinstance(exc, UserInputError) else \
                    f"{v.name} artefact failed: {_first_line(exc)}"
            if reason:
                log(f"[{t.name}] {label}: skipped: {reason}")
                skipped.append({"model": t.name, "backend": b, "variant": v.name if v else None, "reason": reason})
                continue
            if b == "onnxruntime":
                try:
                    decode_onnx = decode_graph(path, cache)
                except Exception as exc:
                    log(f"[{t.name}] {label}: note: no decode-only graph ({_first_line(exc)})")
                if decode_onnx and t.features is None:
                    t.features = compute_features(t, imgs[0], scale)
            log(f"[{t.name}] {label}: {args.warmup} warm-up + {args.iters} timed calls ...")
            res = {}
            try:
                row = time_backend(t, b, v, path, imgs, counts, args, scale, device, log, decode_onnx=decode_onnx,
                                   results=res)
            except Exception as exc:
                reason = _first_line(exc)
                log(f"[{t.name}] {label}: skipped: {reason}")
                skipped.append({"model": t.name, "backend": b, "variant": v.name if v else None, "reason": reason})
                continue
            tot = row["ms"]["total"]
            log(f"[{t.name}] {label}: {tot['median']:.1f} ms/img median, p90 {tot['p90']:.1f}; persons/img "
                f"{row['persons_per_image']}; peak RSS {row['peak_rss_mib']} MiB")
            row["precision"] = v.precision
            rows.append(row)
            t_rows.append(row)
            t_results.append(res)
        lowp.attach_vs_reference(t_rows, t_results)
        del t_results
        if args.decode_compare and decode_cmp is None and t.seg_kernels is not None:
            if t.features is None:
                t.features = compute_features(t, imgs[0], scale)
            dec = t.artefacts.get(report.DEFAULT_VARIANTS["onnxruntime"])
            try:
                dec = decode_graph(dec, cache) if dec else None
            except Exception:
                dec = None
            _, meta0 = preprocess(imgs[0], scale)
            log(f"[{t.name}] decode comparison (complete decode, steps 1-5) ...")
            decode_cmp = compare_decodes(t, meta0, counts, args, log, decode_onnx=dec)
        t.features = None
        gc.collect()
    return _finish(args, rows, decode_cmp, skipped, targets, host, backends, variants, imgs, names, counts, scale,
                   pad_hw, cache, wall0, log)


def _finish(args, rows, decode_cmp, skipped, targets, host, backends, variants, imgs, names, counts, scale, pad_hw,
            cache, wall0, log) -> dict:
    """Print the tables, draw the chart, write the JSON; -> the JSON document."""
    h, w = args.size
    comp = report.comparisons(rows)
    dev_desc = rows[0]["device"] if rows else "cpu"
    where = host["gpu"] if dev_desc.startswith("cuda") and host["gpu"] else host["cpu"]
    planted = next((t.planted for t in targets if t.planted), None)
    setting = (f"{where}, {args.threads} CPU threads, {w}x{h}, "
               f"{'synthetic scenes' if args.images == 'synthetic' else 'images from ' + args.images}, "
               f"{'random weights, synthetic-persons mode, ' + str(args.persons) + ' persons/img' if planted else 'model files'}, "
               f"{args.iters} timed calls after {args.warmup} warm-up")
    log("")
    log(f"Results ({setting}):")
    log(report.format_rows(rows) if rows else "  (no rows)")
    for s in skipped:
        log(f"  skipped: {s.get('model', '*')} / {s['backend']}: {s['reason']}")
    side = lowp.vs_reference(rows)
    if side:
        log("")
        log(lowp.format_vs_reference(side))
    text = report.format_comparisons(comp, decode_cmp)
    if text:
        log("")
        log(text)
    plot_path = args.plot or (DEFAULT_PLOT if args.table2 else None)
    if args.table2:
        log("")
        log(report.format_table2(rows, comp, setting))
    if plot_path and rows:
        log(f"chart: {report.table2_chart(plot_path, rows, setting)}")
    log("")
    log("Method: warm-up calls excluded; time.perf_counter (monotonic); medians and p90 (nearest rank); one image "
        "per call; threads and providers as printed per row; versions above.")
    if planted:
        log("Random weights (" + planted.describe() + "): the network computes everything as usual (the hook adds "
            "a few element-wise ops); the decode does the work of n persons of realistic size with ~8 parts each "
            "(persons/img and parts columns are what was decoded).")
    log(f"Full 1333x800 comparison: see benchmarks/README.md (e.g. uniparser-bench --table2 --size 1333x800 "
        f"--iters 50 on a GPU machine). Took {time.perf_counter() - wall0:.0f} s.")
    doc = {
        "format": BENCH_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": host,
        "settings": {"size": [w, h], "scale": list(scale), "padded_input_hw": list(pad_hw), "images": args.images,
                     "image_names": names, "num_images": len(imgs), "persons_mean": args.persons,
                     "person_counts": counts, "warmup": args.warmup, "iters": args.iters, "threads": args.threads,
                     "device": args.device, "backends": backends,
                     "variants": [v.name for v in variants] if variants else None,
                     "max_instances": args.max_instances, "seed": args.seed, "cache_dir": str(cache)},
        "method": {
            "clock": "time.perf_counter (monotonic)", "statistics": "median and p90 (nearest rank) of timed calls; "
            "warm-up excluded", "images_per_s": "timed calls / summed wall time (batch 1, one stream)",
            "stages": {"preprocess": "Parser resize/normalise/pad (ParseResult.timings)",
                       "network": "backbone + FPN + head",
                       "decode": "decode steps 1-4 (peaks, kernels, cosine maps, maskness)",
                       "postprocess": "step 5 per-person finishing (numpy) + result objects (ParseResult.timings)",
                       "backend": "the runner's own time of its infer call (Backend.last_inference_time)"},
            "gflops": "2 x MACs of conv/linear; DCN = conv + offset conv + bilinear sampling (benchmarks/flops.py)",
            "synthetic_persons": planted.describe() if planted else None},
        "results": rows,
        "comparisons": comp,
        "vs_reference": side,
        "decode_comparison": decode_cmp,
        "table2": report.table2_rows(rows, comp),
        "paper_table2": {"source": PAPER_SOURCE, "hardware": PAPER_HARDWARE, "rows": paper_rows()},
        "skipped": skipped,
        "plot": str(plot_path) if plot_path and rows else None,
        "seconds": round(time.perf_counter() - wall0, 1),
    }
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        log(f"json: {out}")
    return doc


def main(argv=None) -> int:
    try:
        args = build_arg_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or an argparse usage error (2, already printed)
        return int(exc.code or 0)
    return run_cli("uniparser-bench", lambda: (run(args), 0)[1])


if __name__ == "__main__":
    sys.exit(main())
