"""The decode benchmark on its own (kept as a script name): see :mod:`uniparser_sdk.benchmarks.decode_compare`.

    python benchmarks/decode_bench.py --runs 10
    python benchmarks/decode_bench.py --device cuda --json decode.json
"""
from __future__ import annotations

import sys

if __name__ == "__main__" and __package__ in (None, ""):
    from uniparser_sdk.benchmarks.decode_compare import main
else:
    from .decode_compare import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
