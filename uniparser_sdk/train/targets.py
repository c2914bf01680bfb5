"""Training targets of UniParser (DESIGN §4, paper Sec. 3.4), numpy only.

For one image (already resized and padded to ``pad_shape``, a multiple of the feature stride) and its
per-person part-label maps, :func:`build_targets` produces:

* **center heatmap** (S x S, 0/1) and the list of positive grid cells with the person each belongs to.
  A person's centre is the centroid of its mask (pixel centres at ``y + 0.5``); when the centroid does
  not fall on a mask pixel (a ring, an arm across the body, two separated pieces) it is moved to the
  nearest mask pixel ("adapt center"). The grid covers the padded image: point (y, x) lies in cell
  ``(floor(y / Hp * S), floor(x / Wp * S))``, the same cell the decode reads for that region. Positive
  cells are the centre cell and its 8 neighbours, limited to the cells reached by the person's box
  scaled by ``sigma`` around the centre (half extents ``sigma * box_h / 2``, ``sigma * box_w / 2``), so
  at most 3 x 3 cells and at least the centre cell. Where two persons claim a cell, the smaller person
  (by mask area) keeps it: persons are assigned largest first and later ones overwrite.
* **per-person part labels at stride 4**: ``labels[p]`` is person p's label map sampled at the centre
  pixel ``4 * i + 2`` of every stride-4 cell (the cell centre is 4i + 1.5 under the x4 bilinear
  upsampling of the decode). Labels outside ``[1, num_classes)`` (e.g. 255 "ignore") become 0.
  From these compact maps :class:`ImageTargets` derives the **instance masks** (label > 0), the
  **per-category masks** (union over persons of label == c) and the **per-person-part masks**
  (person p, label == c); the losses expand them on the fly (a 58-class x P x h x w stack per image is
  too large to pass through a data loader).

A person whose mask is empty at stride 4 (too small) is dropped from all targets.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

FEATURE_STRIDE = 4
DEFAULT_SIGMA = 0.2

__all__ = ["ImageTargets", "build_targets", "adapted_center", "positive_cells", "downsample_labels",
           "FEATURE_STRIDE", "DEFAULT_SIGMA"]


@dataclass
class ImageTargets:
    """Targets of one image. ``h, w`` = pad_shape / stride; ``P`` persons kept; ``n`` positive cells."""

    center: np.ndarray  # (S, S) float32, 1 at positive cells
    pos_index: np.ndarray  # (n,) int64 flat grid index gy * S + gx, ascending
    pos_person: np.ndarray  # (n,) int64 person index in [0, P)
    labels: np.ndarray  # (P, h, w) uint8 part labels at stride 4
    centers: np.ndarray  # (P, 2) float64 adapted centre (y, x) in padded-image pixels
    boxes: np.ndarray  # (P, 4) float64 (y0, x0, y1, x1) mask box, pixel edges
    num_classes: int

    @property
    def num_persons(self) -> int:
        return int(self.labels.shape[0])

    def instance_masks(self) -> np.ndarray:
        """(P, h, w) bool."""
        return self.labels > 0

    def part_masks(self) -> np.ndarray:
        """(P, C-1, h, w) bool: person p, category c+1."""
        cats = np.arange(1, self.num_classes, dtype=np.int64)
        return self.labels[:, None].astype(np.int64) == cats[None, :, None, None]

    def category_masks(self) -> np.ndarray:
        """(C-1, h, w) bool: pixels of category c+1 in any person."""
        if self.num_persons == 0:
            return np.zeros((self.num_classes - 1,) + self.labels.shape[1:], bool)
        return self.part_masks().any(0)

    def present_categories(self) -> np.ndarray:
        """(C-1,) bool."""
        present = np.zeros(self.num_classes - 1, bool)
        vals = np.unique(self.labels)
        vals = vals[(vals > 0) & (vals < self.num_classes)]
        present[vals.astype(np.int64) - 1] = True
        return present


def downsample_labels(label_map: np.ndarray, stride: int = FEATURE_STRIDE) -> np.ndarray:
    """Sample an (H, W) label map at the centre pixel of every stride x stride cell."""
    off = stride // 2
    return np.ascontiguousarray(label_map[off::stride, off::stride])


def adapted_center(mask: np.ndarray) -> tuple[float, float]:
    """Centroid (y, x) of a boolean mask in continuous pixel coordinates (pixel centres at +0.5);
    moved to the centre of the nearest mask pixel when the centroid's pixel is not in the mask."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        raise ValueError("empty mask has no centre")
    cy, cx = ys.mean() + 0.5, xs.mean() + 0.5
    iy, ix = min(int(cy), mask.shape[0] - 1), min(int(cx), mask.shape[1] - 1)
    if mask[iy, ix]:
        return float(cy), float(cx)
    d2 = (ys + 0.5 - cy) ** 2 + (xs + 0.5 - cx) ** 2
    k = int(np.argmin(d2))
    return float(ys[k] + 0.5), float(xs[k] + 0.5)


