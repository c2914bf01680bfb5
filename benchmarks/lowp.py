"""Rows side by side with ONNX Runtime FP32: speed ratio, peak RSS and agreement of the results.

Every row of a model runs on the same images in the same run. For each model the reference row is
``onnxruntime products-fp32`` (else ``torch-fp32``); every row gets

* ``speedup_vs_reference``: reference ms/img (median, end to end) / the row's (> 1 = faster);
* ``agreement_vs_reference``: :func:`uniparser_sdk.evaluation.agreement.compare_results` of the row's
  results against the reference row's on the same images (persons matched by mask IoU >= 0.5, mask,
  part and keep agreement, score drift). With random weights (synthetic-persons mode) the persons are
  planted, so this checks that the runtime decodes the same persons and masks; the accuracy of a
  low-precision model on real weights is the parity report (``uniparser-quantize`` /
  ``uniparser-export --variant openvino-*``).
"""
from __future__ import annotations

from typing import Optional

__all__ = ["REFERENCES", "reference_row", "attach_vs_reference", "vs_reference", "format_vs_reference"]

#: (backend, variant) of the reference row, in order of preference
REFERENCES = (("onnxruntime", "products-fp32"), ("torch", "torch-fp32"))


def _label(r: dict) -> str:
    return f"{r['backend']} {r['variant']}" if r.get("variant") else r["backend"]


def reference_row(rows: list) -> Optional[dict]:
    for key in REFERENCES:
        for r in rows:
            if (r["backend"], r.get("variant")) == key:
                return r
    return None


def attach_vs_reference(rows: list, results: list) -> None:
    """``rows`` of one model and their results (image index -> ParseResult, same order): adds the
    speed ratio and the agreement with the reference row to each row (in place)."""
    from uniparser_sdk.evaluation.agreement import compare_results

    ref = reference_row(rows)
    if ref is None:
        return
    ref_res = results[rows.index(ref)]
    ref_ms = ref["ms"]["total"]["median"]
    for r, res in zip(rows, results):
        r["reference"] = _label(ref)
        ms = r["ms"]["total"]["median"]
        r["speedup_vs_reference"] = round(ref_ms / ms, 3) if ms else None
        common = sorted(set(ref_res) & set(res))
        if r is ref or not common:
            continue
        a = compare_results([ref_res[i] for i in common], [res[i] for i in common])
        r["agreement_vs_reference"] = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in a.items()}


def vs_reference(rows: list) -> list:
    """The JSON entries of the side-by-side table (rows that have a reference)."""
    out = []
    for r in rows:
        if "reference" not in r:
            continue
        a = r.get("agreement_vs_reference") or {}
        out.append({"model": r["model"], "row": _label(r), "reference": r["reference"],
                    "precision": r.get("precision"), "ms": r["ms"]["total"]["median"],
                    "speedup": r.get("speedup_vs_reference"), "peak_rss_mib": r.get("peak_rss_mib"),
                    "threads": r.get("threads"), "persons_matched_fraction": a.get("persons_matched_fraction"),
                    "mask_agreement": a.get("mask_agreement"), "part_agreement": a.get("part_agreement"),
                    "score_drift_max": a.get("score_drift_max")})
    return out


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def format_vs_reference(entries: list) -> str:
    if not entries:
        return ""
    lw = max(24, *(len(e["row"]) + 2 for e in entries))
    mw = max(12, *(len(e["model"]) + 2 for e in entries))
    head = (f"{'model':<{mw}}{'row':<{lw}}{'ms/img':>9}{'x ref':>8}{'RSS MiB':>9}{'persons':>9}{'mask agr':>10}"
            f"{'part agr':>10}{'drift':>8}")
    lines = ["Side by side (same run, same images; x ref = reference ms / row ms, > 1 faster; agreement of the "
             "results with the reference row):", head, "-" * len(head)]
    for e in entries:
        ref = e["row"] == e["reference"]
        lines.append(f"{e['model']:<{mw}}{e['row']:<{lw}}{e['ms']:>9.1f}{e['speedup'] or 0:>7.2f}x"
                     f"{e['peak_rss_mib'] or 0:>9.0f}{'ref' if ref else _pct(e['persons_matched_fraction']):>9}"
                     f"{'ref' if ref else _pct(e['mask_agreement']):>10}{'ref' if ref else _pct(e['part_agreement']):>10}"
                     f"{'' if ref or e['score_drift_max'] is None else format(e['score_drift_max'], '.4f'):>8}")
    refs = sorted({e["reference"] for e in entries})
    lines.append(f"  reference: {', '.join(refs)}; ms = median end to end (preprocess + network + decode + "
                 "postprocess); RSS = peak resident memory of the process while the row ran")
    return "\n".join(lines)
