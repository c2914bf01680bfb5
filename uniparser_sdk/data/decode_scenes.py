"""Synthetic decode inputs shared by the kernel tests and ``benchmarks/decode_bench.py`` (numpy only)."""
from __future__ import annotations

import numpy as np

__all__ = ["structured_scene"]


def _default_radius_bounds(h: int, w: int):
    return (max(h // 6, 2), h // 3 + 1), (max(w // 8, 2), w // 4 + 1)


def structured_scene(seed=0, S=16, D=16, h=24, w=32, C=7, persons=3, parts=3, radius_bounds=None):
    """Random scene in which persons and categories survive the decode: each person's region (an ellipse) has
    its instance features boosted along one random direction, sub-regions have semantic features boosted along
    a seg kernel, and the person's grid cell gets a high center logit.

    Returns ``(center_logits (S, S), ins_feats (D, h, w), sem_feats (D, h, w), seg_kernels (C, D))``, float32.
    ``radius_bounds(h, w) -> ((ry_lo, ry_hi), (rx_lo, rx_hi))``: the half-open ranges the ellipse radii are
    drawn from (default: ``h // 6 .. h // 3`` and ``w // 8 .. w // 4``, at least 2)."""
    rng = np.random.default_rng(seed)
    (ry_lo, ry_hi), (rx_lo, rx_hi) = (radius_bounds or _default_radius_bounds)(h, w)
    sd = 1.0 / np.sqrt(D)
    ins = rng.normal(0, sd, (D, h, w)).astype(np.float32)
    sem = rng.normal(0, sd, (D, h, w)).astype(np.float32)
    seg = rng.normal(0, 1, (C, D)).astype(np.float32)
    logits = rng.normal(-6, 0.5, (S, S)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(persons):
        cy, cx = int(rng.integers(h // 5, h - h // 5)), int(rng.integers(w // 5, w - w // 5))
        ry, rx = int(rng.integers(ry_lo, ry_hi)), int(rng.integers(rx_lo, rx_hi))
        reg = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        e = rng.normal(0, 1, D).astype(np.float32)
        ins[:, reg] += 1.5 * (e / np.linalg.norm(e))[:, None]
        for c in rng.choice(C, parts, replace=False):
            oy, ox = rng.integers(-ry // 2, ry // 2 + 1), rng.integers(-rx // 2, rx // 2 + 1)
            sub = reg & ((((yy - cy - oy) / max(ry / 2, 1)) ** 2 + ((xx - cx - ox) / max(rx / 2, 1)) ** 2) <= 1)
            sem[:, sub] += float(rng.uniform(1.5, 3.0)) * (seg[c] / np.linalg.norm(seg[c]))[:, None]
        logits[min(S - 1, cy * S // h), min(S - 1, cx * S // w)] = float(rng.uniform(1, 3))
    return logits, ins, sem, seg
