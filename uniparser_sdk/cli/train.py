"""uniparser-train: train UniParser on CIHP, MHPv2 or synthetic scenes (single process or torchrun DDP).

Examples:
  uniparser-train --config tiny --data synthetic --synthetic-size 160x128 --iters 2000 --batch-size 8 --work-dir runs/tiny
  uniparser-train --config tiny --semantics corrected ...   # the three official quirks fixed
  uniparser-train --config r50 --data /data/LV-MHP-v2 --epochs 36 --batch-size 2 --work-dir runs/r50
  torchrun --nproc_per_node 8 -m uniparser_sdk.cli.train --config r101 --data /data/LV-MHP-v2
  uniparser-train --config r101-cihp-light --data /data/CIHP --init UniParser_CIHP_r101_light.pth
  uniparser-train ... --resume auto        # continue from the newest checkpoint of --work-dir

The learning rate is per image (DESIGN §4: 6.25e-4 with SGD); the base rate is lr x global batch.
Checkpoints (work-dir/iter_*.pth, final.pth) are accepted by uniparser-export and Parser.
"""
from __future__ import annotations

import argparse
import json
import sys

from .common import SIZE_CONVENTION, UserError, parse_size, run_cli

PROG = "uniparser-train"


def _ints(text: str, what: str, n: int | None = None) -> tuple:
    try:
        vals = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise UserError(f"{what}: expected comma-separated integers, got {text!r}") from None
    if n is not None and len(vals) != n:
        raise UserError(f"{what}: expected {n} integers, got {text!r}")
    return vals


def _floats(text: str, what: str) -> tuple:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"{what}: expected comma-separated numbers, got {text!r}") from None


