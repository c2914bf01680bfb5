"""``uniparser-export``: checkpoint -> self-contained ONNX model (and, with TensorRT and a GPU, an engine).

Exit codes: 0 success; 1 the export failed (tracing, checker, parity beyond tolerance, engine build);
2 a usage mistake (bad flag value, missing or unreadable checkpoint, unwritable output); 3 the
environment lacks something a flag needs (TensorRT or a GPU for ``--engine``). On any failure nothing
partial is left at the output paths.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ..errors import UniParserError, UserInputError
from .common import UserError, parse_size, positive_int, run_cli

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "assets" / "default_model.pth"
PROG = "uniparser-export"

EPILOG = """\
artefacts:
  OUT.onnx (default)  one end-to-end ONNX file, layout products-v1: inputs images (B,3,H,W float32,
                      normalised RGB, sides multiples of 32; batch/height/width dynamic) and
                      decode_params (3,) = [ctr_score, mask_thr, cate_score_thr]; outputs scores,
                      num_instances, grid_index, instance_masks, keep, cat_conf (fixed K slots plus a
                      count); DCNv2 as the standard DeformConv operator; all metadata (variant, classes,
                      thresholds, normalisation, input policy, SDK version, checkpoint sha256) in
                      metadata_props, so Parser(OUT.onnx) needs nothing else.
  --fp16              the same graph with half-precision weights and convolutions (GroupNorm and the
                      decode stay float32); the parity report shows its deviation from float32.
  --plugin            layout plugin-v1 instead: the network plus one fused UniParserDecode node
                      (TensorRT plugin from kernels/; ONNX Runtime cannot run it). Thresholds are
                      baked into the node.
  --engine            also OUT.engine (TensorRT 10 plan built on this GPU; optimisation profile
                      --min-size..--max-size, opt --opt-size) and OUT.engine.json (the sidecar Parser
                      reads: metadata, TensorRT version, GPU compute capability, profile). Needs
                      TensorRT and an NVIDIA GPU; without them the command stops before any work.
  --variant openvino-bf16 (or --precision bf16 --target openvino; also openvino-fp32, openvino-int8)
                      OUT.xml + OUT.bin, an OpenVINO IR for CPUs: the fp32 ONNX graph is exported
                      (parity-checked as usual) to a temporary file, converted at that precision
                      (int8: calibrated on --calibration DIR, default the bundled samples + 24
                      synthetic scenes), and the low-precision parity report against the fp32 ONNX
                      model is printed (--eval-images N held-out scenes, 0 = agreement only).
                      Runs with Parser("OUT.xml") / uniparser-predict OUT.xml.
  --triton-repo DIR   also a Triton Inference Server model repository (uniparser-triton's layout:
                      ensemble of Python pre/post-processing around the network, dynamic batching),
                      written after the ONNX file (and the engine with --engine: the network then runs
                      as tensorrt_plan). Triton batches along the batch axis, so this selects the
                      products-v2 layout (decode_params (batch, 3)): products-v2-fp32, or
                      products-v2-fp32-tensorrt with --engine; a contradicting --variant/--fp16/--plugin
                      is a usage error. DIR must not exist or be empty; it is written whole or not at all.

exit codes: 0 ok, 1 export/parity/build failed or TensorRT/GPU/OpenVINO missing, 2 usage or input
error, 130 interrupted (nothing partial is written).
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse's default prints the usage block too)
        raise UsageError(message)


class UsageError(UserError):
    """A usage mistake: one line, exit code 2."""


class EnvironmentMissing(UniParserError, RuntimeError):
    """What the asked artefact needs is not installed here (TensorRT, a GPU, OpenVINO): exit code 1."""


