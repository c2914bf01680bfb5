"""OpenVINOBackend: runs an OpenVINO IR (``.xml`` + ``.bin``) written by :mod:`.convert` on the CPU.

The precision stored in the metadata decides the compile hint of the network (fp32 -> ``f32``; bf16 ->
``bf16``; int8 -> int8 convolutions, the rest ``bf16``). Below fp32 the IR is compiled as two models, the
network at that hint and the decode in float32 (:func:`~.convert.split_network_and_decode`): the decode's
cosine products and thresholds then see exactly what an fp32 decode of the same features would.
``precision_hint="f32"`` forces float32 for everything that is not int8. ``threads`` sets
``INFERENCE_NUM_THREADS`` (default: the CPUs this process may use). Each calling thread gets its own infer
requests, so :meth:`infer` is thread-safe.
"""
from __future__ import annotations

import threading
from typing import Optional

import numpy as np

from ...contract.layouts import RAW_V1
from ...errors import UserInputError
from ...runtime.cpus import resolve_threads
from ..base import Backend, InputConstraints, decode_params_feed, validate_batch
from .convert import PRECISION_HINT, openvino, read_meta, split_network_and_decode


def _names(port) -> set:
    try:
        return set(port.get_names())
    except Exception:
        return set()


class _Stage:
    """One compiled model and how to feed it / read it."""

    def __init__(self, model, hint, compiled, declared):
        self.model, self.hint, self.compiled = model, hint, compiled
        self.inputs = {next(iter(sorted(_names(p))), p.get_any_name()): p for p in compiled.inputs}
        self.outputs = [(next(iter(sorted(_names(p) & declared)), p.get_any_name()), p) for p in compiled.outputs]


class OpenVINOBackend(Backend):
    name = "openvino"

    def __init__(self, path, device: str = "auto", providers=None, threads: Optional[int] = None,
                 precision_hint: Optional[str] = None, **_ignored):
        from ...devices import parse_device

        if parse_device(device).kind == "cuda":
            raise UserInputError("the OpenVINO backend runs on the CPU; use device='cpu' (or 'auto')")
        if providers is not None:
            raise UserInputError("providers= is an ONNX Runtime option; the OpenVINO backend takes none")
        ov = openvino()
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserInputError(f"OpenVINO cannot read {path}: {first}") from exc
        meta = read_meta(model, path)
        super().__init__(path, meta)
        hint = precision_hint or PRECISION_HINT.get(meta.precision, "f32")
        if hint not in ("f32", "bf16", "f16"):
            raise UserInputError(f"precision_hint must be f32, bf16 or f16, got {hint!r}")
        n = resolve_threads(threads)
        base = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": n}
        declared = set(meta.contract.output_names) | set(RAW_V1.output_names)
        decode = None
        if hint != "f32":
            model, decode = split_network_and_decode(path, model)
        self._stages = [_Stage(model, hint, core.compile_model(model, "CPU", {**base, "INFERENCE_PRECISION_HINT": hint}),
                               declared)]
        if decode is not None:
            self._stages.append(_Stage(decode, "f32", core.compile_model(decode, "CPU", {
                **base, "INFERENCE_PRECISION_HINT": "f32"}), declared))
        self._config = base
        if "images" not in self._stages[0].inputs:
            raise UserInputError(f"{path}: the model has no 'images' input (inputs: {sorted(self._stages[0].inputs)})")
        self._needs_params = any("decode_params" in st.inputs for st in self._stages)
        self._local = threading.local()
        self.device = "cpu"
        self.precision_hint = hint
        self.threads = n
        split = ", decode f32" if decode is not None else ""
        self.providers = [f"OpenVINO {ov.__version__.split('-')[0]} CPU ({meta.precision}, network {hint}{split})"]

    @property
    def output_names(self) -> list[str]:
        return [n for n, _ in self._stages[-1].outputs]

    def input_constraints(self) -> InputConstraints:
        return InputConstraints()

    def _feeds(self, batch, decode_params) -> dict:
        images = validate_batch(batch)
        feed = {"images": images}
        if self._needs_params:
            feed["decode_params"] = decode_params_feed(self.meta.layout, decode_params, images.shape[0])
        return feed

    def _run(self, requests, feed) -> dict:
        values = dict(feed)
        for st, req in zip(self._stages, requests):
            req.infer({k: values[k] for k in st.inputs})
            values.update({name: req.get_tensor(port).data for name, port in st.outputs})
        return {name: np.array(values[name], copy=True) for name, _ in self._stages[-1].outputs}

    def profile(self, batch: np.ndarray, decode_params: np.ndarray) -> list[tuple[str, str, str, float]]:
        """One profiled run: ``(stage, node name, node type, kernel, ms)`` per executed node (fresh
        compiles with ``PERF_COUNT``; for finding where the time goes, not for timing)."""
        ov = openvino()
        core = ov.Core()
        reqs, labels = [], ("network", "decode")
        for st in self._stages:
            cfg = {**self._config, "PERF_COUNT": True, "INFERENCE_PRECISION_HINT": st.hint}
            reqs.append(core.compile_model(st.model, "CPU", cfg).create_infer_request())
        self._run(reqs, self._feeds(batch, decode_params))
        return [(label, p.node_name, p.node_type, p.exec_type, p.real_time.total_seconds() * 1e3)
                for label, req in zip(labels, reqs) for p in req.profiling_info]

    def _requests(self):
        reqs = getattr(self._local, "requests", None)
        if reqs is None:
            reqs = self._local.requests = [st.compiled.create_infer_request() for st in self._stages]
        return reqs

    def _infer(self, batch: np.ndarray, decode_params: np.ndarray) -> dict[str, np.ndarray]:
        self._check_open()
        return self._run(self._requests(), self._feeds(batch, decode_params))

    def _release(self) -> None:
        self._stages = []
        self._local = threading.local()
