"""How far a low-precision model's results are from the fp32 model's: the low-precision parity report.

:func:`compare_results` matches the persons of two result lists (same images) greedily by mask IoU
(>= 0.5, highest-scored reference person first; two persons with empty masks -- every category
dropped by the maskness test -- match) and reports: persons (reference, candidate, matched),
score drift of matched persons, mask agreement (pixels where both say "person" or both say "not this
person", over the union of all persons' masks of the image) and part agreement (pixels with the same part
label, same domain), and keep agreement (matched persons with the same set of part labels).
:func:`synthetic_metrics` evaluates a parser on held-out synthetic scenes (AP^p_50, AP^p_vol, PCP_50).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["compare_results", "synthetic_metrics", "HELD_OUT_SEED"]

HELD_OUT_SEED = 31337  # the demo's held-out synthetic set (never used in training)


def _match(ref, cand, iou_thr: float = 0.5) -> list[tuple[int, int, float]]:
    pairs, used = [], set()
    cmasks = [p.mask for p in cand.persons]
    for i, rp in enumerate(ref.persons):
        rm = rp.mask
        best, best_iou = None, iou_thr
        for j, cm in enumerate(cmasks):
            if j in used:
                continue
            union = np.logical_or(rm, cm).sum()
            iou = np.logical_and(rm, cm).sum() / union if union else 1.0  # two empty persons agree
            if iou >= best_iou:
                best, best_iou = j, iou
        if best is not None:
            used.add(best)
            pairs.append((i, best, float(best_iou)))
    return pairs


def compare_results(reference: Sequence, candidate: Sequence) -> dict:
    """Agreement of ``candidate`` ParseResults with ``reference`` ones (same images, same order)."""
    if len(reference) != len(candidate):
        raise ValueError(f"{len(reference)} reference results but {len(candidate)} candidate results")
    n_ref = n_cand = n_match = 0
    drift = []
    mask_eq = mask_n = part_eq = keep_eq = 0
    for ref, cand in zip(reference, candidate):
        if ref.image_shape != cand.image_shape:
            raise ValueError(f"image shapes differ: {ref.image_shape} vs {cand.image_shape}")
        pairs = _match(ref, cand)
        n_ref += ref.num_persons
        n_cand += cand.num_persons
        n_match += len(pairs)
        domain = np.zeros(ref.image_shape, bool)
        for p in list(ref.persons) + list(cand.persons):
            domain |= p.mask
        for i, j, _ in pairs:
            rp, cp = ref.persons[i], cand.persons[j]
            drift.append(abs(rp.score - cp.score))
            mask_eq += int(((rp.mask == cp.mask) & domain).sum())
            part_eq += int(((rp.parts == cp.parts) & domain).sum())
            keep_eq += int(set(rp.part_ids) == set(cp.part_ids))
        # unmatched persons disagree on their whole mask
        mask_n += int(domain.sum()) * max(ref.num_persons, cand.num_persons)
    matched_frac = n_match / max(n_ref, n_cand) if max(n_ref, n_cand) else 1.0
    return {
        "images": len(reference), "persons_reference": n_ref, "persons_candidate": n_cand,
        "persons_matched": n_match, "persons_matched_fraction": matched_frac,
        "score_drift_max": float(max(drift)) if drift else 0.0,
        "score_drift_mean": float(np.mean(drift)) if drift else 0.0,
        "mask_agreement": mask_eq / mask_n if mask_n else 1.0,
        "part_agreement": part_eq / mask_n if mask_n else 1.0,
        "keep_agreement": keep_eq / n_match if n_match else 1.0,
    }


def synthetic_metrics(parser, num_images: int = 100, seed: int = HELD_OUT_SEED, size=(288, 384),
                      persons=(1, 4), progress: bool = False) -> dict:
    """AP^p_50 / AP^p_vol / PCP_50 / mIoU of ``parser`` on procedural scenes with the model's label set
    (CIHP: 20 classes, MHPv2: 59)."""
    from ..data.synthetic import SyntheticScenes
    from .mhp_eval import MHPEvaluator

    n = len(parser.classes or ())
    label_set = {20: "cihp", 59: "mhp"}.get(n)
    if label_set is None:
        raise ValueError(f"synthetic scenes carry CIHP (20) or MHPv2 (59) labels; the model has {n} classes")
    scenes = SyntheticScenes(num_images, seed=seed, size=tuple(size), persons=tuple(persons), label_set=label_set)
    ev = MHPEvaluator(n)
    it = range(len(scenes))
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc="synthetic eval", unit="img")
    for i in it:
        sample = scenes[i]
        res = parser.predict(sample["image"])
        ev.add([(p.score, p.parts) for p in res.persons], sample["persons"], pred_semantic=res.semantic)
    m = ev.compute()
    return {k: m[k] for k in ("AP50", "APvol", "PCP50", "mIoU") if k in m}
