"""Procedural multi-person scenes with CIHP part labels (our own generator; numpy + OpenCV only).

Every scene is a textured background with a few cartoon people of varied size, position, pose and
clothing, drawn part by part with OpenCV polygons and ellipses and painted back to front, so people
overlap and occlude each other. Each person's label map holds only its *visible* pixels, so the maps
of one image are disjoint. Scene ``i`` of ``SyntheticScenes(n, seed)`` depends only on ``(seed, i)``.

Conventions (the same as CIHP / MHPv2):

* People face the camera, so a person's LEFT arm / leg / shoe is on the IMAGE RIGHT.
* Hands belong to the arms (CIHP has no hand class); ``label_set="mhp"`` maps them to MHPv2's
  left-hand / right-hand instead.
* Persons are returned back to front (the last one is the nearest, never occluded). A person is kept
  only if at least ``min_pixels`` of it are visible and its head is visible (hair, and at least half
  of its face), so every returned person has face and hair pixels.

The sample format is the one every dataset of :mod:`uniparser_sdk.data` returns::

    {"id": str, "image": HxWx3 uint8 BGR, "persons": [HxW uint8 part-label map per person]}
"""
from __future__ import annotations

import math
import os
from typing import Iterable, Sequence

import cv2
import numpy as np

from ..classes import CIHP_CLASSES, MHP_V2_CLASSES, palette

__all__ = ["SyntheticScenes", "make_scene", "write_cihp", "overlay", "CIHP_TO_MHP"]

# ---------------------------------------------------------------------------------------------
# labels: CIHP indices, plus two internal ones for hands (mapped to the arms for CIHP)
HAT, HAIR, GLOVE, SUNGLASSES, UPPER, DRESS, COAT, SOCKS, PANTS, TORSO_SKIN, SCARF, SKIRT, FACE, \
    L_ARM, R_ARM, L_LEG, R_LEG, L_SHOE, R_SHOE = range(1, 20)
L_HAND, R_HAND = 20, 21
_NUM_INTERNAL = 22

_SKIN_LABELS = (TORSO_SKIN, FACE, L_ARM, R_ARM, L_LEG, R_LEG, L_HAND, R_HAND)


def _lut_to(classes: Sequence[str], mapping: dict) -> np.ndarray:
    index = {n: i for i, n in enumerate(classes)}
    lut = np.zeros(256, dtype=np.uint8)
    for internal, name in mapping.items():
        lut[internal] = index[name]
    return lut


_INTERNAL_NAMES = {i: CIHP_CLASSES[i] for i in range(1, 20)}
_CIHP_LUT = _lut_to(CIHP_CLASSES, {**_INTERNAL_NAMES, L_HAND: "left-arm", R_HAND: "right-arm"})
# CIHP class name -> nearest MHPv2 class name (upper-clothes has no generic MHPv2 class: t-shirt)
CIHP_TO_MHP = {
    "hat": "cap/hat", "hair": "hair", "glove": "glove", "sunglasses": "sunglasses",
    "upper-clothes": "t-shirt", "dress": "dress", "coat": "coat", "socks": "socks", "pants": "pants",
    "torso-skin": "torso-skin", "scarf": "scarf", "skirt": "skirt", "face": "face",
    "left-arm": "left-arm", "right-arm": "right-arm", "left-leg": "left-leg", "right-leg": "right-leg",
    "left-shoe": "left-shoe", "right-shoe": "right-shoe",
}
_MHP_LUT = _lut_to(MHP_V2_CLASSES, {**{i: CIHP_TO_MHP[n] for i, n in _INTERNAL_NAMES.items()},
                                    L_HAND: "left-hand", R_HAND: "right-hand"})
_LABEL_SETS = {"cihp": (CIHP_CLASSES, _CIHP_LUT), "mhp": (MHP_V2_CLASSES, _MHP_LUT)}

# BGR colours
_SKIN_TONES = np.array([(196, 214, 250), (170, 196, 240), (141, 175, 224), (110, 150, 205),
                        (84, 120, 176), (60, 90, 140), (45, 66, 105)], dtype=np.float32)
