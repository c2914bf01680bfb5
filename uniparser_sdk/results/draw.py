"""The overlay of a :class:`~uniparser_sdk.results.ParseResult`: part colours, person outlines, boxes
with score tags, and a legend that hides no person.

Legend placement (``legend=True`` / ``"auto"``): the panel goes to the free spot nearest the top-right
corner that overlaps no person's box (nor its score tag); failing that, one that covers no person
pixel; failing that (small or crowded images) it is drawn OUTSIDE the image, in a panel added on the
right (the output is then wider than the input). ``legend="outside"`` always uses that side panel,
sized from all class names, so the output size depends only on the image size and the class list
(what a video writer needs).
"""
from __future__ import annotations

from typing import Optional, Union

import cv2
import numpy as np

from ..classes import palette

__all__ = ["draw_result", "person_colors", "legend_panel_size"]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_PAD = 4
LegendMode = Union[bool, str]


def person_colors(n: int) -> np.ndarray:
    """n saturated, bright, mutually distinct BGR colours (golden-ratio hue steps)."""
    if n <= 0:
        return np.zeros((0, 3), dtype=np.uint8)
    hues = ((np.arange(n) * 0.618033988749895 + 0.05) % 1.0 * 180).astype(np.uint8)
    hsv = np.stack([hues, np.full(n, 255, np.uint8), np.full(n, 255, np.uint8)], axis=1)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0]


def _text_color(bgr) -> tuple[int, int, int]:
    b, g, r = (int(v) for v in bgr)
    return (0, 0, 0) if 0.114 * b + 0.587 * g + 0.299 * r > 140 else (255, 255, 255)


def _fonts(h: int, w: int) -> tuple[float, int]:
    scale = float(np.clip(min(h, w) / 900.0, 0.35, 1.0))
    return scale, (1 if scale < 0.8 else 2)


def _line(font_scale: float, font_thick: int) -> tuple[int, int, int]:
    (_, th), base = cv2.getTextSize("Hg", _FONT, font_scale, font_thick)
    return th, base, th + base + 4


