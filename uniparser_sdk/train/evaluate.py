"""Evaluate a torch model on a dataset of ``{"image", "persons"}`` samples with the reference decode and
the official MHP metrics; sweep the decode thresholds. Used by the training tests, by
``scripts/train_default_model.sh`` and for the model card.

``python -m uniparser_sdk.train.evaluate CKPT [--synthetic N --seed S --size H,W] [--data ROOT]
[--tune] [--write CKPT_OUT]``: prints the metrics as JSON; ``--tune`` picks ``ctr_score`` and
``cate_score_thr`` by AP^p_50 (+ AP^p_vol) on the evaluated set and ``--write`` saves the checkpoint
with the chosen thresholds in its config's decode section. Tune on a split other than the one you report.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
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


def main(argv=None) -> int:
    from ..model.checkpoint import load_model, save_checkpoint, with_decode

    ap = argparse.ArgumentParser(prog="python -m uniparser_sdk.train.evaluate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--synthetic", type=int, default=200, help="number of held-out synthetic scenes")
    ap.add_argument("--seed", type=int, default=1000, help="synthetic seed (use one not used in training)")
    ap.add_argument("--size", default="256,320", help="H,W of the synthetic scenes")
    ap.add_argument("--persons", default="1,4")
    ap.add_argument("--data", help="evaluate on a CIHP / MHPv2 root instead (with --split)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--scale", help="long,short resize limits (default: keep the image size)")
    ap.add_argument("--tune", action="store_true", help="grid-search ctr_score / cate_score_thr")
    ap.add_argument("--write", help="save the checkpoint (model-only) with the chosen decode thresholds here")
    ap.add_argument("--threads", type=int)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, info = load_model(args.checkpoint)
    if args.data:
        from ..data import CIHPDataset, MHPv2Dataset
        import os
        ds = MHPv2Dataset(args.data, args.split) if os.path.isdir(os.path.join(args.data, "list")) \
            else CIHPDataset(args.data, args.split)
        desc = f"{args.data} {args.split}"
    else:
        from ..data import SyntheticScenes
        h, w = (int(v) for v in args.size.split(","))
        lo, hi = (int(v) for v in args.persons.split(","))
        ds = SyntheticScenes(args.synthetic, seed=args.seed, size=(h, w), persons=(lo, hi),
                             label_set="cihp" if model.config.num_classes == 20 else "mhp")
        desc = repr(ds)
    scale = tuple(int(v) for v in args.scale.split(",")) if args.scale else None
    t0 = time.time()
    outs = network_outputs(model, ds, scale)
    decode = model.config.decode
    result = {"data": desc, "checkpoint": args.checkpoint}
    if args.tune:
        decode, table = tune_decode(outs, model.seg_kernels, model.config.num_classes, decode)
        result["tuning"] = table
    result["decode"] = {"ctr_score": decode.ctr_score, "cate_score_thr": decode.cate_score_thr,
                        "mask_thr": decode.mask_thr}
    result["metrics"] = evaluate_outputs(outs, model.seg_kernels, model.config.num_classes, decode)
    result["eval_time_s"] = round(time.time() - t0, 1)
    if args.write:
        model.config = with_decode(model.config, ctr_score=decode.ctr_score, cate_score_thr=decode.cate_score_thr)
        meta = dict(info.get("meta", {}))
        if args.tune:
            meta["decode_tuned_on"] = desc
        save_checkpoint(args.write, model, meta)
        result["written"] = args.write
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
