"""Reports of ``uniparser-bench``: the results table, the side-by-side comparisons, the paper's Table 2
form (text, JSON rows and bar chart) and the JSON document. Quoted figures come from :mod:`.paper`.
"""
from __future__ import annotations

from pathlib import Path

from uniparser_sdk.export.variants import TARGETS, default_variant

from .decode_compare import format_decode_comparison
from .paper import PAPER_HARDWARE, PAPER_NOTES, PAPER_SOURCE, PAPER_TABLE2, paper_light_vs_full

__all__ = ["comparisons", "format_rows", "format_comparisons", "format_table2", "table2_rows", "table2_chart",
           "backend_label"]

#: the variant each backend runs unless --variants says otherwise (no suffix in the table)
DEFAULT_VARIANTS = {target: default_variant(target).name for target in TARGETS}


def backend_label(r: dict) -> str:
    """``onnxruntime`` for the default variant, ``onnxruntime products-fp16`` for another one."""
    v = r.get("variant")
    return r["backend"] if not v or v == DEFAULT_VARIANTS.get(r["backend"]) else f"{r['backend']} {v}"


def _pair_light(rows, key="config") -> list[tuple[dict, dict]]:
    """(full, light) row pairs of the same backend: X and X-light."""
    out = []
    for light in rows:
        name = light.get(key) or ""
        if not name.endswith("-light"):
            continue
        full_name = name[: -len("-light")]
        for full in rows:
            if full.get(key) == full_name and backend_label(full) == backend_label(light):
                out.append((full, light))
    return out


def comparisons(rows) -> dict:
    out = {"onnxruntime_vs_torch": [], "light_vs_full": []}
    for r_ort in rows:
        if r_ort["backend"] != "onnxruntime":
            continue
        for r_t in rows:
            if r_t["backend"] == "torch" and r_t.get("variant") in (None, DEFAULT_VARIANTS["torch"]) and \
                    r_t["model"] == r_ort["model"] and r_t["device"] == r_ort["device"]:
                entry = {"model": r_ort["model"], "device": r_ort["device"], "variant": r_ort.get("variant"),
                         "torch_ms": r_t["ms"]["total"]["median"], "onnxruntime_ms": r_ort["ms"]["total"]["median"],
                         "speedup_total": round(r_t["ms"]["total"]["median"] / r_ort["ms"]["total"]["median"], 2)}
                if r_t["ms"].get("network") and r_ort["ms"].get("network") and r_ort["ms"]["network"]["median"] > 0:
                    entry["speedup_network"] = round(r_t["ms"]["network"]["median"] / r_ort["ms"]["network"]["median"], 2)
                out["onnxruntime_vs_torch"].append(entry)
    for full, light in _pair_light(rows):
        f_ms, l_ms = full["ms"]["total"]["median"], light["ms"]["total"]["median"]
        e = {"backend": full["backend"], "variant": full.get("variant"), "label": backend_label(full),
             "full": full["model"], "light": light["model"], "full_ms": f_ms,
             "light_ms": l_ms, "decrease_ms": round(f_ms - l_ms, 2),
             "decrease_pct": round(100 * (f_ms - l_ms) / f_ms, 1) if f_ms else None}
        if full.get("params_m") and light.get("params_m"):
            e.update(full_params_m=full["params_m"], light_params_m=light["params_m"],
                     decrease_params_m=round(full["params_m"] - light["params_m"], 3),
                     decrease_params_pct=round(100 * (full["params_m"] - light["params_m"]) / full["params_m"], 1))
        if full.get("gflops") and light.get("gflops"):
            e.update(decrease_gflops_pct=round(100 * (full["gflops"] - light["gflops"]) / full["gflops"], 1))
        out["light_vs_full"].append(e)
    out["paper_light_vs_full"] = paper_light_vs_full()
    return out


def _f(v, fmt="{:.1f}", none="-"):
    return none if v is None else fmt.format(v)


def _med(row, stage):
    s = row["ms"].get(stage)
    return s["median"] if s else None


