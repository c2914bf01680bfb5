"""UniParser training losses (DESIGN §4, paper Sec. 3.4), written from the description, not from any
other implementation.

Notation: ``F_ins``, ``F_sem`` (N, D, h, w) are the stride-4 instance / semantic features, ``K``
(C', D) the category kernels (``seg_kernels``, C' = num_classes - 1), S the center grid. Cosine maps
use ``x / max(|x|, 1e-12)`` as the decode does.

* **center** - sigmoid focal loss (alpha 0.25, gamma 2) over all S x S cells of the batch, summed and
  divided by (number of positive cells + 1).
* **ins** - instance Dice. For every positive cell the kernel is read from ``F_ins`` resized to S x S
  (bilinear, align_corners=False: the value at the grid cell's centre); ``Q_ins`` = cosine of the
  kernel with every pixel of ``F_ins``; Dice against the owning person's mask. Mean over positives.
* **sem** - semantic Dice of ``Q_cat[c]`` = cosine(F_sem, K_c) against the category mask, for the
  categories present in the image. Mean over (image, present category) pairs.
* **neg** - negative-category term: over the ``Q_cat`` maps of the categories absent from the image,
  the mean of ``Q^2`` over the pixels where ``Q > 0.1`` (0 when there is none).
* **parsing** - Dice on the instance x category maps, which is what the "Index" fusion outputs:
  for a positive cell j of person p and each category c present in person p,
  ``P_jc = relu(Q_ins_j) * relu(Q_cat_c)`` against person p's part-c mask; mean over such pairs.
  We use the *predicted* soft instance map (``parsing_mask="pred"``, default) rather than the GT
  instance mask: the decode multiplies ``Q_cat`` by the predicted instance mask, and only the
  predicted map lets this loss optimise both branches jointly (the paper's Table 5 point); with
  the GT mask it would only re-train the category branch inside each person. ``"gt"`` is available.
  The relu keeps a product of two negative cosines from counting as a positive part. The Dice sums
  are computed as matrix products (``sum P^2 = relu(Q_ins)^2 @ relu(Q_cat)^2.T`` and per person
  ``sum P g = relu(Q_ins) @ (relu(Q_cat) * G_p).T``), so no (pairs x h x w) tensor is built.
* **metric** - ``mean(cos^2 [cos > margin])`` over ordered pairs of distinct category kernels, plus the
  same mean over pairs of positive-cell instance kernels (of one image) that belong to different
  persons (margin 0.04). Kernels of one person are not pushed apart.

``Dice(p, g) = 1 - 2 sum(p g) / (sum(p^2) + sum(g^2) + eps)``. Total = sum of weight x term with the
DESIGN §4 weights (center 1.0 for MHPv2 / 0.2 for CIHP, ins 3, sem 3, neg 2, parsing 3, metric 4).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..model.configs import NORM_EPS
LOSS_NAMES = ("center", "ins", "sem", "neg", "parsing", "metric")

__all__ = ["LossConfig", "UniParserLoss", "dice_loss", "sigmoid_focal_loss", "metric_term", "cosine_maps",
           "LOSS_NAMES"]


@dataclass(frozen=True)
class LossConfig:
    center_weight: float = 1.0
    ins_weight: float = 3.0
    sem_weight: float = 3.0
    neg_weight: float = 2.0
    parsing_weight: float = 3.0
    metric_weight: float = 4.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    neg_thr: float = 0.1
    metric_margin: float = 0.04
    dice_eps: float = 1e-3
    parsing_mask: str = "pred"  # "pred" (relu(Q_ins)) or "gt" (GT instance mask)

    def __post_init__(self):
        if self.parsing_mask not in ("pred", "gt"):
            raise ValueError(f"parsing_mask must be 'pred' or 'gt', got {self.parsing_mask!r}")

    @classmethod
    def for_classes(cls, num_classes: int, **overrides) -> "LossConfig":
        """DESIGN §4 defaults: center weight 0.2 for CIHP (20 classes), 1.0 otherwise (MHPv2)."""
        base = cls(center_weight=0.2 if num_classes == 20 else 1.0)
        return base.updated(**overrides)

    def updated(self, **overrides) -> "LossConfig":
        valid = {f.name for f in fields(self)}
        bad = set(overrides) - valid
        if bad:
            raise ValueError(f"unknown loss option(s) {sorted(bad)}; valid: {sorted(valid)}")
        return replace(self, **overrides)

    def weights(self) -> dict:
        return {n: getattr(self, f"{n}_weight") for n in LOSS_NAMES}

    def to_dict(self) -> dict:
        return asdict(self)


def _normalize(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x / x.norm(dim=dim, keepdim=True).clamp_min(NORM_EPS)


def cosine_maps(feats: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """feats (D, P), kernels (K, D) -> (K, P) cosine similarities."""
    return _normalize(kernels, 1) @ _normalize(feats, 0)


def dice_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Row-wise ``1 - 2 sum(p g) / (sum(p^2) + sum(g^2) + eps)`` over the last dimension."""
    target = target.to(pred.dtype)
    num = 2 * (pred * target).sum(-1)
    den = (pred * pred).sum(-1) + (target * target).sum(-1) + eps
    return 1 - num / den


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25,
                       gamma: float = 2.0) -> torch.Tensor:
    """Element-wise focal loss on logits with 0/1 targets (summing is up to the caller)."""
    targets = targets.to(logits.dtype)
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return alpha_t * (1 - p_t).pow(gamma) * ce


