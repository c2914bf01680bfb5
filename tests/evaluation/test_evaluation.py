"""Tests of the MHP evaluation (uniparser_sdk.evaluation): hand-computed cases plus a cross-check
against a naive reference implementation written independently below."""
import math

import numpy as np
import pytest

from uniparser_sdk.evaluation import (DEFAULT_THRESHOLDS, MHPEvaluator, compose_semantic, confusion_matrix, evaluate,
                                      per_class_iou, voc_ap)
from uniparser_sdk.evaluation import mhp_eval

T = DEFAULT_THRESHOLDS


def row(*vals):
    """A 1 x N label map."""
    return np.array([vals], dtype=np.uint8)


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def test_default_thresholds():
    assert T == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def test_voc_ap_hand_example():
    # mrec = [0, .2, .4, .4, .6, 1], envelope of [0, 1, .5, .7, .5, 0] = [1, 1, .7, .7, .5, 0]
    # AP = .2 * 1 + .2 * .7 + .2 * .5 + .4 * 0 = 0.44
    assert voc_ap([0.2, 0.4, 0.4, 0.6], [1.0, 0.5, 0.7, 0.5]) == pytest.approx(0.44)
    assert voc_ap([0.5, 1.0], [1.0, 1.0]) == pytest.approx(1.0)
    assert voc_ap([], []) == 0.0


def test_confusion_matrix_and_iou():
    gt = np.array([[0, 1, 1, 2], [255, 2, -1, 0]])
    pred = np.array([[0, 1, 2, 2], [1, 2, 2, 1]])
    conf = confusion_matrix(pred, gt, 3)
    # valid pixels: (0,0) (1,1) (1,2) (2,2) (2,2) (0,1); 255 and -1 ignored
    expected = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 2]])
    np.testing.assert_array_equal(conf, expected)
    iou = per_class_iou(conf)
    np.testing.assert_allclose(iou, [1 / 2, 1 / 3, 2 / 3])
    assert np.isnan(per_class_iou(np.array([[3, 0, 0], [0, 0, 0], [0, 0, 1]]))[1])
    with pytest.raises(ValueError):
        confusion_matrix(np.array([[3]]), np.array([[0]]), 3)


def test_compose_semantic():
    a, b = row(1, 1, 0, 0), row(0, 2, 2, 0)
    np.testing.assert_array_equal(compose_semantic([a, b]), row(1, 2, 2, 0))
    np.testing.assert_array_equal(compose_semantic([b, a]), row(1, 1, 2, 0))


# ------------------------------------------------------------------------------------------------
# AP / PCP hand cases
# ------------------------------------------------------------------------------------------------
def test_perfect_prediction():
    a = np.array([[1, 1, 0, 0], [2, 2, 0, 0], [0, 0, 0, 0]], np.uint8)
    b = np.array([[0, 0, 0, 3], [0, 0, 1, 3], [0, 0, 2, 2]], np.uint8)
    res = evaluate([[(0.9, a), (0.8, b)]], [[a, b]], num_classes=4)
    assert res["AP50"] == 1.0 and res["APvol"] == 1.0
    assert res["PCP50"] == 1.0 and all(v == 1.0 for v in res["PCP"].values())
    assert all(v == 1.0 for v in res["AP"].values())
    assert res["mIoU"] == 1.0
    assert res["class_iou"] == [1.0, 1.0, 1.0, 1.0]
    assert (res["num_images"], res["num_gt"], res["num_pred"]) == (1, 2, 2)


def test_duplicate_prediction_is_fp():
    a, b = row(1, 1, 0, 0, 0, 0), row(0, 0, 0, 0, 2, 2)
    res = evaluate([[(0.9, a), (0.8, a.copy()), (0.7, b)]], [[a, b]], num_classes=3)
    # TP, FP, TP: recall [.5, .5, 1], precision [1, .5, 2/3] -> .5 * 1 + .5 * 2/3
    assert res["AP50"] == pytest.approx(0.5 + 1 / 3)
    assert res["APvol"] == pytest.approx(0.5 + 1 / 3)
    assert res["PCP50"] == 1.0


def test_gt_never_predicted_caps_recall():
    a, b = row(1, 1, 0, 0, 0, 0), row(0, 0, 0, 0, 2, 2)
    res = evaluate([[(0.9, a)]], [[a, b]], num_classes=3)
    assert res["AP50"] == pytest.approx(0.5)
    assert res["PCP50"] == pytest.approx(0.5)          # (1 + 0) / 2 GT persons


