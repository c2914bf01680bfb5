"""The official MHP multi-human parsing evaluation (AP^p, PCP, semantic mIoU), vectorised numpy.

Semantics (DESIGN.md section 5):

* Every predicted person is compared with every GT person of its image. For one (pred, gt) pair the
  confusion matrix of the two full-image label maps is built over all classes, background included;
  GT pixels whose label is outside ``[0, num_classes)`` are ignored. Per-class IoU =
  ``diag / (row_sum + col_sum - diag)``; classes absent from both maps are NaN and dropped; the pair's
  mean IoU is the ``nanmean``.
* Each prediction keeps only its best GT (largest mean IoU, the first one on ties).
* Predictions of the whole set are pooled and sorted by score, descending (stable). For each threshold
  ``t`` (0.1 .. 0.9): a prediction is a true positive if its best mean IoU is ``> t`` (strict) and that
  GT is not yet matched at ``t``; otherwise it is a false positive (no fallback to the second best GT).
* AP at ``t`` = all-point interpolated VOC AP, recall = TP / number of GT persons.
  ``AP50`` = AP at 0.5, ``APvol`` = mean over the thresholds.
* PCP at ``t``: each matched GT person scores (number of classes 1..n-1 whose IoU with its TP
  prediction is ``> t``) / (number of distinct non-zero GT classes of that person); unmatched GT persons
  score 0; PCP = mean over all GT persons. ``PCP50`` = PCP at 0.5.
* ``mIoU``: semantic segmentation mIoU from one confusion matrix accumulated over all images (an
  image given with no label map at all has no known size and adds nothing to it).

Edge cases: with no GT person in the whole set AP/PCP are NaN (recall undefined); a GT person
without any valid non-zero class counts as a GT person whose PCP is 0.

Memory does not grow with the image size: :meth:`MHPEvaluator.add` reduces an image at once to a few
numbers per prediction (score, best mean IoU, global id of its best GT, per-class IoU vector against
that GT), a per-GT part count and the ``n x n`` semantic confusion matrix.

Speed: every map of an image is first compressed to the pixels where some person (predicted or
GT) is non-zero; the rest is background everywhere and only adds to the (0, 0) cells. For one
prediction the confusion matrices against *all* GTs of its image then come from a single
``np.bincount`` over the prediction's foreground pixels; the predicted-background column is recovered
from the per-GT class histograms (``conf[k, g, 0] = hist_k[g] - sum_c>0 conf[k, g, c]``). No
per-pixel Python loops anywhere.

Usage::

    ev = MHPEvaluator(num_classes=20)
    for preds, gts in dataset:          # preds: [(score, HxW labels)], gts: [HxW labels]
        ev.add(preds, gts)
    metrics = ev.compute()              # metrics["AP50"], metrics["APvol"], metrics["PCP50"], ...
"""
from __future__ import annotations

import warnings
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

__all__ = [
    "DEFAULT_THRESHOLDS",
    "MHPEvaluator",
    "evaluate",
    "voc_ap",
    "confusion_matrix",
    "per_class_iou",
    "compose_semantic",
]

#: IoU thresholds of AP^p_vol and PCP: 0.1, 0.2, ..., 0.9.
DEFAULT_THRESHOLDS = tuple(float(t) for t in np.arange(0.1, 0.95, 0.1).round(2))

# Upper bound on the number of int64 codes fed to one bincount (caps the temporary memory of a
# prediction against many GT persons to ~128 MB).
_MAX_CODES = 1 << 24


# ----------------------------------------------------------------------------------------------
# small public helpers
# ----------------------------------------------------------------------------------------------
def voc_ap(recall, precision) -> float:
    """All-point interpolated VOC average precision.

    ``recall`` and ``precision`` are the cumulative curves of the detections sorted by score
    (descending). The precision envelope is made monotone (max to the right) and integrated over
    the points where the recall changes: ``sum((r[i+1] - r[i]) * p_env[i+1])``. Empty input -> 0.0.
    """
    rec = np.asarray(recall, dtype=np.float64).ravel()
    prec = np.asarray(precision, dtype=np.float64).ravel()
    if rec.shape != prec.shape:
        raise ValueError(f"recall and precision differ in length: {rec.shape} vs {prec.shape}")
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def _check_pred_range(pred: np.ndarray, num_classes: int, what: str = "prediction") -> None:
    if pred.size and (pred.min() < 0 or pred.max() >= num_classes):
        raise ValueError(f"{what} labels must lie in [0, {num_classes}); "
                         f"got range [{pred.min()}, {pred.max()}]")


