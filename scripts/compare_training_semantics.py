#!/usr/bin/env python
"""Train the tiny config on synthetic scenes with ``--semantics official`` and ``corrected`` (same seeds,
same budget), then report AP^p_50 / AP^p_vol / PCP_50 on held-out synthetic scenes side by side.

Per run: train ``--iters`` iterations (AdamW, lr per image 2.5e-4, warm-up 50, lr x0.1 at 75% / 92%,
backbone BN trained, no resize, flip 0.5; training scenes seeded by the run's seed); pick the decode
thresholds (ctr_score, cate_score_thr) on ``--val`` validation scenes (seed 500); report on ``--test``
test scenes (seed 1000). Both modes see exactly the same batches (the sampler and augmentation depend on
the seed only); they differ in their targets alone.

    nice -n 15 .venv/bin/python scripts/compare_training_semantics.py            # 3 seeds x 2 modes
    .venv/bin/python scripts/compare_training_semantics.py --iters 50 --seeds 0   # smoke run

Prints a Markdown table (per run, then mean +- std over seeds) and writes ``results.json`` in --work-dir.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from uniparser_sdk.cli.common import format_size, parse_size  # noqa: E402

MODES = ("official", "corrected")
METRICS = ("AP50", "APvol", "PCP50")


def run_one(mode: str, seed: int, args, size) -> dict:
    import torch

    from uniparser_sdk.data import SyntheticScenes
    from uniparser_sdk.model.checkpoint import load_model
    from uniparser_sdk.train.validation import evaluate_outputs, network_outputs, tune_decode
    from uniparser_sdk.train.trainer import TrainConfig, Trainer

    work = os.path.join(args.work_dir, f"{mode}_seed{seed}")
    cfg = TrainConfig(model="tiny", data="synthetic", work_dir=work, iters=args.iters, batch_size=args.batch_size,
                      lr=2.5e-4, optimizer="adamw", warmup_iters=50, short_sides=None, flip=0.5, bn_train=True,
                      seed=seed, synthetic_size=size, synthetic_images=100000, num_workers=0,
                      threads=args.threads, progress=False, log_every=50, ckpt_every=args.iters,
                      semantics=mode, device="cpu")
    t0 = time.time()
    summary = Trainer(cfg, log=lambda msg: None).run()
    train_s = time.time() - t0
    model, _ = load_model(summary["final"])
    torch.set_num_threads(args.threads)
    val = SyntheticScenes(args.val, seed=500, size=size, persons=(1, 4))
    test = SyntheticScenes(args.test, seed=1000, size=size, persons=(1, 4))
    k, nc = model.seg_kernels, model.config.num_classes
    decode, _ = tune_decode(network_outputs(model, val), k, nc, model.config.decode,
                            ctr_scores=(0.05, 0.1, 0.2, 0.3, 0.4), cate_thrs=(0.1, 0.2, 0.3, 0.4))
    m = evaluate_outputs(network_outputs(model, test), k, nc, decode)
    last = summary["history"][-1] if summary["history"] else {}
    return {"mode": mode, "seed": seed, **{x: float(m[x]) for x in METRICS}, "mIoU": float(m["mIoU"]),
            "num_pred": int(m["num_pred"]), "num_gt": int(m["num_gt"]), "ctr_score": decode.ctr_score,
            "cate_score_thr": decode.cate_score_thr, "final_loss": last.get("loss"), "train_s": round(train_s, 1)}


def table(rows, seeds) -> str:
    out = ["| mode | seed | AP^p_50 | AP^p_vol | PCP_50 | mIoU | thresholds (ctr, cate) | train s |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['mode']} | {r['seed']} | {100 * r['AP50']:.1f} | {100 * r['APvol']:.1f} | "
                   f"{100 * r['PCP50']:.1f} | {100 * r['mIoU']:.1f} | {r['ctr_score']}, {r['cate_score_thr']} | "
                   f"{r['train_s']:.0f} |")
    out += ["", f"| mode | AP^p_50 | AP^p_vol | PCP_50 | mIoU  (mean +- std over seeds {list(seeds)}) |",
            "|---|---|---|---|---|"]
    for mode in MODES:
        rs = [r for r in rows if r["mode"] == mode]
        if not rs:
            continue
        cells = []
        for key in METRICS + ("mIoU",):
            v = 100 * np.array([r[key] for r in rs])
            cells.append(f"{v.mean():.1f} +- {v.std(ddof=1) if len(v) > 1 else 0.0:.1f}")
        out.append(f"| {mode} | " + " | ".join(cells) + " |")
    paired = [(a, b) for a in rows for b in rows if a["mode"] == "official" and b["mode"] == "corrected"
              and a["seed"] == b["seed"]]
    if paired:
        out += ["", "| corrected - official (paired by seed) | " + " | ".join(
            f"{np.mean([100 * (b[k] - a[k]) for a, b in paired]):+.1f}" for k in METRICS + ("mIoU",)) + " |"]
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=350)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--size", default="160x128", help="synthetic scene size, WIDTHxHEIGHT (default 160x128)")
    ap.add_argument("--val", type=int, default=50, help="validation scenes (threshold choice), seed 500")
    ap.add_argument("--test", type=int, default=100, help="held-out test scenes, seed 1000")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--work-dir", default="work_dirs/compare_semantics")
    args = ap.parse_args(argv)
    size = parse_size(args.size, "--size")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    modes = [m for m in args.modes.split(",") if m.strip()]
    os.makedirs(args.work_dir, exist_ok=True)
    rows = []
    for seed in seeds:
        for mode in modes:
            r = run_one(mode, seed, args, size)
            rows.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
    with open(os.path.join(args.work_dir, "results.json"), "w") as f:
        json.dump({"args": vars(args), "rows": rows}, f, indent=1)
    print(f"tiny, synthetic {format_size(size)} scenes (1-4 persons), {args.iters} iterations x batch "
          f"{args.batch_size}, thresholds tuned on {args.val} val scenes (seed 500), metrics on {args.test} "
          f"test scenes (seed 1000)\n")
    print(table(rows, seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