def test_iou_tie_picks_first_gt():
    a, b = row(1, 1, 0, 0), row(0, 0, 1, 1)
    tie = row(0, 1, 1, 0)        # mean IoU 1/3 with a and with b: goes to a (first)
    res = evaluate([[(0.9, tie), (0.8, b.copy())]], [[a, b]], num_classes=2)
    # t <= .3: tie -> a (TP), b-pred -> b (TP): AP 1 (were the tie sent to b, the b-pred would be FP: .5)
    for t in (0.1, 0.2, 0.3):
        assert res["AP"][t] == pytest.approx(1.0)
    # t >= .4: FP then TP -> recall [0, .5], precision [0, .5] -> .5 * .5
    for t in (0.4, 0.5, 0.9):
        assert res["AP"][t] == pytest.approx(0.25)


def test_identical_gts_tie_no_fallback():
    a = row(1, 1, 0, 0)
    res = evaluate([[(0.9, a), (0.8, a.copy())]], [[a, a.copy()]], num_classes=2)
    # both predictions pick GT 0; the second is FP (GT 1 is never matched): TP, FP -> .5
    assert res["AP50"] == pytest.approx(0.5)
    assert res["PCP50"] == pytest.approx(0.5)


def test_best_gt_taken_no_fallback():
    a, b = row(1, 1, 1, 0, 0, 0), row(0, 0, 0, 2, 2, 2)
    p2 = row(1, 1, 0, 2, 0, 0)
    # p2 vs a: IoU0 2/4, IoU1 2/3, IoU2 0/1 -> 0.3889 ; vs b: IoU0 1/5, IoU1 0, IoU2 1/3 -> 0.1778
    ev = MHPEvaluator(3)
    ev.add([(0.9, a), (0.8, p2)], [a, b])
    res = ev.compute()
    # at .1 the second best (b, .178 > .1) would give a TP with fallback; without: TP, FP -> .5
    assert res["AP"][0.1] == pytest.approx(0.5)
    assert res["AP"][0.3] == pytest.approx(0.5)
    assert res["PCP"][0.1] == pytest.approx(0.5)


def test_image_without_gt_and_image_without_predictions():
    a = row(1, 1, 0, 0)
    other = row(0, 0, 1, 1)
    ev = MHPEvaluator(2)
    ev.add([(0.5, a)], [a])
    ev.add([(0.9, other)], [])                 # no GT: its prediction is a FP
    ev.add([], [a.copy()])                    # no prediction: its GT still counts
    res = ev.compute()
    assert (res["num_images"], res["num_gt"], res["num_pred"]) == (3, 2, 2)
    # FP(.9), TP(.5): recall [0, .5], precision [0, .5] -> .5 * .5
    assert res["AP50"] == pytest.approx(0.25)
    assert res["PCP50"] == pytest.approx(0.5)


def test_gt_labels_outside_range_ignored():
    gt = np.array([[1, 1, 255, 0], [0, 2, 2, 200]], np.uint8)
    pred = np.array([[1, 1, 2, 0], [0, 2, 2, 1]], np.uint8)   # wrong only where the GT is ignored
    res = evaluate([[(0.7, pred)]], [[gt]], num_classes=3)
    assert res["APvol"] == 1.0 and res["PCP50"] == 1.0
    assert res["mIoU"] == 1.0
    gt16 = gt.astype(np.int16)
    gt16[0, 2] = -1
    res16 = evaluate([[(0.7, pred)]], [[gt16]], num_classes=3)
    assert res16["APvol"] == 1.0 and res16["mIoU"] == 1.0
    # a class that only occurs under ignored pixels is absent from both -> NaN, not 0
    res2 = evaluate([[(0.7, row(1, 2))]], [[row(1, 9)]], num_classes=3)
    assert res2["APvol"] == 1.0
    assert res2["class_iou"][1] == 1.0
    assert math.isnan(res2["class_iou"][0]) and math.isnan(res2["class_iou"][2])


