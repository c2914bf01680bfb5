"""Timing one model x variant: ``Parser.predict`` calls, the stage times the runtime reports itself.

Stages per call come from the SDK, not from stopwatches around its internals:
``ParseResult.timings`` (``preprocess``, ``network`` = the backend call, ``postprocess``, filled by
:class:`~uniparser_sdk.runtime.parser.Parser`) and :meth:`Backend.last_inference_time` (the runner's
own time of its ``infer``). Only the split of the backend stage into ``network`` and ``decode`` (steps
1-4) is measured here:

* torch: forward hooks around the network module (:class:`NetTimer`) time it inside the same call;
  decode = backend - network (derived);
* ONNX Runtime: the decode steps 1-4 alone (:func:`uniparser_sdk.benchmarks.targets.decode_graph`)
  run in a session with the same providers and threads right after each call, on image 0's network
  outputs with the call's thresholds (:func:`ort_decode_timer`); network = backend - that (derived);
* TensorRT, OpenVINO: network and decode are one number.

``--threads`` reaches every backend through ``Parser(threads=)``: ONNX Runtime intra-op threads,
OpenVINO ``INFERENCE_NUM_THREADS``, ``torch.set_num_threads``; each row reports what its runtime got.
"""
from __future__ import annotations

import gc
import math
import statistics
import time
from typing import Callable, Optional

import numpy as np

from uniparser_sdk.contract.layouts import RAW_V1, decode_params

from .host import gpu_used_mib, peak_rss_mib, reset_peak_rss, rss_mib

__all__ = ["stats", "NetTimer", "decode_feed", "ort_decode_timer", "time_backend"]


def stats(values) -> Optional[dict]:
    """median / p90 (nearest rank) / mean / min / max of a list of milliseconds."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    s = sorted(vals)
    p90 = s[min(len(s) - 1, int(math.ceil(0.9 * len(s))) - 1)]
    return {"median": round(statistics.median(s), 3), "p90": round(p90, 3), "mean": round(statistics.fmean(s), 3),
            "min": round(s[0], 3), "max": round(s[-1], 3), "n": len(s)}


class NetTimer:
    """Forward hooks around the network module of a torch backend: network ms of each call."""

    def __init__(self, model, sync: Optional[Callable] = None):
        self.sync = sync
        self.times: list[float] = []
        self.last = None
        self.t0 = 0.0
        self.handles = [model.register_forward_pre_hook(self.pre), model.register_forward_hook(self.post)]

    def pre(self, module, inputs):
        if self.sync:
            self.sync()
        self.t0 = time.perf_counter()

    def post(self, module, inputs, output):
        if self.sync:
            self.sync()
        self.times.append((time.perf_counter() - self.t0) * 1e3)
        self.last = output  # a reference only (no copy inside the timed call)

    def remove(self):
        for h in self.handles:
            h.remove()


def _np_dtype(ort_type: str):
    return np.float16 if "float16" in ort_type else np.float32


def decode_feed(sess, features) -> tuple[dict, Callable]:
    """Feed of a decode-only session (:func:`.targets.decode_graph`): the raw tensors of ``features``
    (numpy (1,S,S), (D,h,w), (D,h,w) of one image) in the graph's dtypes, a minimal zero tensor for any
    other input (e.g. ``images``, read for its batch size only), and ``params(opts)`` -> the
    ``decode_params`` array in the graph's rank ((3,) or (1, 3))."""
    feats = dict(zip(RAW_V1.output_names, features))
    feed, rank = {}, 1
    for i in sess.get_inputs():
        if i.name in feats:
            feed[i.name] = np.ascontiguousarray(feats[i.name][None]).astype(_np_dtype(i.type))
        elif i.name == "decode_params":
            rank = len(i.shape)
        else:
            shape = [d if isinstance(d, int) and d > 0 else (1 if n == 0 else 32) for n, d in enumerate(i.shape)]
            feed[i.name] = np.zeros(shape, _np_dtype(i.type))

    def params(opts) -> np.ndarray:
        p = decode_params(opts)
        return p if rank == 1 else p[None]

    return feed, params


