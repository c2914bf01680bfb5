"""UniParser training losses: DESIGN §4 items 4-10, i.e. what the authors' training code computes
(described in our words; nothing of that code is copied), quirks included. The targets come from
:mod:`uniparser_sdk.train.targets` (where the ``official`` / ``corrected`` semantics differ); the
losses themselves are the same for both.

Notation: ``F_ins``, ``F_sem`` (N, D, h, w) the stride-4 instance / semantic features, ``K`` (C', D)
the category kernels (``seg_kernels``, C' = num_classes - 1), S the center grid. Cosines use
``x / max(|x|, 1e-12)``.

* **center** - sigmoid focal loss (alpha 0.25, gamma 2) over the S x S cells of the batch, summed and
  divided by ``(positive cells + 1 + eps)`` (eps = float32 machine epsilon, the mmdetection
  ``avg_factor`` reduction); a cell claimed by two persons counts once here.
* **ins** - for every (cell, person) pair (duplicates kept) the kernel is ``F_ins`` resized to S x S
  (bilinear, align_corners=False) at the cell; Dice of its cosine map against the person's instance
  target; mean over the batch's pairs.
* **sem** - Dice of ``cos(F_sem, K_c)`` against ``semantic == c`` for the (image, category) maps that
  are not empty; mean over them.
* **neg** - over the maps of the batch whose target is empty: the values > 0.1, mean of their squares
  (0 when there is none). Weight 2.0 for MHPv2; the CIHP config disables it (weight 0).
* **parsing** - per person, instance map = element-wise max of the cosine maps of its pairs; part q
  (category c) is predicted as ``instance_map[part_instance[q]] * cos(F_sem, K_c)`` (raw, no clamp
  before the product) against its part target; mean over the batch's parts. ``part_instance`` is the
  occurrence index in ``official`` semantics (a quirk, see targets.occurrence_index), the owner in
  ``corrected``.
* **metric** - ONE mean over the values selected from: the strictly-lower-triangle cosines between
  category kernels, and per image between the persons' kernels (``F_ins`` resized to S x S at each
  input person's centre cell), each kept where > margin (0.04) and squared; for CIHP also
  ``(1 - s)^2`` where ``1 - s > margin``, s = mean cosine of a part's centre feature (normalised
  ``F_sem`` at the part's centre cell) with the part's pixels.

``Dice(p, g)``: p clamped at 0 first, then ``1 - 2 (sum pg + 1e-3) / ((sum p^2 + 1e-3) + (sum g^2 + 1e-3))``.
Weights (DESIGN §4): center 1.0 (MHPv2) / 0.2 (CIHP), ins 3, sem 3, neg 2 (MHPv2) / 0 (CIHP),
parsing 3, metric 1 (the official config's 4.0 is never read). ``forward`` returns the unweighted
terms and ``loss`` = the sum of the weighted ones.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..contract.constants import NORM_EPS

LOSS_NAMES = ("center", "ins", "sem", "neg", "parsing", "metric")
#: mmdetection's avg_factor reduction divides by (avg_factor + float32 eps)
AVG_EPS = float(torch.finfo(torch.float32).eps)

__all__ = ["LossConfig", "UniParserLoss", "dice_loss", "sigmoid_focal_loss", "lower_triangle_cosines",
           "LOSS_NAMES", "AVG_EPS"]


@dataclass(frozen=True)
class LossConfig:
    center_weight: float = 1.0
    ins_weight: float = 3.0
    sem_weight: float = 3.0
    neg_weight: float = 2.0
    parsing_weight: float = 3.0
    metric_weight: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    neg_thr: float = 0.1
    metric_margin: float = 0.04
    dice_eps: float = 1e-3
    part_feature_metric: bool = False  # the CIHP config's part-feature metric term

    @classmethod
    def for_classes(cls, num_classes: int, **overrides) -> "LossConfig":
        """DESIGN §4 defaults by dataset: CIHP (20 classes) has center weight 0.2, no negative term and the
        part-feature metric term; MHPv2 (and anything else) center 1.0, negative 2.0, no part features."""
        cihp = int(num_classes) == 20
        base = cls(center_weight=0.2 if cihp else 1.0, neg_weight=0.0 if cihp else 2.0, part_feature_metric=cihp)
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


def dice_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Row-wise Dice loss over the last dimension, official form: the prediction is clamped at 0
    (negative values count as 0), and eps is added to each of the three sums:
    ``1 - 2 (sum pg + eps) / ((sum p^2 + eps) + (sum g^2 + eps))``."""
    target = target.to(pred.dtype)
    pred = pred * (pred > 0).to(pred.dtype)
    a = (pred * target).sum(-1) + eps
    b = (pred * pred).sum(-1) + eps
    c = (target * target).sum(-1) + eps
    return 1 - (2 * a) / (b + c)


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25,
                       gamma: float = 2.0) -> torch.Tensor:
    """Element-wise focal loss on logits with 0/1 targets (summing is up to the caller)."""
    targets = targets.to(logits.dtype)
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return alpha_t * (1 - p_t).pow(gamma) * ce


def lower_triangle_cosines(vectors: torch.Tensor) -> torch.Tensor:
    """Cosines of all pairs (i, j) with j < i (strictly lower triangle, row-major), as a 1-D tensor."""
    vn = _normalize(vectors, 1)
    n = vn.shape[0]
    rows, cols = torch.tril_indices(n, n, offset=-1, device=vectors.device)
    return (vn @ vn.t())[rows, cols]


