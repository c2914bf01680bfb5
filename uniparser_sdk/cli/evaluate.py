"""uniparser-eval: the official MHP metrics (AP^p_50, AP^p_vol, PCP_50, mIoU) of a model file or of a
folder of prediction PNGs, on an MHPv2 or CIHP layout or on synthetic scenes.

  uniparser-eval model.onnx --dataset cihp --root data/instance-level_human_parsing --json cihp.json
  uniparser-eval --predictions preds/ --dataset mhp --root data/LV-MHP-v2 --split val
  uniparser-eval model.pth --dataset synthetic --num-images 50 --synthetic-seed 1234

The model may be any file the runtime Parser opens (.onnx, .engine/.plan, .pth). Prediction folders
follow the format of uniparser_sdk.evaluation.predictions (MHPv2-style <id>_<NN>_<KK>.png + scores.json,
or CIHP-style Category_ids/ + Human_ids/). Synthetic ground truth is generated in memory, deterministic
by seed. The table shows percentages; the JSON holds fractions in [0, 1] (null where undefined).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time

from .common import UserError, add_model_options, open_parser, parse_size, positive_int, run_cli

PROG = "uniparser-eval"
METRICS = (("AP50", "AP^p_50"), ("APvol", "AP^p_vol"), ("PCP50", "PCP_50"), ("mIoU", "mIoU"))


# ---- argument parsing ---------------------------------------------------------------------------

def _size(text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT -> (H, W), at least 32x32."""
    try:
        h, w = parse_size(text, "--synthetic-size")
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if h < 32 or w < 32:
        raise argparse.ArgumentTypeError(f"synthetic scenes must be at least 32x32, got {w}x{h}")
    return h, w


def _persons(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX or N, e.g. 1-4, got {text!r}")
    lo = int(m[1])
    hi = int(m[2]) if m[2] is not None else lo
    if hi < lo:
        raise argparse.ArgumentTypeError(f"MIN must not exceed MAX, got {text!r}")
    return lo, hi


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", metavar="MODEL",
                    help="model file (.onnx, .engine/.plan, .pth); or give --predictions instead")
    ap.add_argument("--predictions", metavar="DIR",
                    help="evaluate a folder of prediction PNGs instead of running a model")
    ap.add_argument("--pred-format", choices=("auto", "mhp", "cihp"), default="auto",
                    help="layout of --predictions (default: auto = cihp when DIR has Category_ids/ and "
                         "Human_ids/, else mhp)")
    ap.add_argument("--scores", metavar="JSON",
                    help="scores file of --predictions (default: DIR/scores.json if present, else every "
                         "person scores 1.0)")

    g = ap.add_argument_group("dataset")
    g.add_argument("--dataset", required=True, choices=("mhp", "cihp", "synthetic"),
                   help="ground truth: LV-MHP-v2 layout, CIHP layout, or synthetic scenes made in memory")
    g.add_argument("--root", metavar="PATH",
                   help="dataset folder (LV-MHP-v2 / instance-level_human_parsing, or their parent); "
                        "required for mhp and cihp")
    g.add_argument("--split", default="val", choices=("train", "val"), help="dataset split (default: val)")
    g.add_argument("--num-images", type=positive_int, metavar="N",
                   help="evaluate the first N images only (synthetic: generate N; default 100)")
    g.add_argument("--synthetic-seed", type=int, default=1234, metavar="SEED",
                   help="seed of the synthetic scenes (default: 1234)")
    g.add_argument("--synthetic-size", type=_size, default=(384, 512), metavar="WIDTHxHEIGHT",
                   help="synthetic image size, width x height like every size of the SDK's CLIs "
                        "(default: 512x384)")
    g.add_argument("--synthetic-persons", type=_persons, default=(1, 4), metavar="MIN-MAX",
                   help="persons per synthetic scene (default: 1-4)")
    g.add_argument("--synthetic-labels", choices=("auto", "cihp", "mhp"), default="auto",
                   help="label set of the synthetic scenes (default: auto = the model's, CIHP for "
                        "predictions)")

    add_model_options(ap.add_argument_group("model"))

    o = ap.add_argument_group("output")
    o.add_argument("--json", metavar="OUT", help="write the metrics and run details as JSON (atomic)")
    o.add_argument("--no-progress", action="store_true",
                   help="no progress bar (default: shown when stderr is a terminal)")
    return ap