def _loss_overrides(items) -> dict:
    out = {}
    for item in items or []:
        for part in item.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise UserError(f"--loss: expected name=value, got {part!r}")
            k, v = (s.strip() for s in part.split("=", 1))
            if k in ("center", "ins", "sem", "neg", "parsing", "metric"):
                k = f"{k}_weight"
            if k == "part_feature_metric":
                if v.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise UserError(f"--loss: {k} needs true or false, got {v!r}")
                out[k] = v.lower() in ("1", "true", "yes", "on")
                continue
            try:
                out[k] = float(v)
            except ValueError:
                raise UserError(f"--loss: {k} needs a number, got {v!r}") from None
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_argument_group("model and data")
    g.add_argument("--config", default="tiny", help="model config name (tiny, r50, r101, r50-light, ...) or .json file")
    g.add_argument("--data", default="synthetic", help="'synthetic' or a CIHP / LV-MHP-v2 root folder")
    g.add_argument("--dataset", default="auto", choices=["auto", "cihp", "mhp"], help="layout of --data")
    g.add_argument("--split", default="train", help="dataset split (train / val)")
    g.add_argument("--work-dir", default="work_dirs/uniparser", help="checkpoints and logs go here")
    g.add_argument("--init", help="fine-tune from a checkpoint (ours or an official mmdetection one); "
                                  "tensors whose shape differs (e.g. seg_kernels of another dataset) are skipped")
    g.add_argument("--resume", help="training checkpoint to continue from, or 'auto' (newest in --work-dir)")
    g = ap.add_argument_group("schedule")
    length = g.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="training length in epochs (default 36)")
    length.add_argument("--iters", type=int, help="training length in iterations")
    g.add_argument("--batch-size", type=int, default=2, help="images per process (default 2)")
    g.add_argument("--lr", type=float, default=6.25e-4, help="learning rate PER IMAGE (default 6.25e-4)")
    g.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd")
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--weight-decay", type=float, default=1e-4)
    g.add_argument("--warmup-iters", type=int, default=500)
    g.add_argument("--warmup-ratio", type=float, default=0.001, help="lr factor at iteration 0 of the warm-up")
    g.add_argument("--steps", default="", help="lr x0.1 at these epochs (with --epochs) or iterations (with --iters); "
                                             "default: 75%% and 92%% of training (27, 33 of 36 epochs)")
    g.add_argument("--grad-clip", type=float, default=35.0, help="gradient L2 clip (0 = off)")
    g.add_argument("--no-amp", action="store_true", help="disable mixed precision (AMP is used on CUDA only)")
    g.add_argument("--ckpt-every", type=int, default=0, help="checkpoint every N iterations (default: every epoch)")
    g.add_argument("--log-every", type=int, default=10)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--workers", type=int, default=2, help="data loader worker processes")
    g.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda if available)")
    g.add_argument("--threads", type=int, help="torch CPU threads")
    g = ap.add_argument_group("augmentation and synthetic data")
    g.add_argument("--short-sides", default="640,672,704,736,768,800",
                   help="random short side per image ('none' keeps the data's size)")
    g.add_argument("--max-long", type=int, default=1333)
    g.add_argument("--flip", type=float, default=0.5, help="horizontal flip probability")
    g.add_argument("--sigma", type=float, default=0.2, help="center region scale")
    g.add_argument("--synthetic-size", default="320x256",
                   help=f"size of the synthetic scenes, {SIZE_CONVENTION} (default 320x256)")
    g.add_argument("--synthetic-images", type=int, default=100000, help="number of distinct synthetic scenes")
    g.add_argument("--persons", default="1,4", help="min,max persons per synthetic scene")
    g = ap.add_argument_group("losses")
    g.add_argument("--loss", action="append", metavar="NAME=VALUE",
                   help="loss option, e.g. center=1.0,neg=0 (weights), focal_alpha=0.25, part_feature_metric=true")
    g.add_argument("--semantics", choices=["official", "corrected"], default="official",
                   help="training targets: 'official' reproduces the authors' targets and losses term by term "
                        "(quirks included); 'corrected' fixes the never-moving adapt center, the occurrence-index "
                        "part pairing and the summed labels of overlapping persons (recorded in the checkpoint)")
    g.add_argument("--bn-train", action="store_true", help="update backbone BatchNorm statistics (training from scratch)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap


def config_from_args(args):
    from uniparser_sdk.train.trainer import TrainConfig

    for name in ("batch_size", "log_every", "warmup_iters", "workers", "max_long", "synthetic_images"):
        v = getattr(args, name)
        if v is not None and v < (0 if name in ("warmup_iters", "workers") else 1):
            raise UserError(f"--{name.replace('_', '-')} must be {'>= 0' if name in ('warmup_iters', 'workers') else '>= 1'}, got {v}")
    for name in ("epochs", "iters"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise UserError(f"--{name} must be >= 1, got {v}")
    if args.lr <= 0:
        raise UserError(f"--lr must be positive, got {args.lr}")
    if args.ckpt_every < 0:
        raise UserError("--ckpt-every must be >= 0")
    if not 0 <= args.flip <= 1:
        raise UserError(f"--flip must be a probability, got {args.flip}")
    short = None if args.short_sides.strip().lower() in ("none", "") else _ints(args.short_sides, "--short-sides")
    persons = _ints(args.persons, "--persons", 2)
    if not 0 <= persons[0] <= persons[1]:
        raise UserError(f"--persons must be min,max with 0 <= min <= max, got {args.persons}")
    size = parse_size(args.synthetic_size, "--synthetic-size")  # (H, W)
    if min(size) < 32:
        raise UserError(f"--synthetic-size must be at least 32x32, got {args.synthetic_size}")
    steps = _floats(args.steps, "--steps") if args.steps else ()
    return TrainConfig(
        model=args.config, data=args.data, dataset=args.dataset, split=args.split, work_dir=args.work_dir,
        iters=args.iters, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
        momentum=args.momentum, weight_decay=args.weight_decay, warmup_iters=args.warmup_iters,
        warmup_ratio=args.warmup_ratio, steps=steps, grad_clip=args.grad_clip or None, amp=not args.no_amp,
        ckpt_every=args.ckpt_every, log_every=args.log_every, resume=args.resume, init=args.init, seed=args.seed,
        num_workers=args.workers, device=args.device, short_sides=short, max_long=args.max_long, flip=args.flip,
        sigma=args.sigma, synthetic_images=args.synthetic_images, synthetic_size=size, synthetic_persons=persons,
        loss=_loss_overrides(args.loss), semantics=args.semantics, bn_train=args.bn_train, threads=args.threads,
        progress=not args.no_progress)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def body():
        try:
            from uniparser_sdk.train.trainer import Trainer, TrainingError
        except ImportError as exc:  # torch missing
            raise UserError(f"training needs torch: pip install 'uniparser-sdk[train]' ({exc})") from exc
        cfg = config_from_args(args)
        try:
            summary = Trainer(cfg).run()
        except TrainingError as exc:
            raise UserError(str(exc)) from exc
        if summary.get("final"):
            last = summary["history"][-1] if summary["history"] else {}
            print(json.dumps({"final": summary["final"], "iterations": summary["iterations"],
                              "time_s": round(summary["time_s"], 1), "last_loss": last.get("loss")}))
        return 0

    return run_cli(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
