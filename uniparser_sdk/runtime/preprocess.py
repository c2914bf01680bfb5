"""Image preprocessing shared by every backend (numpy + OpenCV, no torch).

Official UniParser test pipeline: BGR->RGB, keep-ratio resize so the image fits in
(1333 long side, 800 short side) with bilinear interpolation, normalise with the ImageNet RGB
mean/std, zero-pad bottom/right to a multiple of 32. :class:`ImageMeta` records what was done so that
outputs can be mapped back to the original image.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..contract.constants import DEFAULT_SCALE, MEAN_RGB, SIZE_DIVISOR, STD_RGB  # noqa: F401  (re-exported)
from .geometry import ImageMeta, pad_size, rescale_size  # noqa: F401  (re-exported)


def to_bgr_uint8_compatible(img: np.ndarray, color: str = "bgr") -> np.ndarray:
    """Bring grayscale / BGRA / RGB / float inputs to a 3-channel BGR float32 or uint8 array."""
    if not isinstance(img, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(img).__name__}")
    if img.size == 0:
        raise ValueError("empty image array")
    if img.dtype == bool or not (np.issubdtype(img.dtype, np.integer) or np.issubdtype(img.dtype, np.floating)):
        raise TypeError(f"unsupported image dtype {img.dtype}; use uint8 or float")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {img.shape}")
    if color not in ("bgr", "rgb"):
        raise ValueError(f"color must be 'bgr' or 'rgb', got {color!r}")
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    if color == "rgb":
        img = img[:, :, ::-1]
    if np.issubdtype(img.dtype, np.floating):
        # floats in [0, 1] are scaled to [0, 255]; larger floats are taken as 0..255 already
        img = img.astype(np.float32)
        if img.max(initial=0.0) <= 1.0:
            img = img * 255.0
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


def resize_keep_ratio(img: np.ndarray, scale: Sequence[int] = DEFAULT_SCALE) -> np.ndarray:
    h, w = img.shape[:2]
    nh, nw = rescale_size(h, w, scale)
    if (nh, nw) == (h, w):
        return img
    return cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)


def normalize(img_bgr: np.ndarray) -> np.ndarray:
    """BGR (uint8 or float) HxWx3 -> RGB normalised float32 HxWx3."""
    rgb = img_bgr[:, :, ::-1].astype(np.float32)
    return (rgb - np.float32(MEAN_RGB)) / np.float32(STD_RGB)


def pad_to_divisor(arr: np.ndarray, divisor: int = SIZE_DIVISOR, value=0) -> np.ndarray:
    h, w = arr.shape[:2]
    ph, pw = pad_size(h, w, divisor)
    if (ph, pw) == (h, w):
        return arr
    out = np.full((ph, pw) + arr.shape[2:], value, dtype=arr.dtype)
    out[:h, :w] = arr
    return out


def preprocess(img: np.ndarray, scale: Sequence[int] = DEFAULT_SCALE, color: str = "bgr",
               divisor: int = SIZE_DIVISOR) -> tuple[np.ndarray, ImageMeta]:
    """One image -> (1x3xHpxWp float32 NCHW tensor, ImageMeta)."""
    img = to_bgr_uint8_compatible(img, color)
    resized = resize_keep_ratio(img, scale)
    x = pad_to_divisor(normalize(resized), divisor)
    meta = ImageMeta(img.shape[:2], resized.shape[:2], x.shape[:2])
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), meta


def preprocess_batch(imgs: Sequence[np.ndarray], scale: Sequence[int] = DEFAULT_SCALE,
                     color: str = "bgr", divisor: int = SIZE_DIVISOR) -> tuple[np.ndarray, list[ImageMeta]]:
    """Several images -> one zero-padded NCHW batch (padded to the largest) and their metas."""
    items = [preprocess(im, scale, color, divisor) for im in imgs]
    if not items:
        raise ValueError("empty batch")
    hp = max(x.shape[2] for x, _ in items)
    wp = max(x.shape[3] for x, _ in items)
    batch = np.zeros((len(items), 3, hp, wp), dtype=np.float32)
    metas = []
    for i, (x, m) in enumerate(items):
        batch[i, :, : x.shape[2], : x.shape[3]] = x[0]
        metas.append(ImageMeta(m.ori_shape, m.img_shape, (hp, wp)))
    return batch, metas
