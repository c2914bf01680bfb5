"""Constants every producer and consumer of a UniParser graph shares (DESIGN §2, §3). Pure data.

The decode's fixed numbers live here once: the torch reference, the in-graph decode, the numpy
finishing, the C++/CUDA kernels' Python side, the losses and the exporters import them from here.
"""
from __future__ import annotations

# ---- preprocessing (official test pipeline) ----------------------------------------------------------
MEAN_RGB = (123.675, 116.28, 103.53)
STD_RGB = (58.395, 57.12, 57.375)
DEFAULT_SCALE = (1333, 800)  # keep-ratio test scale: (long side limit, short side limit)
SIZE_DIVISOR = 32  # the network input is zero-padded bottom/right to a multiple of this
FEATURE_STRIDE = 4  # head features (ins_feats, sem_feats) are at 1/4 of the padded input

# ---- decode (DESIGN §3) --------------------------------------------------------------------------------
NUM_GRID = 40  # S: the center heatmap is S x S
NORM_EPS = 1e-12  # cosine normalisation: x / max(|x|, NORM_EPS)
MASKNESS_EPS = 1e-5  # maskness = sum(P [P > mask_thr]) / (count(P > COUNT_THR) + MASKNESS_EPS)
# mask_thr itself is a run-time decode parameter (DEFAULT_DECODE below) used in all three places of
# DESIGN §3 (instance mask, maskness numerator, foreground test of step 5): no fixed 0.5 anywhere.
COUNT_THR = 0.1  # fixed threshold of the maskness denominator
DEFAULT_MAX_INSTANCES = 100  # K slots
MAX_INSTANCES_LIMIT = 3840  # TensorRT TopK: K < 3840

#: the run-time thresholds and their valid ranges; ``decode_params`` holds the first three in this order
DECODE_PARAM_ORDER = ("ctr_score", "mask_thr", "cate_score_thr")
DECODE_RANGES = {"ctr_score": (0.0, 1.0), "mask_thr": (0.0, 1.0), "cate_score_thr": (0.0, 1.0)}
DEFAULT_DECODE = {"ctr_score": 0.2, "mask_thr": 0.5, "cate_score_thr": 0.3,
                  "max_instances": DEFAULT_MAX_INSTANCES}
