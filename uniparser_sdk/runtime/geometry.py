"""Image geometry of the runtime: :class:`ImageMeta` and the maps in both directions.

original (H, W) --keep-ratio resize--> resized (h, w) --zero pad--> padded (Hp, Wp) --/4--> features.
:func:`labels_to_original` and :func:`original_to_resized` go back and forth; :func:`nearest_index` is
the nearest-neighbour source index rule every decode implementation shares.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from ..contract.constants import DEFAULT_SCALE, SIZE_DIVISOR


@dataclass(frozen=True)
class ImageMeta:
    """Geometry of one preprocessed image: original (H, W), resized (h, w), padded (hp, wp)."""

    ori_shape: tuple[int, int]
    img_shape: tuple[int, int]
    pad_shape: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        """(sy, sx): resized / original."""
        return self.img_shape[0] / self.ori_shape[0], self.img_shape[1] / self.ori_shape[1]

    def to_dict(self) -> dict:
        return {"ori_shape": list(self.ori_shape), "img_shape": list(self.img_shape),
                "pad_shape": list(self.pad_shape)}


def rescale_size(h: int, w: int, scale: Sequence[int] = DEFAULT_SCALE) -> tuple[int, int]:
    """Keep-ratio target size so that the long side <= max(scale) and short side <= min(scale).

    Same rule as mmcv's ``rescale_size`` (``int(x * factor + 0.5)``), which the official
    checkpoints were evaluated with.
    """
    if h <= 0 or w <= 0:
        raise ValueError(f"image size must be positive, got {h}x{w}")
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(h, w), short_edge / min(h, w))
    return max(1, int(h * factor + 0.5)), max(1, int(w * factor + 0.5))


def pad_size(h: int, w: int, divisor: int = SIZE_DIVISOR) -> tuple[int, int]:
    return -(-h // divisor) * divisor, -(-w // divisor) * divisor


def nearest_index(out_size: int, in_size: int) -> np.ndarray:
    """torch 'nearest' source indices, computed in float32 exactly as ``F.interpolate(mode="nearest",
    size=...)`` does (CPU and CUDA): ``scale = float32(in) / float32(out)``, then
    ``src = min(floor(float32(dst) * scale), in - 1)`` with the product rounded to float32. float64
    arithmetic picks other rows for real photo sizes (750 -> 1080: dst 180 reads 124, not 125).
    OpenCV's INTER_NEAREST rounds differently again."""
    out_size, in_size = int(out_size), int(in_size)
    scale = np.float32(in_size) / np.float32(out_size)
    src = np.floor(np.arange(out_size, dtype=np.float32) * scale)  # float32 product, float32 floor
    return np.minimum(src.astype(np.int64), in_size - 1)


def resize_mode(img_shape: Sequence[int], ori_shape: Sequence[int]) -> str:
    """How step 5 brings the resized image (h, w) to the original (H, W) -- DESIGN §3 compares AREAS:
    ``"shrink"`` (h*w > H*W: bilinear on the confidences before the argmax), ``"enlarge"``
    (h*w < H*W: nearest on the labels after it) or ``"equal"`` (no resize: label pixel (y, x) stays at
    (y, x); with equal areas but different shapes the map is cropped / zero-padded to (H, W))."""
    a, b = int(img_shape[0]) * int(img_shape[1]), int(ori_shape[0]) * int(ori_shape[1])
    return "shrink" if a > b else "enlarge" if a < b else "equal"


def labels_to_original(labels: np.ndarray, meta: ImageMeta) -> np.ndarray:
    """(..., Hp, Wp) labels at padded input resolution -> (..., H, W): crop to the resized image, then
    nearest resize with torch's float32 rule (:func:`nearest_index`), except for equal areas (DESIGN §3:
    no resize; another shape of equal area is cropped / zero-padded to (H, W))."""
    ih, iw = meta.img_shape
    oh, ow = meta.ori_shape
    crop = labels[..., :ih, :iw]
    if (ih, iw) == (oh, ow):
        return np.ascontiguousarray(crop)
    if resize_mode((ih, iw), (oh, ow)) == "equal":
        out = np.zeros(crop.shape[:-2] + (oh, ow), dtype=crop.dtype)
        out[..., :min(oh, ih), :min(ow, iw)] = crop[..., :oh, :ow]
        return out
    return np.ascontiguousarray(crop[..., nearest_index(oh, ih), :][..., nearest_index(ow, iw)])


def original_to_resized(img_or_labels: np.ndarray, meta: ImageMeta, labels: bool = False) -> np.ndarray:
    """Map an array at the original size to the resized (unpadded) size."""
    h, w = meta.img_shape
    interp = cv2.INTER_NEAREST if labels else cv2.INTER_LINEAR
    return cv2.resize(img_or_labels, (w, h), interpolation=interp)
