"""Decode steps 1-4 in numpy (DESIGN §3) for raw-v1 models: the products-v1 tensors of one image.

Float32 throughout, memory O(K*P + C*P) (never K*C*P); the per-person finishing of step 5 is
:mod:`uniparser_sdk.runtime.finish`.
"""
from __future__ import annotations

import numpy as np

from ..contract.layouts import PRODUCTS_V1
from ..contract.constants import COUNT_THR, MASKNESS_EPS, NORM_EPS



def _max_pool(x: np.ndarray, k: int, pad_before: int, pad_after: int) -> np.ndarray:
    """2-D max over a k x k window, stride 1, -inf padding (torch's max_pool2d), output size
    ``(H + pad_before + pad_after - k + 1)`` per side."""
    p = np.pad(x, ((pad_before, pad_after), (pad_before, pad_after)), constant_values=-np.inf)
    hh = p.shape[0] - k + 1
    ww = p.shape[1] - k + 1
    out = np.full((hh, ww), -np.inf, dtype=x.dtype)
    for dy in range(k):
        for dx in range(k):
            np.maximum(out, p[dy:dy + hh, dx:dx + ww], out=out)
    return out


def center_peaks(center_logits: np.ndarray, ctr_score: float, max_instances: int):
    """Step 1 in numpy: (S, S) or (1, S, S) logits -> (scores (K,), flat grid index (K,) -1 beyond the
    count, count). Order: score descending, ties by ascending flat index (stable sort)."""
    logits = np.asarray(center_logits, dtype=np.float32)
    logits = logits.reshape(logits.shape[-2:])
    s = (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
    hmax2 = _max_pool(s, 2, 1, 1)[:-1, :-1]
    h = s * (hmax2 == s).astype(np.float32)
    hmax5 = _max_pool(h, 5, 2, 2)
    peak = (hmax5 == h) & (h > np.float32(ctr_score))
    flat = np.where(peak, h, np.float32(0)).ravel()
    order = np.argsort(-flat, kind="stable")
    k = int(max_instances)
    count = int(min(int(peak.sum()), k, flat.size))
    scores = np.zeros(k, dtype=np.float32)
    idx = np.full(k, -1, dtype=np.int64)
    idx[:count] = order[:count]
    scores[:count] = flat[order[:count]]
    return scores, idx, count


def _normalize(x: np.ndarray, axis: int) -> np.ndarray:
    norm = np.sqrt(np.sum(x * x, axis=axis, keepdims=True))
    return x / np.maximum(norm, np.float32(NORM_EPS))


def decode_products(center_logits: np.ndarray, ins: np.ndarray, sem: np.ndarray, seg_kernels: np.ndarray,
                    ctr_score: float, mask_thr: float, cate_score_thr: float, max_instances: int) -> dict:
    """Steps 1-4 for one image in numpy (float32): raw head outputs -> the products-v1 tensors of
    that image with a leading batch axis of 1 (``scores``, ``num_instances``, ``grid_index``,
    ``instance_masks``, ``keep``, ``cat_conf``). Memory is O(K*P + C*P), never K*C*P."""
    ins = np.asarray(ins, dtype=np.float32)
    sem = np.asarray(sem, dtype=np.float32)
    d, h, w = ins.shape
    num_grid = int(np.asarray(center_logits).shape[-1])
    scores, grid, count = center_peaks(center_logits, ctr_score, max_instances)
    g = np.maximum(grid, 0)
    feat_index = (g // num_grid * h) // num_grid * w + (g % num_grid * w) // num_grid
    ins_flat = ins.reshape(d, h * w)
    ins_n = _normalize(ins_flat, 0)
    sem_n = _normalize(sem.reshape(d, h * w), 0)
    kernels = ins_flat[:, feat_index].T  # (K, D) raw features
    q_ins = _normalize(kernels, 1) @ ins_n  # (K, P)
    q_cat = _normalize(np.asarray(seg_kernels, dtype=np.float32), 1) @ sem_n  # (C, P)
    thr = np.float32(mask_thr)  # the run-time mask_thr, in the instance mask and the maskness numerator
    masks = (q_ins > thr).astype(np.float32)
    num = masks @ (q_cat * (q_cat > thr)).T
    den = masks @ (q_cat > COUNT_THR).astype(np.float32).T
    valid = np.arange(max_instances) < count
    keep = (num / (den + np.float32(MASKNESS_EPS)) > np.float32(cate_score_thr)) & valid[:, None]
    masks = masks * valid[:, None]
    return dict(zip(PRODUCTS_V1.output_names, (  # the contract's order
        scores[None], np.array([count], dtype=np.int64), grid[None], masks.astype(np.uint8).reshape(1, -1, h, w),
        keep.astype(np.uint8)[None], q_cat.reshape(1, -1, h, w))))
