"""Reference decode of the UniParser "Index" fusion, in PyTorch: the specification.

Every faster implementation (the in-graph ONNX part, the numpy finishing of the runtime, the C++
CPU twin and the CUDA kernel) is tested against :func:`decode_single`. DESIGN §3 in our own words:

1. **Peaks.** ``s = sigmoid(center_logits)`` (S x S). A cell survives the 2x2 test if it equals the
   maximum of itself and its upper, left and upper-left neighbours (max-pool 2, stride 1, pad 1,
   cropped to S x S); ``h = s * [survives]``. Peaks are cells where ``h`` equals the 5x5 maximum of
   ``h`` (max-pool 5, stride 1, pad 2) and ``h > ctr_score``. They are ordered by score descending,
   ties by ascending flat index ``gy * S + gx``, and cut to ``K`` slots with a ``count``.
2. **Kernels.** Grid cell (gy, gx) reads feature cell ``((gy * h) // S, (gx * w) // S)`` (integer
   arithmetic: the official ``int(gy / S * h)`` without floating-point rounding). The kernel is the
   raw instance feature vector there. ``Q_ins[i] = <F_ins/|F_ins|, k_i/|k_i|>`` per pixel.
3. ``Q_cat[c] = <F_sem/|F_sem|, K_c/|K_c|>`` with ``K = seg_kernels``. Normalisation everywhere is
   ``x / max(|x|, 1e-12)`` (a zero vector gives cosine 0, never NaN).
4. ``M_i = [Q_ins[i] > mask_thr]``. With ``P_ic = M_i * Q_cat[c]``:
   ``maskness_ic = sum(P_ic [P_ic > mask_thr]) / (count(P_ic > 0.1) + 1e-5)`` computed as two
   (K x P) @ (P x C) products (no K x C x P tensor); category c of instance i is kept if
   ``maskness_ic > cate_score_thr``. The run-time ``mask_thr`` is used in all three places (instance
   mask, maskness numerator, foreground test of step 5); only 0.1 is fixed. Comparisons are float32.
5. **Finishing** (per instance, kept categories only, other channels are zero): ``P_i`` is upsampled
   x4 (bilinear, align_corners=False) to the padded input size, cropped to the resized image
   ``(h', w')`` and brought to the original size ``(H, W)`` by comparing AREAS: when
   ``h'*w' > H*W`` by a second bilinear resize (align_corners=False) *before* the argmax; when
   ``h'*w' < H*W`` the labels are taken at ``(h', w')`` and resized with torch's ``nearest`` rule in
   float32 (:func:`nearest_index`); when the areas are equal there is no resize (pixel (y, x) stays
   at (y, x); equal areas with different shapes are cropped / zero-padded to (H, W)). Label =
   ``argmax_c + 1`` (lowest class on ties) where the maximum is > mask_thr, else 0. Bilinear resizes
   are separable linear maps, so they are applied as small interpolation matrices restricted to the
   instance's bounding box rows and columns: exact, and no C x H x W stack is ever built for more than
   one person. (A negative mask_thr lets the zero channels pass the foreground test: then, as in the
   official argmax over all C channels, every pixel is labelled and the whole map is computed.)
6. Score of instance i = its center score. Instances are never dropped after step 1 (a person whose
   categories were all filtered has an all-zero map), as in the official code.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..contract.constants import COUNT_THR, DEFAULT_DECODE, MASKNESS_EPS, NORM_EPS
from .configs import DecodeConfig


@dataclass
class DecodeOutput:
    """Fixed K slots plus a count. ``part_maps`` holds the first ``count`` slots only (uint8
    label maps at the original image size); ``keep`` and ``maskness`` are (K, C)."""

    scores: torch.Tensor  # (K,) float, 0 beyond count
    grid_index: torch.Tensor  # (K,) long, -1 beyond count
    count: int
    keep: torch.Tensor  # (K, C) bool
    maskness: torch.Tensor  # (K, C) float
    part_maps: torch.Tensor  # (count, H, W) uint8


def center_peaks(center_logits: torch.Tensor, ctr_score: float, max_instances: int):
    """center_logits (S, S) or (1, S, S) -> (scores (K,), flat index (K,), count). Step 1."""
    logits = center_logits.reshape(1, 1, *center_logits.shape[-2:]).float()
    s = torch.sigmoid(logits)
    hmax2 = F.max_pool2d(s, 2, stride=1, padding=1)[..., :-1, :-1]
    h = s * (hmax2 == s).float()
    hmax5 = F.max_pool2d(h, 5, stride=1, padding=2)
    peak = (hmax5 == h) & (h > ctr_score)
    flat = torch.where(peak, h, torch.zeros_like(h)).flatten()
    order = torch.sort(flat, descending=True, stable=True).indices
    k = min(max_instances, flat.numel())
    count = int(peak.sum().clamp(max=k))
    idx = torch.full((max_instances,), -1, dtype=torch.long, device=flat.device)
    scores = torch.zeros(max_instances, dtype=torch.float32, device=flat.device)
    idx[:count] = order[:count]
    scores[:count] = flat[order[:count]]
    return scores, idx, count


def grid_to_feature_index(grid_index: torch.Tensor, num_grid: int, h: int, w: int) -> torch.Tensor:
    """Flat grid index -> flat feature index (integer arithmetic, step 2)."""
    gy, gx = grid_index // num_grid, grid_index % num_grid
    return (gy * h) // num_grid * w + (gx * w) // num_grid


def _normalize(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x / x.norm(dim=dim, keepdim=True).clamp_min(NORM_EPS)


def instance_products(ins: torch.Tensor, sem: torch.Tensor, seg_kernels: torch.Tensor, feat_index: torch.Tensor,
                      mask_thr: float, cate_score_thr: float):
    """Steps 2-4 for K slots. ins/sem (D, h, w); feat_index (K,) long (valid indices).

    Returns masks (K, h, w) bool, q_cat (C, h, w), keep (K, C) bool, maskness (K, C)."""
    d, h, w = ins.shape
    ins_n = _normalize(ins.reshape(d, h * w).float(), 0)  # (D, P)
    sem_n = _normalize(sem.reshape(d, h * w).float(), 0)
    kernels = ins.reshape(d, h * w).float()[:, feat_index].t()  # (K, D) raw features
    q_ins = _normalize(kernels, 1) @ ins_n  # (K, P)
    q_cat = _normalize(seg_kernels.float(), 1) @ sem_n  # (C, P)
    masks = (q_ins > mask_thr).float()  # torch compares a float32 tensor with a Python float in float32
    num = masks @ (q_cat * (q_cat > mask_thr)).t()  # (K, C)
    den = masks @ (q_cat > COUNT_THR).float().t()
    maskness = num / (den + MASKNESS_EPS)
    keep = maskness > cate_score_thr
    return masks.bool().reshape(-1, h, w), q_cat.reshape(-1, h, w), keep, maskness


def bilinear_matrix(out_size: int, in_size: int, device=None) -> torch.Tensor:
    """(out_size, in_size) matrix of 1-D bilinear resizing with align_corners=False (torch's rule:
    ``src = max((dst + 0.5) * in / out - 0.5, 0)``, neighbours clamped to the last index)."""
    dst = torch.arange(out_size, dtype=torch.float64, device=device)
    src = ((dst + 0.5) * (in_size / out_size) - 0.5).clamp_min(0)
    i0 = src.floor().long().clamp(max=in_size - 1)
    i1 = (i0 + 1).clamp(max=in_size - 1)
    l1 = src - i0.double()
    mat = torch.zeros(out_size, in_size, dtype=torch.float64, device=device)
    rows = torch.arange(out_size, device=device)
    mat.index_put_((rows, i0), 1 - l1, accumulate=True)
    mat.index_put_((rows, i1), l1, accumulate=True)
    return mat


def nearest_index(out_size: int, in_size: int, device=None) -> torch.Tensor:
    """torch 'nearest' (``F.interpolate(mode="nearest", size=...)``), in float32 as torch computes it:
    ``scale = float32(in) / float32(out)``; ``src = min(floor(float32(dst) * scale), in - 1)``, the
    product rounded to float32 (float64 gives other rows, e.g. 750 -> 1080: dst 180 reads 124)."""
    scale = torch.tensor(float(in_size), dtype=torch.float32) / torch.tensor(float(out_size), dtype=torch.float32)
    dst = torch.arange(out_size, dtype=torch.float32, device=device)
    return (dst * scale.to(device)).floor().long().clamp(max=in_size - 1)


def resize_mode(img_shape, ori_shape) -> str:
    """Step 5 compares AREAS: ``"shrink"`` (h'*w' > H*W, bilinear before the argmax), ``"enlarge"``
    (h'*w' < H*W, nearest on the labels) or ``"equal"`` (no resize)."""
    a, b = int(img_shape[0]) * int(img_shape[1]), int(ori_shape[0]) * int(ori_shape[1])
    return "shrink" if a > b else "enlarge" if a < b else "equal"


@dataclass
class FinishGeometry:
    """Interpolation operators from the feature grid to the original image, shared by all persons.
    ``mode`` is :func:`resize_mode`; in "enlarge" / "equal" mode output pixel (y, x) with
    ``y < len(near_rows)``, ``x < len(near_cols)`` takes label (near_rows[y], near_cols[x]) at (h', w')
    (equal: the identity, cut to the smaller of the two shapes); the rest stays background."""

    mode: str
    rows: torch.Tensor  # (Hout, h) float: Hout = H when shrinking, else h'
    cols: torch.Tensor  # (Wout, w)
    near_rows: torch.Tensor | None  # indices into h' (enlarge / equal mode)
    near_cols: torch.Tensor | None

    @property
    def shrink(self) -> bool:
        return self.mode == "shrink"

    @classmethod
    def build(cls, feat_hw, img_shape, ori_shape, device=None) -> "FinishGeometry":
        (h, w), (ih, iw), (oh, ow) = feat_hw, img_shape, ori_shape
        if ih > 4 * h or iw > 4 * w:
            raise ValueError(f"resized image {img_shape} larger than the upsampled features {(4 * h, 4 * w)}")
        up_r = bilinear_matrix(4 * h, h, device)[:ih]  # upsample x4, then crop to the resized image
        up_c = bilinear_matrix(4 * w, w, device)[:iw]
        mode = resize_mode(img_shape, ori_shape)
        if mode == "shrink":
            return cls(mode, (bilinear_matrix(oh, ih, device) @ up_r).float(),
                       (bilinear_matrix(ow, iw, device) @ up_c).float(), None, None)
        if mode == "enlarge":
            near_r, near_c = nearest_index(oh, ih, device), nearest_index(ow, iw, device)
        else:  # equal areas: no resize
            near_r = torch.arange(min(oh, ih), device=device)
            near_c = torch.arange(min(ow, iw), device=device)
        return cls(mode, up_r.float(), up_c.float(), near_r, near_c)


def _negative(mask_thr: float) -> bool:
    """``0 > mask_thr`` in float32 (the zero channels pass the foreground test)."""
    return bool(torch.tensor(mask_thr, dtype=torch.float32) < 0)


def _channels(keep: torch.Tensor, mask_thr: float) -> torch.Tensor:
    """Channels the argmax of step 5 must see: the kept ones; with mask_thr < 0 the zero channels of
    the non-kept categories also pass the foreground test, and the lowest of them stands for all."""
    kept = keep.bool()
    if not _negative(mask_thr) or bool(kept.all()):
        return torch.nonzero(kept).flatten()
    first_zero = torch.nonzero(~kept).flatten()[:1]
    return torch.sort(torch.cat([torch.nonzero(kept).flatten(), first_zero])).values


def finish_instance(mask: torch.Tensor, q_cat: torch.Tensor, keep: torch.Tensor, geo: FinishGeometry,
                    ori_shape, mask_thr: float = DEFAULT_DECODE["mask_thr"]) -> torch.Tensor:
    """Step 5 for one person: (h, w) bool mask, (C, h, w) q_cat, (C,) keep -> (H, W) uint8 labels;
    foreground where the best channel > ``mask_thr`` (float32 comparison)."""
    H, W = ori_shape
    out = torch.zeros(H, W, dtype=torch.uint8, device=mask.device)
    cats = _channels(keep, mask_thr)
    if cats.numel() == 0:
        return out
    if _negative(mask_thr):  # every pixel passes the foreground test: the whole map
        y0, y1, x0, x1 = 0, mask.shape[0], 0, mask.shape[1]
    else:
        ys, xs = torch.nonzero(mask, as_tuple=True)
        if ys.numel() == 0:
            return out
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    gate = keep.bool()[cats].float()[:, None, None] * mask[y0:y1, x0:x1].float()
    z = q_cat[cats, y0:y1, x0:x1] * gate  # (Ck, hb, wb), zero outside the mask and on non-kept channels
    r = geo.rows[:, y0:y1]
    c = geo.cols[:, x0:x1]
    rsel = torch.nonzero(r.abs().sum(1) > 0).flatten()  # output rows the box can reach
    csel = torch.nonzero(c.abs().sum(1) > 0).flatten()
    if rsel.numel() == 0 or csel.numel() == 0:
        return out
    r, c = r[rsel[0]:rsel[-1] + 1], c[csel[0]:csel[-1] + 1]
    conf = torch.einsum("yh,chw,xw->cyx", r, z, c)
    best, arg = conf.max(0)
    labels = torch.where(best > mask_thr, cats[arg] + 1, torch.zeros_like(arg)).to(torch.uint8)
    if geo.shrink:
        out[rsel[0]:rsel[-1] + 1, csel[0]:csel[-1] + 1] = labels
        return out
    ih, iw = geo.rows.shape[0], geo.cols.shape[0]
    full = torch.zeros(ih, iw, dtype=torch.uint8, device=mask.device)
    full[rsel[0]:rsel[-1] + 1, csel[0]:csel[-1] + 1] = labels
    out[:geo.near_rows.numel(), :geo.near_cols.numel()] = full[geo.near_rows][:, geo.near_cols]
    return out


@torch.no_grad()
def decode_single(center_logits, ins, sem, seg_kernels, img_shape, ori_shape,
                  cfg: DecodeConfig = DecodeConfig()) -> DecodeOutput:
    """Decode one image. center_logits (1,S,S) or (S,S); ins/sem (D,h,w) at stride 4 of the padded
    input; img_shape = resized (h', w'); ori_shape = original (H, W)."""
    num_grid = center_logits.shape[-1]
    d, h, w = ins.shape
    scores, grid_index, count = center_peaks(center_logits, cfg.ctr_score, cfg.max_instances)
    feat_index = grid_to_feature_index(grid_index.clamp_min(0), num_grid, h, w)
    masks, q_cat, keep, maskness = instance_products(ins, sem, seg_kernels, feat_index, cfg.mask_thr,
                                                     cfg.cate_score_thr)
    valid = torch.arange(cfg.max_instances, device=keep.device) < count
    keep = keep & valid[:, None]
    maskness = maskness * valid[:, None]
    geo = FinishGeometry.build((h, w), img_shape, ori_shape, ins.device)
    maps = [finish_instance(masks[i], q_cat, keep[i], geo, ori_shape, cfg.mask_thr) for i in range(count)]
    part_maps = torch.stack(maps) if maps else torch.zeros(0, *ori_shape, dtype=torch.uint8, device=ins.device)
    return DecodeOutput(scores, grid_index, count, keep, maskness, part_maps)


@torch.no_grad()
def decode_official_style(center_logits, ins, sem, seg_kernels, img_shape, ori_shape,
                          cfg: DecodeConfig = DecodeConfig()) -> torch.Tensor:
    """The official per-person loop, for benchmarks and as a cross-check of :func:`decode_single`:
    each person's full C x h x w confidence stack is upsampled with ``F.interpolate`` to the padded
    size, cropped, resized to the original size by the area rule and arg-maxed. Returns (count, H, W)
    uint8 (equal areas with different shapes: the unresized map, cropped / zero-padded to (H, W))."""
    num_grid = center_logits.shape[-1]
    d, h, w = ins.shape
    scores, grid_index, count = center_peaks(center_logits, cfg.ctr_score, cfg.max_instances)
    feat_index = grid_to_feature_index(grid_index.clamp_min(0), num_grid, h, w)
    masks, q_cat, keep, _ = instance_products(ins, sem, seg_kernels, feat_index, cfg.mask_thr, cfg.cate_score_thr)
    (ih, iw), (oh, ow) = img_shape, ori_shape
    out = []
    for i in range(count):
        conf = (q_cat * masks[i].float() * keep[i].float()[:, None, None])[None]
        conf = F.interpolate(conf, size=(4 * h, 4 * w), mode="bilinear", align_corners=False)[..., :ih, :iw]
        if ih * iw > oh * ow:
            conf = F.interpolate(conf, size=(oh, ow), mode="bilinear", align_corners=False)
        best, arg = conf[0].max(0)
        labels = torch.where(best > cfg.mask_thr, arg + 1, torch.zeros_like(arg)).to(torch.uint8)
        if ih * iw < oh * ow:
            labels = F.interpolate(labels[None, None].float(), size=(oh, ow), mode="nearest")[0, 0].to(torch.uint8)
        elif labels.shape != (oh, ow):  # equal areas, other shape: no resize
            canvas = torch.zeros(oh, ow, dtype=torch.uint8)
            canvas[:min(oh, ih), :min(ow, iw)] = labels[:oh, :ow]
            labels = canvas
        out.append(labels)
    return torch.stack(out) if out else torch.zeros(0, oh, ow, dtype=torch.uint8)
