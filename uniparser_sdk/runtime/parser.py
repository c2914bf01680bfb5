"""``Parser``: one entry point for every model file type.

    with Parser("uniparser.onnx") as parser:          # or .engine/.plan (TensorRT), .pth (PyTorch)
        result = parser.predict("photo.jpg")          # -> ParseResult
        for person in result:                          # sorted by score, descending
            print(person.score, person.bbox, person.part_ids)
        cv2.imwrite("overlay.jpg", result.draw(cv2.imread("photo.jpg")))

Pipeline: :func:`~uniparser_sdk.preprocess.preprocess` (numpy/OpenCV) -> ``backend.infer`` (the model
file's runtime) -> :mod:`~uniparser_sdk.runtime.finish` (numpy finishing of the output layout the model
declares in its metadata). Per-stage milliseconds land in ``ParseResult.timings``
(``preprocess``, ``network``, ``postprocess``). Which split of the decode each layout uses:

- ``products-v1`` (ONNX export, TensorRT engine of it, and ``.pth`` through the same export module):
  network + decode steps 1-4 run in the backend; step 5 (per-person finishing) runs here in numpy,
  per valid person, on kept categories, inside the person's mask box;
- ``plugin-v1``: everything in the engine (fused plugin); here only crop + nearest resize;
- ``raw-v1``: network only in the backend; steps 1-4 and 5 in numpy here.

Thread safety: a ``Parser`` holds no per-call state; the backends are thread-safe (ONNX Runtime
sessions are; TensorRT uses one execution context per thread; torch runs in inference mode), so one
``Parser`` may serve several threads. ``torch`` is never imported for ``.onnx`` models.
"""
from __future__ import annotations

import itertools
import math
import numbers
import os
import queue
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from ..classes import classes_for
from ..io_utils import imread
from ..contract import LAYOUT_PLUGIN, LAYOUT_RAW, ModelMeta
from ..contract.layouts import PRODUCTS_LAYOUTS, SEG_KERNELS, decode_params
from .finish import CAT_CONF, PART_MAPS, finish_plugin, finish_products, finish_raw
from .cpus import resolve_threads
from .preprocess import DEFAULT_SCALE, SIZE_DIVISOR, ImageMeta, Normalization, pad_size, preprocess_batch
from ..results import ParseResult
from ..backends import Backend, open_backend

__all__ = ["Parser", "DECODE_RANGES", "validate_decode_overrides", "onnxruntime_session_options"]

ImageInput = Union[str, os.PathLike, np.ndarray]

#: decode thresholds a user may override, with their valid (inclusive) ranges
DECODE_RANGES = {
    "ctr_score": (0.0, 1.0),  # sigmoid center score
    "mask_thr": (-1.0, 1.0),  # cosine similarity
    "cate_score_thr": (0.0, 1.0),  # maskness lies in [0, 1]
}


def validate_decode_overrides(overrides: dict, max_instances_limit: Optional[int] = None) -> dict:
    """Check user decode options: known names, real finite numbers in range; ``max_instances`` a
    positive int (at most ``max_instances_limit`` when the model has a fixed number of slots).
    ``None`` values mean "keep the model's value" and are dropped."""
    out = {}
    valid = sorted(DECODE_RANGES) + ["max_instances"]
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in valid:
            raise TypeError(f"unknown decode option {key!r}; valid: {valid}")
        if key == "max_instances":
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"max_instances must be a positive integer, got {value!r}")
            if max_instances_limit is not None and value > max_instances_limit:
                raise ValueError(f"max_instances={value} exceeds the model's {max_instances_limit} instance slots "
                                 "(fixed at export time)")
            out[key] = int(value)
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{key} must be a number, got {type(value).__name__}")
        value = float(value)
        lo, hi = DECODE_RANGES[key]
        if not math.isfinite(value) or not lo <= value <= hi:
            raise ValueError(f"{key} must lie in [{lo}, {hi}], got {value}")
        out[key] = value
    return out


