"""The torch reference decode (the specification) on hand-built feature maps with known answers."""
import math

import numpy as np
import pytest
import torch

from uniparser_sdk.model.configs import DecodeConfig
from uniparser_sdk.model.decode import (bilinear_matrix, center_peaks, decode_official_style, decode_single,
                                        grid_to_feature_index, nearest_index)

S, H, W, D = 8, 16, 16, 5


def unit(i, d=D):
    v = torch.zeros(d)
    v[i] = 1.0
    return v


def two_person_scene():
    """Person A: feature rows/cols 2..9, person B: 6..13, overlapping on 6..9.

    Instance features: A-only e0, B-only e1, overlap (e0+e1)/sqrt2 (cosine 0.707 with both kernels),
    background e3. Category kernels: class 1 = e0, class 2 = e1, class 3 = e2, class 4 = e3.
    Semantic features: A rows 2-5 class 1; A rows 6-9 class 2 (overlap included); B rows 10-13 and
    B cols 10-13 class 3; a 2x2 patch inside A (rows 8-9, cols 2-3) with cosine 0.3 to class 4 only
    (counted by the > 0.1 term, never > 0.5, so its maskness is 0 and class 4 is dropped).
    """
    ins = torch.zeros(D, H, W)
    sem = torch.zeros(D, H, W)
    ins[:] = unit(3)[:, None, None]
    sem[:] = unit(4)[:, None, None]  # background category features: orthogonal to every kernel
    ins[:, 2:10, 2:10] = unit(0)[:, None, None]
    ins[:, 6:14, 6:14] = unit(1)[:, None, None]
    ins[:, 6:10, 6:10] = ((unit(0) + unit(1)) / math.sqrt(2))[:, None, None]
    sem[:, 2:6, 2:10] = unit(0)[:, None, None]
    sem[:, 6:10, 2:10] = unit(1)[:, None, None]
    sem[:, 10:14, 6:14] = unit(2)[:, None, None]
    sem[:, 6:10, 10:14] = unit(2)[:, None, None]
    sem[:, 8:10, 2:4] = (0.3 * unit(3) + math.sqrt(1 - 0.09) * unit(4))[:, None, None]
    kernels = torch.stack([unit(0), unit(1), unit(2), unit(3)])
    center = torch.full((1, S, S), -10.0)
    center[0, 2, 2] = 2.0  # -> feature cell (4, 4): A-only
    center[0, 6, 6] = 1.0  # -> feature cell (12, 12): B-only
    return center, ins, sem, kernels


CFG = DecodeConfig(ctr_score=0.5, mask_thr=0.5, cate_score_thr=0.3, max_instances=10)


def test_two_overlapping_persons_known_answer():
    center, ins, sem, kernels = two_person_scene()
    out = decode_single(center, ins, sem, kernels, (64, 64), (64, 64), CFG)
    assert out.count == 2
    assert out.scores[:2].tolist() == pytest.approx([1 / (1 + math.exp(-2)), 1 / (1 + math.exp(-1))], abs=1e-6)
    assert out.scores[2:].abs().sum() == 0
    assert out.grid_index[:2].tolist() == [18, 54] and (out.grid_index[2:] == -1).all()
    assert out.keep[0].nonzero().flatten().tolist() == [0, 1]  # A keeps classes 1, 2; class 4 dropped
    assert out.keep[1].nonzero().flatten().tolist() == [1, 2]  # B keeps classes 2, 3
    assert out.maskness[0, 0].item() == pytest.approx(1.0, abs=1e-4)
    assert out.maskness[0, 3].item() == 0.0
    a, b = out.part_maps.numpy()
    px = lambda fy, fx: (int(4 * fy + 2), int(4 * fx + 2))  # centre pixel of a feature cell
    assert a[px(3, 5)] == 1 and b[px(3, 5)] == 0
    assert a[px(7, 7)] == 2 and b[px(7, 7)] == 2  # the overlap belongs to both persons
    assert a[px(12, 9)] == 0 and b[px(12, 9)] == 3
    assert a[px(8, 2)] == 0  # dropped class 4 region is background, not another class
    assert a[px(0, 0)] == 0 and b[px(15, 0)] == 0
    # region sizes: A's class 1 block is 4x8 cells -> 16x32 pixels, corners soften by bilinear
    assert 16 * 32 - 4 <= (a == 1).sum() <= 16 * 32


def test_no_person():
    center, ins, sem, kernels = two_person_scene()
    out = decode_single(torch.full_like(center, -10.0), ins, sem, kernels, (64, 64), (64, 64), CFG)
    assert out.count == 0 and out.part_maps.shape == (0, 64, 64)
    assert (out.grid_index == -1).all() and out.scores.abs().sum() == 0 and not out.keep.any()


def test_one_by_one_image():
    center, ins, sem, kernels = two_person_scene()
    ins[:] = unit(0)[:, None, None]  # person A covers everything
    sem[:] = unit(1)[:, None, None]  # all class 2
    out = decode_single(center, ins, sem, kernels, (64, 64), (1, 1), CFG)
    assert out.count == 2 and out.part_maps.shape == (2, 1, 1)
    assert out.part_maps[0, 0, 0].item() == 2


def test_max_instances_cuts_lowest_scores():
    center, ins, sem, kernels = two_person_scene()
    center[0, 6, 1] = 3.0  # a third, strongest peak (far enough from the others)
    out = decode_single(center, ins, sem, kernels, (64, 64), (64, 64), DecodeConfig(0.5, 0.5, 0.3, 2))
    assert out.count == 2 and out.grid_index.tolist() == [6 * 8 + 1, 18]


