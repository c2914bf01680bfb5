"""uniparser-tune: evaluate a checkpoint with the reference decode and pick its decode thresholds.

    uniparser-tune model.pth --synthetic 100 --seed 500 --size 384x288 --tune --write tuned.pth
    uniparser-tune model.pth --data instance-level_human_parsing --split val

Prints the metrics (AP^p_50, AP^p_vol, PCP_50, mIoU) as JSON. ``--tune`` grid-searches ``ctr_score`` and
``cate_score_thr`` by AP^p_50 + AP^p_vol on the evaluated set; ``--write`` saves the checkpoint with the
chosen thresholds. Tune on a split other than the one you report (the default model was tuned on
synthetic seed 500 and is reported on seed 1000).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .common import SIZE_CONVENTION, UserError, parse_size, run_cli

PROG = "uniparser-tune"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", metavar="MODEL.pth")
    ap.add_argument("--synthetic", type=int, default=200, metavar="N", help="held-out synthetic scenes (default 200)")
    ap.add_argument("--seed", type=int, default=1000, help="synthetic seed (one not used in training; default 1000)")
    ap.add_argument("--size", default="320x256", metavar="WIDTHxHEIGHT",
                    help=f"synthetic scene size, {SIZE_CONVENTION} (default 320x256)")
    ap.add_argument("--persons", default="1-4", metavar="MIN-MAX", help="persons per synthetic scene (default 1-4)")
    ap.add_argument("--data", metavar="ROOT", help="evaluate on an MHPv2 or CIHP root instead (with --split)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--scale", metavar="WIDTHxHEIGHT",
                    help="keep-ratio resize limits, e.g. 1333x800 (default: keep each image's size)")
    ap.add_argument("--tune", action="store_true", help="grid-search ctr_score / cate_score_thr")
    ap.add_argument("--write", metavar="OUT.pth", help="save the checkpoint with the chosen thresholds here")
    ap.add_argument("--threads", type=int, metavar="N", help="torch CPU threads")
    return ap


def _persons(text: str) -> tuple[int, int]:
    parts = text.replace(",", "-").split("-")
    try:
        lo, hi = (int(parts[0]), int(parts[-1]))
    except ValueError:
        raise UserError(f"--persons {text!r}: expected MIN-MAX, e.g. 1-4") from None
    if not 0 <= lo <= hi:
        raise UserError(f"--persons {text!r}: expected 0 <= MIN <= MAX")
    return lo, hi


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        import torch

        from ..model.checkpoint import load_model, save_checkpoint, with_decode
        from ..train.validation import evaluate_outputs, network_outputs, tune_decode

        if args.threads:
            torch.set_num_threads(args.threads)
        if not os.path.isfile(args.checkpoint):
            raise UserError(f"checkpoint not found: {args.checkpoint}")
        model, info = load_model(args.checkpoint)
        if args.data:
            from ..data import MHPv2Dataset
            from ..data.cihp import open_cihp

            if not os.path.isdir(args.data):
                raise UserError(f"dataset root not found: {args.data}")
            ds = (MHPv2Dataset(args.data, args.split) if os.path.isdir(os.path.join(args.data, "list"))
                  else open_cihp(args.data, args.split))
            desc = f"{args.data} {args.split}"
        else:
            from ..data import SyntheticScenes

            ds = SyntheticScenes(args.synthetic, seed=args.seed, size=parse_size(args.size, "--size"),
                                 persons=_persons(args.persons),
                                 label_set="cihp" if model.config.num_classes == 20 else "mhp")
            desc = repr(ds)
        scale = None
        if args.scale:
            h, w = parse_size(args.scale, "--scale")
            scale = (max(h, w), min(h, w))
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

    return run_cli(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