def metric_term(kernels: torch.Tensor, margin: float, groups: torch.Tensor | None = None):
    """(sum, count) of ``cos^2 [cos > margin]`` over ordered pairs of rows of ``kernels`` that are
    distinct (i != j) and, when ``groups`` is given, in different groups."""
    n = kernels.shape[0]
    kn = _normalize(kernels, 1)
    cos = kn @ kn.t()
    if groups is None:
        pair = ~torch.eye(n, dtype=torch.bool, device=kernels.device)
    else:
        pair = groups[:, None] != groups[None, :]
    vals = cos[pair]
    return (vals.pow(2) * (vals > margin).to(vals.dtype)).sum(), int(pair.sum())


def _fit(labels: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Crop or zero-pad (bottom/right) stride-4 label maps (P, h0, w0) to the feature size (h, w).
    The light variant's features are one cell larger on each side (see model/head.py); the decode
    maps feature cell k to image cell k, so the target is padded at the bottom/right."""
    p, h0, w0 = labels.shape
    if (h0, w0) == (h, w):
        return labels
    out = labels.new_zeros((p, h, w))
    hh, ww = min(h, h0), min(w, w0)
    out[:, :hh, :ww] = labels[:, :hh, :ww]
    return out


class UniParserLoss(nn.Module):
    """``forward(center_logits, ins_feats, sem_feats, seg_kernels, targets)`` -> dict with the
    unweighted terms (:data:`LOSS_NAMES`) and ``loss`` = the weighted sum.

    ``targets`` (see :mod:`uniparser_sdk.train.collate`): ``center`` (N, 1, S, S) float,
    ``pos_index`` / ``pos_person`` lists of (n_i,) long tensors, ``labels`` list of (P_i, h, w) uint8
    per-person part labels at stride 4.
    """

    def __init__(self, num_classes: int, config: LossConfig | None = None):
        super().__init__()
        self.num_classes = int(num_classes)
        self.cfg = config if config is not None else LossConfig.for_classes(num_classes)

    def forward(self, center_logits, ins, sem, seg_kernels, targets) -> dict:
        cfg = self.cfg
        center_logits, ins, sem, kernels = center_logits.float(), ins.float(), sem.float(), seg_kernels.float()
        n_img, d, h, w = ins.shape
        S = center_logits.shape[-1]
        cats = torch.arange(1, self.num_classes, device=ins.device)
        zero = 0.0 * (ins.sum() + sem.sum() + kernels.sum() + center_logits.sum())  # keeps every output in the graph

        # center
        pos_index = [p.to(ins.device) for p in targets["pos_index"]]
        pos_person = [p.to(ins.device) for p in targets["pos_person"]]
        num_pos = sum(int(p.numel()) for p in pos_index)
        center_t = targets["center"].to(center_logits.device).reshape(center_logits.shape)
        loss_center = sigmoid_focal_loss(center_logits, center_t, cfg.focal_alpha, cfg.focal_gamma).sum() / (num_pos + 1)

        ins_grid = F.interpolate(ins, size=(S, S), mode="bilinear", align_corners=False).flatten(2)  # (N, D, S*S)
        ins_flat, sem_flat = ins.flatten(2), sem.flatten(2)
        q_cat_all = torch.einsum("cd,ndp->ncp", _normalize(kernels, 1), _normalize(sem_flat, 1))  # (N, C', hw)

        ins_terms, sem_terms, par_terms = [], [], []
        neg_sum, neg_cnt = zero, 0
        met_sum, met_cnt = zero, 0
        for b in range(n_img):
            labels = _fit(targets["labels"][b].to(ins.device), h, w).reshape(-1, h * w).long()  # (P, hw)
            q_cat = q_cat_all[b]
            parts = labels[:, None, :] == cats[None, :, None]  # (P, C', hw) bool
            cat_masks = parts.any(0) if labels.shape[0] else torch.zeros_like(q_cat, dtype=torch.bool)
            present = cat_masks.any(-1)
            if present.any():
                sem_terms.append(dice_loss(q_cat[present], cat_masks[present], cfg.dice_eps))
            q_abs = q_cat[~present]
            sel = q_abs > cfg.neg_thr
            neg_sum = neg_sum + (q_abs.pow(2) * sel.to(q_abs.dtype)).sum()
            neg_cnt += int(sel.sum())

            idx, owner = pos_index[b], pos_person[b]
            if idx.numel() == 0:
                continue
            kernels_b = ins_grid[b][:, idx].t()  # (n, D)
            q_ins = cosine_maps(ins_flat[b], kernels_b)  # (n, hw)
            inst = (labels > 0).to(q_ins.dtype)  # (P, hw)
            ins_terms.append(dice_loss(q_ins, inst[owner], cfg.dice_eps))

            # parsing: pairs (positive j, category c present in its person)
            a = q_ins.clamp_min(0) if cfg.parsing_mask == "pred" else inst[owner]
            bq = q_cat.clamp_min(0)
            pp = (a * a) @ (bq * bq).t()  # (n, C') sum of P^2
            gg = parts.sum(-1).to(a.dtype)  # (P, C') sum of g^2 (= pixel count)
            pg = torch.zeros_like(pp)
            for person in torch.unique(owner).tolist():
                rows = owner == person
                pg[rows] = a[rows] @ (bq * parts[person].to(bq.dtype)).t()
            g_rows = gg[owner]
            valid = g_rows > 0
            par_terms.append((1 - 2 * pg / (pp + g_rows + cfg.dice_eps))[valid])

            s, c = metric_term(kernels_b, cfg.metric_margin, owner)
            met_sum, met_cnt = met_sum + s, met_cnt + c

        def mean(terms):
            terms = [t for t in terms if t.numel()]
            return torch.cat(terms).mean() if terms else zero

        cat_sum, cat_cnt = metric_term(kernels, cfg.metric_margin)
        loss_metric = cat_sum / max(cat_cnt, 1) + (met_sum / met_cnt if met_cnt else zero)
        out = {
            "center": loss_center,
            "ins": mean(ins_terms),
            "sem": mean(sem_terms),
            "neg": neg_sum / neg_cnt if neg_cnt else zero,
            "parsing": mean(par_terms),
            "metric": loss_metric,
        }
        weights = cfg.weights()
        out["loss"] = sum(weights[k] * out[k] for k in LOSS_NAMES) + zero
        return out
