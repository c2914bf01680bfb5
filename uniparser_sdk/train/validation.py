"""Validation of a torch model during/after training: the network on ``{"image", "persons"}`` samples, the
reference decode and the official MHP metrics, and a sweep of the decode thresholds. Used by the training
tests, by ``uniparser-tune`` (:mod:`uniparser_sdk.cli.tune`) and for the model card.
"""
from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import torch

from ..evaluation import MHPEvaluator
from ..model.configs import DecodeConfig
from ..model.decode import decode_single
from ..runtime.preprocess import preprocess

__all__ = ["network_outputs", "evaluate_outputs", "evaluate_model", "tune_decode"]


@torch.no_grad()
def network_outputs(model, samples, scale=None, batch_size: int = 8, device="cpu") -> list:
    """Run the network once per sample. Returns ``[(center (1,S,S), ins, sem, ImageMeta, gt persons)]``
    (CPU tensors). ``scale`` = (long, short) limits of the keep-ratio resize (default: the image's own
    size, i.e. no resize)."""
    was_training = model.training
    model.eval()
    out, pending = [], []

    def flush():
        if not pending:
            return
        shapes = {x.shape for x, _, _ in pending}
        groups = [pending] if len(shapes) == 1 else [[p] for p in pending]
        for grp in groups:
            x = torch.from_numpy(np.concatenate([g[0] for g in grp])).to(device)
            c, i, s = model(x)
            for k, (_, meta, gts) in enumerate(grp):
                out.append((c[k].cpu(), i[k].cpu(), s[k].cpu(), meta, gts))
        pending.clear()

    for sample in samples:
        img = sample["image"]
        sc = scale if scale is not None else (max(img.shape[:2]), min(img.shape[:2]))
        x, meta = preprocess(img, scale=sc)
        pending.append((x, meta, [np.asarray(p) for p in sample["persons"]]))
        if len(pending) >= batch_size:
            flush()
    flush()
    model.train(was_training)
    return out


def evaluate_outputs(outputs, seg_kernels, num_classes: int, decode: DecodeConfig) -> dict:
    ev = MHPEvaluator(num_classes)
    kernels = seg_kernels.detach().cpu()
    n_pred = 0
    for c, i, s, meta, gts in outputs:
        res = decode_single(c, i, s, kernels, meta.img_shape, meta.ori_shape, decode)
        maps = res.part_maps.numpy()
        preds = [(float(res.scores[k]), maps[k]) for k in range(res.count)]
        n_pred += len(preds)
        ev.add(preds, gts)
    m = ev.compute()
    return {k: m[k] for k in ("AP50", "APvol", "PCP50", "mIoU", "num_images", "num_gt", "num_pred")}


def evaluate_model(model, samples, decode: DecodeConfig | None = None, scale=None, batch_size: int = 8) -> dict:
    """AP^p_50, AP^p_vol, PCP_50, mIoU (fractions) of ``model`` on ``samples``."""
    outs = network_outputs(model, samples, scale, batch_size, next(model.parameters()).device)
    return evaluate_outputs(outs, model.seg_kernels, model.config.num_classes, decode or model.config.decode)


def tune_decode(outputs, seg_kernels, num_classes: int, base: DecodeConfig,
                ctr_scores=(0.1, 0.2, 0.3, 0.4, 0.5), cate_thrs=(0.2, 0.25, 0.3, 0.35, 0.4)):
    """Grid search of (ctr_score, cate_score_thr) by AP50 + APvol. Returns (best DecodeConfig, table)."""
    table = []
    for ctr, cate in itertools.product(ctr_scores, cate_thrs):
        cfg = replace(base, ctr_score=float(ctr), cate_score_thr=float(cate))
        m = evaluate_outputs(outputs, seg_kernels, num_classes, cfg)
        table.append({"ctr_score": ctr, "cate_score_thr": cate, **m})
    best = max(table, key=lambda r: (r["AP50"] + r["APvol"], r["PCP50"]))
    return replace(base, ctr_score=float(best["ctr_score"]), cate_score_thr=float(best["cate_score_thr"])), table