def _cell(v: float, size: int, num_grid: int) -> int:
    return int(min(max(math.floor(v / size * num_grid), 0), num_grid - 1))


def positive_cells(center: tuple[float, float], box: Sequence[float], pad_shape: tuple[int, int],
                   num_grid: int, sigma: float = DEFAULT_SIGMA) -> tuple[int, int, int, int]:
    """Inclusive cell range (top, bottom, left, right) of one person's positives."""
    (cy, cx), (y0, x0, y1, x1) = center, box
    Hp, Wp = pad_shape
    gy, gx = _cell(cy, Hp, num_grid), _cell(cx, Wp, num_grid)
    half_h, half_w = 0.5 * sigma * (y1 - y0), 0.5 * sigma * (x1 - x0)
    top = max(_cell(cy - half_h, Hp, num_grid), gy - 1)
    bottom = min(_cell(cy + half_h, Hp, num_grid), gy + 1)
    left = max(_cell(cx - half_w, Wp, num_grid), gx - 1)
    right = min(_cell(cx + half_w, Wp, num_grid), gx + 1)
    return top, bottom, left, right


def build_targets(persons: Sequence[np.ndarray], pad_shape: tuple[int, int], num_grid: int, num_classes: int,
                  sigma: float = DEFAULT_SIGMA, stride: int = FEATURE_STRIDE) -> ImageTargets:
    """Targets of one image.

    ``persons``: per-person (H, W) integer part-label maps (0 background) with H <= Hp, W <= Wp
    (zero-padded bottom/right to ``pad_shape``, which must be a multiple of ``stride``).
    """
    Hp, Wp = int(pad_shape[0]), int(pad_shape[1])
    if Hp % stride or Wp % stride:
        raise ValueError(f"pad_shape {pad_shape} is not a multiple of the stride {stride}")
    h, w = Hp // stride, Wp // stride
    labels, centers, boxes, areas = [], [], [], []
    for p in persons:
        p = np.asarray(p)
        if p.ndim != 2 or p.shape[0] > Hp or p.shape[1] > Wp:
            raise ValueError(f"person map of shape {p.shape} does not fit pad_shape {pad_shape}")
        lab = np.zeros((Hp, Wp), np.uint8)
        valid = (p > 0) & (p < num_classes)
        lab[:p.shape[0], :p.shape[1]][valid] = p[valid]
        small = downsample_labels(lab, stride)
        if not small.any():
            continue
        mask = lab > 0
        ys, xs = np.nonzero(mask)
        labels.append(small)
        centers.append(adapted_center(mask))
        boxes.append((ys.min(), xs.min(), ys.max() + 1.0, xs.max() + 1.0))
        areas.append(ys.size)
    S = int(num_grid)
    owner = np.full((S, S), -1, np.int64)
    for k in sorted(range(len(labels)), key=lambda i: -areas[i]):  # largest first, smaller overwrite
        t, b, l, r = positive_cells(centers[k], boxes[k], (Hp, Wp), S, sigma)
        owner[t:b + 1, l:r + 1] = k
    flat = owner.reshape(-1)
    pos_index = np.flatnonzero(flat >= 0).astype(np.int64)
    return ImageTargets(
        center=(owner >= 0).astype(np.float32),
        pos_index=pos_index,
        pos_person=flat[pos_index].astype(np.int64),
        labels=np.stack(labels) if labels else np.zeros((0, h, w), np.uint8),
        centers=np.asarray(centers, np.float64).reshape(-1, 2),
        boxes=np.asarray(boxes, np.float64).reshape(-1, 4),
        num_classes=int(num_classes),
    )
