"""uniparser-bench: ms/img per stage, images/s, parameters, GFLOPs and memory of UniParser models on the
torch / onnxruntime / tensorrt backends, in the form of the paper's Table 2.

The implementation lives in :mod:`uniparser_sdk.benchmarks.bench` (the card's ``benchmarks/`` folder);
``uniparser-bench --help`` describes the options and the method.
"""
from __future__ import annotations

import sys


def main(argv=None) -> int:
    from uniparser_sdk.benchmarks.bench import main as bench_main

    return bench_main(argv)


if __name__ == "__main__":
    sys.exit(main())