# ---- helpers --------------------------------------------------------------------------------------

def _note(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr)


def _clean(x):
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, dict keys -> str."""
    if isinstance(x, dict):
        return {(f"{k:g}" if isinstance(k, float) else str(k)): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _fmt_pct(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{100.0 * v:.2f}"


def _open_dataset(args, label_set: str):
    from ..data import CIHPDataset, MHPv2Dataset, SyntheticScenes
    if args.dataset == "synthetic":
        if args.root:
            _note("--root is ignored for --dataset synthetic")
        return SyntheticScenes(args.num_images or 100, seed=args.synthetic_seed, size=args.synthetic_size,
                               persons=args.synthetic_persons, label_set=label_set)
    if not args.root:
        raise UserError(f"--root is required for --dataset {args.dataset} (the "
                        f"{'LV-MHP-v2' if args.dataset == 'mhp' else 'instance-level_human_parsing'} folder)")
    try:
        if args.dataset == "mhp":
            return MHPv2Dataset(args.root, split=args.split)
        return CIHPDataset(args.root, split=args.split)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(f"{args.dataset} dataset: {exc}") from exc


def _open_model(args):
    return open_parser(args, args.model)


def _dataset_desc(args, ds) -> dict:
    d = {"name": args.dataset, "num_classes": int(ds.num_classes), "images": None}
    if args.dataset == "synthetic":
        d.update(seed=args.synthetic_seed, size=list(args.synthetic_size), persons=list(args.synthetic_persons),
                 label_set=ds.label_set)
    else:
        d.update(root=str(ds.root), split=args.split)
    return d


# ---- the command ------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if (args.model is None) == (args.predictions is None):
        ap.error("give either a MODEL file or --predictions DIR (exactly one)")
    if args.predictions is None and (args.scores or args.pred_format != "auto"):
        ap.error("--scores and --pred-format apply to --predictions only")

    def body():
        from tqdm import tqdm

        from .. import __version__
        from ..evaluation import MHPEvaluator
        from ..evaluation.predictions import PredictionFolder, PredictionFormatError

        parser = folder = None
        label_set = args.synthetic_labels
        try:
            if args.model is not None:
                if args.dataset != "synthetic":
                    ds = _open_dataset(args, "cihp")        # check the dataset before the (slow) model load
                parser = _open_model(args)
                model_classes = parser.classes
                if args.dataset == "synthetic":
                    if label_set == "auto":
                        n_model = len(model_classes) if model_classes else None
                        label_set = {20: "cihp", 59: "mhp"}.get(n_model)
                        if label_set is None:
                            raise UserError(f"model {args.model} has {n_model} classes; synthetic scenes "
                                            "come with CIHP (20) or MHPv2 (59) labels only")
                    ds = _open_dataset(args, label_set)
                if model_classes is not None and len(model_classes) != ds.num_classes:
                    raise UserError(f"model {args.model} has {len(model_classes)} classes but the "
                                    f"{args.dataset} dataset has {ds.num_classes}; evaluate it on a dataset "
                                    "with its classes")
                if model_classes is not None and tuple(model_classes) != tuple(ds.classes):
                    _note("model and dataset class names differ (same count); evaluating by index")
            else:
                ds = _open_dataset(args, "cihp" if label_set == "auto" else label_set)
                try:
                    folder = PredictionFolder(args.predictions, style=args.pred_format, scores=args.scores)
                except PredictionFormatError as exc:
                    raise UserError(str(exc)) from exc
                if len(folder) == 0 and not folder.has_scores:
                    raise UserError(f"no prediction files in {args.predictions} (expected "
                                    + ("<id>_<NN>_<KK>.png files" if folder.style == "mhp"
                                       else "Category_ids/<id>.png and Human_ids/<id>.png") + ")")
                if not folder.has_scores:
                    _note(f"no {folder.root / 'scores.json'}: every predicted person scores 1.0")

            n_total = len(ds)
            n_images = min(n_total, args.num_images) if args.num_images else n_total
            if n_images == 0:
                raise UserError(f"the {args.dataset} dataset has no images")
            ids = [ds.ids[i] for i in range(n_images)]
            if folder is not None and len(folder):
                hit = sum(1 for i in ids if i in folder)
                if hit == 0:
                    raise UserError(f"none of the {len(folder)} image ids in {args.predictions} (e.g. "
                                    f"{folder.ids[0]!r}) is among the {n_images} evaluated {args.dataset} "
                                    f"images (e.g. {ids[0]!r}); wrong dataset, split or --num-images?")
                extra = len(set(folder.ids) - set(ids))
                if hit < n_images:
                    _note(f"{n_images - hit} of {n_images} images have no prediction (counted as misses)")
                if extra:
                    _note(f"{extra} prediction id(s) are not among the evaluated images (ignored)")

            ev = MHPEvaluator(ds.num_classes)
            infer_s = 0.0
            t0 = time.perf_counter()
            bar = tqdm(total=n_images, desc="eval", unit="img", file=sys.stderr,
                       disable=True if args.no_progress else None, dynamic_ncols=True)
            try:
                for i in range(n_images):
                    try:
                        sample = ds[i]
                    except (FileNotFoundError, ValueError) as exc:
                        raise UserError(f"{args.dataset} dataset: {exc}") from exc
                    gts = sample["persons"]
                    shape = sample["image"].shape[:2]
                    if parser is not None:
                        t1 = time.perf_counter()
                        try:
                            res = parser.predict(sample["image"])
                        except ValueError as exc:   # e.g. an image beyond a fixed-shape model's input
                            raise UserError(f"image {sample['id']!r}: {exc}") from exc
                        infer_s += time.perf_counter() - t1
                        preds = [(p.score, p.parts) for p in res.persons]
                        psem = res.semantic
                    else:
                        try:
                            pred = folder.load(sample["id"], shape=shape, num_classes=ds.num_classes)
                        except (PredictionFormatError, FileNotFoundError) as exc:
                            raise UserError(str(exc)) from exc
                        preds, psem = pred.persons, pred.semantic
                    ev.add(preds, gts, pred_semantic=psem)
                    bar.update(1)
            finally:
                bar.close()
            wall = time.perf_counter() - t0
            metrics = ev.compute()
        finally:
            if parser is not None:
                parser.close()

        run = {"wall_s": wall, "images_per_s": n_images / wall if wall > 0 else None}
        if parser is not None:
            run.update(inference_s=infer_s, inference_images_per_s=n_images / infer_s if infer_s > 0 else None)
        desc = _dataset_desc(args, ds)
        desc["images"] = n_images
        source = ({"model": str(args.model), "device": parser.device, "providers": parser.providers,
                   "decode": parser.decode}
                  if parser is not None else
                  {"predictions": str(args.predictions), "format": folder.style,
                   "scores": str(folder.scores_path) if folder.scores_path else None})
        report = {
            **{k: metrics[k] for k, _ in METRICS},
            "AP": metrics["AP"], "PCP": metrics["PCP"],
            "num_images": metrics["num_images"], "num_gt": metrics["num_gt"], "num_pred": metrics["num_pred"],
            "class_iou": dict(zip(ds.classes, metrics["class_iou"])),
            "dataset": desc, "source": source, **run, "sdk_version": __version__,
        }
        report = _clean(report)

        what = args.model if parser is not None else args.predictions
        print(f"{what} on {args.dataset}"
              + (f" ({args.split})" if args.dataset != "synthetic" else f" (seed {args.synthetic_seed})")
              + f": {n_images} images, {metrics['num_gt']} GT persons, {metrics['num_pred']} predicted")
        width = max(len(label) for _, label in METRICS) + 2
        print(f"{'metric':<{width}}{'value (%)':>10}")
        for key, label in METRICS:
            print(f"{label:<{width}}{_fmt_pct(report[key]):>10}")
        speed = f"{run['images_per_s']:.2f} images/s" if run["images_per_s"] else "n/a"
        line = f"wall time {wall:.2f} s, {speed}"
        if parser is not None and run.get("inference_images_per_s"):
            line += f" (inference alone: {run['inference_images_per_s']:.2f} images/s on {parser.device})"
        print(line)
        if args.json:
            from ..io_utils import atomic_write_text
            try:
                path = atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
            except OSError as exc:
                raise UserError(f"cannot write {args.json}: {exc}") from exc
            print(f"wrote {path}")
        return 0

    return run_cli(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