def confusion_matrix(pred, gt, num_classes: int) -> np.ndarray:
    """``num_classes x num_classes`` confusion matrix, rows = GT class, columns = predicted class.

    One ``np.bincount`` over ``n * gt + pred``. Pixels whose GT label is outside ``[0, n)`` (e.g.
    255 "ignore") are skipped; predicted labels must lie in ``[0, n)`` (ValueError otherwise).
    Returns int64 counts.
    """
    n = int(num_classes)
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt shapes differ: {pred.shape} vs {gt.shape}")
    _check_pred_range(pred, n)
    valid = (gt >= 0) & (gt < n)
    codes = gt[valid].astype(np.int64) * n + pred[valid].astype(np.int64)
    return np.bincount(codes, minlength=n * n).reshape(n, n)


def per_class_iou(conf) -> np.ndarray:
    """Per-class IoU ``diag / (row_sum + col_sum - diag)`` of a confusion matrix (or a stack of them,
    shape ``(..., n, n)``); NaN for classes absent from both GT and prediction."""
    conf = np.asarray(conf, dtype=np.float64)
    inter = np.diagonal(conf, axis1=-2, axis2=-1)
    union = conf.sum(-1) + conf.sum(-2) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where(union > 0, iou, np.nan)


def compose_semantic(label_maps: Sequence[np.ndarray], shape=None, dtype=None) -> np.ndarray:
    """Paint person label maps into one semantic map in list order: a later map overwrites earlier
    ones wherever its label is non-zero. ``shape`` is needed when the list is empty."""
    if len(label_maps) == 0:
        if shape is None:
            raise ValueError("compose_semantic needs `shape` for an empty list")
        return np.zeros(shape, dtype=dtype or np.int64)
    first = np.asarray(label_maps[0])
    out = np.zeros(first.shape, dtype=dtype or np.result_type(*[np.asarray(m).dtype for m in label_maps]))
    for m in label_maps:
        m = np.asarray(m)
        np.copyto(out, m, where=m != 0, casting="unsafe")
    return out


def _nanmean_rows(x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=-1)


