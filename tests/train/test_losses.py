"""Each loss term (DESIGN §4 items 4-10) on hand-built features and targets, expected values worked out
by hand in the test: a 2 x 2 feature map (pixels 0..3 row-major), grid S = 2 (so F_ins resized to S x S
is F_ins itself and grid cell k is pixel k), 3 categories, a batch of two images."""
import math

import pytest
import torch

from uniparser_sdk.train.losses import AVG_EPS, LossConfig, UniParserLoss, dice_loss, sigmoid_focal_loss

R = 1 / math.sqrt(2)
NUM_CLASSES = 4


def e(i, d=4):
    v = torch.zeros(d)
    v[i] = 1.0
    return v


def feats(vectors):
    """(1, D, 2, 2) from four pixel vectors."""
    return torch.stack(vectors, 1).reshape(1, -1, 2, 2)


def batch(part_instance=(0, 1, 0, 0)):
    # image 0 instance features: px0 = px1 = e0, px2 = (e1 - e0)/sqrt2, px3 = e1
    ins0 = feats([e(0), e(0), (e(1) - e(0)) * R, e(1)])
    # image 0 semantic features: px0 = e0, px1 = e1, px2 = -e2, px3 = (e0 + e1)/sqrt2
    sem0 = feats([e(0), e(1), -e(2), (e(0) + e(1)) * R])
    ins1 = feats([e(3)] * 4)
    sem1 = feats([e(1)] * 4)  # image 1: no person; its category-2 map is 1 everywhere
    ins, sem = torch.cat([ins0, ins1]), torch.cat([sem0, sem1])
    kernels = torch.stack([e(0), e(1), e(2)])  # K1 = e0, K2 = e1, K3 = e2
    center_t = torch.zeros(2, 1, 2, 2)
    center_t.view(2, -1)[0, [0, 1, 3]] = 1  # positive cells 0, 1, 3 of image 0
    L = torch.tensor
    targets = {
        "center": center_t,
        # pairs: (cell 0, p0), (cell 1, p0), (cell 1, p1), (cell 3, p1)
        "pair_cell": [L([0, 1, 1, 3]), L([], dtype=torch.long)],
        "pair_person": [L([0, 0, 1, 1]), L([], dtype=torch.long)],
        "instances": [L([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=torch.uint8).reshape(2, 2, 2),
                      torch.zeros(0, 2, 2, dtype=torch.uint8)],
        "semantic": [L([[1, 1], [0, 0]], dtype=torch.uint8), torch.zeros(2, 2, dtype=torch.uint8)],
        # parts (category, owner): (1, p0), (1, p1), (2, p1), (3, p0)
        "part_masks": [L([[1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0], [0, 0, 1, 0]], dtype=torch.uint8).reshape(4, 2, 2),
                       torch.zeros(0, 2, 2, dtype=torch.uint8)],
        "part_category": [L([1, 1, 2, 3]), L([], dtype=torch.long)],
        "part_instance": [L(list(part_instance)), L([], dtype=torch.long)],
        "part_cell": [L([[0, 0], [1, 1], [1, 0], [1, 0]]), torch.zeros(0, 2, dtype=torch.long)],
        "person_cell": [L([0, 3]), L([], dtype=torch.long)],
    }
    return torch.zeros(2, 1, 2, 2), ins, sem, kernels, targets


def run(cfg, *args):
    return {k: float(v) for k, v in UniParserLoss(NUM_CLASSES, cfg)(*args).items()}


def dice(pg, pp, gg):
    """Official Dice from the three sums, eps 1e-3 in each."""
    return 1 - 2 * (pg + 1e-3) / ((pp + 1e-3) + (gg + 1e-3))


def test_dice_clamps_negatives_and_adds_eps_to_each_sum():
    assert float(dice_loss(torch.tensor([[0.5, 0.5]]), torch.tensor([[1.0, 0.0]]))) == pytest.approx(
        1 - 2 * 0.501 / (0.501 + 1.001), rel=1e-6)
    assert float(dice_loss(torch.tensor([[-1.0, 1.0]]), torch.tensor([[0.0, 1.0]]))) == pytest.approx(0.0, abs=1e-7)
    assert float(dice_loss(torch.zeros(1, 3), torch.zeros(1, 3))) == pytest.approx(0.0, abs=1e-7)  # 1 - 0.002/0.002


def test_focal_hand_values():
    v = sigmoid_focal_loss(torch.zeros(2), torch.tensor([1.0, 0.0]), 0.25, 2.0)
    assert v.tolist() == pytest.approx([0.25 * 0.25 * math.log(2), 0.75 * 0.25 * math.log(2)])


def test_config_defaults_per_dataset():
    mhp, cihp = LossConfig.for_classes(59), LossConfig.for_classes(20)
    assert (mhp.center_weight, mhp.neg_weight, mhp.metric_weight, mhp.part_feature_metric) == (1.0, 2.0, 1.0, False)
    assert (cihp.center_weight, cihp.neg_weight, cihp.metric_weight, cihp.part_feature_metric) == (0.2, 0.0, 1.0, True)
    assert (mhp.ins_weight, mhp.sem_weight, mhp.parsing_weight, mhp.dice_eps) == (3.0, 3.0, 3.0, 1e-3)
    with pytest.raises(ValueError):
        LossConfig().updated(bogus=1.0)


def expected_terms():
    # center: all logits 0; 3 positive cells, 5 negative cells; / (3 + 1 + eps)
    center = (3 * 0.25 + 5 * 0.75) * 0.25 * math.log(2) / (4 + AVG_EPS)
    # ins: cosine maps  cell 0 / cell 1 kernel e0: [1, 1, -R, 0];  cell 3 kernel e1: [0, 0, R, 1]
    ins = (dice(2, 2, 2) + dice(2, 2, 2)  # (cell 0, p0), (cell 1, p0): perfect
           + dice(0, 2, 2)  # (cell 1, p1): [1, 1, 0, 0] (clamped) vs [0, 0, 1, 1]
           + dice(R + 1, 0.5 + 1, 2)) / 4  # (cell 3, p1)
    # sem: category maps  Q1 = [1, 0, 0, R], Q2 = [0, 1, 0, R], Q3 = [0, 0, -1, 0] (image 0); image 1:
    # Q1 = Q3 = 0, Q2 = 1. Only (image 0, category 1) is present: target [1, 1, 0, 0]
    sem = dice(1, 1.5, 2)
    # neg: absent maps of the whole batch, values > 0.1: image 0 Q2 -> 1, R; image 1 Q2 -> 1, 1, 1, 1
    neg = (1 + 0.5 + 4) / 6
    return center, ins, sem, neg


def test_every_term_mhp_config_official_pairing():
    cfg = LossConfig.for_classes(59)
    out = run(cfg, *batch())
    center, ins, sem, neg = expected_terms()
    # parsing: instance maps = max over a person's pairs: p0 = [1, 1, -R, 0], p1 = [1, 1, R, 1];
    # official part_instance (0, 1, 0, 0): part (2, p1) is multiplied by p0's map
    parsing = (dice(1, 1, 2)  # (1, p0): p0 * Q1 = [1, 0, 0, 0] vs [1, 1, 0, 0]
               + dice(R, 1.5, 1)  # (1, p1): p1 * Q1 = [1, 0, 0, R] vs [0, 0, 0, 1]
               + dice(0, 1, 1)  # (2, p1) with p0: [0, 1, 0, 0] vs [0, 0, 1, 0]
               + dice(R, 0.5, 1)) / 4  # (3, p0): p0 * Q3 = [0, 0, R, 0]: the product of two negatives counts
    # metric: category kernels orthogonal (nothing above the margin); person kernels at cells 0, 3: e0, e1
    assert out["center"] == pytest.approx(center, rel=1e-6)
    assert out["ins"] == pytest.approx(ins, rel=1e-6)
    assert out["sem"] == pytest.approx(sem, rel=1e-6)
    assert out["neg"] == pytest.approx(neg, rel=1e-6)
    assert out["parsing"] == pytest.approx(parsing, rel=1e-6)
    assert out["metric"] == 0.0
    total = 1.0 * center + 3 * ins + 3 * sem + 2.0 * neg + 3 * parsing + 1.0 * 0.0
    assert out["loss"] == pytest.approx(total, rel=1e-6)


def test_corrected_pairing_and_cihp_config():
    cfg = LossConfig.for_classes(20)
    out = run(cfg, *batch(part_instance=(0, 1, 1, 0)))  # corrected: every part with its owner
    center, ins, sem, neg = expected_terms()
    parsing = (dice(1, 1, 2) + dice(R, 1.5, 1)
               + dice(0, 1.5, 1)  # (2, p1) with p1: [0, 1, 0, R] vs [0, 0, 1, 0]
               + dice(R, 0.5, 1)) / 4
    # part-feature metric term: part (1, p0) centre cell (0, 0) = e0: mean cosine over its pixels
    # px0, px1 = (1 + 0) / 2 -> 1 - 0.5 = 0.5 > 0.04 -> 0.25; the other parts' pixels equal their centre -> 0
    assert out["parsing"] == pytest.approx(parsing, rel=1e-6)
    assert out["metric"] == pytest.approx(0.25, rel=1e-6)
    total = 0.2 * center + 3 * ins + 3 * sem + 0.0 * neg + 3 * parsing + 0.25
    assert out["loss"] == pytest.approx(total, rel=1e-6) and out["neg"] == pytest.approx(neg, rel=1e-6)


def test_metric_is_one_mean_over_selected_values():
    center, ins, sem, kernels, targets = batch()
    kernels = torch.stack([e(0), (e(0) + e(1)) * R, 0.03 * e(0) + math.sqrt(1 - 0.03 ** 2) * e(3)])
    # category pairs (lower triangle): (2, 1) cos R -> 0.5; (3, 1) cos 0.03 below the margin; (3, 2) 0.03 R
    # persons at cells 0, 1, 3 (kernels e0, e0, e1) plus an empty person's cell 0: pairs with cos 1: (1, 0),
    # (3, 0), (3, 1) -> 1 each; the rest 0
    targets["person_cell"][0] = torch.tensor([0, 1, 3, 0])
    out = run(LossConfig.for_classes(59), center, ins, sem, kernels, targets)
    assert out["metric"] == pytest.approx((0.5 + 3 * 1.0) / 4, rel=1e-6)


def test_gradients_reach_every_input_and_size_mismatch_is_explained():
    center, ins, sem, kernels, targets = batch()
    ins = (ins + 0.1 * torch.randn_like(ins)).requires_grad_()
    sem = (sem + 0.1 * torch.randn_like(sem)).requires_grad_()
    kernels = (kernels + 0.1 * torch.randn_like(kernels)).requires_grad_()
    center = center.requires_grad_()
    out = UniParserLoss(NUM_CLASSES, LossConfig.for_classes(59))(center, ins, sem, kernels, targets)
    out["loss"].backward()
    for t in (center, ins, sem, kernels):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
    big = torch.zeros(2, 4, 4, 4)
    with pytest.raises(ValueError, match="feature size"):
        UniParserLoss(NUM_CLASSES)(center.detach(), big, big, kernels.detach(), targets)


def test_light_model_end_to_end_with_collated_targets():
    import numpy as np

    from uniparser_sdk.model.configs import get_config
    from uniparser_sdk.model.uniparser import UniParser
    from uniparser_sdk.train.collate import Collator

    torch.manual_seed(0)
    person = np.zeros((64, 64), np.uint8)
    person[8:56, 16:48] = 5
    sample = {"id": "a", "image": np.zeros((64, 64, 3), np.float32), "persons": [person]}
    for name in ("tiny", "tiny-light"):
        cfg = get_config(name)
        b = Collator(cfg.num_grid, cfg.num_classes, light=cfg.light)([sample])
        model = UniParser(cfg)
        out = UniParserLoss(cfg.num_classes)(*model(b["images"]), model.seg_kernels, b)
        assert all(math.isfinite(float(v.detach())) for v in out.values())
