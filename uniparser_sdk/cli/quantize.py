"""uniparser-quantize: an exported fp32 ``.onnx`` -> an OpenVINO IR at fp32, bf16 or int8, with its
low-precision parity report.

    uniparser-quantize model.onnx --precision bf16 -o model-bf16.xml
    uniparser-quantize model.onnx --precision int8 --calibration my_images/ -o model-int8.xml

The result runs with ``Parser("model-bf16.xml")`` / ``uniparser-predict model-bf16.xml ...``. After the
conversion the report compares the IR with the fp32 ONNX model (ONNX Runtime) on the bundled samples and
held-out synthetic scenes: persons matched, score drift, mask / part / keep agreement, and AP^p_50 /
AP^p_vol / PCP_50 of both models side by side (``--eval-images 0`` skips the metrics).
int8 calibrates on ``--calibration DIR`` (its images in sorted order), default: the bundled samples plus
24 synthetic scenes -- deterministic.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import EXIT_OK
from .common import UserError, run_cli

PROG = "uniparser-quantize"
PARITY_SCENES = 16


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("model", metavar="MODEL.onnx", help="fp32 ONNX model written by uniparser-export")
    ap.add_argument("-o", "--output", metavar="OUT.xml", help="IR path (default: MODEL-<precision>.xml beside it)")
    ap.add_argument("--precision", choices=("fp32", "bf16", "int8"), default="bf16",
                    help="precision of the IR (default bf16: AVX512-BF16 / AMX CPUs run it natively)")
    ap.add_argument("--calibration", metavar="DIR", help="int8: folder of images to calibrate on")
    ap.add_argument("--calibration-limit", type=int, metavar="N", help="int8: use the first N images only")
    ap.add_argument("--threads", type=int, metavar="N", help="CPU threads of both runtimes in the report")
    ap.add_argument("--eval-images", type=int, default=100, metavar="N",
                    help="held-out synthetic scenes for the side-by-side metrics (default 100; 0 = skip)")
    ap.add_argument("--report", metavar="FILE.json", help="also write the report as JSON")
    ap.add_argument("--no-report", action="store_true", help="convert only")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return ap


def parity_report(onnx_path, ir_path, threads=None, eval_images: int = 100, progress: bool = True) -> dict:
    """The low-precision parity report of ``ir_path`` against its fp32 ONNX source."""
    from ..backends.openvino.calibrate import calibration_images
    from ..evaluation.agreement import HELD_OUT_SEED, compare_results, synthetic_metrics
    from ..runtime.parser import Parser

    images = calibration_images(synthetic=PARITY_SCENES, seed=HELD_OUT_SEED + 1)  # the samples + held-out scenes
    with Parser(onnx_path, device="cpu", threads=threads) as ref, Parser(ir_path, threads=threads) as cand:
        agreement = compare_results([ref.predict(im) for im in images], [cand.predict(im) for im in images])
        report = {"reference": str(onnx_path), "candidate": str(ir_path), "precision": cand.meta.precision,
                  "agreement": agreement}
        if eval_images > 0 and len(ref.classes or ()) in (20, 59):
            report["metrics"] = {
                "held_out": {"synthetic_seed": HELD_OUT_SEED, "images": eval_images},
                "fp32": synthetic_metrics(ref, eval_images, progress=progress),
                cand.meta.precision: synthetic_metrics(cand, eval_images, progress=progress),
            }
    return report


def format_report(rep: dict) -> str:
    a = rep["agreement"]
    lines = [f"parity of {rep['precision']} vs fp32 on {a['images']} images:",
             f"  persons: {a['persons_reference']} fp32, {a['persons_candidate']} {rep['precision']}, "
             f"{a['persons_matched']} matched ({100 * a['persons_matched_fraction']:.1f}%)",
             f"  score drift: max {a['score_drift_max']:.4f}, mean {a['score_drift_mean']:.4f}",
             f"  agreement: mask {100 * a['mask_agreement']:.2f}%, parts {100 * a['part_agreement']:.2f}%, "
             f"keep {100 * a['keep_agreement']:.2f}%"]
    if "metrics" in rep:
        m = rep["metrics"]
        lines.append(f"  held-out synthetic scenes (seed {m['held_out']['synthetic_seed']}, "
                     f"{m['held_out']['images']} images):")
        lines.append(f"    {'':6s} {'AP^p_50':>8s} {'AP^p_vol':>8s} {'PCP_50':>8s}")
        for k in ("fp32", rep["precision"]):
            v = m[k]
            lines.append(f"    {k:6s} {100 * v['AP50']:8.2f} {100 * v['APvol']:8.2f} {100 * v['PCP50']:8.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from ..backends.openvino.calibrate import calibration_images
        from ..backends.openvino.convert import convert_onnx
        from ..io_utils import atomic_write_text

        src = Path(args.model)
        if not src.is_file():
            raise UserError(f"model file not found: {src}")
        if src.suffix.lower() != ".onnx":
            raise UserError(f"{src}: expected an .onnx model written by uniparser-export "
                            "(export a .pth first: uniparser-export MODEL.pth)")
        out = Path(args.output) if args.output else src.with_name(f"{src.stem}-{args.precision}.xml")
        if args.precision != "int8" and (args.calibration or args.calibration_limit):
            raise UserError("--calibration applies to --precision int8 only")
        calib = None
        if args.precision == "int8":
            calib = calibration_images(args.calibration, limit=args.calibration_limit)
        convert_onnx(src, out, args.precision, calibration=calib, progress=not args.quiet)
        if args.no_report:
            return EXIT_OK
        rep = parity_report(src, out, threads=args.threads, eval_images=args.eval_images, progress=not args.quiet)
        print(format_report(rep))
        if args.report:
            atomic_write_text(args.report, json.dumps(rep, indent=2, sort_keys=True) + "\n")
        return EXIT_OK

    return run_cli(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
