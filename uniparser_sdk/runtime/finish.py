"""Host-side finishing of exported-model outputs -> :class:`~uniparser_sdk.results.ParseResult` (numpy only).

Three output layouts (:mod:`uniparser_sdk.model_meta`) are finished here:

``products-v1`` (:func:`finish_products`)
    The graph ran the network and decode steps 1-4 (:mod:`uniparser_sdk.model.end_to_end`): per slot a
    score, a binary instance mask and the kept categories, plus the category cosine maps ``cat_conf``.
    This module does step 5 of :mod:`uniparser_sdk.model.decode` exactly as the torch reference
    (:func:`~uniparser_sdk.model.decode.finish_instance` with a
    :class:`~uniparser_sdk.model.decode.FinishGeometry`): for every *valid* person only, on its *kept*
    categories only, inside the bounding box of its *mask* only, the bilinear upsample x4 / crop /
    resize is applied as two small separable interpolation matrices, then the argmax with the run-time
    ``mask_thr`` as foreground test, then (when the original image has the larger AREA) a nearest
    resize of the labels with torch's float32 rule (:func:`~uniparser_sdk.runtime.geometry.nearest_index`). The matrices are built once per image geometry and cached
    (:func:`finish_geometry`), so every person of every image of that size reuses them.

``plugin-v1`` (:func:`finish_plugin`)
    The fused decode plugin already produced per-person part-label maps at the padded input
    resolution (outputs ``scores``, ``num_instances``, ``part_maps`` (B, K, 4h, 4w) uint8, delivered packed as
    int32 by TensorRT). They are cropped to the resized image and brought to the original size with the torch 'nearest' rule.

``raw-v1`` (:func:`finish_raw`)
    Network outputs only (``center_logits``, ``ins_feats``, ``sem_feats``); the category kernels come
    from the model metadata or a ``seg_kernels`` output. Steps 1-4 run here in numpy
    (:func:`decode_products`), then the products-v1 finishing.

Never imports torch.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np

from ..contract.constants import DEFAULT_DECODE
from ..contract.layouts import PLUGIN_V1, PRODUCTS_V1, RAW_V1, SEG_KERNELS, unpack_part_maps
from .decode_numpy import center_peaks, decode_products  # noqa: F401  (re-exported)
from .geometry import ImageMeta, labels_to_original, nearest_index, resize_mode
from ..results import ParseResult

__all__ = [
    "PRODUCTS_OUTPUTS", "PLUGIN_OUTPUTS", "RAW_OUTPUTS",
    "bilinear_matrix", "nearest_index", "FinishGeometry", "finish_geometry", "finish_instance",
    "finish_products", "finish_plugin", "unpack_part_maps", "finish_raw", "decode_products", "center_peaks",
]


PRODUCTS_OUTPUTS = PRODUCTS_V1.output_names
PLUGIN_OUTPUTS = PLUGIN_V1.output_names
RAW_OUTPUTS = RAW_V1.output_names
# the tensors by their role, named once in the contract (in its declared order)
SCORES, NUM_INSTANCES, GRID_INDEX, INSTANCE_MASKS, KEEP, CAT_CONF = PRODUCTS_OUTPUTS
_, _, PART_MAPS = PLUGIN_OUTPUTS
CENTER_LOGITS, INS_FEATS, SEM_FEATS = RAW_OUTPUTS


# --------------------------------------------------------------------------------------------
# Interpolation operators (same numbers as uniparser_sdk.model.decode)
# --------------------------------------------------------------------------------------------

def bilinear_matrix(out_size: int, in_size: int) -> np.ndarray:
    """(out_size, in_size) float64 matrix of 1-D bilinear resizing, align_corners=False (torch's rule:
    ``src = max((dst + 0.5) * in / out - 0.5, 0)``, the upper neighbour clamped to the last index)."""
    dst = np.arange(out_size, dtype=np.float64)
    src = np.maximum((dst + 0.5) * (in_size / out_size) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    l1 = src - i0
    mat = np.zeros((out_size, in_size), dtype=np.float64)
    rows = np.arange(out_size)
    np.add.at(mat, (rows, i0), 1.0 - l1)
    np.add.at(mat, (rows, i1), l1)
    return mat


def _reach(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each input index j of an (out, in) operator: first and last output index with a non-zero
    weight (``out`` / ``-1`` when none). Lets a box find the output span it reaches in O(box)."""
    nz = mat != 0
    any_ = nz.any(axis=0)
    first = np.where(any_, nz.argmax(axis=0), mat.shape[0])
    last = np.where(any_, mat.shape[0] - 1 - nz[::-1].argmax(axis=0), -1)
    return first.astype(np.int64), last.astype(np.int64)


