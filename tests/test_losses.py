"""Each loss term on known values: a perfect prediction gives ~0, hand-computed cases give their value."""
import math

import numpy as np
import pytest
import torch

from uniparser_sdk.train.collate import Collator
from uniparser_sdk.train.losses import LossConfig, UniParserLoss, dice_loss, metric_term, sigmoid_focal_loss

EPS = 1e-9  # Dice eps small enough for exact hand values
NUM_CLASSES = 5  # categories 1..4; 4 is absent from the scene
S = 4  # 32 x 32 image -> 8 x 8 features, 2 feature cells per grid cell


def e(i, d=8):
    v = torch.zeros(d)
    v[i] = 1.0
    return v


def scene():
    """Two persons side by side below a background band (feature rows 0-1).
    Person A: feature cols 0-3, part 1 (rows 2-4) over part 2 (rows 5-7);
    person B: cols 4-7, part 1 over part 3."""
    a = np.zeros((32, 32), np.uint8)
    b = np.zeros((32, 32), np.uint8)
    a[8:20, 0:16], a[20:32, 0:16] = 1, 2
    b[8:20, 16:32], b[20:32, 16:32] = 1, 3
    sample = {"id": "x", "image": np.zeros((32, 32, 3), np.float32), "persons": [a, b]}
    batch = Collator(num_grid=S, num_classes=NUM_CLASSES, sigma=0.2)([sample])
    lab = batch["labels"][0].long()  # (2, 8, 8)
    return batch, lab


def perfect_outputs(batch, lab):
    """Features whose cosine maps equal the GT masks exactly."""
    ins = torch.zeros(1, 8, 8, 8)
    sem = torch.zeros(1, 8, 8, 8)
    ins[0, :] = e(2)[:, None, None]  # background direction
    sem[0, :] = e(7)[:, None, None]
    for p in range(2):
        m = lab[p] > 0
        ins[0][:, m] = e(p)[:, None]
        for c in (1, 2, 3):
            sem[0][:, lab[p] == c] = e(2 + c)[:, None]
    kernels = torch.stack([e(3), e(4), e(5), e(6)])  # category c -> e(2 + c)
    center = torch.full((1, 1, S, S), -30.0)
    center.view(-1)[batch["pos_index"][0]] = 30.0
    return center, ins, sem, kernels


def run(batch, center, ins, sem, kernels, **cfg):
    crit = UniParserLoss(NUM_CLASSES, LossConfig(dice_eps=EPS, **cfg))
    targets = {k: batch[k] for k in ("center", "pos_index", "pos_person", "labels")}
    return {k: float(v) for k, v in crit(center, ins, sem, kernels, targets).items()}


def test_dice_hand_values():
    g = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    assert float(dice_loss(torch.tensor([[1.0, 0.0, 0.0, 0.0]]), g, 0.0)) == pytest.approx(1 / 3)
    assert float(dice_loss(torch.tensor([[0.5, 0.5]]), torch.tensor([[1.0, 0.0]]), 0.0)) == pytest.approx(1 / 3)
    assert float(dice_loss(g, g, 1e-3)) == pytest.approx(0.0, abs=1e-3)
    assert float(dice_loss(-g, g, 0.0)) == pytest.approx(2.0)


def test_focal_hand_values():
    x = torch.zeros(2)
    t = torch.tensor([1.0, 0.0])
    v = sigmoid_focal_loss(x, t, 0.25, 2.0)
    assert v.tolist() == pytest.approx([0.25 * 0.25 * math.log(2), 0.75 * 0.25 * math.log(2)])
    assert float(sigmoid_focal_loss(torch.tensor([20.0, -20.0]), t).sum()) < 1e-9


def test_metric_hand_values():
    k = torch.stack([e(0), (e(0) + e(1)) / math.sqrt(2), e(2)])
    s, n = metric_term(k, 0.04)
    assert n == 6 and float(s) == pytest.approx(2 * 0.5)  # only the 45-degree pair, both orders
    s, n = metric_term(k, 0.8)
    assert float(s) == 0.0  # cos 0.707 below the margin
    s, n = metric_term(k, 0.04, groups=torch.tensor([0, 0, 1]))
    assert n == 4 and float(s) == 0.0  # same-group pair excluded