class Parser:
    """Multi-human parser over an ``.onnx``, ``.engine``/``.plan`` or ``.pth`` model file.

    Args:
        model: path of the model file; its extension picks the backend.
        device: ``"auto"`` (GPU when the backend can use one), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        providers: ONNX Runtime execution providers, verbatim (overrides ``device``).
        warmup: run one dummy inference now (True: at the typical input size; or an (H, W)).
        scale: (long side, short side) limits of the keep-ratio resize, overriding the model's
            (default (1333, 800), the official test scale).
        threads: ONNX Runtime intra-op threads (``.pth``: ``torch.set_num_threads``; ``.xml``: OpenVINO's
            ``INFERENCE_NUM_THREADS``). Default: the CPUs
            this process may use (:func:`~uniparser_sdk.runtime.cpus.available_cpus`: affinity mask and
            cgroup CPU quota), not the host's CPU count.
        session_options: an ``onnxruntime.SessionOptions`` for ``.onnx`` models, used as given except
            that ``threads`` (explicit, or the default when the options leave
            ``intra_op_num_threads`` at 0) and ``low_memory`` are applied to it.
        low_memory: ``.onnx`` only: turn ONNX Runtime's CPU memory arena and memory-pattern planning
            off. Costs some speed; keeps the resident memory flat when input sizes vary (the arena
            keeps every peak it has seen).
        precision: ``.pth`` only: ``"fp32"`` (default) or ``"bf16"`` (CPU: the network under
            ``torch.autocast`` bf16 on channels_last, the decode in float32). Exported models compute at
            the precision they were exported / converted to (``uniparser-export --precision``).
        **decode: ``ctr_score``, ``mask_thr``, ``cate_score_thr``, ``max_instances`` overriding the
            values stored in the model.
    """

    def __init__(self, model, device: str = "auto", providers=None, *, warmup: Union[bool, Sequence[int]] = False,
                 threads: Optional[int] = None, scale: Optional[Sequence[int]] = None, session_options=None,
                 low_memory: bool = False, precision: Optional[str] = None, **decode):
        decode = validate_decode_overrides(decode)  # early, before loading anything heavy
        self.path = str(model)
        suffix = Path(self.path).suffix.lower()
        explicit_threads = threads is not None
        self.threads = resolve_threads(threads)
        backend_kwargs = {}
        if suffix == ".onnx":
            backend_kwargs["session_options"] = onnxruntime_session_options(
                session_options, self.threads if explicit_threads else None, low_memory)
        elif session_options is not None:
            raise ValueError(f"session_options are ONNX Runtime options; {self.path} is not an .onnx model")
        if precision is not None and suffix not in (".pth", ".pt"):
            raise ValueError(f"precision= applies to .pth checkpoints; {self.path} computes at the precision it was "
                             "exported / converted to (uniparser-export --precision / --variant)")
        if suffix == ".xml" and explicit_threads:
            backend_kwargs["threads"] = self.threads
        if suffix in (".pth", ".pt"):
            if precision is not None:
                backend_kwargs["precision"] = precision
            if explicit_threads:
                backend_kwargs["threads"] = self.threads
            if "max_instances" in decode:
                backend_kwargs["max_instances"] = decode["max_instances"]  # torch: K is chosen at load time
        self.backend: Backend = open_backend(model, device=device, providers=providers, **backend_kwargs)
        try:
            meta = self.backend.meta
            base = meta.thresholds  # stored once in the model (library defaults for keys it lacks)
            self._slots = int(base["max_instances"]) if meta.layout != LAYOUT_RAW else None
            self._base_decode = dict(base)
            self._decode = {**base, **self._check_overrides(decode)}
            self._classes = tuple(meta.classes) if meta.classes else None
            if self._classes is None and (meta.config or {}).get("num_classes"):
                self._classes = classes_for(int(meta.config["num_classes"]))
            inp = meta.input or {}
            self._scale = tuple(int(v) for v in (scale if scale is not None else inp.get("scale", DEFAULT_SCALE)))
            if len(self._scale) != 2 or min(self._scale) < 1:
                raise ValueError(f"scale must be (long side, short side) > 0, got {scale!r}")
            self._divisor = int(inp.get("size_divisor", SIZE_DIVISOR))
            self._norm = Normalization.from_meta(meta.normalization)  # normalise once, in preprocess
            self._constraints = self.backend.input_constraints()
            names = getattr(self.backend, "output_names", None)
            if (meta.layout == LAYOUT_RAW and self.backend.seg_kernels is None and names is not None
                    and SEG_KERNELS not in names):
                raise ValueError(f"{self.path}: raw-v1 model without its category kernels (no 'seg_kernels' "
                                 "output or metadata); it cannot be decoded -- export the products-v1 layout")
            if warmup:
                self.warmup(None if warmup is True else warmup)
        except BaseException:
            self.backend.close()
            raise

    # ---- description ---------------------------------------------------------------------------

    @property
    def meta(self) -> ModelMeta:
        return self.backend.meta

    @property
    def layout(self) -> str:
        return self.backend.meta.layout

    @property
    def device(self) -> str:
        """Where the network actually runs ("cpu", "cuda", ...)."""
        return self.backend.device

    @property
    def providers(self) -> list[str]:
        """What actually runs the network (e.g. ONNX Runtime execution providers in priority order)."""
        return list(self.backend.providers)

    @property
    def decode(self) -> dict:
        """Decode options in effect (model values + constructor overrides)."""
        return dict(self._decode)

    @property
    def classes(self) -> Optional[tuple[str, ...]]:
        return self._classes

    def __repr__(self) -> str:
        return (f"Parser({self.path!r}, backend={self.backend.describe()}, layout={self.layout}, "
                f"decode={self._decode})")

    # ---- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Release the backend (sessions, GPU buffers, contexts). Idempotent."""
        self.backend.close()

    @property
    def closed(self) -> bool:
        return self.backend.closed

    def __enter__(self) -> "Parser":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def warmup(self, shape: Optional[Sequence[int]] = None) -> None:
        """One dummy inference, e.g. to trigger CUDA kernel selection. ``shape``: padded (H, W)."""
        if shape is None:
            h, w = pad_size(min(self._scale), max(self._scale), self._divisor)
        else:
            h, w = pad_size(int(shape[0]), int(shape[1]), self._divisor)
        c = self._constraints
        if c.min_hw is not None:
            h, w = max(h, c.min_hw[0]), max(w, c.min_hw[1])
        if c.max_hw is not None:
            h, w = min(h, c.max_hw[0]), min(w, c.max_hw[1])
        self._infer(np.zeros((1, 3, h, w), np.float32), decode_params(self._decode))

    # ---- prediction ----------------------------------------------------------------------------

    def __call__(self, img: ImageInput, color: str = "bgr", **decode) -> ParseResult:
        return self.predict(img, color=color, **decode)

    def predict(self, img: ImageInput, color: str = "bgr", **decode) -> ParseResult:
        """Parse one image: a file path, or an HxW / HxWx1 / HxWx3 / HxWx4 uint8 or float array in
        OpenCV's BGR(A) order (``color="rgb"`` for RGB(A) arrays; floats in [0, 1] or [0, 255]).
        ``decode`` options override the parser's for this call only."""
        return self.predict_batch([img], color=color, batch_size=1, **decode)[0]

    def predict_batch(self, imgs: Iterable[ImageInput], color: str = "bgr", batch_size: int = 8,
                      **decode) -> list[ParseResult]:
        """Parse several images, ``batch_size`` per network call (padded to the largest of the call).
        ``imgs`` may be any iterable, a generator included: it is read ``batch_size`` images at a time
        (only the results are kept; :meth:`stream` keeps nothing).

        Note: the network sees each image zero-padded to the largest one of its call, so images of
        different sizes can get slightly different results than one by one (as in the official
        batched test); same-size images get exactly the same results."""
        if isinstance(imgs, (str, os.PathLike, np.ndarray)):
            raise TypeError("predict_batch takes a list of images; use predict for a single image")
        return list(self.stream(imgs, batch_size=batch_size, color=color, prefetch=0, **decode))

    def stream(self, frames: Iterable[ImageInput], batch_size: int = 1, color: str = "bgr", prefetch: int = 1,
               with_inputs: bool = False, **decode) -> Iterator:
        """Parse an iterable of images (a list, a generator, video frames) lazily, in order.

        Returns a generator of :class:`ParseResult` (with ``with_inputs``: of ``(image, result)``, the
        image as read -- the BGR array of a path -- e.g. to draw the overlay on). Memory is bounded:
        at most ``batch_size * (prefetch + 1)`` images are read and not yet delivered.

        ``prefetch``: number of batches a background thread reads and preprocesses while the network
        runs (0: everything in the calling thread). Errors of the iterable or of an image are raised
        in the caller at their place in the sequence (results before them are delivered first).
        Closing the generator early (``break``) stops the thread and closes ``frames`` when it is a
        generator. Options are checked here, before the first frame is read."""
        if isinstance(frames, (str, os.PathLike, np.ndarray)):
            raise TypeError("stream takes an iterable of images; use predict for a single image")
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(prefetch, bool) or not isinstance(prefetch, numbers.Integral) or prefetch < 0:
            raise ValueError(f"prefetch must be a non-negative integer, got {prefetch!r}")
        if color not in ("bgr", "rgb"):
            raise ValueError(f"color must be 'bgr' or 'rgb', got {color!r}")
        opts = {**self._decode, **self._check_overrides(decode)}
        params = decode_params(opts)
        return self._stream(iter(frames), int(batch_size), color, int(prefetch), bool(with_inputs), opts, params,
                            frames)

    def _stream(self, it, batch_size, color, prefetch, with_inputs, opts, params, frames) -> Iterator:
        def chunks():
            while True:
                chunk = list(itertools.islice(it, batch_size))
                if not chunk:
                    return
                yield self._prepare(chunk, color)

        if prefetch == 0:
            source = chunks()
            stop = worker = None
        else:
            source, stop, worker = _prefetched(chunks(), prefetch)
        try:
            for prepared in source:
                results = self._run_prepared(prepared, opts, params)
                if with_inputs:
                    yield from zip(prepared[2], results)
                else:
                    yield from results
        finally:
            if worker is not None:
                stop.set()
                worker.join()
            close = getattr(frames, "close", None)
            if callable(close) and hasattr(frames, "gi_frame"):  # a generator we read from: close it
                close()

    # ---- internals -----------------------------------------------------------------------------

    @staticmethod
    def _load(img: ImageInput) -> tuple[np.ndarray, Optional[str], bool]:
        """-> (array, source name, came from a file)."""
        if isinstance(img, (str, os.PathLike)):
            return imread(img), str(img), True
        if isinstance(img, np.ndarray):
            return img, None, False
        raise TypeError(f"expected an image path or a numpy array, got {type(img).__name__}")

    def _prepare(self, imgs: list, color: str):
        """Read + preprocess one chunk -> (batch, metas, arrays, sources, preprocess ms per image)."""
        t0 = time.perf_counter()
        loaded = [self._load(im) for im in imgs]
        arrays = [a for a, _, _ in loaded]
        colors = ["bgr" if from_file else color for _, _, from_file in loaded]  # files are always BGR
        batch, metas = preprocess_batch(arrays, self._scale, colors, self._divisor, self._norm)
        pre_ms = (time.perf_counter() - t0) * 1e3 / len(imgs)
        return batch, metas, arrays, [src for _, src, _ in loaded], pre_ms

    def _run_prepared(self, prepared, opts: dict, params: np.ndarray) -> list[ParseResult]:
        batch, metas, _, sources, pre_ms = prepared
        t1 = time.perf_counter()
        outputs = self._infer(batch, params)
        net_ms = (time.perf_counter() - t1) * 1e3 / len(metas)
        results = []
        for i, (meta, source) in enumerate(zip(metas, sources)):
            t3 = time.perf_counter()
            res = self._finish(outputs, meta, i, opts, source)
            res.timings = {"preprocess": pre_ms, "network": net_ms,
                           "postprocess": (time.perf_counter() - t3) * 1e3}
            results.append(res)
        return results

    def _predict_chunk(self, imgs: list, color: str, opts: dict, params: np.ndarray) -> list[ParseResult]:
        return self._run_prepared(self._prepare(imgs, color), opts, params)

    def _check_overrides(self, decode: dict) -> dict:
        opts = validate_decode_overrides(decode, self._slots)
        if self.layout == LAYOUT_PLUGIN:  # thresholds are attributes of the fused plugin node
            baked = {k: v for k, v in opts.items()
                     if k in DECODE_RANGES and not math.isclose(v, float(self._base_decode[k]), abs_tol=1e-7)}
            if baked:
                raise ValueError(f"this {LAYOUT_PLUGIN} model has its decode thresholds built in "
                                 f"({', '.join(f'{k}={self._base_decode[k]}' for k in baked)}); re-export it "
                                 "with other thresholds, or use the products-v1 .onnx / engine")
        return opts

    def _classes_for_outputs(self, outputs: dict, index: int):
        if self._classes is not None:
            return self._classes
        if CAT_CONF in outputs:
            return classes_for(int(outputs[CAT_CONF].shape[1]) + 1)
        if SEG_KERNELS in outputs:
            return classes_for(int(np.asarray(outputs[SEG_KERNELS]).shape[-2]) + 1)
        if self.backend.seg_kernels is not None:
            return classes_for(int(self.backend.seg_kernels.shape[0]) + 1)
        if PART_MAPS in outputs:  # labels only: size the class list by the largest label
            return classes_for(max(int(outputs[PART_MAPS][index].max(initial=0)) + 1, 2))
        raise ValueError("the model metadata names no classes")

    def _finish(self, outputs: dict, meta: ImageMeta, index: int, opts: dict, source) -> ParseResult:
        layout = self.layout
        classes = self._classes_for_outputs(outputs, index)
        limit = opts.get("max_instances")
        if layout in PRODUCTS_LAYOUTS:  # products-v1 and -v2: the same outputs
            return finish_products(outputs, meta, classes, index, max_instances=limit, source=source,
                                   mask_thr=float(opts["mask_thr"]))
        if layout == LAYOUT_PLUGIN:
            return finish_plugin(outputs, meta, classes, index, max_instances=limit, source=source)
        if layout == LAYOUT_RAW:
            return finish_raw(outputs, meta, classes, opts, seg_kernels=self.backend.seg_kernels, index=index,
                              source=source)
        raise ValueError(f"unsupported output layout {layout!r}")

    def _infer(self, batch: np.ndarray, params: np.ndarray) -> dict:
        """Fit the batch to the backend's input constraints (pad H/W up to a minimum or fixed size, pad
        or split the batch), run, and trim the outputs back to the real images."""
        c = self._constraints
        b, _, h, w = batch.shape
        th, tw = h, w
        if c.min_hw is not None:
            th, tw = max(th, c.min_hw[0]), max(tw, c.min_hw[1])
        if c.max_hw is not None and (th > c.max_hw[0] or tw > c.max_hw[1]):
            raise ValueError(f"preprocessed input {h}x{w} exceeds the largest input the model accepts "
                             f"({c.max_hw[0]}x{c.max_hw[1]}); use a model exported for larger inputs")
        if (th, tw) != (h, w):
            padded = np.zeros((b, 3, th, tw), np.float32)
            padded[:, :, :h, :w] = batch
            batch = padded
        step = c.fixed_batch or c.max_batch or b
        if step >= b and c.fixed_batch is None:
            return self.backend.infer(batch, params)
        chunks = []
        for s in range(0, b, step):
            part = batch[s:s + step]
            real = part.shape[0]
            if c.fixed_batch is not None and real < c.fixed_batch:
                part = np.concatenate([part, np.zeros((c.fixed_batch - real,) + part.shape[1:], np.float32)])
            out = self.backend.infer(part, params)
            chunks.append({k: v[:real] for k, v in out.items()})
        return {k: np.concatenate([ch[k] for ch in chunks]) for k in chunks[0]}


