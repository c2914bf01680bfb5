"""Image preprocessing shared by every backend (numpy + OpenCV, no torch).

Official UniParser test pipeline: keep-ratio resize so the image fits in (1333 long side, 800 short
side) with bilinear interpolation, normalise ONCE with the model's statistics, zero-pad bottom/right to
a multiple of 32. The statistics come from the model metadata (``ModelMeta.normalization``: ``mean`` and
``std`` per channel in the model's channel order, ``color`` "rgb" or "bgr"; see :class:`Normalization`);
the default is the ImageNet RGB mean/std of the official checkpoints. :class:`ImageMeta` records what
was done so that outputs can be mapped back to the original image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Union

import cv2
import numpy as np

from ..contract.constants import DEFAULT_SCALE, MEAN_RGB, SIZE_DIVISOR, STD_RGB  # noqa: F401  (re-exported)
from .geometry import ImageMeta, pad_size, rescale_size  # noqa: F401  (re-exported)

__all__ = ["Normalization", "IMAGENET", "to_bgr_uint8_compatible", "resize_keep_ratio", "normalize",
           "pad_to_divisor", "preprocess", "preprocess_batch", "ImageMeta", "pad_size", "rescale_size"]


@dataclass(frozen=True)
class Normalization:
    """``(pixel - mean) / std`` per channel, channels in the model's order ``color`` ("rgb"/"bgr")."""

    mean: tuple = tuple(MEAN_RGB)
    std: tuple = tuple(STD_RGB)
    color: str = "rgb"

    def __post_init__(self):
        try:
            mean = tuple(float(v) for v in self.mean)
            std = tuple(float(v) for v in self.std)
        except (TypeError, ValueError):
            raise ValueError(f"normalization mean/std must be 3 numbers, got {self.mean!r} / {self.std!r}") from None
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"normalization mean/std must be 3 numbers, got {self.mean!r} / {self.std!r}")
        if not all(v > 0 for v in std):
            raise ValueError(f"normalization std must be positive, got {self.std!r}")
        color = str(self.color).lower()
        if color not in ("rgb", "bgr"):
            raise ValueError(f"unsupported input color order {self.color!r}; expected 'rgb' or 'bgr'")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "color", color)

    @classmethod
    def from_meta(cls, norm: Optional[Mapping]) -> "Normalization":
        """From ``ModelMeta.normalization`` (keys it lacks: the ImageNet RGB defaults)."""
        norm = norm or {}
        return cls(norm.get("mean", MEAN_RGB), norm.get("std", STD_RGB), norm.get("color", "rgb"))


#: the official checkpoints' statistics (ImageNet, RGB order)
IMAGENET = Normalization()

NormLike = Union[Normalization, Mapping, None]


def _as_norm(norm: NormLike) -> Normalization:
    if norm is None:
        return IMAGENET
    if isinstance(norm, Normalization):
        return norm
    return Normalization.from_meta(norm)


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


def normalize(img_bgr: np.ndarray, norm: NormLike = None) -> np.ndarray:
    """BGR (uint8 or float) HxWx3 -> float32 HxWx3 normalised with ``norm`` (a :class:`Normalization`
    or a ``ModelMeta.normalization`` dict), channels in its colour order. Default: ImageNet, RGB."""
    n = _as_norm(norm)
    px = img_bgr[:, :, ::-1] if n.color == "rgb" else img_bgr
    return (px.astype(np.float32) - np.asarray(n.mean, np.float32)) / np.asarray(n.std, np.float32)


def pad_to_divisor(arr: np.ndarray, divisor: int = SIZE_DIVISOR, value=0) -> np.ndarray:
    h, w = arr.shape[:2]
    ph, pw = pad_size(h, w, divisor)
    if (ph, pw) == (h, w):
        return arr
    out = np.full((ph, pw) + arr.shape[2:], value, dtype=arr.dtype)
    out[:h, :w] = arr
    return out


def _resized(img: np.ndarray, scale, color: str) -> tuple[np.ndarray, tuple[int, int]]:
    img = to_bgr_uint8_compatible(img, color)
    return resize_keep_ratio(img, scale), img.shape[:2]


def preprocess(img: np.ndarray, scale: Sequence[int] = DEFAULT_SCALE, color: str = "bgr",
               divisor: int = SIZE_DIVISOR, norm: NormLike = None) -> tuple[np.ndarray, ImageMeta]:
    """One image -> (1x3xHpxWp float32 NCHW tensor, ImageMeta). ``color``: the channel order of ``img``
    ("bgr", OpenCV's, or "rgb"); ``norm``: the model's statistics (default ImageNet RGB)."""
    batch, metas = preprocess_batch([img], scale, color, divisor, norm)
    return batch, metas[0]


def preprocess_batch(imgs: Sequence[np.ndarray], scale: Sequence[int] = DEFAULT_SCALE,
                     color: Union[str, Sequence[str]] = "bgr", divisor: int = SIZE_DIVISOR,
                     norm: NormLike = None) -> tuple[np.ndarray, list[ImageMeta]]:
    """Several images -> one zero-padded NCHW batch (padded to the largest) and their metas.

    ``color`` is one order for all images or one per image. Each image is normalised once, straight
    into the batch buffer; the padding stays exactly 0."""
    imgs = list(imgs)
    if not imgs:
        raise ValueError("empty batch")
    colors = [color] * len(imgs) if isinstance(color, str) else list(color)
    if len(colors) != len(imgs):
        raise ValueError(f"{len(colors)} colour orders for {len(imgs)} images")
    n = _as_norm(norm)
    items = [_resized(im, scale, c) for im, c in zip(imgs, colors)]
    pads = [pad_size(r.shape[0], r.shape[1], divisor) for r, _ in items]
    hp = max(p[0] for p in pads)
    wp = max(p[1] for p in pads)
    batch = np.zeros((len(items), 3, hp, wp), dtype=np.float32)
    metas = []
    for i, (resized, ori) in enumerate(items):
        h, w = resized.shape[:2]
        batch[i, :, :h, :w] = normalize(resized, n).transpose(2, 0, 1)
        metas.append(ImageMeta(tuple(ori), (h, w), (hp, wp)))
    return batch, metas