def ort_decode_timer(decode_onnx: str, features, providers, threads: Optional[int]):
    """Callable(decode options) -> ms of decode steps 1-4 alone in ONNX Runtime, on ``features``."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = int(threads)
    sess = ort.InferenceSession(decode_onnx, so, providers=list(providers))
    feed, params = decode_feed(sess, features)

    def run(opts) -> float:
        p = params(opts)
        t0 = time.perf_counter()
        sess.run(None, {**feed, "decode_params": p})
        return (time.perf_counter() - t0) * 1e3

    return run


def time_backend(t, backend: str, variant, path: str, images, counts, args, scale, device: str, log,
                 decode_onnx: Optional[str] = None, results: Optional[dict] = None) -> dict:
    """Open ``path`` on ``backend`` through :class:`Parser`, warm up, time, measure memory; one row.
    ``results``: filled with image index -> the ParseResult of its last call (for agreement)."""
    from uniparser_sdk.runtime.parser import Parser

    gc.collect()
    rss_before = rss_mib()
    hwm_reset = reset_peak_rss()
    torch_mod = None
    dev = "cuda" if backend == "tensorrt" else ("cpu" if backend == "openvino" else device)
    if backend == "torch":
        import torch as torch_mod
    gpu_base = gpu_used_mib() if (dev != "cpu" and backend != "torch") else None
    cuda_torch = bool(torch_mod is not None and torch_mod.cuda.is_available() and dev != "cpu")
    if cuda_torch:
        torch_mod.cuda.reset_peak_memory_stats()
    extra = {"max_instances": args.max_instances} if backend == "torch" else {}
    if backend == "torch" and variant is not None and variant.precision != "fp32":
        extra["precision"] = variant.precision
    parser = Parser(path, device=dev, threads=args.threads, scale=scale, **extra)
    net_timer = decode_fn = handle = None
    row_notes = []
    try:
        if backend == "torch":
            model = parser.backend.model
            if t.planted is not None:
                handle = t.planted.install(model)
            sync = torch_mod.cuda.synchronize if parser.device.startswith("cuda") else None
            net_timer = NetTimer(model, sync)
            split = "network timed by hooks around the network module inside each call; decode = backend - network"
        elif backend == "onnxruntime" and decode_onnx and t.features is not None:
            decode_fn = ort_decode_timer(decode_onnx, t.features, parser.providers, args.threads)
            split = ("decode steps 1-4 (cut from the same graph) timed on network outputs right after each call "
                     "(same providers/threads); network = backend - decode")
        else:
            split = f"network and decode steps 1-4 not split (one {'engine' if backend == 'tensorrt' else 'graph'})"
        params_dec = dict(parser.decode)
        rows = {k: [] for k in ("total", "preprocess", "backend", "network", "decode", "postprocess")}
        persons, parts, gpu_samples = [], [], []
        n_img = len(images)
        for it in range(args.warmup + args.iters):
            i = it % n_img if it < args.warmup else (it - args.warmup) % n_img  # timed calls start at image 0
            kw = {"ctr_score": t.planted.threshold(counts[i])} if t.planted is not None else {}
            t0 = time.perf_counter()
            res = parser.predict(images[i], **kw)
            total = (time.perf_counter() - t0) * 1e3
            if results is not None:
                results[i] = res
            tm = res.timings
            inf = parser.backend.last_inference_time()  # the runner's own time of its infer call
            backend_ms = inf * 1e3 if inf is not None else tm.get("network")
            net = net_timer.times.pop() if net_timer and net_timer.times else None
            if net_timer is not None and i == 0 and t.features is None and net_timer.last is not None:
                c, ins, sem = net_timer.last  # image 0: keep the network outputs for the decode timings
                t.features = tuple(a[0].detach().float().cpu().numpy().copy() for a in (c, ins, sem))
            if net_timer is not None:
                net_timer.last = None
            dec = decode_fn({**params_dec, **kw}) if decode_fn else None
            if dev != "cpu" and backend != "torch":
                gpu_samples.append(gpu_used_mib())
            if it < args.warmup:
                if it == 0 and t.planted is not None and len(res) != counts[i]:
                    row_notes.append(f"warning: {len(res)} persons decoded where {counts[i]} were planted")
                continue
            rows["total"].append(total)
            rows["preprocess"].append(tm.get("preprocess"))
            rows["backend"].append(backend_ms)
            rows["postprocess"].append(tm.get("postprocess"))
            if net is not None:
                rows["network"].append(net)
                rows["decode"].append(backend_ms - net)
            elif dec is not None:
                rows["decode"].append(dec)
                rows["network"].append(backend_ms - dec)
            else:
                rows["network"].append(backend_ms)
            persons.append(len(res))
            parts.extend(len(p.part_ids) for p in res)
        peak = peak_rss_mib()
        gpu_peak = gpu_method = None
        if cuda_torch:
            gpu_peak = torch_mod.cuda.max_memory_reserved() / 2 ** 20
            gpu_method = "torch.cuda.max_memory_reserved"
        elif gpu_base is not None and any(v is not None for v in gpu_samples):
            gpu_peak = max(v for v in gpu_samples if v is not None) - gpu_base
            gpu_method = "nvidia-smi memory.used sampled after each call, minus before loading"
        providers = parser.providers
        threads = {"torch": torch_mod.get_num_threads()} if torch_mod is not None else {}
        if backend == "onnxruntime":
            threads["onnxruntime_intra_op"] = getattr(parser.backend, "intra_op_threads", None) or args.threads
        if backend == "openvino":
            threads["openvino_inference_num_threads"] = getattr(parser.backend, "threads", None)
        real_device = parser.device
    finally:
        if handle is not None:
            handle.remove()
        if net_timer is not None:
            net_timer.remove()
        parser.close()
    del parser
    gc.collect()
    total_s = sum(rows["total"]) / 1e3
    row = {
        "model": t.name, "config": t.config.name if t.config is not None else None, "table2_name": t.table2_name,
        "backend": backend, "variant": variant.name if variant is not None else None,
        "device": real_device, "providers": providers, "threads": threads,
        "weights": "random (synthetic-persons mode)" if t.planted is not None else "model file",
        "warmup": args.warmup, "iters": args.iters, "ms": {k: stats(v) for k, v in rows.items()}, "split": split,
        "images_per_s": round(len(rows["total"]) / total_s, 3) if total_s > 0 else None,
        "persons_per_image": round(statistics.fmean(persons), 3) if persons else None,
        "parts_per_person": round(statistics.fmean(parts), 2) if parts else None,
        "params_m": round(t.params / 1e6, 4) if t.params else None,
        "gflops": t.flops["gflops"] if t.flops else None, "gmacs": t.flops["gmacs"] if t.flops else None,
        "peak_rss_mib": round(peak, 1) if peak else None,
        "rss_before_mib": round(rss_before, 1) if rss_before else None,
        "peak_rss_method": "VmHWM reset before the row" if hwm_reset else "ru_maxrss (process lifetime peak)",
        "gpu_peak_mib": round(gpu_peak, 1) if gpu_peak is not None else None, "gpu_memory_method": gpu_method,
        "notes": list(t.notes) + row_notes,
    }
    if persons and not any(persons):
        row["notes"].append("no person decoded in any timed call (untrained weights?): the decode did almost no work")
    return row
