"""The paper's Table 2, quoted once (MHPv2.0 val, 2.6 persons per image): read by ``uniparser-bench``
(its Table 2 form, chart and light-vs-full comparison) and by ``uniparser-params``.

The paper's column says "Params (MB)"; the values are millions of parameters (36.73 M for UniParser
R50). Times are the authors' (RTX 3090, PyTorch / mmdetection 2.x, 1333x800): never compare them with
CPU figures, only ratios.
"""
from __future__ import annotations

__all__ = ["PAPER_SOURCE", "PAPER_HARDWARE", "PAPER_TABLE2", "PAPER_NOTES", "PAPER_FULL_MS", "PAPER_LIGHT_MS",
           "PAPER_FULL_M", "PAPER_LIGHT_M", "PAPER_PARAMS_M", "TABLE2_NAMES", "table2_name", "paper_rows",
           "paper_light_vs_full"]

PAPER_SOURCE = "UniParser paper, Table 2: MHPv2.0 val, average 2.6 persons per image"
PAPER_HARDWARE = "NVIDIA RTX 3090, PyTorch / mmdetection 2.x (the authors' setup), test scale 1333x800"

#: (group, method, T_infer ms, params M or None)
PAPER_TABLE2 = [
    ("top-down", "SNT", 3546, None),
    ("top-down", "M-CE2P", 1023, None),
    ("top-down", "P-RCNN", 256, 54.3),
    ("top-down", "RP-RCNN", 341, 58.4),
    ("bottom-up", "MHPParser", 1224, None),
    ("bottom-up", "NAN", 997, None),
    ("bottom-up", "PGN", 524, 629.2),
    ("single-stage", "SMP", 124, 76.21),
    ("single-stage", "UniParser-light", 82, 30.54),
    ("single-stage", "UniParser", 102, 36.73),
]
PAPER_NOTES = {"UniParser-light": "down 34% vs SMP, as printed", "UniParser": "down 16% vs SMP, as printed"}

_BY_METHOD = {m: (ms, p) for _, m, ms, p in PAPER_TABLE2}
PAPER_FULL_MS, PAPER_FULL_M = float(_BY_METHOD["UniParser"][0]), _BY_METHOD["UniParser"][1]
PAPER_LIGHT_MS, PAPER_LIGHT_M = float(_BY_METHOD["UniParser-light"][0]), _BY_METHOD["UniParser-light"][1]

#: our config name -> the paper's parameter count (R50, MHPv2) -- what uniparser-params compares with
PAPER_PARAMS_M = {"r50": PAPER_FULL_M, "r50-light": PAPER_LIGHT_M}

#: our config name -> the method name printed in the Table 2 form
TABLE2_NAMES = {
    "r50": "UniParser (R50)", "r50-light": "UniParser-light (R50)",
    "r101": "UniParser (R101)", "r101-light": "UniParser-light (R101)",
    "r101-cihp-light": "UniParser-light (R101, CIHP)",
    "tiny": "tiny (test config)", "tiny-light": "tiny-light (test config)",
}


def table2_name(config_name: str) -> str:
    return TABLE2_NAMES.get(config_name, config_name)


def paper_rows() -> list[dict]:
    """The quoted rows as JSON objects (``paper_table2.rows`` of the bench's JSON)."""
    return [{"group": g, "method": m, "ms": ms, "params_m": p} for g, m, ms, p in PAPER_TABLE2]


def paper_light_vs_full() -> dict:
    """The paper's light-vs-full decrease (102 -> 82 ms, 36.73 -> 30.54 M)."""
    return {
        "full_ms": PAPER_FULL_MS, "light_ms": PAPER_LIGHT_MS, "decrease_ms": PAPER_FULL_MS - PAPER_LIGHT_MS,
        "decrease_pct": round(100 * (PAPER_FULL_MS - PAPER_LIGHT_MS) / PAPER_FULL_MS, 1),
        "full_params_m": PAPER_FULL_M, "light_params_m": PAPER_LIGHT_M,
        "decrease_params_m": round(PAPER_FULL_M - PAPER_LIGHT_M, 2),
        "decrease_params_pct": round(100 * (PAPER_FULL_M - PAPER_LIGHT_M) / PAPER_FULL_M, 1),
        "hardware": PAPER_HARDWARE}
