"""The small interface every runtime backend implements (numpy in, numpy out; no torch here).

A backend owns one loaded model file and runs its graph: ``infer(batch, decode_params)`` takes a
preprocessed NCHW float32 batch and the three decode thresholds and returns the model's outputs by
name, as numpy arrays laid out as ``meta.layout`` says (see :mod:`uniparser_sdk.model_meta`). Everything
before (preprocessing) and after (finishing to a :class:`~uniparser_sdk.results.ParseResult`) is shared
by all backends and lives in :class:`~uniparser_sdk.runtime.parser.Parser`.

Contract:

- ``meta``: the :class:`~uniparser_sdk.model_meta.ModelMeta` of the model file;
- ``device``: ``"cpu"`` or ``"cuda"`` (or ``"cuda:N"``) -- where the network actually runs;
- ``providers``: what actually runs it, most specific first (ONNX Runtime execution providers,
  ``["TensorRT x.y.z"]``, ``["torch x.y (cpu)"]``);
- ``infer`` must be safe to call from several threads at once;
- ``input_constraints()``: what input shapes the model accepts (for padding/splitting batches);
- ``close()`` releases everything (idempotent); backends are context managers.
"""
from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..contract import ModelMeta
from ..errors import UniParserError

__all__ = ["Backend", "InputConstraints", "BackendClosedError", "decode_params_feed"]


class BackendClosedError(UniParserError, RuntimeError):
    """``infer`` was called after ``close()``."""


@dataclass(frozen=True)
class InputConstraints:
    """Shapes a backend accepts for its ``images`` input (None = any).

    ``min_hw`` / ``max_hw``: inclusive (Hp, Wp) bounds; a fixed-shape model has min == max.
    ``max_batch``: largest batch in one call; ``fixed_batch``: the model only takes exactly this batch.
    """

    min_hw: Optional[tuple[int, int]] = None
    max_hw: Optional[tuple[int, int]] = None
    max_batch: Optional[int] = None
    fixed_batch: Optional[int] = None


class Backend(ABC):
    """Base class of the ONNX Runtime, TensorRT and PyTorch backends."""

    #: short name, e.g. "onnxruntime"
    name: str = "backend"

    def __init__(self, path, meta: ModelMeta):
        self.path = str(path)
        self.meta = meta
        self.device = "cpu"
        self.providers: list[str] = []
        self._closed = False
        self._close_lock = threading.Lock()
        self._timing = threading.local()

    # ---- interface -----------------------------------------------------------------------------

    def infer(self, batch: np.ndarray, decode_params: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on a (B, 3, Hp, Wp) float32 batch; ``decode_params`` is float32 (3,)
        ``[ctr_score, mask_thr, cate_score_thr]``, or (B, 3) one row per image (products-v2 graphs take
        them as they are; see :func:`decode_params_feed`; ignored by raw-v1 models). Returns outputs by name,
        as the layout of ``meta`` declares them (:mod:`uniparser_sdk.contract.layouts`).

        The runner times itself (Polygraphy's habit): :meth:`last_inference_time` afterwards."""
        t0 = time.perf_counter()
        out = self._infer(batch, decode_params)
        self._timing.last = time.perf_counter() - t0
        return out

    def last_inference_time(self) -> Optional[float]:
        """Seconds the calling thread's last :meth:`infer` took (host copies included), or None."""
        return getattr(self._timing, "last", None)

    @abstractmethod
    def _infer(self, batch: np.ndarray, decode_params: np.ndarray) -> dict[str, np.ndarray]:
        """The backend's run (see :meth:`infer`)."""

    def input_constraints(self) -> InputConstraints:
        return InputConstraints()

    @property
    def seg_kernels(self) -> Optional[np.ndarray]:
        """Category kernels (C, D) for raw-v1 models when the file stores them outside the outputs."""
        return None

    def _release(self) -> None:
        """Free backend resources (called once by :meth:`close`)."""

    # ---- lifecycle -----------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise BackendClosedError(f"{self.name} backend for {self.path} is closed")

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def describe(self) -> str:
        return f"{self.name} on {self.device} ({', '.join(self.providers) or '?'})"

    def __repr__(self) -> str:
        state = ", closed" if self._closed else ""
        return f"<{type(self).__name__} {self.path!r}: {self.describe()}{state}>"


def validate_batch(batch: np.ndarray) -> np.ndarray:
    """Common input check: a contiguous float32 (B, 3, H, W) array."""
    if not isinstance(batch, np.ndarray):
        raise TypeError(f"batch must be a numpy array, got {type(batch).__name__}")
    if batch.ndim != 4 or batch.shape[1] != 3 or min(batch.shape) == 0:
        raise ValueError(f"batch must be (B, 3, H, W) with B, H, W > 0, got {batch.shape}")
    return np.ascontiguousarray(batch, dtype=np.float32)


def validate_decode_params(params) -> np.ndarray:
    p = np.asarray(params, dtype=np.float32).reshape(-1)
    if p.shape != (3,):
        raise ValueError(f"decode_params must hold 3 values [ctr_score, mask_thr, cate_score_thr], got {p.shape}")
    return p


def decode_params_feed(layout: str, params, batch_size: int) -> np.ndarray:
    """THE one place that shapes the thresholds for a graph's ``decode_params`` input, by the rank its
    layout declares (:mod:`uniparser_sdk.contract.layouts`): rank 1 (products-v1) -> float32 (3,), one
    set for the whole call; rank 2 (products-v2) -> float32 (batch_size, 3), one row per image.

    ``params``: (3,) (the same thresholds for every image) or (batch_size, 3) (per image). A rank-1
    graph takes per-image rows only when they are all equal (it has one set per call)."""
    from ..contract import get_layout

    spec = get_layout(layout).spec("decode_params")
    p = np.asarray(params, dtype=np.float32)
    if p.ndim == 2 and p.shape == (int(batch_size), 3):
        rows = p
    elif p.size == 3:
        rows = None
        p = p.reshape(3)
    else:
        raise ValueError(f"decode_params must be 3 values [ctr_score, mask_thr, cate_score_thr] or one row of "
                         f"3 per image ({int(batch_size)}, 3), got shape {p.shape}")
    if spec.rank == 1:
        if rows is None:
            return np.ascontiguousarray(p)
        if not (rows == rows[0]).all():
            raise ValueError(f"this {layout} model takes one set of thresholds per call, got different rows "
                             "per image; export the products-v2 layout for per-image thresholds")
        return np.ascontiguousarray(rows[0])
    if spec.rank == 2:
        if rows is None:
            rows = np.broadcast_to(p, (int(batch_size), 3))
        return np.ascontiguousarray(rows, dtype=np.float32)
    raise ValueError(f"layout {layout}: decode_params of rank {spec.rank} is not supported")
