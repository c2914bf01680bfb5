"""Speed of the MHP evaluation (:class:`uniparser_sdk.evaluation.MHPEvaluator`) on synthetic data.

Makes seeded synthetic images: GT persons are ellipse-ish blobs split into a few part bands
(head/hair/face, upper clothes, arms, pants, legs, shoes with CIHP-like labels), predictions are the
GT persons shifted by a few pixels with blocks of wrong labels, some persons missed and some false
positives added. Only ``MHPEvaluator.add`` and ``compute`` are timed, not the data generation.

    python -m uniparser_sdk.benchmarks.eval_speed --images 500 --size 512 --persons 3
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from uniparser_sdk.evaluation import MHPEvaluator

# CIHP ids: hair 2, face 13, upper-clothes 5, left/right arm 14/15, pants 9, left/right leg 16/17,
# left/right shoe 18/19
_BANDS = [  # (top, bottom) as fractions of the blob height, label left half, label right half
    (0.00, 0.08, 2, 2),
    (0.08, 0.18, 13, 13),
    (0.18, 0.50, 5, 5),
    (0.50, 0.75, 9, 9),
    (0.75, 0.93, 16, 17),
    (0.93, 1.01, 18, 19),
]


def _person(size: int, rng: np.random.Generator) -> np.ndarray:
    """One synthetic person label map (uint8, size x size)."""
    h = rng.uniform(0.35, 0.8) * size
    w = h * rng.uniform(0.3, 0.45)
    cy = rng.uniform(h / 2, size - h / 2)
    cx = rng.uniform(w / 2, size - w / 2)
    y0, y1 = int(max(cy - h / 2, 0)), int(min(cy + h / 2 + 1, size))
    x0, x1 = int(max(cx - w / 2, 0)), int(min(cx + w / 2 + 1, size))
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    ny, nx = (yy - cy) / (h / 2), (xx - cx) / (w / 2)
    wobble = 1.0 + 0.08 * np.sin(6 * np.arctan2(ny, nx) + rng.uniform(0, 6.3))
    inside = ny ** 2 + nx ** 2 <= wobble
    fy = (yy - (cy - h / 2)) / h                        # 0 at the top of the blob, 1 at the bottom
    lab = np.zeros(yy.shape, np.uint8)
    left = xx < cx
    for top, bot, l_lab, r_lab in _BANDS:
        band = (fy >= top) & (fy < bot)
        lab[band & left] = l_lab
        lab[band & ~left] = r_lab
    arms = (np.abs(nx) > 0.7) & (fy > 0.2) & (fy < 0.55)
    lab[arms & left] = 14
    lab[arms & ~left] = 15
    lab[~inside] = 0
    out = np.zeros((size, size), np.uint8)
    out[y0:y1, x0:x1] = lab
    return out


def _noisy(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A prediction of ``gt``: shifted a few pixels, with some blocks of wrong part labels."""
    pred = np.roll(gt, (int(rng.integers(-6, 7)), int(rng.integers(-6, 7))), axis=(0, 1))
    ys, xs = np.nonzero(pred)
    if ys.size:
        for _ in range(int(rng.integers(1, 4))):
            j = int(rng.integers(ys.size))
            r = int(rng.integers(4, 16))
            blk = pred[max(ys[j] - r, 0):ys[j] + r, max(xs[j] - r, 0):xs[j] + r]
            blk[blk != 0] = rng.integers(1, 20)
    return pred


def make_image(size: int, persons: int, rng: np.random.Generator):
    """(pred_persons, gt_persons) of one synthetic image."""
    k = max(1, int(rng.poisson(persons)))
    gts = [_person(size, rng) for _ in range(k)]
    preds = []
    for g in gts:
        if rng.random() < 0.9:                          # 10 % of the persons are missed
            preds.append((float(rng.uniform(0.3, 1.0)), _noisy(g, rng)))
    for _ in range(int(rng.poisson(0.5))):              # false positives
        preds.append((float(rng.uniform(0.1, 0.6)), _person(size, rng)))
    return preds, gts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=500, help="number of synthetic images (500)")
    ap.add_argument("--size", type=int, default=512, help="image side in pixels (512)")
    ap.add_argument("--persons", type=float, default=3, help="mean persons per image (3, Poisson)")
    ap.add_argument("--classes", type=int, default=20, help="number of classes incl. background (20 = CIHP)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    ev = MHPEvaluator(args.classes)
    t_add = t_gen = cpu = 0.0
    for _ in range(args.images):
        t0 = time.perf_counter()
        preds, gts = make_image(args.size, args.persons, rng)
        t1, c1 = time.perf_counter(), time.process_time()
        ev.add(preds, gts)
        t_add += time.perf_counter() - t1
        cpu += time.process_time() - c1
        t_gen += t1 - t0
    t0, c0 = time.perf_counter(), time.process_time()
    res = ev.compute()
    t_compute = time.perf_counter() - t0
    cpu += time.process_time() - c0
    total = t_add + t_compute
    print(f"images {res['num_images']}  size {args.size}x{args.size}  gt persons {res['num_gt']}  "
          f"predictions {res['num_pred']}  classes {args.classes}")
    print(f"AP50 {res['AP50']:.4f}  APvol {res['APvol']:.4f}  PCP50 {res['PCP50']:.4f}  mIoU {res['mIoU']:.4f}")
    print(f"eval: add {t_add:.3f} s + compute {t_compute:.4f} s = {total:.3f} s total, "
          f"{args.images / total:.1f} images/s  (process CPU time {cpu:.3f} s; "
          f"data generation {t_gen:.2f} s, not counted)")
    return res


if __name__ == "__main__":
    main()