def test_targets_of_the_scene():
    batch, lab = scene()
    # A: centre (20, 8) -> cell (2, 1), sigma box cols 6.4..9.6 -> cells 0..1; B mirrored
    cells = sorted((int(i) // S, int(i) % S) for i in batch["pos_index"][0])
    assert cells == [(2, 0), (2, 1), (2, 2), (2, 3)]


@pytest.mark.parametrize("mode", ["pred", "gt"])
def test_perfect_prediction_gives_zero(mode):
    batch, lab = scene()
    out = run(batch, *perfect_outputs(batch, lab), parsing_mask=mode)
    for k in ("center", "ins", "sem", "neg", "parsing", "metric", "loss"):
        assert out[k] == pytest.approx(0.0, abs=1e-6), (k, out)


def test_center_focal_all_zero_logits():
    batch, lab = scene()
    center, ins, sem, kernels = perfect_outputs(batch, lab)
    out = run(batch, torch.zeros_like(center), ins, sem, kernels)
    # 4 positives, 12 negatives, divided by (4 + 1)
    expected = (4 * 0.25 * 0.25 + 12 * 0.75 * 0.25) * math.log(2) / 5
    assert out["center"] == pytest.approx(expected, rel=1e-6)
    assert out["ins"] == pytest.approx(0.0, abs=1e-6)


def test_semantic_and_parsing_dice_hand_values():
    batch, lab = scene()
    center, ins, sem, kernels = perfect_outputs(batch, lab)
    # category-1 pixels: cosine 0.6 with K_1 (the rest of the vector along the background direction)
    part1 = (lab == 1).any(0)
    sem[0][:, part1] = (0.6 * e(3) + 0.8 * e(7))[:, None]
    out = run(batch, center, ins, sem, kernels)
    d = 1 - 2 * 0.6 / (0.36 + 1.0)  # Dice of a constant 0.6 prediction on its mask
    assert out["sem"] == pytest.approx(d / 3, rel=1e-6)  # present categories 1, 2, 3
    # parsing pairs: 4 positives x 2 categories of their person, half of them category 1
    assert out["parsing"] == pytest.approx(d / 2, rel=1e-6)
    assert out["neg"] == pytest.approx(0.0, abs=1e-9)


def test_negative_term_and_category_metric_hand_values():
    batch, lab = scene()
    center, ins, sem, kernels = perfect_outputs(batch, lab)
    kernels[3] = e(3)  # the absent category 4 looks exactly like category 1
    out = run(batch, center, ins, sem, kernels)
    assert out["neg"] == pytest.approx(1.0)  # cos = 1 on every category-1 pixel (> 0.1), 0 elsewhere
    assert out["metric"] == pytest.approx(2 / 12)  # pair (1, 4) in both orders over 4 x 3 ordered pairs
    # below the 0.1 threshold nothing counts
    kernels[3] = 0.03 * e(3) + math.sqrt(1 - 0.03 ** 2) * e(6)  # below the metric margin 0.04 too
    out = run(batch, center, ins, sem, kernels)
    assert out["neg"] == 0.0 and out["metric"] == pytest.approx(0.0)


def test_instance_dice_and_instance_metric_hand_values():
    batch, lab = scene()
    center, ins, sem, kernels = perfect_outputs(batch, lab)
    # person B's bottom band (feature rows 6-7: 8 of its 24 pixels, away from the kernel rows 4-5)
    # at cosine 0.5 with its kernels
    band = torch.zeros(8, 8, dtype=torch.bool)
    band[6:8, 4:8] = True
    ins[0][:, band] = (0.5 * e(1) + math.sqrt(0.75) * e(6))[:, None]
    out = run(batch, center, ins, sem, kernels)
    dice_b = 1 - 2 * (16 + 8 * 0.5) / ((16 + 8 * 0.25) + 24)
    assert out["ins"] == pytest.approx(dice_b / 2, rel=1e-6)  # 2 positives of A (0) + 2 of B
    assert out["metric"] == pytest.approx(0.0, abs=1e-9)
    # instance kernels of A and B at 45 degrees: every cross-person pair has cos^2 = 0.5
    center, ins, sem, kernels = perfect_outputs(batch, lab)
    ins[0][:, lab[1] > 0] = ((e(0) + e(1)) / math.sqrt(2))[:, None]
    out = run(batch, center, ins, sem, kernels)
    assert out["metric"] == pytest.approx(0.5, rel=1e-6)


def test_weights_and_gradients():
    batch, lab = scene()
    center, ins, sem, kernels = perfect_outputs(batch, lab)
    ins = (ins + 0.3 * torch.randn_like(ins)).requires_grad_()
    sem = (sem + 0.3 * torch.randn_like(sem)).requires_grad_()
    kernels = (kernels + 0.3 * torch.randn_like(kernels)).requires_grad_()
    center = torch.zeros_like(center).requires_grad_()
    cfg = LossConfig.for_classes(20)
    assert cfg.center_weight == 0.2 and LossConfig.for_classes(59).center_weight == 1.0
    crit = UniParserLoss(NUM_CLASSES, LossConfig(center_weight=0.5, metric_weight=2.0))
    targets = {k: batch[k] for k in ("center", "pos_index", "pos_person", "labels")}
    out = crit(center, ins, sem, kernels, targets)
    w = crit.cfg.weights()
    assert float(out["loss"].detach()) == pytest.approx(sum(w[k] * float(out[k].detach()) for k in w), rel=1e-6)
    out["loss"].backward()
    for t in (center, ins, sem, kernels):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        LossConfig().updated(bogus=1.0)


def test_image_without_persons_and_light_feature_size():
    batch, lab = scene()
    center, ins, sem, kernels = perfect_outputs(batch, lab)
    empty = Collator(num_grid=S, num_classes=NUM_CLASSES)(
        [{"id": "e", "image": np.zeros((32, 32, 3), np.float32), "persons": []}])
    out = run(empty, center, ins, sem, kernels)
    assert out["ins"] == 0.0 and out["parsing"] == 0.0 and out["sem"] == 0.0
    assert out["neg"] > 0  # every category is absent; the scene's features still match 3 of them
    # light variant: features one cell larger on each side; targets are zero-padded bottom/right
    big_ins = torch.zeros(1, 8, 10, 10)
    big_ins[0, :] = e(2)[:, None, None]
    big_ins[:, :, :8, :8] = ins
    big_sem = torch.zeros(1, 8, 10, 10)
    big_sem[0, :] = e(7)[:, None, None]
    big_sem[:, :, :8, :8] = sem
    out = run(batch, center, big_ins, big_sem, kernels)
    assert out["sem"] == pytest.approx(0.0, abs=1e-6) and out["neg"] == 0.0
    assert all(math.isfinite(v) for v in out.values())
