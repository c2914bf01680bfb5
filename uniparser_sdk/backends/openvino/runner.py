"""OpenVINOBackend: runs an OpenVINO IR (``.xml`` + ``.bin``) written by :mod:`.convert` on the CPU.

The precision stored in the metadata decides the compile hint (fp32 -> ``f32``; bf16 -> ``bf16`` with the
decode nodes kept in float32; int8 -> int8 convolutions, the rest ``bf16``/float32). Pass
``precision_hint="f32"`` to force float32 for everything that is not int8. ``threads`` sets
``INFERENCE_NUM_THREADS`` (default: the CPUs this process may use). Each calling thread gets its own
infer request, so :meth:`infer` is thread-safe.
"""
from __future__ import annotations

import threading
from typing import Optional

import numpy as np

from ...errors import UserInputError
from ..base import Backend, InputConstraints, decode_params_feed, validate_batch
from .convert import PRECISION_HINT, openvino, read_meta


def _default_threads() -> Optional[int]:
    try:
        from ...runtime.cpus import available_cpus
    except ImportError:  # pragma: no cover - the runtime always ships it
        return None
    return available_cpus()


class OpenVINOBackend(Backend):
    name = "openvino"

    def __init__(self, path, device: str = "auto", providers=None, threads: Optional[int] = None,
                 precision_hint: Optional[str] = None, **_ignored):
        from ...devices import parse_device

        dev = parse_device(device)
        if dev.kind == "cuda":
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
        config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
        n = int(threads) if threads is not None else _default_threads()
        if n:
            config["INFERENCE_NUM_THREADS"] = n
        self._compiled = core.compile_model(model, "CPU", config)
        self._inputs = {p.get_any_name(): p for p in self._compiled.inputs}
        if "images" not in self._inputs:
            raise UserInputError(f"{path}: the model has no 'images' input (inputs: {sorted(self._inputs)})")
        self._outputs = []
        declared = set(meta.contract.output_names)
        for port in self._compiled.outputs:
            names = set(port.get_names())
            name = next(iter(sorted(names & declared)), port.get_any_name())
            self._outputs.append((name, port))
        self._local = threading.local()
        self.device = "cpu"
        self.precision_hint = hint
        self.threads = n
        self.providers = [f"OpenVINO {ov.__version__.split('-')[0]} CPU ({meta.precision}, hint {hint})"]

    @property
    def output_names(self) -> list[str]:
        return [n for n, _ in self._outputs]

    def input_constraints(self) -> InputConstraints:
        return InputConstraints()

    def _request(self):
        req = getattr(self._local, "request", None)
        if req is None:
            req = self._local.request = self._compiled.create_infer_request()
        return req

    def _infer(self, batch: np.ndarray, decode_params: np.ndarray) -> dict[str, np.ndarray]:
        self._check_open()
        images = validate_batch(batch)
        feed = {"images": images}
        if "decode_params" in self._inputs:
            feed["decode_params"] = decode_params_feed(self.meta.layout, decode_params, images.shape[0])
        req = self._request()
        req.infer(feed)
        return {name: np.array(req.get_tensor(port).data, copy=True) for name, port in self._outputs}

    def _release(self) -> None:
        self._compiled = None
        self._local = threading.local()