# ----------------------------------------------------------------------------------------------
# the evaluator
# ----------------------------------------------------------------------------------------------
class MHPEvaluator:
    """Streaming MHP evaluator: call :meth:`add` once per image, then :meth:`compute`.

    Args:
        num_classes: number of classes including background (59 for MHPv2, 20 for CIHP).
        thresholds: IoU thresholds of AP/PCP (default 0.1 .. 0.9). AP50/PCP50 are always computed at
            0.5 even if 0.5 is not among them; APvol is the mean AP over ``thresholds``.
    """

    def __init__(self, num_classes: int, thresholds=DEFAULT_THRESHOLDS):
        self.num_classes = int(num_classes)
        if self.num_classes < 2:
            raise ValueError("num_classes must be >= 2 (background + at least one part)")
        ths = tuple(float(t) for t in np.atleast_1d(np.asarray(thresholds, dtype=np.float64)))
        if not ths:
            raise ValueError("need at least one threshold")
        self.thresholds = ths
        self.reset()

    # -- state -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything added so far."""
        n = self.num_classes
        self._scores: List[np.ndarray] = []
        self._best_iou: List[np.ndarray] = []
        self._best_gt: List[np.ndarray] = []      # global GT id, -1 when the image has no GT
        self._class_iou: List[np.ndarray] = []    # (P, n) per-class IoU against the best GT
        self._gt_parts: List[np.ndarray] = []     # distinct non-zero GT classes per GT person
        self._sem_conf = np.zeros((n, n), dtype=np.int64)
        self._luts: Dict[np.dtype, np.ndarray] = {}
        self._num_images = 0
        self._num_gt = 0
        self._num_pred = 0

    def merge(self, other: "MHPEvaluator") -> "MHPEvaluator":
        """Add the records of another evaluator (e.g. from another worker) into this one."""
        if other.num_classes != self.num_classes:
            raise ValueError("cannot merge evaluators with different num_classes")
        for gid in other._best_gt:
            self._best_gt.append(np.where(gid >= 0, gid + self._num_gt, -1))
        self._scores += other._scores
        self._best_iou += other._best_iou
        self._class_iou += other._class_iou
        self._gt_parts += other._gt_parts
        self._sem_conf += other._sem_conf
        self._num_images += other._num_images
        self._num_gt += other._num_gt
        self._num_pred += other._num_pred
        return self

    # -- per image -----------------------------------------------------------------------------
    def add(self, pred_persons, gt_persons, pred_semantic=None, gt_semantic=None) -> None:
        """Add one image.

        Args:
            pred_persons: list of ``(score, label_map)``; ``label_map`` an HxW integer array with
                values in ``[0, num_classes)`` (0 = background).
            gt_persons: list of HxW integer label maps of the GT persons (same HxW). Values outside
                ``[0, num_classes)`` (e.g. 255) are ignored.
            pred_semantic / gt_semantic: optional HxW semantic label maps for mIoU. Missing
                ``gt_semantic`` is composed from ``gt_persons`` (later persons overwrite earlier ones
                where their label is non-zero); missing ``pred_semantic`` from ``pred_persons`` in
                ascending score order (the highest score ends on top).
        """
        n = self.num_classes
        preds = [(float(s), np.asarray(m)) for s, m in pred_persons]
        gts = [np.asarray(g) for g in gt_persons]
        sems = [np.asarray(x) for x in (pred_semantic, gt_semantic) if x is not None]
        shape = None
        for m in [m for _, m in preds] + gts + sems:
            if m.ndim != 2:
                raise ValueError(f"label maps must be 2-D (HxW); got shape {m.shape}")
            if not np.issubdtype(m.dtype, np.integer):
                raise TypeError(f"label maps must be integer arrays, got {m.dtype}")
            if shape is None:
                shape = m.shape
            elif m.shape != shape:
                raise ValueError(f"label maps of one image must share HxW: {m.shape} vs {shape}")

        G, P = len(gts), len(preds)
        gid0 = self._num_gt
        scores = np.array([s for s, _ in preds], dtype=np.float64)

        # Compress every map to the pixels where some prediction or GT person is non-zero: outside
        # them all maps are background, which only adds to the (0, 0) cell of every confusion matrix.
        hw = int(np.prod(shape)) if shape is not None else 0
        if P + G:
            fgmask = np.zeros(hw, dtype=bool)
            for m in [m for _, m in preds] + gts:
                fgmask |= m.reshape(-1) != 0
            idx = np.flatnonzero(fgmask)
        else:
            idx = np.zeros(0, dtype=np.intp)
        outside = hw - idx.size
        pcs = [np.take(m.reshape(-1), idx) for _, m in preds]
        for pc in pcs:
            _check_pred_range(pc, n)
        gcs = [np.take(g.reshape(-1), idx) for g in gts]

        # --- instance records --------------------------------------------------------------
        best_iou = np.zeros(P, dtype=np.float64)
        best_gt = np.full(P, -1, dtype=np.int64)
        class_iou = np.full((P, n), np.nan, dtype=np.float64)
        if G:
            # gcode[k] = (k * (n + 1) + clean_gt_k) * n with ignored GT labels -> n (a row that is
            # dropped); the confusion-matrix bin of a pixel is then gcode + pred.
            # intp saves a cast per prediction; int32 halves the memory of crowded large images
            use_int32 = G * idx.size > (1 << 23) and G * (n + 1) * n < 2 ** 31
            cdt = np.int32 if use_int32 else np.intp
            gcode = np.empty((G, idx.size), dtype=cdt)
            hist = np.empty((G, n), dtype=np.int64)                     # valid GT pixels per class
            for k, gc in enumerate(gcs):
                clean = self._clean(gc)
                hist[k] = np.bincount(clean, minlength=n + 1)[:n]
                np.multiply(clean + k * (n + 1), n, out=gcode[k], casting="unsafe")
            hist[:, 0] += outside
            parts = (hist[:, 1:] > 0).sum(1).astype(np.int64)
            for i, pc in enumerate(pcs):
                ious = per_class_iou(self._confusions(pc, gcode, hist))  # (G, n)
                miou = _nanmean_rows(ious)
                miou[np.isnan(miou)] = -1.0
                k = int(np.argmax(miou))                                  # first GT on ties
                best_iou[i] = max(miou[k], 0.0)
                best_gt[i] = gid0 + k
                class_iou[i] = ious[k]
        else:
            parts = np.zeros(0, dtype=np.int64)

        # --- semantic confusion ----------------------------------------------------------------
        sem_conf = None
        if shape is not None:
            if pred_semantic is None and gt_semantic is None:      # both composed: stay compressed
                gsem = compose_semantic(gcs, shape=idx.shape)
                order = np.argsort(scores, kind="stable")
                psem = compose_semantic([pcs[j] for j in order], shape=idx.shape)
            else:
                gsem = np.asarray(gt_semantic) if gt_semantic is not None else compose_semantic(gts, shape=shape)
                if pred_semantic is None:
                    order = np.argsort(scores, kind="stable")
                    psem = compose_semantic([preds[j][1] for j in order], shape=shape)
                else:
                    psem = np.asarray(pred_semantic)
                    _check_pred_range(psem, n, "pred_semantic")
                gsem, psem, outside = gsem.reshape(-1), psem.reshape(-1), 0
            codes = self._clean(gsem) * n
            codes += psem.astype(np.intp, copy=False)
            sem_conf = np.bincount(codes, minlength=(n + 1) * n).reshape(n + 1, n)[:n]
            sem_conf[0, 0] += outside

        # commit only after everything succeeded
        self._scores.append(scores)
        self._best_iou.append(best_iou)
        self._best_gt.append(best_gt)
        self._class_iou.append(class_iou)
        self._gt_parts.append(parts)
        if sem_conf is not None:
            self._sem_conf += sem_conf
        self._num_images += 1
        self._num_gt += G
        self._num_pred += P

    def _clean(self, labels: np.ndarray) -> np.ndarray:
        """GT labels as intp with everything outside [0, n) mapped to n (lookup table for 8/16-bit)."""
        n = self.num_classes
        dt = labels.dtype
        if dt.itemsize <= 2:
            lut = self._luts.get(dt)
            if lut is None:
                info = np.iinfo(dt)
                vals = np.arange(info.min, info.max + 1, dtype=np.int64)
                lut = np.where((vals >= 0) & (vals < n), vals, n).astype(np.intp)
                self._luts[dt] = lut
            if dt.kind == "u":
                return np.take(lut, labels)
            return np.take(lut, labels.astype(np.intp) - np.iinfo(dt).min)
        lab = labels.astype(np.intp)
        lab[(lab < 0) | (lab >= n)] = n
        return lab

    def _confusions(self, pred: np.ndarray, gcode: np.ndarray, hist: np.ndarray) -> np.ndarray:
        """Confusion matrices (G, n, n), rows = GT, of one (compressed, flat) prediction against all
        GTs of the image: one bincount over the prediction's foreground pixels, then the predicted-
        background column from the GT histograms ``hist`` (G, n)."""
        n = self.num_classes
        G = gcode.shape[0]
        fg = np.flatnonzero(pred != 0)
        pv = np.take(pred, fg).astype(np.intp)
        step = max(1, _MAX_CODES // max(fg.size, 1))
        chunks = []
        for k0 in range(0, G, step):
            k1 = min(G, k0 + step)
            codes = np.take(gcode[k0:k1], fg, axis=1).astype(np.intp, copy=False)
            codes += pv
            if k0:
                codes -= k0 * (n + 1) * n
            chunks.append(np.bincount(codes.ravel(), minlength=(k1 - k0) * (n + 1) * n))
        joint = (chunks[0] if len(chunks) == 1 else np.concatenate(chunks)).reshape(G, n + 1, n)
        conf = joint[:, :n, :]                          # drop the ignored-GT row
        conf[:, :, 0] = hist - conf[:, :, 1:].sum(2)    # predicted background = the rest
        return conf

    # -- result ------------------------------------------------------------------------------
    def _match(self, order_gid: np.ndarray, order_iou: np.ndarray, t: float) -> np.ndarray:
        """TP flags (in score order) at threshold t: first candidate of each GT wins."""
        cand = np.flatnonzero((order_gid >= 0) & (order_iou > t))
        tp = np.zeros(order_gid.size, dtype=bool)
        if cand.size:
            _, first = np.unique(order_gid[cand], return_index=True)
            tp[cand[first]] = True
        return tp

    def compute(self) -> Dict:
        """Pool all predictions and return the metrics.

        Returns a dict with ``AP50``, ``APvol``, ``PCP50``, ``mIoU`` (floats in [0, 1]; NaN when
        undefined, e.g. no GT person at all), ``AP`` and ``PCP`` ({threshold: value}),
        ``num_images``, ``num_gt``, ``num_pred`` and ``class_iou`` (semantic IoU per class, NaN for
        classes never present in GT nor prediction).
        """
        n = self.num_classes
        cat = lambda xs, shape, dt: np.concatenate(xs) if xs else np.zeros(shape, dt)  # noqa: E731
        scores = cat(self._scores, (0,), np.float64)
        best_iou = cat(self._best_iou, (0,), np.float64)
        best_gt = cat(self._best_gt, (0,), np.int64)
        class_iou = cat(self._class_iou, (0, n), np.float64)
        gt_parts = cat(self._gt_parts, (0,), np.int64)
        num_gt = self._num_gt

        order = np.argsort(-scores, kind="stable")
        o_gid, o_iou, o_ciou = best_gt[order], best_iou[order], class_iou[order]

        ap: Dict[float, float] = {}
        pcp: Dict[float, float] = {}
        for t in sorted(set(self.thresholds) | {0.5}):
            tp = self._match(o_gid, o_iou, t)
            if num_gt == 0:
                ap[t], pcp[t] = float("nan"), float("nan")
                continue
            ctp = np.cumsum(tp)
            cfp = np.cumsum(~tp)
            rec = ctp / num_gt
            prec = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
            ap[t] = voc_ap(rec, prec)
            if tp.any():
                good = (o_ciou[tp][:, 1:] > t).sum(1)
                den = gt_parts[o_gid[tp]]
                ratio = np.where(den > 0, good / np.maximum(den, 1), 0.0)
                pcp[t] = float(ratio.sum() / num_gt)
            else:
                pcp[t] = 0.0

        ciou = per_class_iou(self._sem_conf)
        miou = float(_nanmean_rows(ciou)) if np.isfinite(ciou).any() else float("nan")
        return {
            "AP50": ap[0.5],
            "APvol": float(np.mean([ap[t] for t in self.thresholds])),
            "PCP50": pcp[0.5],
            "mIoU": miou,
            "AP": {t: ap[t] for t in self.thresholds},
            "PCP": {t: pcp[t] for t in self.thresholds},
            "num_images": self._num_images,
            "num_gt": num_gt,
            "num_pred": self._num_pred,
            "class_iou": [float(x) for x in ciou],
        }


def evaluate(preds_per_image: Iterable, gts_per_image: Iterable, num_classes: int,
             pred_semantics: Optional[Iterable] = None, gt_semantics: Optional[Iterable] = None,
             **kw) -> Dict:
    """Evaluate a whole set at once.

    ``preds_per_image[i]`` is the ``pred_persons`` list of image i (``[(score, label_map), ...]``),
    ``gts_per_image[i]`` its list of GT person label maps. Optional ``pred_semantics`` /
    ``gt_semantics`` give per-image semantic maps (or None entries). Other keyword arguments go to
    :class:`MHPEvaluator` (``thresholds``). Returns :meth:`MHPEvaluator.compute`'s dict.
    """
    ev = MHPEvaluator(num_classes, **kw)
    preds_per_image = list(preds_per_image)
    gts_per_image = list(gts_per_image)
    if len(preds_per_image) != len(gts_per_image):
        raise ValueError(f"{len(preds_per_image)} prediction lists for {len(gts_per_image)} images")
    ps = list(pred_semantics) if pred_semantics is not None else [None] * len(gts_per_image)
    gs = list(gt_semantics) if gt_semantics is not None else [None] * len(gts_per_image)
    for p, g, psem, gsem in zip(preds_per_image, gts_per_image, ps, gs):
        ev.add(p, g, pred_semantic=psem, gt_semantic=gsem)
    return ev.compute()
