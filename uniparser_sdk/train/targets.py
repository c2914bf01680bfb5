"""Training targets of UniParser, numpy only: DESIGN §4 items 1-3, i.e. what the authors' training code
computes (described in our words; nothing of that code is copied), quirks included.

Two semantics (``semantics=``):

* ``"official"`` (default) - the authors' behaviour term by term, including three quirks that look
  unintended but produced the paper's numbers (each documented where it happens):
  the "adapt center" never moves (:func:`official_center`), the parsing loss pairs the k-th part of a
  category with the instance map of person k (:func:`occurrence_index`), and the semantic target of
  overlapping persons is the uint8 SUM of their labels (:func:`semantic_target`).
* ``"corrected"`` - the same targets with exactly those three things fixed: the centre is moved onto
  the mask (:func:`corrected_center`), each part is paired with its owner's instance map, and
  overlapping persons' semantic labels are combined by precedence (the first person in the image's
  person order that gives the pixel a category label keeps it), never summed. Nothing else changes.

Geometry. ``persons`` are per-person part-label maps at the (resized, flipped) image size, zero-padded
bottom/right to the batch pad size (Hp, Wp), a multiple of 4; a person's mask is ``label != 0`` (so a
255 "ignore" pixel is person foreground with no part). The instance features have size (h, w):
(Hp/4, Wp/4) for the full head, (Hp/4 + 2, Wp/4 + 2) for the light head (its 1x1 converters with
padding 1 grow the map by one cell on each side). The S x S center grid covers ``(4h, 4w)`` -- the
"upsampled size" -- NOT the pad size (they differ for the light head). Stride-4 targets are written
into the top-left (Hp/4, Wp/4) corner of an (h, w) zero map.

Float arithmetic follows the official code on a GPU: float32 throughout, and a tensor divided by a
Python number is computed as ``x * float32(1/n)`` (the CUDA kernels multiply by the reciprocal); the
one place where the official code divides CPU tensors (the metric loss' person cells) uses a true
float32 division. Floor division is Python-style (``np.floor_divide`` on float32 = torch's ``//``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

FEATURE_STRIDE = 4
DEFAULT_SIGMA = 0.2
SEMANTICS = ("official", "corrected")
#: the parsing loss keeps a part only if sqrt(box area) of its pixel-index box lies in this range
PART_SCALE_RANGE = (1.0, 2048.0)

__all__ = ["ImageTargets", "build_targets", "feature_shape", "mask_centroid", "official_center",
           "corrected_center", "grid_cell", "grid_cell_cpu", "positive_window", "instance_target",
           "part_target", "semantic_target", "occurrence_index", "FEATURE_STRIDE", "DEFAULT_SIGMA",
           "SEMANTICS", "PART_SCALE_RANGE"]

_F32 = np.float32


def check_semantics(semantics: str) -> str:
    if semantics not in SEMANTICS:
        raise ValueError(f"semantics must be one of {SEMANTICS}, got {semantics!r}")
    return semantics


@dataclass
class ImageTargets:
    """Targets of one image. ``P`` = persons with a non-empty mask (in input order), ``n`` = (cell,
    person) pairs, ``Q`` = parts kept for the parsing loss, ``R`` = all input persons.
    Stride-4 maps are (h, w) = the instance-feature size."""

    center: np.ndarray  # (S, S) float32 heatmap, 1 on every positive cell
    pair_cell: np.ndarray  # (n,) int64 flat grid index gy * S + gx; person by person, cells row-major
    pair_person: np.ndarray  # (n,) int64 index into ``instances``
    instances: np.ndarray  # (P, h, w) uint8 instance target of each kept person
    semantic: np.ndarray  # (h, w) uint8 semantic label map (official: uint8 sum over persons)
    part_masks: np.ndarray  # (Q, h, w) uint8 part targets, ordered by category then person
    part_category: np.ndarray  # (Q,) int64 category 1..C-1
    part_person: np.ndarray  # (Q,) int64 owner, index into ``instances``
    part_instance: np.ndarray  # (Q,) int64 instance map the parsing loss multiplies (see occurrence_index)
    part_cell: np.ndarray  # (Q, 2) int64 feature cell (row, col) of the part's centre pixel
    person_cell: np.ndarray  # (R,) int64 grid cell of every input person's centre (metric loss)
    centers: np.ndarray  # (P, 2) int64 centre pixel (y, x) of each kept person
    num_classes: int
    semantics: str = "official"

    @property
    def num_persons(self) -> int:
        return int(self.instances.shape[0])

    def semantic_masks(self) -> np.ndarray:
        """(C-1, h, w) bool: ``semantic == c`` for c = 1..C-1 (what the semantic Dice compares)."""
        cats = np.arange(1, self.num_classes, dtype=np.int64)
        return self.semantic[None].astype(np.int64) == cats[:, None, None]

    def present_categories(self) -> np.ndarray:
        """(C-1,) bool: categories whose semantic map is not empty."""
        return self.semantic_masks().reshape(self.num_classes - 1, -1).any(1)


def feature_shape(pad_shape: tuple[int, int], light: bool = False, stride: int = FEATURE_STRIDE) -> tuple[int, int]:
    """Instance-feature size for a padded batch: pad / 4, plus one cell on each side for the light head."""
    m = 2 if light else 0
    return int(pad_shape[0]) // stride + m, int(pad_shape[1]) // stride + m


# ----------------------------------------------------------------------------------------------------------
# centres
def mask_centroid(mask: np.ndarray) -> tuple[np.float32, np.float32]:
    """Centroid (y, x) of a mask in pixel-index coordinates (pixel (i, j) at (i, j), no +0.5), float32:
    ``sum(mask * index) / max(sum(mask), 1e-6)`` with the sums taken row by row as the official code does.
    An empty mask gives (0, 0)."""
    m = np.asarray(mask).astype(_F32)
    h, w = m.shape
    ys, xs = np.arange(h, dtype=_F32), np.arange(w, dtype=_F32)
    m00 = max(m.sum(-1, dtype=_F32).sum(dtype=_F32), _F32(1e-6))
    m10 = (m * xs[None, :]).sum(-1, dtype=_F32).sum(dtype=_F32)
    m01 = (m * ys[:, None]).sum(-1, dtype=_F32).sum(dtype=_F32)
    return _F32(m01 / m00), _F32(m10 / m00)


def official_center(mask: np.ndarray) -> tuple[int, int]:
    """Centre pixel (y, x) of a person or part, official rule: the float32 centroid truncated to int.

    [quirk] The official "adapt center" step is meant to move the centre onto the mask: it takes the
    argmin over pixels of (distance to the truncated centroid) x (1 + diag * [pixel off the mask]).
    The truncated centroid pixel itself has distance 0, so the product is 0 there whether or not it is
    on the mask, and the argmin always returns it: the centre never moves, even when the centroid lies
    off the mask (a ring, two separate pieces, an arm across the body)."""
    cy, cx = mask_centroid(mask)
    return int(cy), int(cx)


def corrected_center(mask: np.ndarray) -> tuple[int, int]:
    """``corrected`` semantics: the truncated centroid when it lies on the mask, otherwise the mask pixel
    nearest to it (Euclidean; ties to the first pixel in raster order) -- what the official argmin
    would return if the off-mask pixel were penalised as intended. An empty mask keeps (0, 0)."""
    m = np.asarray(mask) != 0
    ty, tx = official_center(m)
    if m[ty, tx] or not m.any():
        return ty, tx
    ys, xs = np.nonzero(m)  # raster order
    d2 = (ys - ty) ** 2 + (xs - tx) ** 2
    k = int(np.argmin(d2))
    return int(ys[k]), int(xs[k])


# ----------------------------------------------------------------------------------------------------------
# grid
def grid_cell(v, upsampled: int, num_grid: int) -> int:
    """Grid index of a coordinate ``v`` (float32) along an axis of ``upsampled`` = 4 x feature size pixels,
    official GPU arithmetic: ``int((v * float32(1/up)) // float32(1/S))``. The float32 ``1/S`` is slightly
    above 1/S, so a coordinate exactly on a cell edge lands one cell lower (v = up/2 -> cell S/2 - 1).
    Not clipped (the window rule clips)."""
    q = _F32(v) * (_F32(1) / _F32(upsampled))
    return int(np.floor_divide(q, _F32(1.0 / num_grid)))


def grid_cell_cpu(v, upsampled: int, num_grid: int) -> int:
    """The same with a true float32 division ``v / up``: the official code computes the person cells of
    the metric loss' instance-kernel term on CPU tensors (true division there)."""
    q = _F32(v) / _F32(upsampled)
    return int(np.floor_divide(q, _F32(1.0 / num_grid)))


def positive_window(center: tuple[int, int], box: Sequence[int], upsampled: tuple[int, int], num_grid: int,
                    sigma: float = DEFAULT_SIGMA) -> tuple[int, int, int, int]:
    """Inclusive cell range (top, bottom, left, right) of one person's positive cells.

    ``box`` = (y0, x0, y1, x1): min and max pixel INDICES of the mask; the half extents are
    ``0.5 * (max - min) * sigma`` (no +1; float64, then float32 in the subtraction). The window is the
    cells reached by ``centre +- half`` (clipped to the grid), limited to the 3 x 3 around the centre cell."""
    (cy, cx), (y0, x0, y1, x1) = center, box
    up_h, up_w = upsampled
    S = int(num_grid)
    half_h = _F32((0.5 * (int(y1) - int(y0))) * sigma)
    half_w = _F32((0.5 * (int(x1) - int(x0))) * sigma)
    gy, gx = grid_cell(cy, up_h, S), grid_cell(cx, up_w, S)
    top = max(max(0, grid_cell(_F32(cy) - half_h, up_h, S)), gy - 1)
    bottom = min(min(S - 1, grid_cell(_F32(cy) + half_h, up_h, S)), gy + 1)
    left = max(gx - 1, max(0, grid_cell(_F32(cx) - half_w, up_w, S)))
    right = min(min(S - 1, grid_cell(_F32(cx) + half_w, up_w, S)), gx + 1)
    return top, bottom, left, right


# ----------------------------------------------------------------------------------------------------------
# stride-4 maps
def _place(small: np.ndarray, feat_shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(feat_shape, np.uint8)
    h, w = min(small.shape[0], feat_shape[0]), min(small.shape[1], feat_shape[1])
    out[:h, :w] = small[:h, :w]
    return out


def _centre_pixels(mask: np.ndarray):
    """The four centre pixels (4i+1..4i+2, 4j+1..4j+2) of every 4 x 4 block, as four bool maps."""
    m = np.asarray(mask) != 0
    return m[1::4, 1::4], m[1::4, 2::4], m[2::4, 1::4], m[2::4, 2::4]


def instance_target(mask: np.ndarray, feat_shape: tuple[int, int]) -> np.ndarray:
    """Person instance target at stride 4: the float mask bilinearly downscaled x1/4 (the mean of each
    block's four centre pixels) and truncated to uint8, so a cell is on only if ALL four centre pixels
    are on; no fallback (a thin person can be empty here and is still kept)."""
    a, b, c, d = _centre_pixels(mask)
    return _place((a & b & c & d).astype(np.uint8), feat_shape)


def part_target(mask: np.ndarray, feat_shape: tuple[int, int]) -> np.ndarray:
    """Part target at stride 4: uint8 bilinear x1/4 with rounding, i.e. on where at least 2 of the four
    centre pixels are on; if that leaves nothing, area x1/4 > 0, i.e. on where any pixel of the 4 x 4
    block is on."""
    a, b, c, d = _centre_pixels(mask)
    small = (a.astype(np.uint8) + b + c + d) >= 2
    if not small.any():
        m = np.asarray(mask) != 0
        H, W = m.shape
        small = m[:H // 4 * 4, :W // 4 * 4].reshape(H // 4, 4, W // 4, 4).any((1, 3))
    return _place(small.astype(np.uint8), feat_shape)


def semantic_target(labels: Sequence[np.ndarray], feat_shape: tuple[int, int], num_classes: int,
                    semantics: str = "official") -> np.ndarray:
    """Semantic label map at stride 4 from the persons' label maps sampled at pixel (4i, 4j) (nearest x1/4).

    [quirk] ``official``: the persons' sampled maps are ADDED in uint8 (wrapping at 256), so where persons
    overlap the target is the sum of their labels -- a third category, or none (2 + 5 -> 7; 255 + 5 -> 4).
    ``corrected``: no sum; a pixel takes the label of the first person (in the image's person order) that
    gives it a category label in [1, C); 255 and other out-of-range labels never count."""
    out = np.zeros(feat_shape, np.uint8)
    for lab in labels:
        small = np.asarray(lab)[0::4, 0::4]
        h, w = min(small.shape[0], feat_shape[0]), min(small.shape[1], feat_shape[1])
        s = small[:h, :w]
        if semantics == "official":
            out[:h, :w] = (out[:h, :w].astype(np.uint16) + s.astype(np.uint16)).astype(np.uint8)  # mod 256
        else:
            view = out[:h, :w]
            take = (view == 0) & (s > 0) & (s < num_classes)
            view[take] = s[take]
    return out


def occurrence_index(categories: Sequence[int]) -> list[int]:
    """[quirk] Instance map index the official parsing loss uses for each part of the category-ordered
    part list: 0 for the first part of a category, +1 for each further part of the same category. So
    the k-th part of category c (k-th person that has c) is multiplied by the instance map of person k,
    not of its owner (they agree only while every earlier person has the category too)."""
    out, prev, k = [], None, 0
    for c in categories:
        k = k + 1 if c == prev else 0
        out.append(k)
        prev = c
    return out


# ----------------------------------------------------------------------------------------------------------
def build_targets(persons: Sequence[np.ndarray], pad_shape: tuple[int, int], num_grid: int, num_classes: int,
                  sigma: float = DEFAULT_SIGMA, light: bool = False, semantics: str = "official",
                  feat_shape: tuple[int, int] | None = None) -> ImageTargets:
    """Targets of one image (DESIGN §4 items 1-3).

    ``persons``: per-person (H, W) integer part-label maps (0 background) with H <= Hp, W <= Wp, in the
    image's person order (which matters: see :func:`occurrence_index`). ``pad_shape`` (Hp, Wp): the batch
    pad size, a multiple of 4. ``feat_shape`` defaults to :func:`feature_shape` (pad_shape, light).
    """
    semantics = check_semantics(semantics)
    Hp, Wp = int(pad_shape[0]), int(pad_shape[1])
    if Hp % FEATURE_STRIDE or Wp % FEATURE_STRIDE:
        raise ValueError(f"pad_shape {pad_shape} is not a multiple of the stride {FEATURE_STRIDE}")
    fshape = tuple(int(v) for v in (feat_shape or feature_shape((Hp, Wp), light)))
    up = (FEATURE_STRIDE * fshape[0], FEATURE_STRIDE * fshape[1])  # the grid's image size
    S = int(num_grid)
    centre_of = official_center if semantics == "official" else corrected_center

    labels = []
    for p in persons:
        p = np.asarray(p)
        if p.ndim != 2 or p.shape[0] > Hp or p.shape[1] > Wp:
            raise ValueError(f"person map of shape {p.shape} does not fit pad_shape {pad_shape}")
        lab = np.zeros((Hp, Wp), np.uint8)
        lab[:p.shape[0], :p.shape[1]] = p
        labels.append(lab)

    # persons: centres, positive cells (one pair per person per window cell), instance targets
    heat = np.zeros((S, S), np.float32)
    pair_cell, pair_person, instances, centers, person_cell, kept = [], [], [], [], [], {}
    for r, lab in enumerate(labels):
        mask = lab != 0
        cy, cx = centre_of(mask)
        person_cell.append(grid_cell_cpu(cy, up[0], S) * S + grid_cell_cpu(cx, up[1], S))
        if not mask.any():
            continue  # empty persons get no pairs (but keep their metric cell above)
        ys, xs = np.nonzero(mask)
        t, b, l, rr = positive_window((cy, cx), (ys.min(), xs.min(), ys.max(), xs.max()), up, S, sigma)
        kept[r] = len(instances)
        for i in range(t, b + 1):
            for j in range(l, rr + 1):
                pair_cell.append(i * S + j)
                pair_person.append(kept[r])
        heat[t:b + 1, l:rr + 1] = 1.0
        instances.append(instance_target(mask, fshape))
        centers.append((cy, cx))

    # parts, category by category, then person by person
    part_masks, part_cat, part_person, part_cell = [], [], [], []
    present = [set(np.unique(lab).tolist()) for lab in labels]
    for c in range(1, int(num_classes)):
        for r, lab in enumerate(labels):
            if c not in present[r]:
                continue
            pm = lab == c
            ys, xs = np.nonzero(pm)
            area = np.sqrt(_F32(int(xs.max()) - int(xs.min())) * _F32(int(ys.max()) - int(ys.min())))
            if not (PART_SCALE_RANGE[0] <= area <= PART_SCALE_RANGE[1]):
                continue  # one pixel wide or tall: box area 0
            py, px = centre_of(pm)
            part_masks.append(part_target(pm, fshape))
            part_cat.append(c)
            part_person.append(kept[r])
            part_cell.append((py // FEATURE_STRIDE, px // FEATURE_STRIDE))
    part_instance = occurrence_index(part_cat) if semantics == "official" else list(part_person)

    def arr(v, shape_tail=()):
        return np.asarray(v, np.int64).reshape((-1,) + shape_tail)

    return ImageTargets(
        center=heat,
        pair_cell=arr(pair_cell),
        pair_person=arr(pair_person),
        instances=np.stack(instances) if instances else np.zeros((0,) + fshape, np.uint8),
        semantic=semantic_target(labels, fshape, num_classes, semantics),
        part_masks=np.stack(part_masks) if part_masks else np.zeros((0,) + fshape, np.uint8),
        part_category=arr(part_cat),
        part_person=arr(part_person),
        part_instance=arr(part_instance),
        part_cell=arr(part_cell, (2,)),
        person_cell=arr(person_cell),
        centers=arr(centers, (2,)),
        num_classes=int(num_classes),
        semantics=semantics,
    )
