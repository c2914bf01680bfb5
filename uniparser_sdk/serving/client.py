"""A small client of the served pipeline: images in, :class:`~uniparser_sdk.results.ParseResult` out
(the objects ``Parser.predict`` returns), over HTTP or gRPC with NVIDIA's ``tritonclient``
(``pip install 'uniparser-sdk[serving]'``).

    with TritonParserClient("127.0.0.1:8000") as client:              # HTTP
        result = client.predict("photo.jpg")                          # the file's bytes, decoded server-side
        result = client.predict(frame_bgr, ctr_score=0.4)             # raw uint8 pixels, own thresholds
    TritonParserClient("127.0.0.1:8001", protocol="grpc")

A client object is safe to use from several threads (one tritonclient connection per thread).
Class names and default thresholds come from the ensemble's config (read once).
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from .._lazy import require
from ..contract import DECODE_PARAM_ORDER
from ..errors import UniParserError, UserInputError
from ..results import ParseResult
from .repository import ENSEMBLE

__all__ = ["TritonParserClient", "TritonRequestError"]

ImageInput = Union[str, os.PathLike, bytes, np.ndarray]


class TritonRequestError(UniParserError, RuntimeError):
    """The server refused or failed a request (the message is the server's)."""


class TritonParserClient:
    """Client of the ``uniparser`` ensemble (see :mod:`uniparser_sdk.serving.repository`).

    Args:
        url: ``host:port`` (HTTP default port 8000, gRPC 8001).
        protocol: ``"http"`` or ``"grpc"``.
        model: the ensemble's name.
        timeout: seconds per request (network + server).
    """

    def __init__(self, url: str = "127.0.0.1:8000", protocol: str = "http", model: str = ENSEMBLE,
                 timeout: float = 60.0):
        if protocol not in ("http", "grpc"):
            raise UserInputError(f"protocol must be 'http' or 'grpc', got {protocol!r}")
        self.url, self.protocol, self.model, self.timeout = url, protocol, model, float(timeout)
        self._mod = require(f"tritonclient.{protocol}", "talking to Triton Inference Server (pip extra 'serving')")
        from tritonclient.utils import InferenceServerException

        self._exc = InferenceServerException
        self._local = threading.local()
        self._clients: list = []
        self._lock = threading.Lock()
        cfg = self._config()
        params = {k: v.get("string_value", "") for k, v in (cfg.get("parameters") or {}).items()}
        try:
            self.classes = tuple(json.loads(params["classes"]))
            self.thresholds = {k: float(v) for k, v in json.loads(params["thresholds"]).items()}
        except (KeyError, ValueError) as exc:
            raise TritonRequestError(f"model {model!r} at {url} is not a uniparser ensemble (its config has no "
                                     f"classes/thresholds parameters: {exc})") from None

    # ---- connections ---------------------------------------------------------------------------

    def _client(self):
        c = getattr(self._local, "client", None)
        if c is None:
            if self.protocol == "http":
                c = self._mod.InferenceServerClient(self.url, connection_timeout=self.timeout,
                                                    network_timeout=self.timeout)
            else:
                c = self._mod.InferenceServerClient(self.url)
            self._local.client = c
            with self._lock:
                self._clients.append(c)
        return c

    def _config(self) -> dict:
        try:
            if self.protocol == "http":
                return self._client().get_model_config(self.model)
            return self._client().get_model_config(self.model, as_json=True)["config"]
        except self._exc as exc:
            raise TritonRequestError(f"cannot read the config of {self.model!r} at {self.url}: {exc.message()}") from None

    def is_ready(self) -> bool:
        try:
            return bool(self._client().is_model_ready(self.model))
        except Exception:
            return False

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for c in clients:
            try:
                c.close()
            except Exception:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # ---- requests ------------------------------------------------------------------------------

    def _thresholds(self, decode: dict) -> Optional[np.ndarray]:
        unknown = set(decode) - set(DECODE_PARAM_ORDER)
        if unknown:
            raise UserInputError(f"unknown decode option(s) {sorted(unknown)}; the server takes "
                                 f"{list(DECODE_PARAM_ORDER)} per request")
        if not decode:
            return None
        return np.array([[float(decode.get(k, self.thresholds[k])) for k in DECODE_PARAM_ORDER]], np.float32)

    def _inputs(self, img: ImageInput, color: str, thresholds) -> tuple[list, Optional[str]]:
        m = self._mod
        source = None
        if isinstance(img, (str, os.PathLike)):
            path = Path(img)
            if not path.is_file():
                raise FileNotFoundError(f"image file not found: {path}")
            img, source = path.read_bytes(), str(img)
        if isinstance(img, (bytes, bytearray)):
            t = m.InferInput("image_bytes", [1, 1], "BYTES")
            t.set_data_from_numpy(np.array([[bytes(img)]], dtype=np.object_))
        elif isinstance(img, np.ndarray):
            a = img
            if color not in ("bgr", "rgb"):
                raise UserInputError(f"color must be 'bgr' or 'rgb', got {color!r}")
            if color == "rgb" and a.ndim == 3 and a.shape[2] in (3, 4):
                a = a[:, :, [2, 1, 0] + ([3] if a.shape[2] == 4 else [])]
            if a.ndim == 2:
                a = a[:, :, None]
            a = np.ascontiguousarray(a)
            t = m.InferInput("image", [1, *a.shape], _dtype_name(a.dtype))
            t.set_data_from_numpy(a[None])
        else:
            raise TypeError(f"expected an image path, encoded bytes or a numpy array, got {type(img).__name__}")
        inputs = [t]
        if thresholds is not None:
            th = m.InferInput("thresholds", [1, len(DECODE_PARAM_ORDER)], "FP32")
            th.set_data_from_numpy(thresholds)
            inputs.append(th)
        return inputs, source

    def predict(self, img: ImageInput, color: str = "bgr", **decode) -> ParseResult:
        """Parse one image on the server: a file path (its bytes are sent and decoded there, as
        ``Parser`` decodes files), encoded image bytes, or uint8 pixels (HxW, HxWxC, BGR(A) or
        ``color="rgb"``). ``decode``: ``ctr_score``, ``mask_thr``, ``cate_score_thr`` for this request."""
        inputs, source = self._inputs(img, color, self._thresholds(decode))
        m = self._mod
        outputs = [m.InferRequestedOutput("scores"), m.InferRequestedOutput("part_maps")]
        t0 = time.perf_counter()
        try:
            if self.protocol == "http":
                res = self._client().infer(self.model, inputs, outputs=outputs, timeout=int(self.timeout * 1e6))
            else:
                res = self._client().infer(self.model, inputs, outputs=outputs, client_timeout=self.timeout)
        except self._exc as exc:
            raise TritonRequestError(f"{self.model} at {self.url}: {exc.message()}") from None
        elapsed = (time.perf_counter() - t0) * 1e3
        scores = res.as_numpy("scores")
        maps = res.as_numpy("part_maps")
        if scores is None or maps is None or maps.ndim != 4:
            raise TritonRequestError(f"{self.model} answered without scores/part_maps")
        return ParseResult.from_label_maps(scores[0].astype(np.float64), maps[0], self.classes,
                                           image_shape=maps.shape[2:], timings={"request": elapsed}, source=source)

    def predict_many(self, imgs: Sequence[ImageInput], workers: int = 4, **decode) -> list[ParseResult]:
        """:meth:`predict` for each image, ``workers`` requests in flight (results in input order)."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max(1, int(workers))) as pool:
            return list(pool.map(lambda im: self.predict(im, **decode), imgs))


def _dtype_name(dtype) -> str:
    from tritonclient.utils import np_to_triton_dtype

    name = np_to_triton_dtype(np.dtype(dtype))
    if name is None:
        raise UserInputError(f"cannot send a {dtype} image")
    return name
