"""The per-request work of the served pipeline, in plain numpy (no Triton, no torch): testable here and
called by the Python-backend models (:mod:`.triton_models`).

It is the same code :class:`~uniparser_sdk.runtime.parser.Parser` runs for one image, split where the
network sits: :func:`~uniparser_sdk.runtime.preprocess.preprocess` before it, and
:func:`~uniparser_sdk.runtime.finish.finish_products` after it, so a served request gives the result
``Parser.predict`` gives for the same image and thresholds.

Tensors between the steps (one image per request; Triton adds the batch axis):

==============  =======  ========  =================================================================
name            dtype    dims      meaning
==============  =======  ========  =================================================================
``images``      float32  3, H, W   normalised RGB, zero-padded to multiples of 32 (the network input)
``decode_params`` float32 3        this request's [ctr_score, mask_thr, cate_score_thr]
``image_meta``  int64    6         original (H, W), resized (h, w), padded (Hp, Wp)
==============  =======  ========  =================================================================
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, Optional, Sequence

import cv2
import numpy as np

from ..contract import DECODE_PARAM_ORDER, DECODE_RANGES, DEFAULT_SCALE, MEAN_RGB, SIZE_DIVISOR, STD_RGB, ModelMeta, meta_from_props
from ..errors import UserInputError
from ..runtime.finish import finish_products
from ..runtime.geometry import ImageMeta
from ..runtime.preprocess import preprocess

__all__ = ["InvalidRequestError", "IMAGE_META_FIELDS", "decode_image", "check_raw_image", "thresholds_row",
           "Preprocessor", "finish_request", "load_meta"]

IMAGE_META_FIELDS = ("ori_height", "ori_width", "img_height", "img_width", "pad_height", "pad_width")


class InvalidRequestError(UserInputError):
    """A request the pipeline cannot serve (not an image, wrong shape, thresholds out of range)."""


def load_meta(path) -> ModelMeta:
    """The model metadata the repository writer stored next to a Python-backend model."""
    return meta_from_props(json.loads(Path(path).read_text()))


def decode_image(data) -> np.ndarray:
    """Encoded image bytes (PNG, JPEG, ... anything OpenCV reads) -> BGR uint8 HxWx3, decoded exactly
    as :func:`uniparser_sdk.io_utils.imread` decodes a file (``cv2.IMREAD_COLOR``)."""
    if isinstance(data, np.ndarray):
        data = data.tobytes() if data.dtype == np.uint8 else (data.reshape(-1)[0] if data.size == 1 else None)
    if isinstance(data, str):
        raise InvalidRequestError("image_bytes must hold the encoded image file's bytes, got text")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidRequestError(f"image_bytes must hold one encoded image, got {type(data).__name__}")
    buf = np.frombuffer(bytes(data), dtype=np.uint8)
    if buf.size == 0:
        raise InvalidRequestError("image_bytes is empty")
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise InvalidRequestError(f"image_bytes ({buf.size} bytes, starting {bytes(buf[:8])!r}) is not an image "
                                  "OpenCV can decode (send a PNG/JPEG/... file's bytes, or the pixels as 'image')")
    return img


def check_raw_image(arr) -> np.ndarray:
    """The ``image`` input: uint8 HxWxC (C = 1, 3 BGR or 4 BGRA) or HxW pixels."""
    a = np.asarray(arr)
    if a.dtype != np.uint8:
        raise InvalidRequestError(f"image must be uint8 pixels, got {a.dtype}")
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)) or a.size == 0:
        raise InvalidRequestError(f"image must be HxW or HxWxC (C = 1, 3 or 4, BGR order) with H, W > 0, "
                                  f"got shape {a.shape}")
    return a


def thresholds_row(values, defaults: Mapping[str, float]) -> np.ndarray:
    """float32 (3,) [ctr_score, mask_thr, cate_score_thr]: ``values`` (3 numbers, each in its range) or,
    when None, the model's ``defaults``."""
    if values is None:
        return np.array([float(defaults[k]) for k in DECODE_PARAM_ORDER], np.float32)
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size != len(DECODE_PARAM_ORDER):
        raise InvalidRequestError(f"thresholds must be {len(DECODE_PARAM_ORDER)} values "
                                  f"{list(DECODE_PARAM_ORDER)}, got {v.size}")
    for name, x in zip(DECODE_PARAM_ORDER, v):
        lo, hi = DECODE_RANGES[name]
        if not (math.isfinite(x) and lo <= x <= hi):
            raise InvalidRequestError(f"threshold {name} must lie in [{lo}, {hi}], got {x}")
    return v.astype(np.float32)


class Preprocessor:
    """Parser's preprocessing for one image, with the input policy stored in the model."""

    def __init__(self, meta: ModelMeta):
        norm = meta.normalization or {}
        standard = (str(norm.get("color", "rgb")).lower() == "rgb"
                    and np.allclose(norm.get("mean", MEAN_RGB), MEAN_RGB) and np.allclose(norm.get("std", STD_RGB), STD_RGB))
        if not standard:
            raise InvalidRequestError(f"the served pipeline supports the standard normalisation only, this model "
                                      f"stores {norm}")
        inp = meta.input or {}
        self.scale = tuple(int(v) for v in inp.get("scale", DEFAULT_SCALE))
        self.divisor = int(inp.get("size_divisor", SIZE_DIVISOR))
        self.defaults = meta.thresholds

    def __call__(self, img_bgr: np.ndarray, thresholds=None):
        """-> (images (1, 3, Hp, Wp) float32, decode_params (1, 3) float32, image_meta (1, 6) int64)."""
        params = thresholds_row(thresholds, self.defaults)
        try:
            x, m = preprocess(img_bgr, self.scale, "bgr", self.divisor)
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(f"cannot preprocess the image: {exc}") from None
        info = np.array([[*m.ori_shape, *m.img_shape, *m.pad_shape]], np.int64)
        return x, params[None], info


def finish_request(outputs: Mapping[str, np.ndarray], image_meta: Sequence[int], decode_params: Sequence[float],
                   classes, max_instances: Optional[int] = None):
    """Network outputs of ONE image (batch axis of 1) -> its :class:`~uniparser_sdk.results.ParseResult`,
    finished as ``Parser`` finishes it."""
    im = [int(v) for v in np.asarray(image_meta).reshape(-1)]
    if len(im) != len(IMAGE_META_FIELDS):
        raise InvalidRequestError(f"image_meta must hold {len(IMAGE_META_FIELDS)} values, got {len(im)}")
    meta = ImageMeta((im[0], im[1]), (im[2], im[3]), (im[4], im[5]))
    outs = dict(outputs)
    outs["num_instances"] = np.asarray(outs["num_instances"]).reshape(-1)
    mask_thr = float(np.asarray(decode_params, np.float32).reshape(-1)[1])
    return finish_products(outs, meta, classes, 0, max_instances=max_instances, mask_thr=mask_thr)