def test_peak_rules():
    logits = torch.full((8, 8), -10.0)
    logits[1, 1] = logits[1, 2] = 1.0  # equal neighbours: both pass the 2x2 and 5x5 tests
    logits[5, 5] = 0.5
    logits[5, 6] = 0.8  # (5,5) has a larger right neighbour: passes 2x2 (looks up/left only), fails 5x5
    logits[6, 7] = 0.7  # smaller than its upper-left neighbour (5,6): fails 2x2
    scores, idx, count = center_peaks(logits, 0.5, 10)
    assert count == 3
    assert idx[:3].tolist() == [1 * 8 + 1, 1 * 8 + 2, 5 * 8 + 6]  # ties: ascending flat index
    assert scores[:3].tolist() == pytest.approx([torch.sigmoid(torch.tensor(v)).item() for v in (1.0, 1.0, 0.8)])
    # threshold is strict
    _, _, count = center_peaks(logits, float(torch.sigmoid(torch.tensor(1.0))), 10)
    assert count == 0


def test_grid_to_feature_index_is_integer_arithmetic():
    idx = torch.tensor([0, 3 * 40 + 7, 39 * 40 + 39])
    got = grid_to_feature_index(idx, 40, 100, 168)
    assert got.tolist() == [0, (3 * 100 // 40) * 168 + (7 * 168 // 40), (39 * 100 // 40) * 168 + 39 * 168 // 40]


def test_interpolation_operators_match_torch():
    x = torch.randn(1, 1, 7, 1)
    for out in (3, 7, 28, 31):
        ref = torch.nn.functional.interpolate(x, size=(out, 1), mode="bilinear", align_corners=False)[0, 0, :, 0]
        got = (bilinear_matrix(out, 7) @ x[0, 0, :, 0].double()).float()
        assert torch.allclose(got, ref, atol=1e-6)
        ref_n = torch.nn.functional.interpolate(torch.arange(7.0).view(1, 1, 7, 1), size=(out, 1), mode="nearest")
        assert nearest_index(out, 7).tolist() == ref_n.flatten().long().tolist()
    # a pair where torch's float32 rule and float64 differ (tests/test_nearest.py checks hundreds)
    ref = torch.nn.functional.interpolate(torch.arange(750.0).view(1, 1, 750, 1), size=(1080, 1), mode="nearest")
    assert nearest_index(1080, 750).tolist() == ref.flatten().long().tolist() and nearest_index(1080, 750)[180] == 124


def structured_random(seed, h=40, w=52, d=16, c=12, persons=3):
    g = torch.Generator().manual_seed(seed)
    ins = torch.rand(d, h, w, generator=g) * 0.3
    sem = torch.rand(d, h, w, generator=g) * 0.3
    kernels = torch.randn(c, d, generator=g)
    center = torch.full((1, S * 5, S * 5), -6.0)
    for p in range(persons):
        y0 = int(torch.randint(0, h - 15, (1,), generator=g)); x0 = int(torch.randint(0, w - 15, (1,), generator=g))
        y1, x1 = y0 + int(torch.randint(8, 15, (1,), generator=g)), x0 + int(torch.randint(8, 15, (1,), generator=g))
        ins[p, y0:y1, x0:x1] += 3.0
        cats = torch.randperm(c, generator=g)[:3]
        for j, cat in enumerate(cats):
            ys = y0 + (y1 - y0) * j // 3
            ye = y0 + (y1 - y0) * (j + 1) // 3
            sem[:, ys:ye, x0:x1] = 2 * kernels[cat][:, None, None] + 0.4 * torch.rand(d, ye - ys, x1 - x0, generator=g)
        cy, cx = ((y0 + y1) // 2) * 40 // h, ((x0 + x1) // 2) * 40 // w
        center[0, cy, cx] = 1.0 + p
    return center, ins, sem, kernels


@pytest.mark.parametrize("seed,mask_thr", [(0, 0.5), (1, 0.5), (2, 0.5), (0, 0.4), (1, 0.6)])
@pytest.mark.parametrize("img,ori", [((157, 205), (80, 104)),  # shrink: bilinear before argmax
                                     ((160, 208), (160, 208)),  # equal
                                     ((157, 205), (314, 410)),  # enlarge: nearest after argmax
                                     ((155, 199), (233, 301)),
                                     ((160, 208), (208, 160)),  # equal area, other shape: no resize
                                     ((150, 200), (275, 353))])  # enlarge where float32 nearest matters
def test_reference_equals_official_style_loop(seed, mask_thr, img, ori):
    center, ins, sem, kernels = structured_random(seed)
    cfg = DecodeConfig(ctr_score=0.5, mask_thr=mask_thr, cate_score_thr=0.3, max_instances=20)
    out = decode_single(center, ins, sem, kernels, img, ori, cfg)
    ref = decode_official_style(center, ins, sem, kernels, img, ori, cfg)
    assert out.count >= 2 and out.keep.sum() >= 3  # persons and categories actually survive
    assert (out.part_maps > 0).sum() > 500
    assert out.part_maps.shape == ref.shape == (out.count,) + ori
    assert torch.equal(out.part_maps, ref)  # exact (tests/test_decode_spec.py: against a loop written from DESIGN)
