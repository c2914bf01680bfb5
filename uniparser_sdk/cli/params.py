"""uniparser-params: parameter counts per part, beside the paper's Table 2."""
from __future__ import annotations

import argparse
import sys

from ..benchmarks.paper import PAPER_PARAMS_M as PAPER_M  # the paper's Table 2, quoted once (shared with the bench)
from .common import UserError, run_cli


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="uniparser-params", description=__doc__)
    ap.add_argument("configs", nargs="*", default=["r50", "r50-light"],
                    help="config names or checkpoints (.pth); default: r50 r50-light")
    args = ap.parse_args(argv)

    def body():
        from uniparser_sdk.model.checkpoint import CheckpointError, load_model
        from uniparser_sdk.model.configs import get_config
        from uniparser_sdk.model.uniparser import UniParser, parameter_breakdown

        rows = {}
        for name in args.configs:
            try:
                model = load_model(name)[0] if name.endswith(".pth") else UniParser(get_config(name))
            except (ValueError, CheckpointError) as exc:
                raise UserError(str(exc)) from exc
            rows[name] = parameter_breakdown(model)
        parts = list(next(iter(rows.values())))
        width = max(map(len, parts)) + 2
        print("parameters (M)".ljust(width) + "".join(f"{n:>14}" for n in rows))
        for part in parts:
            print(part.ljust(width) + "".join(f"{r[part] / 1e6:14.3f}" for r in rows.values()))
        if any(n in PAPER_M for n in rows):
            print("paper Table 2 (quoted)".ljust(width) + "".join(
                f"{PAPER_M[n]:14.2f}" if n in PAPER_M else f"{'-':>14}" for n in rows))
            print("difference".ljust(width) + "".join(
                f"{(rows[n]['total'] / 1e6 / PAPER_M[n] - 1) * 100:+13.2f}%" if n in PAPER_M else f"{'-':>14}"
                for n in rows))
        return 0

    return run_cli("uniparser-params", body)


if __name__ == "__main__":
    sys.exit(main())