def format_rows(rows) -> str:
    mw = max([18] + [len(r["model"]) + 2 for r in rows])
    bw = max([13] + [len(backend_label(r)) + 2 for r in rows])
    head = (f"{'model':<{mw}}{'backend':<{bw}}{'device':<8}{'thr':>4}  {'total ms med/p90':>19}{'pre':>8}{'network':>10}"
            f"{'decode':>9}{'post':>8}{'img/s':>8}{'pers':>6}{'parts':>6}{'params M':>10}{'GFLOPs':>9}{'RSS MiB':>9}"
            f"{'GPU MiB':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        tot = r["ms"]["total"]
        thr = r["threads"].get("onnxruntime_intra_op", r["threads"].get("openvino_inference_num_threads",
                                                                         r["threads"].get("torch")))
        derived = {"network": "*" if r["backend"] == "onnxruntime" and r["ms"].get("decode") else "",
                   "decode": "*" if r["backend"] == "torch" else ""}
        dec = _med(r, "decode")
        lines.append(
            f"{r['model']:<{mw}}{backend_label(r):<{bw}}{r['device']:<8}{_f(thr, '{}'):>4}  "
            f"{tot['median']:>9.1f} /{tot['p90']:>8.1f}{_f(_med(r, 'preprocess')):>8}"
            f"{_f(_med(r, 'network')) + derived['network']:>10}"
            f"{(_f(dec) + derived['decode']) if dec is not None else 'in net':>9}{_f(_med(r, 'postprocess')):>8}"
            f"{_f(r['images_per_s'], '{:.2f}'):>8}{_f(r['persons_per_image'], '{:.2f}'):>6}"
            f"{_f(r['parts_per_person'], '{:.1f}'):>6}{_f(r['params_m'], '{:.2f}'):>10}{_f(r['gflops'], '{:.1f}'):>9}"
            f"{_f(r['peak_rss_mib'], '{:.0f}'):>9}{_f(r['gpu_peak_mib'], '{:.0f}'):>9}")
    lines.append("  stages are medians (ms/img); * = derived: backend stage minus the other (separately timed) part; "
                 "'in net' = not split")
    for r in rows:
        var = f"variant {r['variant']}, " if r.get("variant") else ""
        lines.append(f"  {r['model']} / {backend_label(r)}: {var}providers {r['providers']}, threads {r['threads']}; "
                     f"{r['split']}")
        for n in r.get("notes", []):
            lines.append(f"    note: {n}")
    return "\n".join(lines)


def format_comparisons(comp, decode_cmp) -> str:
    lines = []
    if comp["onnxruntime_vs_torch"]:
        lines.append("ONNX Runtime vs PyTorch eager (same device, same run, same images):")
        for e in comp["onnxruntime_vs_torch"]:
            net = f", network alone {e['speedup_network']:.2f}" if e.get("speedup_network") else ""
            r = e["speedup_total"]
            verdict = f"{r:.2f}x faster" if r >= 1 else f"{1 / r:.2f}x slower"
            ort = "onnxruntime" + (f" {e['variant']}" if e.get("variant") not in (None, DEFAULT_VARIANTS["onnxruntime"])
                                   else "")
            lines.append(f"  {e['model']:<18} torch {e['torch_ms']:9.1f} ms  {ort} {e['onnxruntime_ms']:9.1f} ms"
                         f"  -> onnxruntime {verdict} end to end (torch/onnxruntime {r:.2f}){net}")
    if decode_cmp:
        lines += format_decode_comparison(decode_cmp)
    if comp["light_vs_full"]:
        p = comp["paper_light_vs_full"]
        lines.append("Light vs full (relative decrease, as the paper reports it):")
        for e in comp["light_vs_full"]:
            par = (f"; params {e['full_params_m']:.2f} -> {e['light_params_m']:.2f} M "
                   f"(-{e['decrease_params_m']:.2f} M, -{e['decrease_params_pct']:.1f}%)") if "full_params_m" in e else ""
            gf = f"; GFLOPs -{e['decrease_gflops_pct']:.1f}%" if "decrease_gflops_pct" in e else ""
            lines.append(f"  {e['label']:<12} {e['full']} {e['full_ms']:.1f} ms -> {e['light']} {e['light_ms']:.1f} ms "
                         f"({-e['decrease_ms']:+.1f} ms, {-e['decrease_pct']:+.1f}%){par}{gf}")
        lines.append(f"  paper (quoted) UniParser {p['full_ms']:.0f} ms -> light {p['light_ms']:.0f} ms "
                     f"(-{p['decrease_ms']:.0f} ms, -{p['decrease_pct']:.1f}%); params {p['full_params_m']} -> "
                     f"{p['light_params_m']} M (-{p['decrease_params_m']} M, -{p['decrease_params_pct']:.1f}%) "
                     f"[{p['hardware']}]")
    return "\n".join(lines)


def format_table2(rows, comp, setting: str) -> str:
    lines = ["Table 2 form. T_infer = end-to-end ms per image (median), Params = millions of parameters "
             "(the paper's column says 'Params (MB)').",
             f"  measured here : {setting}",
             f"  quoted        : {PAPER_SOURCE}; {PAPER_HARDWARE} -- not comparable with CPU figures"]
    bw = max([13] + [len(backend_label(r)) + 2 for r in rows])
    head = f"  {'source':<16}{'group':<14}{'Methods':<32}{'backend':<{bw}}{'T_infer (ms)':>26}{'Params (M)':>12}"
    lines += [head, "  " + "-" * (len(head) - 2)]
    light_dec = {(e["label"], e["light"]): e for e in comp["light_vs_full"]}
    for r in sorted(rows, key=lambda r: (backend_label(r), r["table2_name"])):
        e = light_dec.get((backend_label(r), r["model"]))
        note = f" ({-e['decrease_pct']:+.0f}% vs full)" if e else ""
        med = r["ms"]["total"]["median"]
        lines.append(f"  {'measured':<16}{'single-stage':<14}{r['table2_name']:<32}{backend_label(r):<{bw}}"
                     f"{f'{med:.1f}{note}':>26}{_f(r['params_m'], '{:.2f}'):>12}")
    for group, method, ms, params in PAPER_TABLE2:
        note = PAPER_NOTES.get(method, "")
        txt = f"{ms}" + (f" ({note})" if note else "")
        lines.append(f"  {'paper (quoted)':<16}{group:<14}{method:<32}{'-':<{bw}}{txt:>26}{_f(params, '{}'):>12}")
    p = comp["paper_light_vs_full"]
    lines.append(f"  paper: light vs full -{p['decrease_ms']:.0f} ms (-{p['decrease_pct']:.1f}%), "
                 f"-{p['decrease_params_m']} M params (-{p['decrease_params_pct']:.1f}%)")
    for e in comp["light_vs_full"]:
        par = f", -{e['decrease_params_m']:.2f} M params (-{e['decrease_params_pct']:.1f}%)" if "decrease_params_m" in e else ""
        lines.append(f"  ours ({e['label']}): light vs full {-e['decrease_ms']:+.1f} ms ({-e['decrease_pct']:+.1f}%){par}")
    return "\n".join(lines)


def table2_rows(rows, comp) -> list[dict]:
    """Our rows and the paper's in one list (the JSON form of --table2)."""
    light_dec = {(e["label"], e["light"]): e for e in comp["light_vs_full"]}
    out = []
    for r in sorted(rows, key=lambda r: (backend_label(r), r["table2_name"])):
        e = light_dec.get((backend_label(r), r["model"]))
        out.append({"source": "measured", "method": r["table2_name"], "model": r["model"], "backend": r["backend"],
                    "variant": r.get("variant"), "device": r["device"], "t_infer_ms": r["ms"]["total"]["median"],
                    "t_infer_p90_ms": r["ms"]["total"]["p90"], "params_m": r["params_m"],
                    "decrease_vs_full_pct": e["decrease_pct"] if e else None})
    for group, method, ms, params in PAPER_TABLE2:
        out.append({"source": "paper (quoted)", "group": group, "method": method, "t_infer_ms": ms, "params_m": params,
                    "hardware": PAPER_HARDWARE, "note": PAPER_NOTES.get(method)})
    return out


def table2_chart(path, rows, setting: str) -> Path:
    from uniparser_sdk.benchmarks.plot import bar_chart

    measured = [{"label": f"{r['table2_name']} - {backend_label(r)}", "value": r["ms"]["total"]["median"],
                 "group": "measured"} for r in sorted(rows, key=lambda r: (backend_label(r), r["table2_name"]))]
    paper = [{"label": m, "value": ms, "group": "paper" if m.startswith("UniParser") else "paper-other",
              "note": PAPER_NOTES.get(m, "")} for _, m, ms, _ in PAPER_TABLE2]
    params = [{"label": f"{r['table2_name']} (counted)", "value": r["params_m"], "group": "measured"}
              for r in rows if r.get("params_m")]
    seen = set()
    params = [p for p in params if not (p["label"] in seen or seen.add(p["label"]))]
    params += [{"label": m, "value": pm, "group": "paper" if m.startswith("UniParser") else "paper-other"}
               for _, m, _, pm in PAPER_TABLE2 if pm is not None and pm < 200]
    panels = [
        {"title": f"T_infer measured here (ms/img, median): {setting}", "unit": "ms", "bars": measured},
        {"title": "T_infer quoted from the paper (ms/img): RTX 3090, PyTorch/mmdetection, 1333x800", "unit": "ms",
         "bars": paper},
        {"title": "Parameters (millions)", "unit": "M", "bars": params},
    ]
    legend = {"measured": "measured here", "paper": "UniParser, paper (quoted)", "paper-other": "other methods, paper (quoted)"}
    return bar_chart(path, panels, title="UniParser - Table 2 form (MHPv2.0, 2.6 persons/img)", legend=legend,
                     footnote=[f"Quoted: {PAPER_SOURCE}; {PAPER_HARDWARE}.",
                               "Measured and quoted times come from different hardware: compare ratios, not values. "
                               "PGN (629.2 M params) left off the params panel."])

