"""Horizontal bar charts drawn with OpenCV (no matplotlib), for ``uniparser-bench --plot``.

A chart is a stack of panels; each panel has its own title, unit and linear scale (so figures measured
on different hardware are never drawn on one axis), and each bar a label, a value, a colour group and an
optional annotation written after the value::

    bar_chart("table2.png", [
        {"title": "T_infer, measured here (CPU)", "unit": "ms",
         "bars": [{"label": "UniParser (onnxruntime)", "value": 5120.0, "group": "measured"}]},
        {"title": "T_infer, quoted from the paper (RTX 3090)", "unit": "ms",
         "bars": [{"label": "UniParser", "value": 102, "group": "paper"}]},
    ], title="UniParser Table 2", footnote="...")
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

__all__ = ["bar_chart", "GROUP_COLORS"]

FONT = cv2.FONT_HERSHEY_SIMPLEX
# BGR
GROUP_COLORS = {
    "measured": (180, 119, 31),  # blue
    "measured-light": (232, 199, 174),  # light blue
    "paper": (14, 127, 255),  # orange
    "paper-other": (160, 160, 160),  # grey
}
_FALLBACK = [(44, 160, 44), (40, 39, 214), (189, 103, 148), (75, 86, 140), (194, 119, 227)]


def _color(group: str, seen: dict) -> tuple:
    if group in GROUP_COLORS:
        return GROUP_COLORS[group]
    if group not in seen:
        seen[group] = _FALLBACK[len(seen) % len(_FALLBACK)]
    return seen[group]


def _nice_step(vmax: float, ticks: int = 5) -> float:
    if vmax <= 0:
        return 1.0
    raw = vmax / ticks
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if float(v).is_integer() and abs(v) >= 10:
        return f"{int(v):,}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _text(img, s, org, scale=0.5, color=(30, 30, 30), thick=1):
    cv2.putText(img, s, (int(org[0]), int(org[1])), FONT, scale, color, thick, cv2.LINE_AA)


def _text_w(s, scale=0.5, thick=1) -> int:
    return cv2.getTextSize(s, FONT, scale, thick)[0][0]


def _wrap(s: str, max_w: int, scale: float, thick: int = 1) -> list[str]:
    """Greedy word wrap of ``s`` to lines at most ``max_w`` pixels wide."""
    lines, cur = [], ""
    for word in str(s).split(" "):
        cand = f"{cur} {word}" if cur else word
        if cur and _text_w(cand, scale, thick) > max_w:
            lines.append(cur)
            cur = word
        else:
            cur = cand
    return lines + ([cur] if cur else [])


def bar_chart(path, panels: Sequence[dict], title: str = "", footnote: str | Sequence[str] = "",
              width: int = 1400, bar_h: int = 26, gap: int = 8, legend: Optional[dict] = None) -> Path:
    """Draw the panels into a PNG at ``path`` (parent folders are created). Returns the path.

    ``legend``: ``{group: text}`` shown under the title (default: the groups used, by name)."""
    panels = [p for p in panels if p.get("bars")]
    if not panels:
        raise ValueError("nothing to plot: every panel is empty")
    label_w = max(_text_w(b["label"], 0.5) for p in panels for b in p["bars"]) + 24
    label_w = min(max(label_w, 160), width // 2)
    left, right = label_w + 20, 190
    plot_w = width - left - right
    foot = [footnote] if isinstance(footnote, str) else list(footnote)
    foot = [line for f in foot if f for line in _wrap(f, width - 40, 0.42)]
    groups: list[str] = []
    for p in panels:
        for b in p["bars"]:
            g = b.get("group", "measured")
            if g not in groups:
                groups.append(g)
    legend = legend or {g: g for g in groups}

    top = 20 + (34 if title else 0) + (26 if legend else 0)
    titles = [_wrap(p.get("title", ""), width - 40, 0.6) for p in panels]
    heights = [22 * len(tl) + 22 + len(p["bars"]) * (bar_h + gap) + 34 for p, tl in zip(panels, titles)]
    height = top + sum(heights) + 10 + 20 * len(foot) + 10
    img = np.full((height, width, 3), 255, np.uint8)
    seen: dict = {}

    y = 20
    if title:
        _text(img, title, (20, y + 16), 0.75, (0, 0, 0), 2)
        y += 34
    if legend:
        x = 20
        for g, txt in legend.items():
            cv2.rectangle(img, (x, y), (x + 18, y + 14), _color(g, seen), -1)
            _text(img, txt, (x + 24, y + 12), 0.45)
            x += 24 + _text_w(txt, 0.45) + 26
        y += 26

    for p, ph, tl in zip(panels, heights, titles):
        unit = p.get("unit", "")
        for j, line in enumerate(tl):
            _text(img, line, (20, y + 22 + 22 * j), 0.6, (0, 0, 0), 1)
        y0 = y + 14 + 22 * len(tl)
        vmax = max(float(b["value"]) for b in p["bars"])
        step = _nice_step(vmax)
        axis_max = step * math.ceil(vmax / step) if vmax > 0 else 1.0
        n = len(p["bars"])
        y_axis_bottom = y0 + n * (bar_h + gap)
        # grid and ticks
        t = 0.0
        while t <= axis_max + 1e-9:
            x = left + int(round(t / axis_max * plot_w))
            cv2.line(img, (x, y0 - 4), (x, y_axis_bottom), (225, 225, 225), 1)
            s = _fmt(t)
            _text(img, s, (x - _text_w(s, 0.4) // 2, y_axis_bottom + 16), 0.4, (90, 90, 90))
            t += step
        if unit:
            _text(img, f"[{unit}]", (left + plot_w + 40, y_axis_bottom + 16), 0.4, (90, 90, 90))
        for i, b in enumerate(p["bars"]):
            by = y0 + i * (bar_h + gap)
            val = float(b["value"])
            bw = int(round(max(val, 0.0) / axis_max * plot_w))
            color = _color(b.get("group", "measured"), seen)
            cv2.rectangle(img, (left, by), (left + max(bw, 1), by + bar_h), color, -1)
            lab = b["label"]
            _text(img, lab, (left - 10 - _text_w(lab, 0.5), by + bar_h - 8), 0.5)
            ann = _fmt(val) + (f" {b['note']}" if b.get("note") else "")
            _text(img, ann, (left + bw + 6, by + bar_h - 8), 0.45, (40, 40, 40))
        cv2.line(img, (left, y0 - 4), (left, y_axis_bottom), (60, 60, 60), 1)
        y += ph
    y += 10
    for line in foot:
        _text(img, line, (20, y + 12), 0.42, (70, 70, 70))
        y += 20
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"cannot write {path}")
    return path