def _band(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Banded form of an (out, in) interpolation operator: per output index the first input index with
    a non-zero weight and the weights of the T inputs from there (T = widest band; trailing weights 0).
    Same float32 values as the dense operator, so products agree with it."""
    nz = mat != 0
    any_ = nz.any(axis=1)
    start = np.where(any_, nz.argmax(axis=1), 0).astype(np.int64)
    stop = np.where(any_, mat.shape[1] - nz[:, ::-1].argmax(axis=1), 0)
    t = max(1, int((stop - start).max(initial=1)))
    cols = start[:, None] + np.arange(t)[None, :]
    inside = cols < mat.shape[1]
    weights = np.where(inside, np.take_along_axis(mat, np.minimum(cols, mat.shape[1] - 1), axis=1), 0)
    return start, np.ascontiguousarray(weights.astype(mat.dtype))


@dataclass(frozen=True)
class FinishGeometry:
    """Interpolation operators from the stride-4 feature grid to the original image, shared by all
    persons of images with the same geometry (numpy twin of the torch ``FinishGeometry``).

    ``mode`` is :func:`~uniparser_sdk.runtime.geometry.resize_mode` (areas compared).
    ``rows`` (Hout, h) / ``cols`` (Wout, w) float32: Hout = H (original) when ``shrink``, else h'
    (resized). In enlarge / equal mode output pixel (y, x), y < len(near_rows), x < len(near_cols),
    takes the label (near_rows[y], near_cols[x]) at (h', w') (equal: the identity, cut to the smaller
    shape; the rest stays background). The operators are also kept in banded form (``row_start``/``row_weights``,
    ``col_start``/``col_weights``): each output row/column mixes at most T (2..~5) neighbouring
    feature cells, so finishing costs O(C_kept * Y * X * T) instead of dense products over the box.
    """

    mode: str
    rows: np.ndarray
    cols: np.ndarray
    near_rows: Optional[np.ndarray]
    near_cols: Optional[np.ndarray]
    row_first: np.ndarray
    row_last: np.ndarray
    col_first: np.ndarray
    col_last: np.ndarray
    row_start: np.ndarray
    row_weights: np.ndarray
    col_start: np.ndarray
    col_weights: np.ndarray
    ori_shape: tuple[int, int]

    @property
    def shrink(self) -> bool:
        return self.mode == "shrink"

    @classmethod
    def build(cls, feat_hw: Sequence[int], img_shape: Sequence[int], ori_shape: Sequence[int]) -> "FinishGeometry":
        (h, w), (ih, iw), (oh, ow) = (tuple(int(v) for v in s) for s in (feat_hw, img_shape, ori_shape))
        if min(h, w, ih, iw, oh, ow) <= 0:
            raise ValueError(f"invalid geometry: features {(h, w)}, resized {(ih, iw)}, original {(oh, ow)}")
        if ih > 4 * h or iw > 4 * w:
            raise ValueError(f"resized image {(ih, iw)} larger than the upsampled features {(4 * h, 4 * w)}")
        up_r = bilinear_matrix(4 * h, h)[:ih]  # upsample x4, then crop to the resized image
        up_c = bilinear_matrix(4 * w, w)[:iw]
        mode = resize_mode((ih, iw), (oh, ow))
        if mode == "shrink":
            rows = (bilinear_matrix(oh, ih) @ up_r).astype(np.float32)
            cols = (bilinear_matrix(ow, iw) @ up_c).astype(np.float32)
            near_r = near_c = None
        else:
            rows, cols = up_r.astype(np.float32), up_c.astype(np.float32)
            if mode == "enlarge":
                near_r, near_c = nearest_index(oh, ih), nearest_index(ow, iw)
            else:  # equal areas: no resize
                near_r, near_c = np.arange(min(oh, ih), dtype=np.int64), np.arange(min(ow, iw), dtype=np.int64)
        rf, rl = _reach(rows)
        cf, cl = _reach(cols)
        rs, rw = _band(rows)
        cs, cw = _band(cols)
        arrays = (rows, cols, rf, rl, cf, cl, rs, rw, cs, cw) + ((near_r, near_c) if near_r is not None else ())
        for a in arrays:
            a.setflags(write=False)
        return cls(mode, rows, cols, near_r, near_c, rf, rl, cf, cl, rs, rw, cs, cw, (oh, ow))


@functools.lru_cache(maxsize=64)
def _cached_geometry(feat_hw, img_shape, ori_shape) -> FinishGeometry:
    return FinishGeometry.build(feat_hw, img_shape, ori_shape)


def finish_geometry(feat_hw: Sequence[int], img_shape: Sequence[int], ori_shape: Sequence[int]) -> FinishGeometry:
    """:meth:`FinishGeometry.build`, cached per (feature size, resized size, original size): a video
    or a folder of same-size photos builds its matrices once. Thread-safe (read-only arrays)."""
    key = tuple(tuple(int(v) for v in s) for s in (feat_hw, img_shape, ori_shape))
    return _cached_geometry(*key)


def _span(first: np.ndarray, last: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    """Output span [a, b) reached by input indices lo..hi-1 (b <= a when none)."""
    return int(first[lo:hi].min()), int(last[lo:hi].max()) + 1


def _zero_pad(z: np.ndarray, axis: int, t: int) -> np.ndarray:
    """``t`` zeros on both sides of ``axis`` (np.pad is slow for small arrays)."""
    shape = list(z.shape)
    shape[axis] += 2 * t
    zp = np.zeros(shape, dtype=z.dtype)
    sl = [slice(None)] * z.ndim
    sl[axis] = slice(t, t + z.shape[axis])
    zp[tuple(sl)] = z
    return zp


def _apply_band(z: np.ndarray, start: np.ndarray, weights: np.ndarray, lo: int, axis: int) -> np.ndarray:
    """Apply the banded operator rows ``start``/``weights`` (already cut to the wanted outputs) along
    ``axis`` of ``z``, whose index 0 on that axis is input index ``lo``; inputs outside ``z`` are 0."""
    t = weights.shape[1]
    n = z.shape[axis]
    zp = _zero_pad(z, axis, t)
    out = None
    for k in range(t):
        idx = np.clip(start - lo + k + t, 0, n + 2 * t - 1)
        shape = [1] * z.ndim
        shape[axis] = -1
        term = np.take(zp, idx, axis=axis) * weights[:, k].reshape(shape)
        out = term if out is None else out + term
    return out


def _channels(kept: np.ndarray, negative: bool) -> np.ndarray:
    """Channels the argmax must see: the kept ones; with mask_thr < 0 the zero channels of the
    non-kept categories pass the foreground test too (official argmax over all C channels), and the
    lowest of them stands for all of them (ties go to the lowest index)."""
    cats = np.flatnonzero(kept)
    if negative and cats.size < kept.size:
        cats = np.sort(np.append(cats, np.flatnonzero(~kept)[0]))
    return cats


def finish_instance(mask: np.ndarray, cat_conf: np.ndarray, keep: np.ndarray, geo: FinishGeometry,
                    ori_shape: Optional[Sequence[int]] = None,
                    mask_thr: float = DEFAULT_DECODE["mask_thr"]) -> np.ndarray:
    """Step 5 for one person: (h, w) binary mask, (C, h, w) category cosine maps, (C,) keep flags ->
    (H, W) uint8 labels at the original size (0 background, c + 1 for category index c); foreground
    where the best confidence > ``mask_thr`` (float32).

    Same result as the torch reference ``finish_instance``: only the kept categories, only inside the
    bounding box of the mask (the confidence is zero outside it), only the output rows/columns that box
    reaches through the interpolation operators, which are applied in banded form. (mask_thr < 0: zero
    confidences pass the test, every pixel is labelled, the whole map is computed.)
    """
    H, W = geo.ori_shape if ori_shape is None else (int(ori_shape[0]), int(ori_shape[1]))
    out = np.zeros((H, W), dtype=np.uint8)
    thr = np.float32(mask_thr)
    negative = bool(thr < 0)
    kept = np.asarray(keep).reshape(-1).astype(bool)
    cats = _channels(kept, negative)
    m = np.asarray(mask).astype(bool, copy=False)
    if cats.size == 0:
        return out
    if negative:
        y0, y1, x0, x1 = 0, m.shape[0], 0, m.shape[1]
    else:
        rows_any = np.flatnonzero(m.any(axis=1))
        if rows_any.size == 0:
            return out
        cols_any = np.flatnonzero(m.any(axis=0))
        y0, y1, x0, x1 = int(rows_any[0]), int(rows_any[-1]) + 1, int(cols_any[0]), int(cols_any[-1]) + 1
    ry0, ry1 = _span(geo.row_first, geo.row_last, y0, y1)
    rx0, rx1 = _span(geo.col_first, geo.col_last, x0, x1)
    if ry1 <= ry0 or rx1 <= rx0:
        return out  # the box lies entirely in the padding
    z = cat_conf[cats, y0:y1, x0:x1].astype(np.float32, copy=False) * m[y0:y1, x0:x1]  # (Ck, hb, wb)
    if negative:
        z = z * kept[cats][:, None, None]  # the stand-in zero channel
    t = _apply_band(z, geo.col_start[rx0:rx1], geo.col_weights[rx0:rx1], x0, axis=2)  # (Ck, hb, X)
    # rows, fused with the argmax over categories: one (Y, X) plane per kept category at a time
    rstart, rweights = geo.row_start[ry0:ry1], geo.row_weights[ry0:ry1]
    taps = rweights.shape[1]
    tp = _zero_pad(t, 1, taps)
    idx = [np.clip(rstart - y0 + k + taps, 0, tp.shape[1] - 1) for k in range(taps)]
    wk = [rweights[:, k:k + 1] for k in range(taps)]
    best = arg = None
    for ci in range(cats.size):
        plane = tp[ci]
        conf = plane[idx[0]] * wk[0]
        for k in range(1, taps):
            conf = conf + plane[idx[k]] * wk[k]
        if best is None:
            best, arg = conf, np.zeros(conf.shape, dtype=np.uint8)
        else:
            better = conf > best  # strict: the lowest category wins ties, like torch's max
            np.copyto(best, conf, where=better)
            arg[better] = ci
    labels = np.where(best > thr, (cats + 1).astype(np.uint8)[arg], np.uint8(0)).astype(np.uint8)
    if geo.shrink:
        out[ry0:ry1, rx0:rx1] = labels
        return out
    # enlarge / equal: nearest on the labels (equal: identity); the source indices are monotonic, so
    # the output rows (columns) that pick from [ry0, ry1) form one contiguous range
    oy0, oy1 = np.searchsorted(geo.near_rows, [ry0, ry1])
    ox0, ox1 = np.searchsorted(geo.near_cols, [rx0, rx1])
    if oy1 > oy0 and ox1 > ox0:
        out[oy0:oy1, ox0:ox1] = labels[geo.near_rows[oy0:oy1] - ry0][:, geo.near_cols[ox0:ox1] - rx0]
    return out


# --------------------------------------------------------------------------------------------
# products-v1
# --------------------------------------------------------------------------------------------

def _count(outputs, index: int, k: int, max_instances: Optional[int]) -> int:
    n = int(np.asarray(outputs[NUM_INSTANCES]).reshape(-1)[index])
    n = max(0, min(n, k))
    if max_instances is not None:
        n = min(n, int(max_instances))
    return n


def finish_products(outputs: Mapping[str, np.ndarray], meta: ImageMeta, classes, index: int = 0,
                    max_instances: Optional[int] = None, timings: Optional[dict] = None,
                    source: Optional[str] = None, mask_thr: float = DEFAULT_DECODE["mask_thr"]) -> ParseResult:
    """products-v1 outputs of a batch -> the :class:`ParseResult` of image ``index`` (see module doc).

    ``classes``: class names or their number; ``max_instances`` keeps at most that many persons (the
    best ones). Persons whose categories were all filtered keep an empty map, as in the reference.
    ``mask_thr``: the run-time threshold the graph ran with (``decode_params[1]``): the foreground
    test of step 5 uses it too.
    """
    PRODUCTS_V1.check_outputs(outputs, [n for n in PRODUCTS_OUTPUTS if n != GRID_INDEX])
    scores = np.asarray(outputs[SCORES])[index]
    masks = np.asarray(outputs[INSTANCE_MASKS])[index]
    keep = np.asarray(outputs[KEEP])[index]
    cat_conf = np.asarray(outputs[CAT_CONF])[index]
    n = _count(outputs, index, scores.shape[0], max_instances)
    geo = finish_geometry(masks.shape[-2:], meta.img_shape, meta.ori_shape)
    maps = [finish_instance(masks[i], cat_conf, keep[i], geo, mask_thr=mask_thr) for i in range(n)]
    return ParseResult.from_label_maps(scores[:n].astype(np.float64), maps, classes,
                                       image_shape=tuple(meta.ori_shape), timings=timings, source=source)


# --------------------------------------------------------------------------------------------
# plugin-v1
# --------------------------------------------------------------------------------------------

def finish_plugin(outputs: Mapping[str, np.ndarray], meta: ImageMeta, classes, index: int = 0,
                  max_instances: Optional[int] = None, timings: Optional[dict] = None,
                  source: Optional[str] = None) -> ParseResult:
    """plugin-v1 outputs (``scores`` (B, K), ``num_instances`` (B,), ``part_maps`` (B, K, 4h, 4w) uint8
    labels at the padded input resolution, or int32 (B, K, 4h, w) packing them, see
    :func:`unpack_part_maps`) -> the :class:`ParseResult` of image ``index``."""
    PLUGIN_V1.check_outputs(outputs)
    scores = np.asarray(outputs[SCORES])[index]
    part_maps = unpack_part_maps(np.asarray(outputs[PART_MAPS])[index])
    ih, iw = meta.img_shape
    if part_maps.shape[-2] < ih or part_maps.shape[-1] < iw:
        raise ValueError(f"plugin part maps {part_maps.shape[-2:]} smaller than the resized image {(ih, iw)}")
    n = _count(outputs, index, scores.shape[0], max_instances)
    maps = labels_to_original(part_maps[:n], meta) if n else []
    return ParseResult.from_label_maps(scores[:n].astype(np.float64), maps, classes,
                                       image_shape=tuple(meta.ori_shape), timings=timings, source=source)


def finish_raw(outputs: Mapping[str, np.ndarray], meta: ImageMeta, classes, decode: Mapping[str, float],
               seg_kernels: Optional[np.ndarray] = None, index: int = 0,
               timings: Optional[dict] = None, source: Optional[str] = None) -> ParseResult:
    """raw-v1 outputs -> the :class:`ParseResult` of image ``index``: numpy steps 1-4
    (:func:`decode_products`) with ``decode`` = {ctr_score, mask_thr, cate_score_thr, max_instances},
    then :func:`finish_products`. ``seg_kernels`` (C, D) default to an output of that name."""
    RAW_V1.check_outputs(outputs)
    if seg_kernels is None:
        if SEG_KERNELS not in outputs:
            raise ValueError("raw-v1 model: category kernels (seg_kernels) found neither in the metadata "
                             "nor among the outputs")
        seg_kernels = np.asarray(outputs[SEG_KERNELS])
        if seg_kernels.ndim == 3:
            seg_kernels = seg_kernels[index]
    prods = decode_products(np.asarray(outputs[CENTER_LOGITS])[index], np.asarray(outputs[INS_FEATS])[index],
                            np.asarray(outputs[SEM_FEATS])[index], seg_kernels,
                            float(decode["ctr_score"]), float(decode["mask_thr"]),
                            float(decode["cate_score_thr"]), int(decode.get("max_instances", 100)))
    return finish_products(prods, meta, classes, 0, timings=timings, source=source,
                           mask_thr=float(decode["mask_thr"]))
