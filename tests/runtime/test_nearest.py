"""The nearest-neighbour source index of step 5 against torch's own ``F.interpolate(mode="nearest")``.

torch computes ``scale = float32(in) / float32(out)`` and ``src = min(floor(float32(dst) * scale),
in - 1)`` with the product rounded to float32; float64 picks other rows for real photo sizes. Both our
implementations (torch reference, numpy runtime) must agree with torch EXACTLY on every size pair.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from uniparser_sdk.model import decode as D
from uniparser_sdk.runtime import finish as P
from uniparser_sdk.runtime.geometry import ImageMeta, labels_to_original, nearest_index, rescale_size

# real photo / video sizes (H, W), landscape and portrait, plus odd ones
PHOTOS = [(480, 640), (640, 480), (720, 1280), (1280, 720), (1080, 1920), (1920, 1080), (2160, 3840),
          (3024, 4032), (4032, 3024), (4000, 6000), (6000, 4000), (1080, 1080), (1200, 1600), (1536, 2048),
          (2448, 3264), (3000, 4000), (576, 1024), (360, 640), (240, 320), (704, 1056), (1067, 1600),
          (333, 501), (999, 1777), (1001, 1333), (257, 511), (100, 75), (50, 75), (7, 13), (1, 1), (2, 3)]


def torch_index(out_size: int, in_size: int) -> np.ndarray:
    x = torch.arange(in_size, dtype=torch.float32).view(1, 1, in_size, 1)
    return F.interpolate(x, size=(out_size, 1), mode="nearest").flatten().long().numpy()


def float64_index(out_size: int, in_size: int) -> np.ndarray:
    """The old (wrong) rule, to show the size pairs below tell the two apart."""
    return np.minimum(np.floor(np.arange(out_size) * (in_size / out_size)).astype(np.int64), in_size - 1)


def size_pairs():
    """(out, in) pairs: every photo side against the side rescale_size gives it at 1333x800 (both
    directions: enlarge to the original and shrink), plus seeded random pairs and small ones."""
    pairs = set()
    for h, w in PHOTOS:
        rh, rw = rescale_size(h, w, (1333, 800))
        for a, b in ((h, rh), (w, rw)):
            pairs.add((a, b))
            pairs.add((b, a))
    pairs |= {(1080, 750), (1920, 1333), (704, 384), (1056, 576)}  # the issue's examples (the second at 576x384)
    rng = np.random.default_rng(16)
    for _ in range(250):
        pairs.add((int(rng.integers(1, 7000)), int(rng.integers(1, 5000))))
    for i in range(1, 40):
        for o in (1, 2, 3, i, 2 * i, 3 * i + 1, 7 * i - 2):
            pairs.add((max(o, 1), i))
    return sorted(pairs)


PAIRS = size_pairs()


def test_pairs_are_many_and_discriminating():
    assert len(PAIRS) > 400
    wrong64 = [p for p in PAIRS if not np.array_equal(float64_index(*p), torch_index(*p))]
    assert len(wrong64) >= 15  # the float64 rule fails on these: the comparison below has teeth
    assert (1080, 750) in wrong64 and (704, 384) in wrong64


def test_numpy_and_torch_nearest_equal_torch_interpolate_exactly():
    for out_size, in_size in PAIRS:
        ref = torch_index(out_size, in_size)
        got_np = nearest_index(out_size, in_size)
        got_t = D.nearest_index(out_size, in_size)
        assert got_np.dtype == np.int64 and got_t.dtype == torch.int64
        np.testing.assert_array_equal(got_np, ref, err_msg=f"numpy nearest {in_size} -> {out_size}")
        np.testing.assert_array_equal(got_t.numpy(), ref, err_msg=f"torch nearest {in_size} -> {out_size}")
    assert P.nearest_index is nearest_index  # the finishing re-exports the same rule


def test_issue_examples():
    # 1080x1920 photo resized to 750x1333 (rescale_size at 1333x800): 7 output rows differ from float64
    assert rescale_size(1080, 1920) == (750, 1333)
    rows = nearest_index(1080, 750)
    assert rows[180] == 124 and float64_index(1080, 750)[180] == 125
    assert int((rows != float64_index(1080, 750)).sum()) == 7
    np.testing.assert_array_equal(nearest_index(1920, 1333), float64_index(1920, 1333))  # columns agree
    # 704x1056 -> 384x576: row 55 reads 30 (float64: 29)
    assert rescale_size(704, 1056, (576, 384)) == (384, 576)
    assert nearest_index(704, 384)[55] == 30 and float64_index(704, 384)[55] == 29
    # the rule spelled out: scale and product both float32
    scale = np.float32(750) / np.float32(1080)
    assert np.floor(np.float32(180) * scale) == 124 and np.floor(180 * (750 / 1080)) == 125


@pytest.mark.parametrize("ori,img", [((1080, 1920), (750, 1333)), ((704, 1056), (384, 576)), ((1536, 2048), (800, 1067))])
def test_label_maps_to_original_equal_torch(ori, img):
    """2-D label maps (the plugin path and the enlarge finishing) equal F.interpolate(nearest)."""
    rng = np.random.default_rng(ori[0])
    hp, wp = -(-img[0] // 32) * 32, -(-img[1] // 32) * 32
    labels = rng.integers(0, 20, (hp, wp)).astype(np.uint8)
    got = labels_to_original(labels, ImageMeta(ori, img, (hp, wp)))
    ref = F.interpolate(torch.from_numpy(labels[:img[0], :img[1]].copy())[None, None].float(), size=ori,
                        mode="nearest")[0, 0].to(torch.uint8).numpy()
    np.testing.assert_array_equal(got, ref)
    # the finishing geometries (numpy and torch) carry the same indices
    feat = (hp // 4, wp // 4)
    n, t = P.FinishGeometry.build(feat, img, ori), D.FinishGeometry.build(feat, img, ori)
    assert n.mode == t.mode == "enlarge"
    for a, b, size, src in ((n.near_rows, t.near_rows, ori[0], img[0]), (n.near_cols, t.near_cols, ori[1], img[1])):
        np.testing.assert_array_equal(a, torch_index(size, src))
        np.testing.assert_array_equal(b.numpy(), torch_index(size, src))


def test_label_maps_equal_area_other_shape_are_not_resized():
    labels = np.arange(96 * 128, dtype=np.int64).reshape(96, 128) % 251
    got = labels_to_original(labels.astype(np.uint8), ImageMeta((93, 120), (90, 124), (96, 128)))
    assert got.shape == (93, 120)
    np.testing.assert_array_equal(got[:90], labels[:90, :120])
    assert not got[90:].any()