def test_pcp_partial_parts():
    gt = row(1, 1, 2, 2, 3, 3, 0, 0, 0, 0, 0, 0)
    pred = row(1, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    # IoU: bg 6/9, part1 1, part2 1/2, part3 0 -> mean 0.5417 (TP up to t = .5)
    ev = MHPEvaluator(4)
    ev.add([(0.6, pred)], [gt])
    ev.add([], [row(0, 1, 1, 0)])               # a second GT person, never predicted
    res = ev.compute()
    for t in (0.1, 0.2, 0.3, 0.4):
        assert res["PCP"][t] == pytest.approx((2 / 3 + 0) / 2)
    assert res["PCP50"] == pytest.approx((1 / 3 + 0) / 2)   # part 2 has IoU .5, not > .5
    for t in (0.6, 0.7, 0.8, 0.9):
        assert res["PCP"][t] == 0.0
    assert res["AP50"] == pytest.approx(0.5)


def test_apvol_mean_of_nine_thresholds():
    gt = row(1, 1, 1, 1, 0, 0, 0)
    pred = row(1, 1, 0, 0, 0, 0, 0)             # IoU bg 3/5, part 2/4 -> mean 0.55
    ev = MHPEvaluator(2)
    ev.add([(0.3, pred)], [gt])
    res = ev.compute()
    assert [res["AP"][t] for t in T] == [1.0] * 5 + [0.0] * 4
    assert res["APvol"] == pytest.approx(5 / 9)
    assert res["AP50"] == 1.0
    assert [res["PCP"][t] for t in T] == [1.0] * 4 + [0.0] * 5   # part IoU .5 is not > .5


def test_no_gt_at_all_gives_nan():
    res = evaluate([[(0.5, row(1, 0))]], [[]], num_classes=2)
    assert math.isnan(res["AP50"]) and math.isnan(res["APvol"]) and res["num_gt"] == 0


def test_custom_thresholds_still_report_ap50():
    gt = row(1, 1, 1, 1, 0, 0, 0)
    pred = row(1, 1, 0, 0, 0, 0, 0)
    res = evaluate([[(0.3, pred)]], [[gt]], num_classes=2, thresholds=(0.25, 0.75))
    assert set(res["AP"]) == {0.25, 0.75}
    assert res["APvol"] == pytest.approx(0.5) and res["AP50"] == 1.0


# ------------------------------------------------------------------------------------------------
# semantic mIoU
# ------------------------------------------------------------------------------------------------
def test_semantic_composition_by_score():
    gt = row(1, 1, 2, 2)
    lo, hi = row(2, 2, 2, 0), row(0, 1, 0, 0)
    # composed prediction: low score first, high on top -> [2, 1, 2, 0]
    res = evaluate([[(0.9, hi), (0.1, lo)]], [[gt]], num_classes=3)
    # bg: gt {} pred {3} -> 0 ; c1: gt {0,1} pred {1} -> 1/2 ; c2: gt {2,3} pred {0,2} -> 1/3
    np.testing.assert_allclose(res["class_iou"], [0.0, 0.5, 1 / 3])
    assert res["mIoU"] == pytest.approx((0 + 0.5 + 1 / 3) / 3)
    # explicit semantic maps take precedence
    res2 = evaluate([[(0.9, hi), (0.1, lo)]], [[gt]], num_classes=3,
                    pred_semantics=[gt.copy()], gt_semantics=[gt])
    assert res2["mIoU"] == 1.0 and math.isnan(res2["class_iou"][0])    # no background anywhere


def test_gt_semantic_later_person_on_top():
    a, b = row(1, 1, 0), row(0, 2, 2)
    # composed GT: [1, 2, 2]; prediction [1, 2, 2] painted from one person -> perfect
    res = evaluate([[(0.5, row(1, 2, 2))]], [[a, b]], num_classes=3)
    assert res["class_iou"][1:] == [1.0, 1.0]


# ------------------------------------------------------------------------------------------------
# API behaviour
# ------------------------------------------------------------------------------------------------
def test_errors_leave_state_untouched():
    ev = MHPEvaluator(3)
    with pytest.raises(ValueError):
        ev.add([(0.5, row(1, 3))], [row(1, 1)])          # prediction label out of range
    with pytest.raises(ValueError):
        ev.add([(0.5, row(1, 1))], [row(1, 1, 0)])       # shape mismatch
    with pytest.raises(TypeError):
        ev.add([(0.5, np.ones((1, 2), np.float32))], [row(1, 1)])
    res = ev.compute()
    assert (res["num_images"], res["num_gt"], res["num_pred"]) == (0, 0, 0)


def test_merge_equals_single():
    rng = np.random.default_rng(3)
    data = [_random_image(rng, 16, 20, 4) for _ in range(6)]
    whole = MHPEvaluator(4)
    parts = [MHPEvaluator(4), MHPEvaluator(4)]
    for i, (p, g) in enumerate(data):
        whole.add(p, g)
        parts[i % 2].add(p, g)
    merged = parts[0].merge(parts[1]).compute()
    # merged pools in a different order, so only equal scores could differ: scores are distinct
    ref = whole.compute()
    for key in ("AP50", "APvol", "PCP50", "mIoU", "num_gt", "num_pred"):
        assert merged[key] == pytest.approx(ref[key])


# ------------------------------------------------------------------------------------------------
# cross-check against a naive reference implementation
# ------------------------------------------------------------------------------------------------
def _random_image(rng, h, w, n):
    gts = []
    for _ in range(int(rng.integers(0, 4))):
        g = np.zeros((h, w), np.uint8)
        y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
        hh, ww = rng.integers(3, h - y + 1), rng.integers(3, w - x + 1)
        g[y:y + hh, x:x + ww] = rng.integers(1, n, (hh, ww))
        g[rng.random((h, w)) < 0.03] = 255
        gts.append(g)
    preds = []
    for g in gts:
        p = np.where(g == 255, 0, g).astype(np.uint8)
        p = np.roll(p, int(rng.integers(-2, 3)), axis=1)
        flip = rng.random((h, w)) < 0.15
        p[flip & (p > 0)] = rng.integers(1, n, int((flip & (p > 0)).sum()))
        preds.append((float(rng.random()), p))
        if rng.random() < 0.3:
            preds.append((float(rng.random()), p.copy()))
    if rng.random() < 0.5:
        q = np.zeros((h, w), np.uint8)
        q[: h // 2, : w // 3] = rng.integers(1, n)
        preds.append((float(rng.random()), q))
    return preds, gts


def _naive(images, n, thresholds):
    """Straightforward per-pair / per-prediction loops."""
    records, parts = [], []
    for preds, gts in images:
        base = len(parts)
        for g in gts:
            v = g[(g >= 0) & (g < n)]
            parts.append(len(set(v.tolist()) - {0}))
        for score, p in preds:
            best, best_k, best_iou = -1.0, -1, None
            for k, g in enumerate(gts):
                conf = np.zeros((n, n), np.int64)
                for gv, pv in zip(g.ravel().tolist(), p.ravel().tolist()):
                    if 0 <= gv < n:
                        conf[gv, pv] += 1
                ious = []
                for c in range(n):
                    union = conf[c].sum() + conf[:, c].sum() - conf[c, c]
                    ious.append(conf[c, c] / union if union else float("nan"))
                m = np.nanmean(ious)
                if m > best:
                    best, best_k, best_iou = m, base + k, ious
            records.append((score, best, best_k, best_iou))
    records.sort(key=lambda r: -r[0])
    ap, pcp = {}, {}
    for t in thresholds:
        taken, tp, pcp_sum = set(), [], 0.0
        for score, m, k, ious in records:
            if k >= 0 and m > t and k not in taken:
                taken.add(k)
                tp.append(1)
                if parts[k]:
                    pcp_sum += sum(1 for x in ious[1:] if x > t) / parts[k]
            else:
                tp.append(0)
        ctp = np.cumsum(tp)
        rec = ctp / len(parts)
        prec = ctp / np.arange(1, len(tp) + 1)
        ap[t] = voc_ap(rec, prec)
        pcp[t] = pcp_sum / len(parts)
    return ap, pcp


@pytest.mark.parametrize("max_codes", [None, 7])
def test_matches_naive_reference(monkeypatch, max_codes):
    if max_codes is not None:                            # exercise the chunked bincount
        monkeypatch.setattr(mhp_eval, "_MAX_CODES", max_codes)
    rng = np.random.default_rng(12345)
    n = 5
    images = [_random_image(rng, 12, 14, n) for _ in range(12)]
    res = evaluate([p for p, _ in images], [g for _, g in images], num_classes=n)
    ap, pcp = _naive(images, n, T)
    assert res["num_gt"] > 5
    for t in T:
        assert res["AP"][t] == pytest.approx(ap[t], abs=1e-12)
        assert res["PCP"][t] == pytest.approx(pcp[t], abs=1e-12)
    # semantic mIoU against a plain confusion matrix of composed maps
    conf = np.zeros((n, n), np.int64)
    for preds, gts in images:
        if not preds and not gts:      # nothing to take the image size from: not counted
            continue
        g = compose_semantic(gts, shape=(12, 14))
        p = compose_semantic([m for _, m in sorted(preds, key=lambda x: x[0])], shape=(12, 14))
        conf += confusion_matrix(p, g, n)
    assert res["mIoU"] == pytest.approx(np.nanmean(per_class_iou(conf)))
    # the same semantic maps given explicitly (full-image path) give the same numbers
    sems = [(compose_semantic([m for _, m in sorted(p, key=lambda x: x[0])], shape=(12, 14)),
             compose_semantic(g, shape=(12, 14))) if (p or g) else (None, None) for p, g in images]
    res2 = evaluate([p for p, _ in images], [g for _, g in images], num_classes=n,
                    pred_semantics=[s[0] for s in sems], gt_semantics=[s[1] for s in sems])
    assert res2["mIoU"] == pytest.approx(res["mIoU"]) and res2["APvol"] == res["APvol"]
