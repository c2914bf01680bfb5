"""ONNX Runtime backend (``.onnx``): numpy + onnxruntime only, never torch.

Execution providers: ``device="cpu"`` -> CPU; ``"cuda"`` -> CUDA (error if this onnxruntime build has
no CUDA provider, or if the session silently fell back to CPU); ``"auto"`` -> CUDA when available,
else CPU. ``providers=[...]`` overrides the choice verbatim (names or ``(name, options)`` pairs).
Which provider really runs is read back from the session (``providers``, ``device``).
``InferenceSession.run`` is thread-safe, so one session serves all threads.
"""
from __future__ import annotations

import json
import logging
import re
from typing import Optional, Sequence

import numpy as np

from ..._lazy import require
from ...errors import UniParserError
from ...devices import parse_device
from ...contract import PREFIX, meta_from_props
from ...contract.layouts import SEG_KERNELS
from ..base import Backend, InputConstraints, decode_params_feed, validate_batch

log = logging.getLogger(__name__)

__all__ = ["OnnxRuntimeBackend", "choose_providers"]

_ORT_TO_NP = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
}
_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "ROCMExecutionProvider",
                  "DmlExecutionProvider", "CoreMLExecutionProvider")

#: ONNX Runtime runs the standard DeformConv (opset 19) of our graphs from 1.25 on; 1.17-1.24 refuse
#: to load them (NOT_IMPLEMENTED DeformConv(19)).
MIN_ONNXRUNTIME = (1, 25)


class OnnxRuntimeTooOld(UniParserError, ImportError):
    """The installed onnxruntime is older than :data:`MIN_ONNXRUNTIME`."""


def check_onnxruntime_version(ort) -> None:
    """Raise :class:`OnnxRuntimeTooOld` naming the needed version when ``ort`` (the imported module) is
    older than 1.25. Versions that do not parse (a source build) are let through."""
    version = str(getattr(ort, "__version__", ""))
    m = re.match(r"\s*(\d+)\.(\d+)", version)
    if m and (int(m.group(1)), int(m.group(2))) < MIN_ONNXRUNTIME:
        need = ".".join(map(str, MIN_ONNXRUNTIME))
        raise OnnxRuntimeTooOld(
            f"onnxruntime {version} is too old for UniParser models: they need onnxruntime >= {need} (its "
            f"DeformConv kernels arrived in {need}; older releases fail with NOT_IMPLEMENTED DeformConv(19)); "
            f"upgrade with: pip install -U 'onnxruntime>={need}' (GPU: 'onnxruntime-gpu>={need}')")


def choose_providers(device: str, available: Sequence[str], providers=None) -> list:
    """Execution providers to request for ``device`` given the ``available`` ones (pure function)."""
    if providers is not None:
        providers = list(providers)
        if not providers:
            raise ValueError("providers must not be empty")
        names = [p[0] if isinstance(p, (tuple, list)) else p for p in providers]
        unknown = [n for n in names if n not in available]
        if unknown:
            raise ValueError(f"execution provider(s) {unknown} not available in this onnxruntime build; "
                             f"available: {list(available)}")
        return providers
    dev = _device_kind(device)
    if dev == "cpu":
        return ["CPUExecutionProvider"]
    has_cuda = "CUDAExecutionProvider" in available
    if dev == "cuda":
        if not has_cuda:
            raise RuntimeError("device='cuda' asked but this onnxruntime build has no CUDAExecutionProvider "
                               f"(available: {list(available)}); install onnxruntime-gpu "
                               "(pip install 'uniparser-sdk[gpu]') or use device='cpu'")
        return [("CUDAExecutionProvider", {"device_id": _device_index(device)}), "CPUExecutionProvider"]
    return (["CUDAExecutionProvider", "CPUExecutionProvider"] if has_cuda else ["CPUExecutionProvider"])


def _device_kind(device: str) -> str:
    return parse_device(device).kind


def _device_index(device: str) -> int:
    return parse_device(device).cuda_index


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path, device: str = "auto", providers=None, threads: Optional[int] = None,
                 session_options=None, **_ignored):
        ort = require("onnxruntime", "running .onnx models")
        check_onnxruntime_version(ort)
        available = ort.get_available_providers()
        requested = choose_providers(device, available, providers)
        so = session_options or ort.SessionOptions()
        if threads is not None and session_options is None:
            so.intra_op_num_threads = int(threads)
        try:
            sess = ort.InferenceSession(str(path), sess_options=so, providers=requested)
        except Exception as exc:  # invalid protobuf, unsupported op, ...
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"onnxruntime cannot load {path}: {first}") from exc
        props = dict(sess.get_modelmeta().custom_metadata_map)
        meta = meta_from_props(props)
        super().__init__(path, meta)
        self._sess = sess
        self._props = props
        self.providers = list(sess.get_providers())
        self.device = "cuda" if self.providers and self.providers[0] in _GPU_PROVIDERS else "cpu"
        if self.device == "cuda" and self.providers[0] == "CUDAExecutionProvider":
            self.device = f"cuda:{_device_index(device)}" if str(device).startswith("cuda:") else "cuda"
        if _device_kind(device) == "cuda" and providers is None and not self.device.startswith("cuda"):
            raise RuntimeError("device='cuda' asked but onnxruntime could not initialise the CUDA provider "
                               "(missing CUDA/cuDNN libraries?) and fell back to CPU; use device='cpu' or "
                               "fix the CUDA installation")
        if _device_kind(device) == "auto" and "CUDAExecutionProvider" in requested and self.device == "cpu":
            log.warning("onnxruntime: CUDA provider unavailable at run time, running on CPU")
        self._inputs = {i.name: i for i in sess.get_inputs()}
        self._output_names = [o.name for o in sess.get_outputs()]
        if "images" not in self._inputs:
            raise ValueError(f"{path}: the model has no 'images' input (inputs: {sorted(self._inputs)})")
        self._image_dtype = _ORT_TO_NP.get(self._inputs["images"].type, np.float32)
        self._seg_kernels = None
        if PREFIX + SEG_KERNELS in props:  # raw-v1 files may carry the category kernels as JSON
            self._seg_kernels = np.asarray(json.loads(props[PREFIX + SEG_KERNELS]), dtype=np.float32)

    @property
    def output_names(self) -> list[str]:
        return list(self._output_names)

    @property
    def intra_op_threads(self) -> Optional[int]:
        """Intra-op threads of the session, read back from it (0: ONNX Runtime's default); None once closed."""
        sess = self._sess
        return None if sess is None else int(sess.get_session_options().intra_op_num_threads)

    @property
    def seg_kernels(self):
        return self._seg_kernels

    def input_constraints(self) -> InputConstraints:
        shape = self._inputs["images"].shape  # entries are ints or symbolic names / None
        b, _, h, w = (shape + [None] * 4)[:4]
        fixed_hw = (h, w) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else None
        fixed_b = b if isinstance(b, int) and b > 0 else None
        return InputConstraints(min_hw=fixed_hw, max_hw=fixed_hw, max_batch=fixed_b, fixed_batch=fixed_b)

    def _infer(self, batch: np.ndarray, decode_params: np.ndarray) -> dict[str, np.ndarray]:
        self._check_open()
        feed = {"images": validate_batch(batch).astype(self._image_dtype, copy=False)}
        if "decode_params" in self._inputs:
            feed["decode_params"] = decode_params_feed(self.meta.layout, decode_params, feed["images"].shape[0])
        outs = self._sess.run(self._output_names, feed)
        return dict(zip(self._output_names, outs))

    def _release(self) -> None:
        self._sess = None