def _hw(text: str):
    """WIDTHxHEIGHT (the SDK's one size convention; a single number is a square) -> (H, W)."""
    t = str(text).strip()
    if t.isdigit():
        t = f"{t}x{t}"
    try:
        return parse_size(t)
    except UserInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _unit(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return v


def _batch(text: str):
    try:
        parts = tuple(int(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,OPT,MAX (e.g. 1,1,4), got {text!r}") from None
    if len(parts) == 1:
        parts = (1, parts[0], parts[0])
    if len(parts) != 3 or min(parts) <= 0 or not parts[0] <= parts[1] <= parts[2]:
        raise argparse.ArgumentTypeError(f"expected MIN,OPT,MAX with 0 < MIN <= OPT <= MAX, got {text!r}")
    return parts


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Export a UniParser checkpoint (ours or the authors' official mmdetection "
                                       "checkpoint; the variant is detected from the weights) to a self-contained "
                                       "end-to-end ONNX model, optionally a TensorRT engine.",
                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", metavar="MODEL.pth",
                   help="checkpoint to export (default: the embedded default model)")
    p.add_argument("-o", "--output", metavar="OUT.onnx",
                   help="output ONNX path (default: ./<checkpoint name>[-fp16][-plugin].onnx)")
    p.add_argument("--config", metavar="NAME",
                   help="force a model config (r50, r101, r50-light, r101-light, r101-cihp-light, tiny, or a .json "
                        "file) instead of the one stored in / inferred from the checkpoint")
    p.add_argument("--opset", type=int, default=19, metavar="N", help="ONNX opset, 19 or 20 (default 19)")
    p.add_argument("--fp16", action="store_true", help="half-precision weights and compute (decode stays float32)")
    p.add_argument("--max-instances", type=positive_int, default=None, metavar="K",
                   help="fixed number of instance slots K (default: the config's, 100)")
    p.add_argument("--ctr-score", type=_unit, metavar="F", help="center score threshold stored in the model")
    p.add_argument("--mask-thr", type=_unit, metavar="F", help="instance mask threshold stored in the model")
    p.add_argument("--cate-score-thr", type=_unit, metavar="F", help="maskness threshold stored in the model")
    p.add_argument("--no-simplify", action="store_true", help="skip onnxsim")
    p.add_argument("--sample-size", type=_hw, default=(256, 352), metavar="WIDTHxHEIGHT",
                   help="image size traced at export (default 352x256; the graph stays dynamic)")
    p.add_argument("--parity-size", type=_hw, default=None, metavar="WIDTHxHEIGHT",
                   help="image size of the parity check (default: the sample size, 32 narrower and 64 higher)")
    p.add_argument("--no-parity", action="store_true",
                   help="skip the ONNX Runtime vs PyTorch parity check (not recommended)")
    p.add_argument("--plugin", action="store_true",
                   help="export the plugin-v1 variant (network + one UniParserDecode node) instead")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16", "int8"), default=None,
                   help="what the deployed model computes in; with --target it selects a row of the variant table "
                        "(bf16/int8 alone: openvino-bf16/-int8; fp16 alone: products-fp16, same as --fp16)")
    p.add_argument("--target", choices=("onnxruntime", "tensorrt", "openvino"), default=None,
                   help="runtime of the deployed model (tensorrt implies --engine; openvino writes an .xml IR)")
    p.add_argument("--variant", metavar="NAME", default=None,
                   help="a row of the variant table (uniparser_sdk.export.variants: layout x precision x target), "
                        "e.g. products-fp16 or plugin-fp32-tensorrt (a -tensorrt row implies --engine); default: "
                        "the row --fp16/--plugin/--engine select (products-fp32)")
    o = p.add_argument_group("OpenVINO (--target openvino / --variant openvino-*)")
    o.add_argument("--calibration", metavar="DIR",
                   help="int8: folder of images to calibrate on (sorted order; default: the bundled samples + 24 "
                        "synthetic scenes)")
    o.add_argument("--calibration-limit", type=positive_int, metavar="N", help="int8: the first N images only")
    o.add_argument("--eval-images", type=int, default=100, metavar="N",
                   help="held-out synthetic scenes for the parity report's AP^p_50 / AP^p_vol / PCP_50 (default 100; "
                        "0 = agreement only)")
    o.add_argument("--no-report", action="store_true", help="convert only, no low-precision parity report")
    o.add_argument("--threads", type=positive_int, metavar="N", help="CPU threads of the parity report's runtimes")
    g = p.add_argument_group("TensorRT (--engine)")
    g.add_argument("--engine", action="store_true", help="also build a TensorRT engine (needs TensorRT 10 and a GPU)")
    g.add_argument("--engine-output", metavar="OUT.engine", help="engine path (default: OUT with .engine)")
    g.add_argument("--plugin-lib", metavar="LIB.so",
                   help="shared library with the UniParserDecode plugin, for --engine --plugin (default: "
                        "$UNIPARSER_TRT_PLUGIN, else kernels/build/libuniparser_trt_plugin.so)")
    g.add_argument("--check-trt", metavar="MODEL.onnx",
                   help="only check MODEL.onnx against the TensorRT ONNX parser's operator matrix (ops, data types, "
                        "UINT8 rules, restrictions; every --engine export runs this check first) and exit: 0 "
                        "compatible, 1 violations (each naming node and rule)")
    g.add_argument("--trt-operators", metavar="operators.md",
                   help="onnx-tensorrt's operator matrix (default: $UNIPARSER_TRT_OPERATORS, else "
                        "../shared/third_party/onnx-tensorrt/operators-10.1.md beside the repository)")
    g.add_argument("--min-size", type=positive_int, default=320, metavar="N", help="profile min side (default 320)")
    g.add_argument("--opt-size", type=_hw, default=(800, 1344), metavar="WIDTHxHEIGHT",
                   help="profile opt shape (default 1344x800)")
    g.add_argument("--max-size", type=positive_int, default=1344, metavar="N", help="profile max side (default 1344)")
    g.add_argument("--batch", type=_batch, default=(1, 1, 4), metavar="MIN,OPT,MAX",
                   help="profile batch sizes (default 1,1,4)")
    g.add_argument("--workspace", type=float, default=4.0, metavar="GiB", help="builder workspace (default 4 GiB)")
    g.add_argument("--timing-cache", metavar="PATH",
                   help="timing cache file, read and updated (default: ~/.cache/uniparser-sdk/)")
    t = p.add_argument_group("Triton (--triton-repo)")
    t.add_argument("--triton-repo", metavar="DIR",
                   help="also write a Triton model repository for the export (selects the products-v2 layout; "
                        "with --engine the network runs as the TensorRT plan); DIR must not exist or be empty")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors and the result line only")
    return p


def _check_writable(path: Path, what: str) -> None:
    if path.is_dir():
        raise UsageError(f"{what} {path} is a directory; give a file name")
    parent = path.parent
    probe = parent
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"cannot write {what} {path}: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {what} {path}: directory {probe} is not writable")


def _default_output(model_path: Path | None, suffix: str) -> Path:
    stem = model_path.stem if model_path is not None else "uniparser-default"
    return Path.cwd() / f"{stem}{suffix}.onnx"


def _resolve_variant(args):
    """The variant-table row of ``--variant`` or of the flags; sets args.fp16 / plugin / engine from it."""
    from uniparser_sdk.export.variants import UnknownVariantError, get_variant, variant_from_flags

    try:
        if args.variant is None:
            v = variant_from_flags(fp16=args.fp16, plugin=args.plugin, engine=args.engine, precision=args.precision,
                                   target=args.target)
        else:
            v = get_variant(args.variant)
            for flag, given, want in (("--precision", args.precision, v.precision), ("--target", args.target, v.target)):
                if given is not None and given != want:
                    raise UsageError(f"{flag} {given} contradicts --variant {v.name} ({want})")
        v.export_options()
    except UnknownVariantError as exc:
        raise UsageError(str(exc)) from None
    if v.converted and args.engine:
        raise UsageError(f"--engine builds TensorRT engines; --variant {v.name} is an OpenVINO IR")
    if not v.converted:
        for flag, val in (("--calibration", args.calibration), ("--calibration-limit", args.calibration_limit),
                          ("--no-report", args.no_report)):
            if val:
                raise UsageError(f"{flag} applies to the OpenVINO variants (--target openvino) only")
    elif v.precision != "int8" and (args.calibration or args.calibration_limit):
        raise UsageError("--calibration applies to int8 only (--variant openvino-int8)")
    if v.target is None and args.engine:
        raise UsageError(f"--variant {v.name} is an intermediate graph; --engine cannot build it")
    for flag, on, want in (("--fp16", args.fp16, v.onnx_precision == "fp16"), ("--plugin", args.plugin, v.plugin)):
        if on and not want:
            raise UsageError(f"{flag} contradicts --variant {v.name}")
    args.fp16, args.plugin, args.engine = v.onnx_precision == "fp16", v.plugin, args.engine or v.engine
    return v


def _default_plugin_lib() -> str | None:
    """UNIPARSER_TRT_PLUGIN, else the library ``python -m uniparser_sdk.fused.build --trt`` wrote."""
    from uniparser_sdk.fused import default_plugin_path

    cand = default_plugin_path()
    return str(cand) if os.environ.get("UNIPARSER_TRT_PLUGIN") or cand.is_file() else None


def _default_timing_cache(env: dict) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uniparser-sdk"
    return base / f"tensorrt-{env['tensorrt_version']}-sm{env['compute_capability'].replace('.', '')}.timing"


def _check_trt(args) -> int:
    """``--check-trt MODEL.onnx``: the static TensorRT ONNX-parser check alone (0 pass, 1 violations)."""
    from uniparser_sdk.export import trt_check as tc
    from uniparser_sdk.fused import PLUGIN_NAME

    path = Path(args.check_trt)
    if not path.is_file():
        raise UsageError(f"--check-trt: ONNX file not found: {path}")
    try:
        report = tc.check_onnx(path, matrix=args.trt_operators, plugins=[PLUGIN_NAME])
    except tc.OperatorMatrixNotFound as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:  # not an ONNX file
        raise UsageError(f"--check-trt: cannot read {path} as an ONNX model ({type(exc).__name__}: {exc})") from None
    print(report.format(), flush=True)
    if not report.ok:
        print(f"{PROG}: error: {path} breaks {len(report.violations)} TensorRT ONNX-parser rule(s); first: "
              f"{report.violations[0]}", file=sys.stderr)
        return 1
    return 0


def _convert(args, variant, onnx_path: Path, out: Path, step_total: int, log) -> None:
    """The OpenVINO steps of a converted variant: the IR (atomic) and the low-precision parity report."""
    from uniparser_sdk.backends.openvino.calibrate import calibration_images
    from uniparser_sdk.backends.openvino.convert import convert_onnx
    from uniparser_sdk.cli.quantize import format_report, parity_report

    calib = None
    if variant.precision == "int8":
        calib = calibration_images(args.calibration, limit=args.calibration_limit)
        src = args.calibration or "the bundled samples + synthetic scenes"
        log(f"[3/{step_total}] calibrating int8 on {len(calib)} images ({src}) and converting -> {out}")
    else:
        log(f"[3/{step_total}] converting to OpenVINO IR ({variant.precision}) -> {out}")
    try:
        convert_onnx(onnx_path, out, variant.precision, calibration=calib, progress=not args.quiet,
                     log=lambda m: log("      " + m))
    except UniParserError:
        raise
    except Exception as exc:  # OpenVINO / NNCF failures: the job failed, one line
        from uniparser_sdk.backends.openvino.convert import OpenVINOConversionError

        raise OpenVINOConversionError(f"converting {onnx_path.name} to OpenVINO IR failed: {type(exc).__name__}: "
                                      f"{exc}; nothing was written to {out}") from exc
    if args.no_report:
        return
    log(f"[4/{step_total}] low-precision parity report: {out.name} vs the fp32 ONNX graph (ONNX Runtime)")
    rep = parity_report(onnx_path, out, threads=args.threads, eval_images=args.eval_images, progress=not args.quiet)
    print("      " + format_report(rep).replace("\n", "\n      "), flush=True)


_TRITON_WHY = ("--triton-repo needs the products-v2 layout (decode_params one row per image: Triton's dynamic "
               "batcher stacks requests along the batch axis)")


def _triton_variant(args) -> None:
    """``--triton-repo``: select the products-v2 row of the variant table (``args.variant``), or refuse a
    flag that contradicts it (UsageError, exit 2)."""
    if not getattr(args, "triton_repo", None):
        return
    from uniparser_sdk.contract.layouts import LAYOUT_PRODUCTS_V2
    from uniparser_sdk.export.variants import VARIANTS, UnknownVariantError, find_variant, get_variant

    rows = [v.name for v in VARIANTS if v.layout == LAYOUT_PRODUCTS_V2]
    if args.variant is not None:
        try:
            v = get_variant(args.variant)
        except UnknownVariantError as exc:
            raise UsageError(str(exc)) from None
        if v.layout != LAYOUT_PRODUCTS_V2:
            raise UsageError(f"--variant {v.name} ({v.layout}) contradicts --triton-repo: {_TRITON_WHY}; use one of "
                             f"{rows} or drop --variant")
        return
    precision, target = getattr(args, "precision", None), getattr(args, "target", None)
    for flag, bad in (("--fp16", args.fp16), ("--plugin", args.plugin),
                      (f"--precision {precision}", precision not in (None, "fp32")),
                      (f"--target {target}", target not in (None, "onnxruntime", "tensorrt"))):
        if bad:
            raise UsageError(f"{flag} contradicts --triton-repo: {_TRITON_WHY}, and the variant table has it as "
                             f"{rows} only")
    engine = args.engine or target == "tensorrt"
    args.variant = find_variant(LAYOUT_PRODUCTS_V2, "fp32", "tensorrt" if engine else "onnxruntime").name


def _check_triton_repo(path: Path, out: Path) -> None:
    """The repository directory is usable: absent or an empty directory, in a writable place."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(f"--triton-repo {path} exists and is not an empty directory (uniparser-triton --overwrite "
                         "replaces one)")
    if path.resolve() == out.resolve() or out.resolve().is_relative_to(path.resolve()):
        raise UsageError(f"--triton-repo {path} would hold the output {out}; give another directory")
    probe = path.parent
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write --triton-repo {path}: {probe} is not a writable directory")


def _write_triton(args, out: Path, engine_path, step: str, log) -> None:
    """The repository from the written ONNX (and engine); a failure leaves no repository."""
    from uniparser_sdk.export import onnx_export as ox
    from uniparser_sdk.serving import RepositoryError, write_triton_repository

    repo = Path(args.triton_repo)
    log(f"{step} writing the Triton model repository -> {repo} (network: "
        f"{'tensorrt_plan ' + str(engine_path) if engine_path else 'onnxruntime_onnx ' + str(out)})")
    try:
        write_triton_repository(out, repo, engine_path=engine_path)
    except (RepositoryError, OSError) as exc:
        kept = f"the ONNX file {out}" + (f" and the engine {engine_path}" if engine_path else "")
        raise ox.ExportError(f"Triton repository failed: {exc} ({kept} are complete; nothing was written to "
                             f"{repo})") from None
    models = ", ".join(sorted(p.name for p in repo.iterdir() if p.is_dir()))
    log(f"      wrote {repo} (models: {models})")


def run(args, log) -> int:
    if args.check_trt:
        return _check_trt(args)
    _triton_variant(args)
    variant = _resolve_variant(args)
    step_total = 3 if args.engine else (2 + (1 if args.no_report else 2) if variant.converted else 2)
    step_total += 1 if args.triton_repo else 0
    # ---- validate everything cheap before any work
    if args.opset not in (19, 20):
        raise UsageError(f"--opset {args.opset} is not supported: DeformConv needs opset >= 19 and the exporter "
                         "goes up to 20")
    if args.max_instances is not None and args.max_instances > 3840:
        raise UsageError(f"--max-instances {args.max_instances} is above 3840 (TensorRT's TopK limit)")
    if args.workspace <= 0:
        raise UsageError(f"--workspace must be positive, got {args.workspace:g}")
    for name in ("sample_size", "parity_size", "opt_size"):
        hw = getattr(args, name)
        if hw is not None and (hw[0] % 32 or hw[1] % 32):
            raise UsageError(f"--{name.replace('_', '-')} {hw[0]}x{hw[1]}: sides must be multiples of 32")
    if args.config is not None:
        from uniparser_sdk.model.configs import CONFIGS

        if args.config not in CONFIGS and not (args.config.endswith(".json") and Path(args.config).is_file()):
            raise UsageError(f"unknown --config {args.config!r}; choose one of {sorted(CONFIGS)} or a .json file")
    if args.model is None:
        model_path = DEFAULT_MODEL
        if not model_path.is_file():
            raise UsageError(f"the embedded default model is missing ({model_path}); pass a checkpoint: "
                             f"{PROG} MODEL.pth")
        shown = "the embedded default model"
    else:
        model_path = Path(args.model)
        if not model_path.exists():
            raise UsageError(f"checkpoint not found: {model_path}")
        if not model_path.is_file():
            raise UsageError(f"not a file: {model_path}")
        if model_path.suffix.lower() in (".onnx", ".engine", ".plan", ".trt"):
            kind = "an ONNX model" if model_path.suffix.lower() == ".onnx" else "a TensorRT engine"
            raise UsageError(f"{model_path} is already {kind}: {PROG} exports a PyTorch checkpoint (.pth/.pt, ours "
                             f"or an official mmdetection one) to ONNX. Run this file as it is: uniparser-predict "
                             f"{model_path} IMAGES..., or Parser({str(model_path)!r}) in Python")
        shown = str(model_path)
    out = Path(args.output) if args.output else _default_output(None if args.model is None else model_path,
                                                                variant.onnx_suffix)
    if variant.converted and not args.output:
        out = out.with_name(out.stem + variant.artefact_suffix)
    want = ".xml" if variant.converted else ".onnx"
    if out.suffix.lower() != want:
        raise UsageError(f"output {out} must end in {want}" + (f" (--variant {variant.name} writes an OpenVINO IR: "
                                                                "OUT.xml + OUT.bin)" if variant.converted else ""))
    if variant.converted:
        from uniparser_sdk.backends.openvino.convert import openvino

        try:
            openvino()
        except Exception as exc:
            raise EnvironmentMissing(f"--variant {variant.name} needs OpenVINO: {exc}") from None
        if args.calibration and not Path(args.calibration).is_dir():
            raise UsageError(f"calibration folder not found: {args.calibration}")
    if out.resolve() == model_path.resolve():
        raise UsageError("the output would overwrite the checkpoint")
    _check_writable(out, "output")
    engine_path = None
    env = None
    profile = None
    if args.engine:
        from uniparser_sdk.backends.tensorrt import build as tb

        engine_path = Path(args.engine_output) if args.engine_output else out.with_suffix(".engine")
        _check_writable(engine_path, "engine")
        try:
            profile = tb.profile_shapes(args.min_size, args.opt_size, args.max_size, 32, args.batch)
        except ValueError as exc:
            raise UsageError(f"bad optimisation profile: {exc}") from None
        if args.plugin:
            if not args.plugin_lib:
                args.plugin_lib = _default_plugin_lib()
            if not args.plugin_lib:
                raise UsageError("--engine --plugin needs the UniParserDecode plugin library: pass --plugin-lib "
                                 "LIB.so or set UNIPARSER_TRT_PLUGIN (build it from kernels/ with CMake)")
            if not Path(args.plugin_lib).is_file():
                raise UsageError(f"plugin library not found: {args.plugin_lib}")
            args.plugin_lib = str(Path(args.plugin_lib).resolve())
        try:
            env = tb.check_environment()
        except tb.TensorRTUnavailable as exc:
            raise EnvironmentMissing(f"--engine cannot run here: {exc}. The ONNX export itself needs neither; "
                                     "drop --engine to export only the .onnx file.") from None
    elif args.plugin_lib:
        raise UsageError("--plugin-lib is only used with --engine --plugin")
    if args.triton_repo:
        _check_triton_repo(Path(args.triton_repo), out)

    # ---- 1. load
    from uniparser_sdk.model.checkpoint import CheckpointError, load_model

    t0 = time.perf_counter()
    log(f"[1/{step_total}] loading {shown}")
    try:
        model, info = load_model(model_path, config=args.config)
    except CheckpointError as exc:
        raise UsageError(str(exc)) from None
    cfg = model.config
    n_params = sum(p.numel() for p in model.parameters())
    log(f"      {info['format']} checkpoint, variant {cfg.name!r} (depth {cfg.depth}, "
        f"{'light' if cfg.light else 'full'}, {cfg.num_classes} classes, grid {cfg.num_grid}), "
        f"{n_params / 1e6:.2f} M parameters, sha256 {info['sha256'][:12]}... ({time.perf_counter() - t0:.1f} s)")
    if info.get("ignored_keys"):
        log(f"      ignored {len(info['ignored_keys'])} checkpoint key(s) the model does not use")

    # ---- 2. ONNX
    from uniparser_sdk.export import onnx_export as ox

    k = args.max_instances if args.max_instances is not None else cfg.decode.max_instances
    meta = variant.build_meta(model, info, max_instances=k, ctr_score=args.ctr_score, mask_thr=args.mask_thr,
                              cate_score_thr=args.cate_score_thr)
    d = meta.decode
    onnx_out, tmpdir = out, None
    if variant.converted:  # the fp32 graph goes to a temporary file beside the IR, removed at the end
        import tempfile

        out.parent.mkdir(parents=True, exist_ok=True)
        tmpdir = Path(tempfile.mkdtemp(prefix=f".{out.stem}.", dir=out.parent))
        onnx_out = tmpdir / f"{out.stem}.onnx"
    try:
        log(f"[2/{step_total}] exporting ONNX -> {onnx_out if tmpdir is None else 'a temporary ' + onnx_out.name}  "
            f"(thresholds ctr_score {d['ctr_score']:g}, mask_thr {d['mask_thr']:g}, cate_score_thr "
            f"{d['cate_score_thr']:g})")
        log(f"      variant {variant.name}: layout {variant.layout}, {variant.precision}, target "
            f"{variant.target or '-'}" + (f", ONNX graph {variant.onnx_precision}" if variant.converted else ""))
        report = variant.export(model, onnx_out, meta, opset=args.opset, simplify=not args.no_simplify,
                                max_instances=k, sample_hw=args.sample_size, parity=not args.no_parity,
                                parity_hw=args.parity_size,
                                log=lambda m: log("      " + m.replace("\n", "\n      ")))
        log("      " + report.summary().replace("\n", "\n      "))
        if variant.converted:
            del model
            _convert(args, variant, onnx_out, out, step_total, log)
    finally:
        if tmpdir is not None:
            for f in tmpdir.glob("*"):
                f.unlink()
            tmpdir.rmdir()

    # ---- 3. engine
    if args.engine:
        from uniparser_sdk.backends.tensorrt import build as tb

        cache = Path(args.timing_cache) if args.timing_cache else _default_timing_cache(env)
        log(f"[3/{step_total}] building TensorRT {env['tensorrt_version']} engine for {env['gpu_name']} "
            f"(sm {env['compute_capability']}, {'FP16' if args.fp16 else 'FP32'}) -> {engine_path}")
        shapes = {n: " / ".join("x".join(map(str, s)) for s in v) for n, v in profile.items()}
        log(f"      profile min / opt / max: {shapes}; timing cache {cache}")
        try:
            built = tb.build_engine_with_sidecar(out, engine_path, fp16=args.fp16, profile=profile,
                                                 workspace=int(args.workspace * (1 << 30)), timing_cache=cache,
                                                 plugin_lib=args.plugin_lib, env=env, log=log,
                                                 operators=args.trt_operators)
        except (tb.EngineBuildError, tb.TensorRTUnavailable, OSError) as exc:
            raise ox.ExportError(f"engine build failed: {exc} (the ONNX file {out} is complete; no engine "
                                 "was written)") from None
        log(f"      wrote {engine_path} and {tb.sidecar_path(engine_path).name} ({built['seconds']:.0f} s)")
    # ---- Triton model repository
    if args.triton_repo:
        _write_triton(args, out, engine_path, f"[{step_total}/{step_total}]", log)
    return 0


def _nothing_written(exc: UniParserError) -> UniParserError:
    """An export failure's message, saying that nothing partial was left (the exporter's promise)."""
    mod = sys.modules.get("uniparser_sdk.export.onnx_export")
    if mod is not None and isinstance(exc, mod.ExportError):
        msg = str(exc)
        if not ("nothing" in msg or "no engine" in msg):
            return type(exc)(f"{msg}; nothing was written")
    return exc


def main(argv=None) -> int:
    t0 = time.perf_counter()

    def body() -> int:
        args = build_parser().parse_args(argv)
        log = (lambda m: None) if args.quiet else (lambda m: print(m, flush=True))
        try:
            code = run(args, log)
        except UniParserError as exc:
            if isinstance(exc, UserInputError):
                raise
            raise _nothing_written(exc) from None
        print(f"{PROG}: done in {time.perf_counter() - t0:.1f} s")
        return code

    try:
        return run_cli(PROG, body, interrupted="interrupted; nothing partial was written")
    except SystemExit as exc:  # --help
        return int(exc.code or 0)


if __name__ == "__main__":
    sys.exit(main())