def legend_panel_size(names, font_scale: float, font_thick: int, max_height: Optional[int] = None) -> tuple:
    """(height, width, items shown) of a legend listing ``names`` (one swatch + name per line; when
    ``max_height`` cuts the list, the last line says "+N more")."""
    th, base, line = _line(font_scale, font_thick)
    names = list(names)
    shown = len(names)
    if max_height is not None:
        shown = min(shown, max(1, (max_height - 2 * _PAD + 4) // line))
    labels = names[:shown] if shown == len(names) else names[:shown - 1] + [f"+{len(names) - shown + 1} more"]
    text_w = max((cv2.getTextSize(n, _FONT, font_scale, font_thick)[0][0] for n in labels), default=0)
    sw = th + base
    return _PAD + shown * line - 4 + _PAD, _PAD + sw + _PAD + text_w + _PAD, shown


def _free_spot(occupied: np.ndarray, ph: int, pw: int) -> Optional[tuple[int, int]]:
    """Top-left (y, x) of a ph x pw window with no occupied pixel, nearest the top-right corner (with a
    margin of _PAD where the image allows), or None."""
    H, W = occupied.shape
    if ph > H or pw > W:
        return None
    ii = np.zeros((H + 1, W + 1), np.int64)
    ii[1:, 1:] = occupied.astype(np.int64).cumsum(0).cumsum(1)
    sums = ii[ph:, pw:] - ii[:-ph, pw:] - ii[ph:, :-pw] + ii[:-ph, :-pw]  # (H - ph + 1, W - pw + 1)
    ys, xs = np.nonzero(sums == 0)
    if ys.size == 0:
        return None
    ty, tx = min(_PAD, H - ph), max(0, W - pw - _PAD)
    # keep a margin from the image border when possible
    inside = (ys >= min(_PAD, H - ph)) & (xs <= max(0, W - pw - _PAD)) & (ys <= max(0, H - ph - _PAD)) \
        & (xs >= min(_PAD, W - pw))
    if inside.any():
        ys, xs = ys[inside], xs[inside]
    k = int(np.argmin((ys - ty).astype(np.int64) ** 2 + (xs - tx).astype(np.int64) ** 2))
    return int(ys[k]), int(xs[k])


def _paint_legend(out: np.ndarray, y0: int, x0: int, ph: int, pw: int, names: list, ids: list, colors,
                  font_scale: float, font_thick: int, darken: bool) -> None:
    th, base, line = _line(font_scale, font_thick)
    sw = th + base
    y1, x1 = min(out.shape[0], y0 + ph), min(out.shape[1], x0 + pw)
    if darken:  # darkened panel behind the legend for readability
        out[y0:y1, x0:x1] = (out[y0:y1, x0:x1].astype(np.uint16) * 2 // 5).astype(np.uint8)
    for k, (cid, name) in enumerate(zip(ids, names)):
        ly = y0 + _PAD + k * line
        tx = x0 + _PAD
        if cid is not None:
            cv2.rectangle(out, (x0 + _PAD, ly), (x0 + _PAD + sw - 1, ly + sw - 1),
                          tuple(int(v) for v in colors[cid]), -1)
            tx = x0 + _PAD + sw + _PAD
        cv2.putText(out, name, (tx, ly + th), _FONT, font_scale, (255, 255, 255), font_thick, cv2.LINE_AA)


def _legend_items(result, ids: list, shown: int) -> tuple[list, list]:
    if shown >= len(ids):
        return [result.classes[c] for c in ids], list(ids)
    keep = shown - 1
    return [result.classes[c] for c in ids[:keep]] + [f"+{len(ids) - keep} more"], list(ids[:keep]) + [None]


def _as_bgr(image_bgr) -> np.ndarray:
    img = np.asarray(image_bgr)
    if img.dtype != np.uint8:
        raise TypeError(f"draw expects a uint8 image, got {img.dtype}")
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 4:
        return np.ascontiguousarray(img[:, :, :3])
    if not (img.ndim == 3 and img.shape[2] == 3):
        raise ValueError(f"draw expects an HxW, HxWx3 or HxWx4 image, got shape {img.shape}")
    return img


def draw_result(result, image_bgr: np.ndarray, alpha: float = 0.55, legend: LegendMode = True,
                boxes: bool = True) -> np.ndarray:
    """Overlay on a copy of ``image_bgr`` (HxW, HxWx3 or HxWx4 uint8 at the original size); see
    :meth:`ParseResult.draw <uniparser_sdk.results.ParseResult.draw>`."""
    if legend not in (True, False, "auto", "outside", "inside"):
        raise ValueError(f"legend must be True/'auto', 'inside', 'outside' or False, got {legend!r}")
    img = _as_bgr(image_bgr)
    if img.shape[:2] != result.image_shape:
        raise ValueError(f"image size {img.shape[:2]} != result image_shape {result.image_shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    out = img.copy()
    H, W = result.image_shape
    if H == 0 or W == 0:
        return out
    colors = palette(len(result.classes))
    sem = result.semantic
    fg = sem > 0
    if fg.any():
        blend = (1.0 - alpha) * img[fg].astype(np.float32) + alpha * colors[sem[fg]].astype(np.float32)
        out[fg] = np.clip(np.rint(blend), 0, 255).astype(np.uint8)

    thick = max(1, int(round(min(H, W) / 500)))
    font_scale, font_thick = _fonts(H, W)
    pcols = person_colors(result.num_persons)
    taken = np.zeros((H, W), bool)  # boxes + tags: where a legend would hide something
    # lowest score first, so the best person's outline ends up on top
    for i in range(result.num_persons - 1, -1, -1):
        p = result.persons[i]
        bbox = p.bbox
        if bbox is None:
            continue
        col = tuple(int(c) for c in pcols[i])
        contours, _ = cv2.findContours(p.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, col, thick, cv2.LINE_AA)
        x0, y0, x1, y1 = bbox
        taken[max(0, y0 - thick):y1 + thick, max(0, x0 - thick):x1 + thick] = True
        if boxes:
            cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), col, thick)
            tag = f"#{i + 1} {p.score:.2f}"
            (tw, th), base = cv2.getTextSize(tag, _FONT, font_scale, font_thick)
            ty0 = y0 - th - base - 2
            if ty0 < 0:  # no room above the box: put the tag inside it
                ty0 = y0
            cv2.rectangle(out, (x0, ty0), (x0 + tw + 2, ty0 + th + base + 2), col, -1)
            cv2.putText(out, tag, (x0 + 1, ty0 + th + 1), _FONT, font_scale, _text_color(col), font_thick,
                        cv2.LINE_AA)
            taken[max(0, ty0):ty0 + th + base + 3, x0:x0 + tw + 3] = True
    if legend is False:
        return out
    ids = result.part_ids
    if legend == "outside":
        return _side_panel(result, out, ids, colors, font_scale, font_thick, all_classes=True)
    if not ids:
        return out
    ph, pw, shown = legend_panel_size([result.classes[c] for c in ids], font_scale, font_thick, H)
    names, item_ids = _legend_items(result, ids, shown)
    spot = _free_spot(taken, ph, pw) if ph <= H and pw <= W else None
    if spot is None:
        person_px = cv2.dilate(fg.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        spot = _free_spot(person_px, ph, pw) if ph <= H and pw <= W else None
    if spot is None:
        if legend == "inside":  # the old behaviour: top-right corner, over whatever is there
            spot = (min(_PAD, max(0, H - 1)), max(0, W - pw - _PAD))
        else:
            return _side_panel(result, out, ids, colors, font_scale, font_thick, all_classes=False)
    _paint_legend(out, spot[0], spot[1], ph, pw, names, item_ids, colors, font_scale, font_thick, darken=True)
    return out


def _side_panel(result, out: np.ndarray, ids: list, colors, font_scale: float, font_thick: int,
                all_classes: bool) -> np.ndarray:
    """``out`` with a dark legend panel added on its right (same height)."""
    H, W = out.shape[:2]
    width_names = list(result.classes[1:]) if all_classes else [result.classes[c] for c in ids]
    _, pw, _ = legend_panel_size(width_names + ["+99 more"], font_scale, font_thick)
    canvas = np.full((H, W + pw, 3), 24, np.uint8)
    canvas[:, :W] = out
    if ids:
        ph, _, shown = legend_panel_size([result.classes[c] for c in ids], font_scale, font_thick, H)
        names, item_ids = _legend_items(result, ids, shown)
        _paint_legend(canvas, 0, W, ph, pw, names, item_ids, colors, font_scale, font_thick, darken=False)
    return canvas
