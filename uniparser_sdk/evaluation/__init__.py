"""Evaluation: the official MHP multi-human parsing metrics (AP^p_50, AP^p_vol, PCP_50, mIoU).

numpy only (no torch). See :mod:`uniparser_sdk.evaluation.mhp_eval`.
"""
from .mhp_eval import (
    DEFAULT_THRESHOLDS,
    MHPEvaluator,
    compose_semantic,
    confusion_matrix,
    evaluate,
    per_class_iou,
    voc_ap,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "MHPEvaluator",
    "compose_semantic",
    "confusion_matrix",
    "evaluate",
    "per_class_iou",
    "voc_ap",
]
