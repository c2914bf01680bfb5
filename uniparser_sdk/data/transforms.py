"""Training-time transforms on sample dicts (numpy + OpenCV only).

Each transform takes and returns a sample ``{"id", "image", "persons", ...}``; the official training
pipeline is ``Compose([RandomResize(), RandomHFlip(classes=...), Normalize(), PadToDivisor(32)])``
(see :func:`train_transforms`). Keys added on the way:

* ``ori_shape``  (H, W) of the image as loaded (set by the first transform that changes geometry);
* ``img_shape``  (h, w) after resizing, i.e. the valid region of the padded image;
* ``scale_factor`` (sy, sx) resized / original;
* ``flip``       whether the sample was mirrored;
* ``pad_shape``  (hp, wp) after padding;
* ``img_norm``   mean/std used, when normalised (the image is then RGB float32).

Randomness: a transform built with ``seed=None`` draws from fresh OS entropy, re-seeded in each
process (so DataLoader workers never repeat each other's augmentations); with an integer seed it is
reproducible, but then every worker process repeats the same sequence.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import cv2
import numpy as np

from ..classes import classes_for, flip_permutation
from ..runtime.preprocess import MEAN_RGB, STD_RGB, SIZE_DIVISOR, normalize, pad_to_divisor, rescale_size

__all__ = ["Compose", "RandomResize", "RandomHFlip", "Normalize", "PadToDivisor", "Resize", "resize_sample",
           "train_transforms", "test_transforms"]


class _Random:
    def __init__(self, seed: int | None):
        self.seed = seed
        self._rng, self._pid = None, None

    @property
    def rng(self) -> np.random.Generator:
        pid = os.getpid()
        if self._rng is None or (self.seed is None and pid != self._pid):
            self._rng, self._pid = np.random.default_rng(self.seed), pid
        return self._rng

    def __getstate__(self):  # pickled into DataLoader workers: do not carry the generator state
        state = self.__dict__.copy()
        if self.seed is None:
            state["_rng"], state["_pid"] = None, None
        return state


def _shape(sample: dict) -> tuple[int, int]:
    return tuple(int(v) for v in np.asarray(sample["image"]).shape[:2])


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Callable[[dict], dict]]):
        self.transforms = list(transforms)

    def __call__(self, sample: dict) -> dict:
        for t in self.transforms:
            sample = t(sample)
        return sample

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class RandomResize(_Random):
    """Keep-ratio resize to a random short side from ``short_sides`` with the long side <= ``max_long``.

    Same rule as the official multi-scale training (mmdet ``Resize`` with ``keep_ratio`` and a list of
    (max_long, short) scales, ``multiscale_mode="value"``): factor = min(short / min(h, w),
    max_long / max(h, w)). Image bilinear, person maps nearest.
    """

    def __init__(self, short_sides: Sequence[int] = range(640, 801, 32), max_long: int = 1333,
                 seed: int | None = None):
        super().__init__(seed)
        self.short_sides = [int(s) for s in short_sides]
        if not self.short_sides or min(self.short_sides) <= 0 or max_long <= 0:
            raise ValueError(f"short_sides must be positive sizes and max_long > 0, got "
                             f"{list(short_sides)}, {max_long}")
        self.max_long = int(max_long)

    def __call__(self, sample: dict) -> dict:
        short = self.short_sides[int(self.rng.integers(len(self.short_sides)))]
        return resize_sample(sample, (self.max_long, short))

    def __repr__(self) -> str:
        return f"RandomResize(short_sides={self.short_sides}, max_long={self.max_long})"


def resize_sample(sample: dict, scale: Sequence[int]) -> dict:
    """Keep-ratio resize of image (bilinear) and person maps (nearest) to fit ``scale``."""
    out = dict(sample)
    h, w = _shape(sample)
    nh, nw = rescale_size(h, w, scale)
    out.setdefault("ori_shape", (h, w))
    if (nh, nw) != (h, w):
        out["image"] = cv2.resize(np.asarray(sample["image"]), (nw, nh), interpolation=cv2.INTER_LINEAR)
        out["persons"] = [cv2.resize(np.asarray(p), (nw, nh), interpolation=cv2.INTER_NEAREST)
                          for p in sample["persons"]]
    oh, ow = out["ori_shape"]
    out["img_shape"] = (nh, nw)
    out["scale_factor"] = (nh / oh, nw / ow)
    return out


class RandomHFlip(_Random):
    """Mirror image and person maps with probability ``p`` and swap left/right classes.

    ``classes``: the dataset's class names (or a class count, or a ready label permutation array); a
    left-x pixel becomes a right-x pixel at the mirrored position. Apply before padding: flipping a
    padded sample would move the padding to the left.
    """

    def __init__(self, p: float = 0.5, classes=None, seed: int | None = None):
        super().__init__(seed)
        if classes is None:
            raise TypeError("RandomHFlip needs classes= (the dataset's class names, e.g. CIHP_CLASSES), "
                            "to swap left/right labels")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p = float(p)
        if isinstance(classes, (int, np.integer)):
            classes = classes_for(int(classes))
        if isinstance(classes, np.ndarray) and np.issubdtype(classes.dtype, np.integer):
            perm = classes.astype(np.uint8)
        else:
            perm = flip_permutation(tuple(classes))
        self.perm = np.arange(256, dtype=np.uint8)  # labels beyond the classes (e.g. 255) unchanged
        self.perm[: len(perm)] = perm

    def __call__(self, sample: dict) -> dict:
        out = dict(sample)
        flip = bool(self.rng.random() < self.p)
        out["flip"] = flip
        if flip:
            if "pad_shape" in sample and tuple(sample["pad_shape"]) != tuple(sample.get("img_shape", ())):
                raise ValueError("RandomHFlip after PadToDivisor would move the padding; flip before padding")
            out["image"] = np.ascontiguousarray(np.asarray(sample["image"])[:, ::-1])
            out["persons"] = [self.perm[np.asarray(p)[:, ::-1]] for p in sample["persons"]]
        return out

    def __repr__(self) -> str:
        return f"RandomHFlip(p={self.p})"


class Normalize:
    """BGR uint8 -> RGB float32 normalised with the ImageNet mean/std (``preprocess.normalize``)."""

    def __call__(self, sample: dict) -> dict:
        out = dict(sample)
        out["image"] = normalize(np.asarray(sample["image"]))
        out["img_norm"] = {"mean": MEAN_RGB, "std": STD_RGB, "to_rgb": True}
        return out

    def __repr__(self) -> str:
        return "Normalize()"


class PadToDivisor:
    """Zero-pad image and person maps (label 0) at the bottom/right to a multiple of ``divisor``."""

    def __init__(self, divisor: int = SIZE_DIVISOR):
        if divisor <= 0:
            raise ValueError(f"divisor must be positive, got {divisor}")
        self.divisor = int(divisor)

    def __call__(self, sample: dict) -> dict:
        out = dict(sample)
        h, w = _shape(sample)
        out.setdefault("ori_shape", (h, w))
        out.setdefault("img_shape", (h, w))
        out["image"] = pad_to_divisor(np.asarray(sample["image"]), self.divisor, 0)
        out["persons"] = [pad_to_divisor(np.asarray(p), self.divisor, 0) for p in sample["persons"]]
        out["pad_shape"] = _shape(out)
        return out

    def __repr__(self) -> str:
        return f"PadToDivisor({self.divisor})"


def train_transforms(classes, short_sides: Sequence[int] = range(640, 801, 32), max_long: int = 1333,
                     flip_p: float = 0.5, divisor: int = SIZE_DIVISOR, seed: int | None = None) -> Compose:
    """The official training pipeline: multi-scale resize, flip with left/right swap, normalise, pad."""
    return Compose([RandomResize(short_sides, max_long, seed=seed),
                    RandomHFlip(flip_p, classes, seed=None if seed is None else seed + 1),
                    Normalize(), PadToDivisor(divisor)])


class Resize:
    """Deterministic keep-ratio resize to fit ``scale`` = (long limit, short limit)."""

    def __init__(self, scale: Sequence[int] = (1333, 800)):
        self.scale = tuple(int(v) for v in scale)

    def __call__(self, sample: dict) -> dict:
        return resize_sample(sample, self.scale)

    def __repr__(self) -> str:
        return f"Resize(scale={self.scale})"


def test_transforms(scale: Sequence[int] = (1333, 800), divisor: int = SIZE_DIVISOR) -> Compose:
    """The official test-time geometry: keep-ratio resize into (1333, 800), normalise, pad."""
    return Compose([Resize(scale), Normalize(), PadToDivisor(divisor)])


test_transforms.__test__ = False  # not a pytest test
