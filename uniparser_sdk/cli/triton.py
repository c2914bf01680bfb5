"""``uniparser-triton``: a Triton Inference Server model repository for an exported products-v2 model.

    uniparser-export --layout products-v2 -o model.onnx      (or: uniparser-export --triton-repo DIR)
    uniparser-triton model.onnx -o models/                    (add --engine model.engine for TensorRT)
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

from .common import run_cli

PROG = "uniparser-triton"


def build_parser() -> argparse.ArgumentParser:
    from ..serving.repository import NETWORK_BACKENDS, RepositoryOptions

    d = RepositoryOptions()
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("model", metavar="MODEL.onnx", help="products-v2 ONNX model (uniparser-export --layout products-v2)")
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


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def body():
        from ..serving.repository import write_triton_repository

        out = write_triton_repository(args.model, args.output, engine_path=args.engine,
                                      network_backend=args.network_backend, options=options_from_args(args),
                                      overwrite=args.overwrite)
        print(f"{PROG}: wrote the model repository {out} (models: " +
              ", ".join(sorted(p.name for p in out.iterdir() if p.is_dir())) + ")")
        return 0

    return run_cli(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