def onnxruntime_session_options(session_options=None, threads: Optional[int] = None, low_memory: bool = False):
    """The ``onnxruntime.SessionOptions`` a Parser opens an ``.onnx`` model with.

    ``session_options``: the caller's (modified in place) or a new one. ``threads``: intra-op threads;
    None keeps the options' value unless it is ONNX Runtime's 0 ("all the host's cores"), which becomes
    :func:`~uniparser_sdk.runtime.cpus.available_cpus`. ``low_memory``: CPU memory arena and memory
    patterns off (``enable_cpu_mem_arena = enable_mem_pattern = False``)."""
    from .._lazy import require

    ort = require("onnxruntime", "running .onnx models")
    so = session_options if session_options is not None else ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = resolve_threads(threads)
    elif so.intra_op_num_threads == 0:
        so.intra_op_num_threads = resolve_threads(None)
    if low_memory:
        so.enable_cpu_mem_arena = False
        so.enable_mem_pattern = False
    return so


_END = object()


def _prefetched(source: Iterator, depth: int):
    """Run ``source`` in a daemon thread -> (iterator, stop event, thread). The thread holds at most
    ``depth`` items beyond the one the consumer is working on: it takes a slot before pulling an item,
    and the consumer frees the slot of an item when it asks for the next one. Items (and an exception
    of ``source``) arrive in order; setting ``stop`` ends the thread."""
    q: queue.Queue = queue.Queue()
    slots = threading.Semaphore(depth + 1)
    stop = threading.Event()

    def work():
        try:
            while True:
                while not slots.acquire(timeout=0.05):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                try:
                    item = next(source)
                except StopIteration:
                    q.put((True, _END))
                    return
                q.put((True, item))
        except BaseException as exc:  # delivered to the consumer, raised there
            q.put((False, exc))

    worker = threading.Thread(target=work, name="uniparser-prefetch", daemon=True)
    worker.start()

    def consume():
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is _END:
                return
            yield item
            slots.release()  # the consumer is done with this item

    return consume(), stop, worker

