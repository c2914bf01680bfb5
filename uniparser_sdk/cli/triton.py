"""``uniparser-triton``: a Triton Inference Server model repository for an exported products-v2 model.

    uniparser-triton -o models/                               the embedded default model
    uniparser-triton model.pth -o models/ --onnx model.onnx   a checkpoint: exported as products-v2 first
    uniparser-triton model.onnx -o models/                    a products-v2 ONNX file (--engine E for TensorRT)
    docker run --gpus all -p 8000:8000 -p 8001:8001 -v $PWD/models:/models \\
        nvcr.io/nvidia/tritonserver:<yy.mm>-py3 \\
        sh -c "pip install uniparser-sdk && tritonserver --model-repository=/models"

The repository: ensemble ``uniparser`` = Python preprocessing -> the network (onnxruntime_onnx,
tensorrt_plan, or ONNX Runtime inside the Python backend) with dynamic batching -> Python
postprocessing (see :mod:`uniparser_sdk.serving.repository`). Exit codes: 0 ok, 1 failed, 2 usage.
"""
from __future__ import annotations

import argparse
import sys

from pathlib import Path

from .common import UserError, run_cli

PROG = "uniparser-triton"


def build_parser() -> argparse.ArgumentParser:
    from ..serving.repository import NETWORK_BACKENDS, RepositoryOptions

    d = RepositoryOptions()
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help="a products-v2 .onnx file, or a checkpoint (.pth/.pt, ours or an official one) to export "
                        "as products-v2 first (needs torch; default: the embedded default model)")
    p.add_argument("--onnx", metavar="OUT.onnx", help="with a checkpoint: also keep the exported products-v2 ONNX here")
    p.add_argument("--max-instances", type=int, default=None, metavar="K",
                   help="with a checkpoint: instance slots K (default: the config's)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="model repository directory to write")
    p.add_argument("--engine", metavar="MODEL.engine", help="TensorRT engine of MODEL.onnx (network as tensorrt_plan)")
    p.add_argument("--network-backend", choices=NETWORK_BACKENDS, default=None,
                   help="how the server runs the network (default: tensorrt with --engine, else onnxruntime; "
                        "python = ONNX Runtime inside the Python backend)")
    p.add_argument("--max-batch-size", type=int, default=d.max_batch_size, metavar="N")
    p.add_argument("--no-dynamic-batching", action="store_true", help="no dynamic batcher on the models")
    p.add_argument("--max-queue-delay-us", type=int, default=d.max_queue_delay_us, metavar="US",
                   help=f"how long the batcher waits to fill a batch (default {d.max_queue_delay_us})")
    p.add_argument("--instances", type=int, default=d.network_instances, metavar="N", help="network instances")
    p.add_argument("--kind", choices=("auto", "gpu", "cpu"), default=d.network_kind,
                   help="where the network instances run (default auto: Triton's choice, GPU when present)")
    p.add_argument("--cpu-instances", type=int, default=d.cpu_instances, metavar="N",
                   help=f"instances of each Python step (default {d.cpu_instances})")
    p.add_argument("--threads", type=int, default=d.threads, metavar="N", help="ONNX Runtime intra-op threads")
    p.add_argument("--overwrite", action="store_true", help="replace an existing repository directory")
    return p


def options_from_args(args):
    from ..serving.repository import RepositoryOptions

    return RepositoryOptions(max_batch_size=args.max_batch_size, dynamic_batching=not args.no_dynamic_batching,
                             max_queue_delay_us=args.max_queue_delay_us, network_instances=args.instances,
                             network_kind=args.kind, cpu_instances=args.cpu_instances, threads=args.threads)


def export_products_v2(checkpoint, out, max_instances=None):
    """The SDK's exporter, layout products-v2 (parity-checked); returns ``out``."""
    from ..contract.layouts import LAYOUT_PRODUCTS_V2
    from ..export import onnx_export as ox
    from ..model.checkpoint import load_model

    model, info = load_model(checkpoint)
    meta = ox.build_meta(model, info, layout=LAYOUT_PRODUCTS_V2, max_instances=max_instances)
    report = ox.export_onnx(model, out, meta, max_instances=max_instances, log=lambda m: None)
    print(report.summary(), flush=True)
    return Path(out)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def body():
        import tempfile

        from ..serving.repository import write_triton_repository

        model = Path(args.model) if args.model else Path(__file__).resolve().parent.parent / "assets" / "default_model.pth"
        if not model.is_file():
            raise FileNotFoundError(f"model not found: {model}")
        tmp = None
        if model.suffix.lower() in (".pth", ".pt"):
            if args.engine:
                raise UserError("--engine goes with the products-v2 .onnx file it was built from, not a checkpoint")
            tmp = tempfile.TemporaryDirectory(prefix="uniparser-triton-")
            model = export_products_v2(model, Path(args.onnx) if args.onnx else Path(tmp.name) / "model.onnx",
                                       args.max_instances)
        elif model.suffix.lower() != ".onnx":
            raise UserError(f"{model}: expected a .onnx model or a .pth/.pt checkpoint")
        try:
            out = write_triton_repository(model, args.output, engine_path=args.engine,
                                          network_backend=args.network_backend, options=options_from_args(args),
                                          overwrite=args.overwrite)
        finally:
            if tmp is not None:
                tmp.cleanup()
        print(f"{PROG}: wrote the model repository {out} (models: " +
              ", ".join(sorted(p.name for p in out.iterdir() if p.is_dir())) + ")")
        return 0

    return run_cli(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