_HAIR_COLOURS = np.array([(20, 20, 25), (30, 40, 60), (35, 60, 100), (80, 140, 190), (150, 150, 155),
                          (40, 50, 140)], dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# textures
def _random_colour(rng: np.random.Generator, sat=(0.3, 1.0), val=(0.25, 0.95)) -> np.ndarray:
    hsv = np.uint8([[[rng.integers(0, 180), int(rng.uniform(*sat) * 255), int(rng.uniform(*val) * 255)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float, amp: float) -> np.ndarray:
    """Low-frequency noise in [-amp, amp], HxW float32."""
    h, w = shape
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    g = rng.uniform(-amp, amp, size=(gh, gw)).astype(np.float32)
    return cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)


def _texture(rng: np.random.Generator, shape: tuple[int, int], base: np.ndarray,
             kind: str | None = None, scale: float = 1.0) -> np.ndarray:
    """HxWx3 float32 texture around a base colour: solid, stripes, checks or blotches."""
    h, w = shape
    if kind is None:
        kind = rng.choice(["solid", "solid", "stripes_h", "stripes_v", "checks", "blotch"])
    other = np.clip(base * rng.uniform(0.45, 0.8) + rng.uniform(-25, 25, 3), 0, 255) \
        if rng.random() < 0.6 else _random_colour(rng)
    period = max(3.0, rng.uniform(6, 16) * scale)
    yy = np.floor(np.arange(h, dtype=np.float32) / period)[:, None]
    xx = np.floor(np.arange(w, dtype=np.float32) / period)[None, :]
    if kind == "stripes_h":
        m = np.broadcast_to(yy % 2, shape)
    elif kind == "stripes_v":
        m = np.broadcast_to(xx % 2, shape)
    elif kind == "checks":
        m = (yy + xx) % 2
    elif kind == "blotch":
        m = (_smooth_noise(rng, shape, period * 1.5, 1.0) > 0.2).astype(np.float32)
    else:
        m = None
    if m is None:
        tex = np.empty((h, w, 3), np.float32)
        tex[:] = base
    else:
        tex = base[None, None] + (other - base)[None, None] * m[..., None]
    tex += _smooth_noise(rng, shape, max(4.0, 12 * scale), 10.0)[..., None]
    tex += rng.standard_normal((h, w, 1), dtype=np.float32) * np.float32(3.0)
    return tex


def _paint(img: np.ndarray, lab: np.ndarray, labels, rng: np.random.Generator, base: np.ndarray,
           kind: str | None, scale: float) -> None:
    """Fill the pixels of ``labels`` with one texture generated over their bounding box only."""
    mask = np.isin(lab, labels)
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    if w == 0 or h == 0:
        return
    sub = mask[y:y + h, x:x + w]
    img[y:y + h, x:x + w][sub] = _texture(rng, (h, w), base, kind, scale)[sub]


def _background(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    kind = rng.choice(["gradient", "stripes", "noise", "checks"])
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    c1, c2 = _random_colour(rng, (0.05, 0.6)), _random_colour(rng, (0.05, 0.6))
    if kind == "gradient":
        a = rng.uniform(0, 2 * np.pi)
        t = (xx * math.cos(a) + yy * math.sin(a))
        t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    elif kind == "stripes":
        a, period = rng.uniform(0, np.pi), rng.uniform(8, 60)
        t = (np.sin((xx * math.cos(a) + yy * math.sin(a)) * np.float32(2 * np.pi / period)) > 0).astype(np.float32)
        t = cv2.GaussianBlur(t, (0, 0), 1.0)
    elif kind == "checks":
        p = rng.uniform(16, 80)
        t = ((np.floor(yy / p) + np.floor(xx / p)) % 2).astype(np.float32)
    else:
        t = _smooth_noise(rng, shape, rng.uniform(20, 80), 1.0) * 0.5 + 0.5
    t = np.broadcast_to(t, shape)[..., None]
    img = c1[None, None] + (c2 - c1)[None, None] * t
    # a few distractor shapes (furniture, signs, windows)
    for _ in range(rng.integers(0, 6)):
        col = tuple(float(v) for v in _random_colour(rng, (0.1, 0.7)))
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.6:
            x1, y1 = x0 + int(rng.integers(10, w // 3)), y0 + int(rng.integers(10, h // 3))
            cv2.rectangle(img, (x0, y0), (x1, y1), col, -1)
        else:
            cv2.circle(img, (x0, y0), int(rng.integers(5, h // 6)), col, -1)
    img += _smooth_noise(rng, shape, 30.0, 12.0)[..., None]
    return img


# ---------------------------------------------------------------------------------------------
# one person
def _pt(p) -> tuple[int, int]:
    return int(round(p[0])), int(round(p[1]))


def _limb(canvas: np.ndarray, p0, p1, w0: float, w1: float, value: int) -> None:
    """Tapered capsule from p0 (width w0) to p1 (width w1)."""
    d = np.subtract(p1, p0).astype(np.float64)
    n = np.hypot(*d)
    if n < 1e-6:
        cv2.circle(canvas, _pt(p0), max(1, int(round(max(w0, w1) / 2))), value, -1)
        return
    nx, ny = -d[1] / n, d[0] / n
    poly = np.array([[p0[0] + nx * w0 / 2, p0[1] + ny * w0 / 2], [p1[0] + nx * w1 / 2, p1[1] + ny * w1 / 2],
                     [p1[0] - nx * w1 / 2, p1[1] - ny * w1 / 2], [p0[0] - nx * w0 / 2, p0[1] - ny * w0 / 2]])
    cv2.fillConvexPoly(canvas, np.round(poly).astype(np.int32), value)
    cv2.circle(canvas, _pt(p0), max(1, int(round(w0 / 2))), value, -1)
    cv2.circle(canvas, _pt(p1), max(1, int(round(w1 / 2))), value, -1)


def _poly(canvas: np.ndarray, pts, value: int) -> None:
    cv2.fillPoly(canvas, [np.round(np.asarray(pts, dtype=np.float64)).astype(np.int32)], value)


def _ellipse(canvas: np.ndarray, c, axes, value: int, angle: float = 0.0, start=0, end=360) -> None:
    cv2.ellipse(canvas, _pt(c), (max(1, int(round(axes[0]))), max(1, int(round(axes[1])))),
                angle, start, end, value, -1)


def _direction(side: int, angle_deg: float) -> np.ndarray:
    """Unit vector at ``angle_deg`` from straight down, turned outwards (image right for side=+1)."""
    a = math.radians(angle_deg)
    return np.array([side * math.sin(a), math.cos(a)])


def _person_spec(rng: np.random.Generator, height: float) -> dict:
    """Random appearance and pose of one person of ``height`` pixels."""
    u = height
    dress = rng.random() < 0.18
    lower = None if dress else rng.choice(["pants", "pants", "pants", "shorts", "skirt"])
    arms = {}
    for side in (+1, -1):
        raised = rng.random() < 0.15
        upper = rng.uniform(60, 130) if raised else rng.uniform(6, 45)
        fore = float(np.clip(upper + rng.uniform(-15, 45), 3, 160))
        arms[side] = (upper, fore)
    legs = {side: (rng.uniform(0, 10), rng.uniform(-3, 6)) for side in (+1, -1)}
    hat = rng.random() < 0.2
    sleeves = rng.choice(["none", "short", "short", "long", "long"])
    return {
        "u": u,
        "skin": _SKIN_TONES[rng.integers(len(_SKIN_TONES))] + rng.uniform(-10, 10, 3),
        "hair": _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] + rng.uniform(-8, 8, 3),
        "long_hair": hat or rng.random() < 0.35,
        "hat": hat, "sunglasses": rng.random() < 0.15, "scarf": rng.random() < 0.12,
        "gloves": rng.random() < 0.1, "socks": rng.random() < 0.35, "vneck": rng.random() < 0.4,
        "dress": dress, "lower": lower, "coat": rng.random() < 0.25, "coat_open": rng.random() < 0.6,
        "sleeves": "long" if rng.random() < 0.5 and not dress else sleeves,
        "arms": arms, "legs": legs,
        "shoulder": rng.uniform(0.10, 0.125) * u,
        "waist": rng.uniform(0.075, 0.09) * u,
        "head_r": rng.uniform(0.044, 0.052) * u,
        "head_dx": rng.uniform(-0.012, 0.012) * u,
        "skirt_hem": rng.uniform(0.60, 0.72), "dress_hem": rng.uniform(0.62, 0.80),
        "coat_hem": rng.uniform(0.58, 0.76),
    }


def _draw_person(spec: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Render one person on its own canvas.

    Returns (internal labels HxW uint8, BGR image HxWx3 float32, (anchor_x, anchor_y)) where the anchor
    is the canvas position of the person's top-centre.
    """
    u = spec["u"]
    ch, cw = int(math.ceil(1.12 * u)) + 4, int(math.ceil(1.1 * u)) + 4
    cx, my = cw / 2.0, 0.06 * u
    lab = np.zeros((ch, cw), np.uint8)

    def Y(t):  # body height fraction -> canvas row
        return my + t * u

    sw, ww = spec["shoulder"], spec["waist"]
    hx, hy, hr = cx + spec["head_dx"], Y(0.085), spec["head_r"]
    hry = hr * 1.25

    # 1. long hair behind the shoulders
    if spec["long_hair"]:
        _poly(lab, [(hx - hr - 0.012 * u, Y(0.07)), (hx + hr + 0.012 * u, Y(0.07)),
                    (hx + hr + 0.03 * u, Y(0.25)), (hx - hr - 0.03 * u, Y(0.25))], HAIR)

    # 2. legs (skin), socks, shoes
    leg_geo = {}
    for side, leg_lab, shoe_lab in ((+1, L_LEG, L_SHOE), (-1, R_LEG, R_SHOE)):
        a_thigh, bend = spec["legs"][side]
        hip = np.array([cx + side * 0.05 * u, Y(0.50)])
        knee = hip + 0.22 * u * _direction(side, a_thigh)
        ankle = knee + 0.21 * u * _direction(side, max(0.0, a_thigh + bend))
        leg_geo[side] = (hip, knee, ankle)
        _limb(lab, hip, knee, 0.085 * u, 0.06 * u, leg_lab)
        _limb(lab, knee, ankle, 0.06 * u, 0.045 * u, leg_lab)
        if spec["socks"]:
            _limb(lab, knee + 0.7 * (ankle - knee), ankle, 0.05 * u, 0.047 * u, SOCKS)
        _ellipse(lab, ankle + np.array([side * 0.014 * u, 0.022 * u]), (0.042 * u, 0.022 * u), shoe_lab)

    # 3. lower clothes
    waist_y = Y(0.48)
    if spec["lower"] in ("pants", "shorts"):
        for side in (+1, -1):
            hip, knee, ankle = leg_geo[side]
            _limb(lab, hip, knee, 0.095 * u, 0.07 * u, PANTS)
            if spec["lower"] == "pants":
                _limb(lab, knee, knee + 0.9 * (ankle - knee), 0.07 * u, 0.055 * u, PANTS)
        _poly(lab, [(cx - ww - 0.004 * u, waist_y), (cx + ww + 0.004 * u, waist_y),
                    (cx + ww + 0.006 * u, Y(0.56)), (cx - ww - 0.006 * u, Y(0.56))], PANTS)
    elif spec["lower"] == "skirt":
        flare = ww * 1.3 + (spec["skirt_hem"] - 0.6) * 0.5 * u
        _poly(lab, [(cx - ww, waist_y), (cx + ww, waist_y), (cx + flare, Y(spec["skirt_hem"])),
                    (cx - flare, Y(spec["skirt_hem"]))], SKIRT)

    # 4. neck, torso garment, neckline
    _poly(lab, [(hx - 0.022 * u, Y(0.12)), (hx + 0.022 * u, Y(0.12)), (cx + 0.026 * u, Y(0.185)),
                (cx - 0.026 * u, Y(0.185))], TORSO_SKIN)
    torso = [(cx - sw, Y(0.175)), (cx - 0.03 * u, Y(0.165)), (cx + 0.03 * u, Y(0.165)), (cx + sw, Y(0.175)),
             (cx + ww, Y(0.52)), (cx - ww, Y(0.52))]
    inner = DRESS if spec["dress"] else UPPER
    _poly(lab, torso, inner)
    if spec["dress"]:
        flare = ww * 1.2 + (spec["dress_hem"] - 0.6) * 0.55 * u
        _poly(lab, [(cx - ww, Y(0.45)), (cx + ww, Y(0.45)), (cx + flare, Y(spec["dress_hem"])),
                    (cx - flare, Y(spec["dress_hem"]))], DRESS)
    if spec["vneck"]:
        _poly(lab, [(cx - 0.03 * u, Y(0.165)), (cx + 0.03 * u, Y(0.165)), (cx, Y(0.235))], TORSO_SKIN)

    # 5. coat (open front shows the inner garment)
    if spec["coat"]:
        hem, cw2 = Y(spec["coat_hem"]), ww * 1.25 + (spec["coat_hem"] - 0.55) * 0.3 * u
        _poly(lab, [(cx - sw - 0.01 * u, Y(0.17)), (cx - 0.035 * u, Y(0.16)), (cx + 0.035 * u, Y(0.16)),
                    (cx + sw + 0.01 * u, Y(0.17)), (cx + cw2, hem), (cx - cw2, hem)], COAT)
        if spec["coat_open"]:
            gap = 0.022 * u
            _poly(lab, [(cx - 0.03 * u, Y(0.17)), (cx + 0.03 * u, Y(0.17)), (cx + gap, hem), (cx - gap, hem)], inner)
            _poly(lab, [(cx - 0.03 * u, Y(0.165)), (cx + 0.03 * u, Y(0.165)), (cx, Y(0.22))], TORSO_SKIN)

    # 6. arms, hands, sleeves, gloves
    sleeve_lab = COAT if spec["coat"] else (DRESS if spec["dress"] else UPPER)
    sleeves = "long" if spec["coat"] else spec["sleeves"]
    for side, arm_lab, hand_lab in ((+1, L_ARM, L_HAND), (-1, R_ARM, R_HAND)):
        a_up, a_fore = spec["arms"][side]
        sh = np.array([cx + side * (sw - 0.022 * u), Y(0.19)])
        elbow = sh + 0.165 * u * _direction(side, a_up)
        d2 = _direction(side, a_fore)
        wrist = elbow + 0.15 * u * d2
        hand = wrist + 0.03 * u * d2
        _limb(lab, sh, elbow, 0.06 * u, 0.048 * u, arm_lab)
        _limb(lab, elbow, wrist, 0.048 * u, 0.038 * u, arm_lab)
        if sleeves == "short":
            _limb(lab, sh, sh + 0.6 * (elbow - sh), 0.072 * u, 0.064 * u, sleeve_lab)
        elif sleeves == "long":
            _limb(lab, sh, elbow, 0.07 * u, 0.056 * u, sleeve_lab)
            _limb(lab, elbow, elbow + 0.92 * (wrist - elbow), 0.056 * u, 0.046 * u, sleeve_lab)
        cv2.circle(lab, _pt(hand), max(1, int(round(0.026 * u))), GLOVE if spec["gloves"] else hand_lab, -1)

    # 7. scarf
    if spec["scarf"]:
        _poly(lab, [(cx - 0.055 * u, Y(0.145)), (cx + 0.055 * u, Y(0.145)), (cx + 0.06 * u, Y(0.19)),
                    (cx - 0.06 * u, Y(0.19))], SCARF)
        _poly(lab, [(cx + 0.015 * u, Y(0.18)), (cx + 0.045 * u, Y(0.18)), (cx + 0.05 * u, Y(0.33)),
                    (cx + 0.02 * u, Y(0.33))], SCARF)

    # 8. head: hair, face, hat, sunglasses
    _ellipse(lab, (hx, hy - 0.012 * u), (hr + 0.01 * u, hry + 0.01 * u), HAIR)
    face_c, face_ax = (hx, hy + 0.012 * u), (hr * 0.9, hry * 0.85)
    _ellipse(lab, face_c, face_ax, FACE)
    if spec["hat"]:
        _ellipse(lab, (hx, hy - 0.045 * u), (hr + 0.012 * u, 0.045 * u), HAT, start=180, end=360)
        _poly(lab, [(hx - hr - 0.03 * u, hy - 0.05 * u), (hx + hr + 0.03 * u, hy - 0.05 * u),
                    (hx + hr + 0.03 * u, hy - 0.035 * u), (hx - hr - 0.03 * u, hy - 0.035 * u)], HAT)
    eye_y, eye_dx = hy + 0.004 * u, hr * 0.4
    if spec["sunglasses"]:
        for s in (-1, 1):
            _ellipse(lab, (hx + s * eye_dx, eye_y), (0.017 * u, 0.011 * u), SUNGLASSES)
        cv2.line(lab, _pt((hx - eye_dx, eye_y)), _pt((hx + eye_dx, eye_y)), SUNGLASSES,
                 max(1, int(round(0.005 * u))))

    # ---- appearance
    img = np.zeros((ch, cw, 3), np.float32)
    scale = u / 200.0
    _paint(img, lab, _SKIN_LABELS, rng, spec["skin"], "solid", scale)
    _paint(img, lab, (HAIR,), rng, spec["hair"], "stripes_v", 0.3 * scale)
    for lbl in (HAT, GLOVE, UPPER, DRESS, COAT, SOCKS, PANTS, SCARF, SKIRT):
        _paint(img, lab, (lbl,), rng, _random_colour(rng), None, scale)
    _paint(img, lab, (L_SHOE, R_SHOE), rng, _random_colour(rng, (0.0, 0.6), (0.08, 0.5)), "solid", scale)
    _paint(img, lab, (SUNGLASSES,), rng, np.float32([25, 20, 20]), "solid", scale)
    # face details (image only): eyes and mouth
    face = (lab == FACE)
    deco = np.zeros_like(lab)
    if not spec["sunglasses"]:
        for s in (-1, 1):
            _ellipse(deco, (hx + s * eye_dx, eye_y), (0.008 * u, 0.005 * u), 1)
    cv2.line(deco, _pt((hx - 0.014 * u, hy + 0.04 * u)), _pt((hx + 0.014 * u, hy + 0.04 * u)), 2,
             max(1, int(round(0.004 * u))))
    img[(deco == 1) & face] = (40, 30, 30)
    img[(deco == 2) & face] = (70, 60, 150)
    # limb / torso shading: light from one side
    light = rng.uniform(-0.18, 0.18)
    xs = (np.arange(cw, dtype=np.float32) - cx) / max(1.0, 0.5 * u)
    img *= (1.0 + light * xs)[None, :, None]
    np.clip(img, 0, 255, out=img)
    return lab, img, (cx, my)


# ---------------------------------------------------------------------------------------------
# scenes
def _paste_region(anchor_canvas, anchor_img, canvas_shape, img_shape):
    """Slices (image rows, image cols), (canvas rows, canvas cols) of the overlap, or None."""
    oy, ox = int(round(anchor_img[1] - anchor_canvas[1])), int(round(anchor_img[0] - anchor_canvas[0]))
    ch, cw = canvas_shape
    H, W = img_shape
    y0, x0, y1, x1 = max(0, oy), max(0, ox), min(H, oy + ch), min(W, ox + cw)
    if y1 <= y0 or x1 <= x0:
        return None
    return (slice(y0, y1), slice(x0, x1)), (slice(y0 - oy, y1 - oy), slice(x0 - ox, x1 - ox))


def make_scene(rng: np.random.Generator, size: tuple[int, int] = (384, 512), num_persons: int = 2,
               label_set: str = "cihp", min_pixels: int | None = None,
               scale_range: tuple[float, float] = (0.3, 0.9), max_tries: int = 10) -> dict:
    """Draw one scene with up to ``num_persons`` people using the random generator ``rng``.

    Returns ``{"image": HxWx3 uint8 BGR, "persons": [HxW uint8 label map, ...]}`` (no "id"); persons
    back to front. People whose head would be hidden, or with fewer than ``min_pixels`` visible pixels
    (default ``max(32, H*W // 1000)``), are re-placed up to ``max_tries`` times, then dropped; the
    nearest person is always kept, so a scene with ``num_persons >= 1`` has at least one person.
    """
    if label_set not in _LABEL_SETS:
        raise ValueError(f"label_set must be one of {sorted(_LABEL_SETS)}, got {label_set!r}")
    H, W = int(size[0]), int(size[1])
    if H < 32 or W < 32:
        raise ValueError(f"scene size must be at least 32x32, got {H}x{W}")
    if num_persons < 0:
        raise ValueError(f"num_persons must be >= 0, got {num_persons}")
    lut = _LABEL_SETS[label_set][1]
    if min_pixels is None:
        min_pixels = max(32, H * W // 1000)

    image = _background(rng, (H, W))
    # nearest (largest) first: placement goes front to back, painting back to front
    scales = np.sort(rng.uniform(*scale_range, size=num_persons))[::-1]
    occupied = np.zeros((H, W), bool)
    placed = []  # (labels, image, region) front to back
    for k, s in enumerate(scales):
        height = s * H
        spec = _person_spec(rng, height)
        lab, pimg, anchor = _draw_person(spec, rng)
        own_face = int(np.count_nonzero(lab == FACE))
        for _ in range(max_tries if k else 1):
            # ground plane: nearer (taller) people stand lower in the image
            foot = H * (0.45 + 0.6 * s + rng.uniform(-0.08, 0.08))
            top = float(np.clip(foot - height, 0.0, max(0.0, H - 0.85 * height)))
            x = rng.uniform(0.12 * W, 0.88 * W)
            reg = _paste_region(anchor, (x, top), lab.shape, (H, W))
            if reg is None:
                continue
            (iy, ix), (cy, cx) = reg
            sub = lab[cy, cx]
            vis = (sub > 0) & ~occupied[iy, ix]
            vis_face = np.count_nonzero(vis & (sub == FACE))
            vis_hair = np.count_nonzero(vis & (sub == HAIR))
            if k == 0 or (np.count_nonzero(vis) >= min_pixels and vis_hair > 0 and vis_face * 2 >= own_face):
                occupied[iy, ix] |= sub > 0
                placed.append((lab, pimg, reg, vis))
                break

    persons = []
    for lab, pimg, ((iy, ix), (cy, cx)), vis in reversed(placed):  # back to front
        image[iy, ix][vis] = pimg[cy, cx][vis]
        m = np.zeros((H, W), np.uint8)
        m[iy, ix][vis] = lut[lab[cy, cx][vis]]
        persons.append(m)
    # camera: slight blur and sensor noise
    image = cv2.GaussianBlur(image, (0, 0), 0.6)
    image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(3.0)
    return {"image": np.clip(image + 0.5, 0, 255).astype(np.uint8), "persons": persons}


class SyntheticScenes:
    """Indexable set of ``num_images`` procedural multi-person scenes; scene i depends on (seed, i).

    ``persons=(lo, hi)``: each scene asks for lo..hi people (inclusive); a few may be dropped when
    hidden behind others (see :func:`make_scene`). ``label_set="cihp"`` (20 classes, default) or
    ``"mhp"`` (the same parts mapped to the 59 MHPv2 classes).
    """

    def __init__(self, num_images: int, seed: int = 0, size: tuple[int, int] = (384, 512),
                 persons: tuple[int, int] = (1, 4), label_set: str = "cihp",
                 min_pixels: int | None = None, scale_range: tuple[float, float] = (0.3, 0.9)):
        if num_images < 0:
            raise ValueError(f"num_images must be >= 0, got {num_images}")
        lo, hi = (persons, persons) if isinstance(persons, int) else tuple(persons)
        if not 0 <= lo <= hi:
            raise ValueError(f"persons must be (min, max) with 0 <= min <= max, got {persons}")
        if label_set not in _LABEL_SETS:
            raise ValueError(f"label_set must be one of {sorted(_LABEL_SETS)}, got {label_set!r}")
        if not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"scale_range must be 0 < lo <= hi, got {scale_range}")
        self.num_images, self.seed = int(num_images), int(seed)
        self.size = (int(size[0]), int(size[1]))
        self.persons = (int(lo), int(hi))
        self.label_set, self.min_pixels, self.scale_range = label_set, min_pixels, tuple(scale_range)
        self.classes = _LABEL_SETS[label_set][0]
        self.num_classes = len(self.classes)
        self.ids = [f"synth{self.seed}_{i:06d}" for i in range(self.num_images)]

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        if i < 0:
            i += self.num_images
        if not 0 <= i < self.num_images:
            raise IndexError(f"scene index {i} out of range for {self.num_images} scenes")
        rng = np.random.default_rng([self.seed, i])
        n = int(rng.integers(self.persons[0], self.persons[1] + 1))
        sample = make_scene(rng, self.size, n, self.label_set, self.min_pixels, self.scale_range)
        return {"id": self.ids[i], **sample}

    def __iter__(self):
        for i in range(self.num_images):
            yield self[i]

    def __repr__(self) -> str:
        return (f"SyntheticScenes(num_images={self.num_images}, seed={self.seed}, size={self.size}, "
                f"persons={self.persons}, label_set={self.label_set!r})")


# ---------------------------------------------------------------------------------------------
# writers / visualisation
_CIHP_SPLITS = {"training": ("Training", "train_id.txt"), "train": ("Training", "train_id.txt"),
                "validation": ("Validation", "val_id.txt"), "val": ("Validation", "val_id.txt")}


def _check_id(sample_id: str) -> str:
    sample_id = str(sample_id)
    if not sample_id or any(c in sample_id for c in "/\\\n\r\t") or sample_id in (".", ".."):
        raise ValueError(f"sample id {sample_id!r} cannot be used as a file name")
    return sample_id


def _checked_sample(sample: dict) -> tuple[str, np.ndarray, list]:
    """``(id, image, persons)`` of a sample about to be written: the id checked, the image HxWx3 uint8."""
    sid = _check_id(sample["id"])
    img = np.asarray(sample["image"])
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"sample {sid!r}: image must be HxWx3 uint8, got {img.dtype} {img.shape}")
    return sid, img, sample["persons"]


def _imwrite(path: str, arr: np.ndarray, params=()) -> None:
    if not cv2.imwrite(path, arr, list(params)):
        raise OSError(f"could not write {path}")


def _update_list(path: str, ids: Iterable[str]) -> None:
    """Add ids to a split list (one per line), keeping existing entries and order, no duplicates."""
    existing = []
    if os.path.exists(path):
        with open(path) as f:
            existing = [ln.strip() for ln in f if ln.strip()]
    seen = set(existing)
    new = [i for i in ids if not (i in seen or seen.add(i))]
    with open(path, "w") as f:
        f.writelines(f"{i}\n" for i in existing + new)


def write_cihp(root: str, scenes: Iterable[dict], split: str = "Training", jpeg_quality: int = 95) -> list[str]:
    """Write samples in the CIHP layout under ``root`` (the ``instance-level_human_parsing`` folder).

    ``<root>/<Split>/Images/<id>.jpg``, ``Category_ids/<id>.png`` (union of the persons' labels),
    ``Human_ids/<id>.png`` (person index 1..N, 0 background) and the id list
    ``<root>/<Split>/{train,val}_id.txt`` (existing entries kept). ``split``: "Training"/"train" or
    "Validation"/"val". Persons are painted in order, so where two persons' maps overlap (impossible
    for :class:`SyntheticScenes`, whose maps are disjoint) the later one wins: CIHP cannot store
    overlapping persons. Images are JPEG (lossy); the label PNGs are exact. Returns the ids written.
    """
    key = str(split).lower()
    if key not in _CIHP_SPLITS:
        raise ValueError(f"CIHP split must be 'Training'/'train' or 'Validation'/'val', got {split!r}")
    folder, list_name = _CIHP_SPLITS[key]
    base = os.path.join(root, folder)
    dirs = {d: os.path.join(base, d) for d in ("Images", "Category_ids", "Human_ids")}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    ids = []
    for sample in scenes:
        sid, img, persons = _checked_sample(sample)
        if len(persons) > 255:
            raise ValueError(f"sample {sid!r}: {len(persons)} persons do not fit an 8-bit Human_ids PNG")
        cat = np.zeros(img.shape[:2], np.uint8)
        hum = np.zeros(img.shape[:2], np.uint8)
        for k, p in enumerate(persons, start=1):
            p = np.asarray(p)
            if p.shape != img.shape[:2]:
                raise ValueError(f"sample {sid!r}: person {k} map {p.shape} != image {img.shape[:2]}")
            m = p > 0
            cat[m] = p[m]
            hum[m] = k
        _imwrite(os.path.join(dirs["Images"], sid + ".jpg"), img, (cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)))
        _imwrite(os.path.join(dirs["Category_ids"], sid + ".png"), cat)
        _imwrite(os.path.join(dirs["Human_ids"], sid + ".png"), hum)
        ids.append(sid)
    _update_list(os.path.join(base, list_name), ids)
    return ids


def overlay(sample: dict, num_classes: int | None = None, alpha: float = 0.55) -> np.ndarray:
    """Visualisation: the image, the image blended with coloured part labels, and a person-index map,
    side by side (BGR uint8, height H, width 3W)."""
    img = np.asarray(sample["image"])
    if img.dtype != np.uint8:
        raise ValueError("overlay needs the uint8 BGR image (before Normalize)")
    H, W = img.shape[:2]
    labels = np.zeros((H, W), np.int64)
    owner = np.zeros((H, W), np.int64)
    for k, p in enumerate(sample["persons"], start=1):
        m = np.asarray(p) > 0
        labels[m] = np.asarray(p)[m]
        owner[m] = k
    n = int(num_classes or max(int(labels.max()) + 1, len(CIHP_CLASSES)))
    col = palette(n)[labels]
    blend = img.copy()
    fg = labels > 0
    blend[fg] = (img[fg] * (1 - alpha) + col[fg] * alpha).astype(np.uint8)
    ids = palette(max(2, len(sample["persons"]) + 1), seed=3)[owner]
    # person outlines on the blended view
    for k in range(1, len(sample["persons"]) + 1):
        cs, _ = cv2.findContours((owner == k).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(blend, cs, -1, (255, 255, 255), 1)
    return np.concatenate([img, blend, ids], axis=1)