def _above_margin_squared(values: torch.Tensor, margin: float) -> torch.Tensor:
    return values[values > margin].pow(2)


class UniParserLoss(nn.Module):
    """``forward(center_logits, ins_feats, sem_feats, seg_kernels, targets)`` -> dict with the unweighted
    terms (:data:`LOSS_NAMES`) and ``loss`` = the weighted sum.

    ``targets`` (see :mod:`uniparser_sdk.train.collate`): ``center`` (N, 1, S, S) and the per-image lists
    ``pair_cell``, ``pair_person``, ``instances``, ``semantic``, ``part_masks``, ``part_category``,
    ``part_instance``, ``part_cell``, ``person_cell``, built for the features' size (h, w)."""

    def __init__(self, num_classes: int, config: LossConfig | None = None):
        super().__init__()
        self.num_classes = int(num_classes)
        self.cfg = config if config is not None else LossConfig.for_classes(num_classes)

    def forward(self, center_logits, ins, sem, seg_kernels, targets) -> dict:
        cfg = self.cfg
        center_logits, ins, sem, kernels = center_logits.float(), ins.float(), sem.float(), seg_kernels.float()
        n_img, d, h, w = ins.shape
        S = center_logits.shape[-1]
        dev = ins.device
        zero = 0.0 * (ins.sum() + sem.sum() + kernels.sum() + center_logits.sum())  # keeps every output in the graph
        cats = torch.arange(1, self.num_classes, device=dev)

        def per_image(key, b):
            return targets[key][b].to(dev)

        # center
        center_t = targets["center"].to(dev).reshape(center_logits.shape)
        num_pos = float(center_t.sum())
        loss_center = sigmoid_focal_loss(center_logits, center_t, cfg.focal_alpha, cfg.focal_gamma).sum() \
            / (num_pos + 1 + AVG_EPS)

        ins_grid = F.interpolate(ins, size=(S, S), mode="bilinear", align_corners=False).flatten(2)  # (N, D, S*S)
        ins_n = _normalize(ins.flatten(2), 1)  # (N, D, hw)
        sem_n = _normalize(sem.flatten(2), 1)
        q_cat_all = torch.einsum("cd,ndp->ncp", _normalize(kernels, 1), sem_n)  # (N, C', hw)

        ins_terms, par_terms, sem_pred, sem_gt, metric_vals = [], [], [], [], []
        part_feat_vals = []
        for b in range(n_img):
            q_cat = q_cat_all[b]
            semantic = per_image("semantic", b)
            if tuple(semantic.shape) != (h, w):
                raise ValueError(f"targets were built for a feature size of {tuple(semantic.shape)} but the "
                                 f"features are {(h, w)}; build them with the model's head variant "
                                 "(Collator(light=...))")
            semantic = semantic.reshape(-1).long()
            sem_pred.append(q_cat)
            sem_gt.append(semantic[None, :] == cats[:, None])

            cells, owner = per_image("pair_cell", b), per_image("pair_person", b)
            person_cells = per_image("person_cell", b)
            if person_cells.numel():
                metric_vals.append(_above_margin_squared(
                    lower_triangle_cosines(ins_grid[b][:, person_cells].t()), cfg.metric_margin))
            if cells.numel() == 0:
                continue
            q_ins = _normalize(ins_grid[b][:, cells].t(), 1) @ ins_n[b]  # (n, hw)
            inst = per_image("instances", b).reshape(-1, h * w)
            ins_terms.append(dice_loss(q_ins, inst[owner], cfg.dice_eps))

            parts = per_image("part_masks", b).reshape(-1, h * w)
            if parts.shape[0] == 0:
                continue
            n_persons = inst.shape[0]
            inst_map = torch.stack([q_ins[owner == p].max(0).values for p in range(n_persons)])  # (P, hw)
            part_cat = per_image("part_category", b)
            pred = inst_map[per_image("part_instance", b)] * q_cat[part_cat - 1]
            par_terms.append(dice_loss(pred, parts, cfg.dice_eps))
            if cfg.part_feature_metric:
                pc = per_image("part_cell", b)
                centre_feats = sem_n[b].reshape(d, h, w)[:, pc[:, 0], pc[:, 1]].t()  # (Q, D), already unit
                score_maps = centre_feats @ sem_n[b]  # (Q, hw)
                on = parts > 0
                scores = (score_maps * on).sum(-1) / on.sum(-1)
                part_feat_vals.append(_above_margin_squared(1 - scores, cfg.metric_margin))

        def mean(terms):
            terms = [t for t in terms if t.numel()]
            return torch.cat(terms).mean() if terms else zero

        sem_pred_t, sem_gt_t = torch.cat(sem_pred), torch.cat(sem_gt)  # (N * C', hw)
        present = sem_gt_t.any(-1)
        loss_sem = dice_loss(sem_pred_t[present], sem_gt_t[present], cfg.dice_eps).mean() if present.any() else zero
        neg_vals = sem_pred_t[~present]
        neg_vals = neg_vals[neg_vals > cfg.neg_thr]
        loss_neg = neg_vals.pow(2).mean() if neg_vals.numel() else zero

        values = [_above_margin_squared(lower_triangle_cosines(kernels), cfg.metric_margin)] + metric_vals
        values += part_feat_vals
        out = {
            "center": loss_center,
            "ins": mean(ins_terms),
            "sem": loss_sem,
            "neg": loss_neg,
            "parsing": mean(par_terms),
            "metric": mean(values),
        }
        weights = cfg.weights()
        out["loss"] = sum(weights[k] * out[k] for k in LOSS_NAMES) + zero
        return out
