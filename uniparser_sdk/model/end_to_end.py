"""Export-only rewrite: the network plus the fixed-shape part of the decode, as one traceable module.

Kept apart from the training model (mmdeploy's habit): :class:`EndToEnd` wraps a trained
:class:`~uniparser_sdk.model.uniparser.UniParser` and adds steps 1-4 of the decode
(:mod:`uniparser_sdk.model.decode`) written with batch-friendly, fixed-K, standard-ONNX operations
(MaxPool, TopK, Gather, MatMul, comparisons). Step 5 (per-person finishing at the original size) is
data-dependent and runs on the host (:mod:`uniparser_sdk.runtime.finish`, numpy) over each person's
bounding box only.

ONNX contract ("products-v1"), B = batch, K = max instances, C = num_classes - 1, (h, w) = stride-4
feature size of the padded input (light models: h+2, w+2):

inputs   images         float32 (B, 3, Hp, Wp)  normalised RGB, Hp/Wp multiples of 32
         decode_params  float32 (3,)            [ctr_score, mask_thr, cate_score_thr]
                        or (B, 3)               one row per image ("products-v2", the same outputs)
outputs  scores         float32 (B, K)          descending; 0 beyond num_instances
         num_instances  int64   (B,)
         grid_index     int64   (B, K)          flat S x S center cell of each slot, -1 beyond the count
         instance_masks uint8   (B, K, h, w)    Q_ins > mask_thr (0/1), 0 beyond the count
         keep           uint8   (B, K, C)       maskness > cate_score_thr (0/1), 0 beyond the count
         cat_conf       float32 (B, C, h, w)    category cosine maps Q_cat
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from uniparser_sdk.contract.layouts import PRODUCTS_V1, RAW_V1
from uniparser_sdk.contract.constants import COUNT_THR, MASKNESS_EPS, NORM_EPS

# the products layouts' tensor names, in the order forward() returns them (declared in the contract)
INPUT_NAMES = list(PRODUCTS_V1.input_names)
OUTPUT_NAMES = list(PRODUCTS_V1.output_names)
RAW_OUTPUT_NAMES = list(RAW_V1.output_names)
LAYOUT = "products-v1"


def _normalize(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x / torch.clamp(torch.norm(x, dim=dim, keepdim=True), min=NORM_EPS)


def batched_peaks(center_logits: torch.Tensor, ctr_score: torch.Tensor, k: int):
    """(B,1,S,S) logits -> scores (B,K), flat index (B,K), count (B,). Ties of equal scores come
    out lowest index first (ONNX TopK's rule; the reference uses a stable sort for the same order)."""
    s = torch.sigmoid(center_logits)
    hmax2 = F.max_pool2d(s, 2, stride=1, padding=1)[:, :, :-1, :-1]
    h = s * (hmax2 == s).to(s.dtype)
    hmax5 = F.max_pool2d(h, 5, stride=1, padding=2)
    peak = (hmax5 == h) & (h > ctr_score)
    flat = torch.where(peak, h, torch.zeros_like(h)).flatten(1)
    k = min(k, flat.shape[1])
    scores, index = torch.topk(flat, k, dim=1)
    # Min, not Clip: TensorRT's Clip has no INT64 (its ONNX operator matrix), Min has
    count = torch.minimum(peak.flatten(1).sum(1), torch.tensor(k, dtype=torch.int64))
    valid = torch.arange(k, device=flat.device)[None, :] < count[:, None]
    return scores * valid.to(scores.dtype), index, count


class EndToEnd(nn.Module):
    def __init__(self, model: nn.Module, max_instances: int = 100):
        super().__init__()
        self.model = model
        self.max_instances = max_instances
        self.num_grid = model.config.num_grid

    def forward(self, images: torch.Tensor, decode_params: torch.Tensor):
        center, ins, sem = self.model(images)
        # thresholds per image: products-v1 feeds one row (3,), products-v2 one row per image (B, 3)
        rows = decode_params.reshape(-1, 3).expand(images.shape[0], 3)
        ctr_score, mask_thr, cate_thr = rows[:, 0:1, None, None], rows[:, 1:2, None], rows[:, 2:3, None]
        scores, index, count = batched_peaks(center.float(), ctr_score, self.max_instances)
        b, d, h, w = ins.shape
        ins = ins.float().flatten(2)  # (B, D, P)
        sem = sem.float().flatten(2)
        s = self.num_grid
        feat_index = torch.div(torch.div(index, s, rounding_mode="floor") * h, s, rounding_mode="floor") * w \
            + torch.div(torch.remainder(index, s) * w, s, rounding_mode="floor")  # (B, K)
        kernels = torch.gather(ins, 2, feat_index[:, None, :].expand(b, d, feat_index.shape[1]))  # (B, D, K)
        q_ins = torch.matmul(_normalize(kernels, 1).transpose(1, 2), _normalize(ins, 1))  # (B, K, P)
        q_cat = torch.matmul(_normalize(self.model.seg_kernels.float(), 1), _normalize(sem, 1))  # (B, C, P)
        masks = (q_ins > mask_thr).to(torch.float32)
        num = torch.matmul(masks, (q_cat * (q_cat > mask_thr).to(q_cat.dtype)).transpose(1, 2))  # (B, K, C)
        den = torch.matmul(masks, (q_cat > COUNT_THR).to(q_cat.dtype).transpose(1, 2))
        valid = (torch.arange(scores.shape[1], device=scores.device)[None, :] < count[:, None])
        keep = (num / (den + MASKNESS_EPS) > cate_thr) & valid[:, :, None]
        # slots beyond the count are zeroed / -1 so every backend returns identical tensors
        index = torch.where(valid, index, torch.full_like(index, -1))
        masks = masks * valid[:, :, None].to(masks.dtype)
        # TensorRT's UINT8 rules: a UINT8 output must be made by a Cast from FLOAT/HALF and nothing may
        # consume UINT8 -- so reshape in float, keep goes BOOL -> FLOAT, and each uint8 output is a final Cast
        return (scores, count.to(torch.int64), index.to(torch.int64),
                masks.reshape(b, -1, h, w).to(torch.uint8), keep.to(torch.float32).to(torch.uint8),
                q_cat.reshape(b, -1, h, w))


class RawOutputs(nn.Module):
    """Network only (center logits, instance and category features) -- the input of the fused
    decode plugin variant."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images):
        return self.model(images)
