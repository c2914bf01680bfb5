"""uniparser_sdk.runtime.finish (numpy finishing) against the torch reference decode (the specification)."""
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from uniparser_sdk.runtime import finish as P
from uniparser_sdk.classes import CIHP_CLASSES
from uniparser_sdk.model import decode as D
from uniparser_sdk.model.configs import DecodeConfig
from uniparser_sdk.runtime.geometry import ImageMeta

# (feature (h, w), resized (h', w'), original (H, W)) -- shrink, equal, enlarge, light-like (h+2, w+2),
# anisotropic (shrink overall while one side grows)
GEOMETRIES = {
    "shrink": ((24, 32), (90, 125), (45, 60)),
    "equal": ((24, 32), (90, 125), (90, 125)),
    "enlarge": ((24, 32), (90, 125), (181, 250)),
    "light": ((26, 34), (96, 128), (150, 200)),
    "aniso": ((32, 40), (128, 160), (31, 200)),
    "equal_area": ((24, 32), (90, 124), (93, 120)),  # 90 * 124 == 93 * 120: no resize (DESIGN §3)
}


def smooth_field(rng, c, h, w, cell=4, lo=-0.2, hi=1.2):
    """Structured (piecewise smooth) category confidences: blocky base + a little noise."""
    gh, gw = h // cell + 2, w // cell + 2
    base = rng.random((c, gh, gw))
    up = np.stack([np.kron(b, np.ones((cell, cell)))[:h, :w] for b in base])
    return (lo + (hi - lo) * (0.9 * up + 0.1 * rng.random((c, h, w)))).astype(np.float32)


def person_mask(rng, h, w):
    m = np.zeros((h, w), bool)
    for _ in range(rng.integers(1, 4)):  # one to three blobs
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        ry, rx = rng.integers(2, max(3, h // 2)), rng.integers(2, max(3, w // 2))
        yy, xx = np.ogrid[:h, :w]
        m |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return m & (rng.random((h, w)) > 0.05)


def torch_labels(mask, q, keep, feat, img, ori, mask_thr=0.5):
    geo = D.FinishGeometry.build(feat, img, ori)
    return D.finish_instance(torch.from_numpy(mask), torch.from_numpy(q), torch.from_numpy(keep), geo, ori,
                             mask_thr).numpy()


# ------------------------------------------------------------------------------ operators

@pytest.mark.parametrize("out_size,in_size", [(1, 1), (7, 3), (3, 7), (96, 24), (45, 90), (250, 90), (33, 33)])
def test_operators_match_torch(out_size, in_size):
    np.testing.assert_array_equal(P.bilinear_matrix(out_size, in_size), D.bilinear_matrix(out_size, in_size).numpy())
    np.testing.assert_array_equal(P.nearest_index(out_size, in_size), D.nearest_index(out_size, in_size).numpy())


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_geometry_matches_torch(name):
    feat, img, ori = GEOMETRIES[name]
    t = D.FinishGeometry.build(feat, img, ori)
    n = P.FinishGeometry.build(feat, img, ori)
    assert n.shrink == t.shrink == (name in ("shrink", "aniso"))
    assert n.rows.dtype == np.float32
    np.testing.assert_array_equal(n.rows, t.rows.numpy())
    np.testing.assert_array_equal(n.cols, t.cols.numpy())
    if not n.shrink:
        np.testing.assert_array_equal(n.near_rows, t.near_rows.numpy())
        np.testing.assert_array_equal(n.near_cols, t.near_cols.numpy())
    # the banded form holds exactly the dense operator
    for start, weights, dense in ((n.row_start, n.row_weights, n.rows), (n.col_start, n.col_weights, n.cols)):
        rebuilt = np.zeros_like(dense)
        for k in range(weights.shape[1]):
            ok = start + k < dense.shape[1]
            rebuilt[np.flatnonzero(ok), (start + k)[ok]] += weights[ok, k]
        np.testing.assert_array_equal(rebuilt, dense)
        assert weights.shape[1] <= 5


def test_equal_area_geometry_is_no_resize():
    n = P.FinishGeometry.build(*GEOMETRIES["equal_area"])
    assert n.mode == D.FinishGeometry.build(*GEOMETRIES["equal_area"]).mode == "equal"
    np.testing.assert_array_equal(n.near_rows, np.arange(90))  # pixel (y, x) stays at (y, x)
    np.testing.assert_array_equal(n.near_cols, np.arange(120))
    rng = np.random.default_rng(4)
    q = smooth_field(rng, 5, 24, 32)
    full = np.ones((24, 32), bool)
    got = P.finish_instance(full, q, np.ones(5, bool), n)
    same = P.finish_instance(full, q, np.ones(5, bool), P.finish_geometry((24, 32), (90, 124), (90, 124)))
    np.testing.assert_array_equal(got[:90, :120], same[:, :120])  # the unresized map, cut to 120 columns
    assert not got[90:].any() and (same > 0).any()


def test_geometry_cached_and_read_only():
    a = P.finish_geometry((24, 32), (90, 125), (45, 60))
    b = P.finish_geometry(np.array([24, 32]), [90, 125], (45, 60))
    assert a is b
    with pytest.raises(ValueError):
        a.rows[0, 0] = 1.0
    with pytest.raises(ValueError, match="larger than the upsampled"):
        P.FinishGeometry.build((10, 10), (41, 40), (41, 40))
    with pytest.raises(ValueError):
        P.FinishGeometry.build((10, 10), (0, 40), (41, 40))


# ------------------------------------------------------------------------------ finish_instance

@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_finish_instance_identical_to_torch(name):
    feat, img, ori = GEOMETRIES[name]
    h, w = feat
    rng = np.random.default_rng(len(name))
    c = 7
    q = smooth_field(rng, c, h, w)
    geo = P.finish_geometry(feat, img, ori)
    labelled = 0
    for trial in range(12):
        mask = person_mask(rng, h, w)
        keep = rng.random(c) > 0.35
        keep[trial % c] = True
        ref = torch_labels(mask, q, keep, feat, img, ori)
        got = P.finish_instance(mask, q, keep, geo)
        assert got.dtype == np.uint8 and got.shape == tuple(ori)
        np.testing.assert_array_equal(got, ref)
        assert set(np.unique(got)) <= {0} | set((np.flatnonzero(keep) + 1).tolist())
        labelled += int((got > 0).sum())
    assert labelled > 0  # not vacuous


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
@pytest.mark.parametrize("mask_thr", [0.3, 0.7, -0.1])
def test_finish_instance_mask_thr_identical_to_torch(name, mask_thr):
    """The foreground test uses the run-time mask_thr (DESIGN §3); a negative one labels every pixel
    (zero channels pass it), as the official argmax over all channels does."""
    feat, img, ori = GEOMETRIES[name]
    h, w = feat
    rng = np.random.default_rng(7 + len(name))
    q = smooth_field(rng, 6, h, w)
    geo = P.finish_geometry(feat, img, ori)
    differs = False
    for trial in range(4):
        mask = person_mask(rng, h, w)
        keep = rng.random(6) > 0.4
        keep[trial] = True
        got = P.finish_instance(mask, q, keep, geo, mask_thr=mask_thr)
        np.testing.assert_array_equal(got, torch_labels(mask, q, keep, feat, img, ori, mask_thr))
        differs |= not np.array_equal(got, P.finish_instance(mask, q, keep, geo))  # default 0.5
        if mask_thr < 0 and name != "equal_area":
            assert (got > 0).all()
    assert differs


@pytest.mark.parametrize("name", ["shrink", "enlarge"])
def test_finish_instance_edge_cases(name):
    feat, img, ori = GEOMETRIES[name]
    h, w = feat
    rng = np.random.default_rng(3)
    q = smooth_field(rng, 5, h, w)
    geo = P.finish_geometry(feat, img, ori)
    full = np.ones((h, w), bool)
    # nothing kept / empty mask -> all background
    assert not P.finish_instance(full, q, np.zeros(5, bool), geo).any()
    assert not P.finish_instance(np.zeros((h, w), bool), q, np.ones(5, bool), geo).any()
    # a mask living only in the padding (beyond the resized image) reaches no output pixel
    pad_only = np.zeros((h, w), bool)
    pad_only[-1, :] = True
    np.testing.assert_array_equal(P.finish_instance(pad_only, q, np.ones(5, bool), geo),
                                  torch_labels(pad_only, q, np.ones(5, bool), feat, img, ori))
    # single pixel, corners, whole map; ties between categories (lowest wins)
    tie = np.repeat(q[:1], 5, axis=0)
    for m in (np.eye(1, h * w, 0, dtype=bool).reshape(h, w), np.eye(1, h * w, h * w - 1, dtype=bool).reshape(h, w),
              full):
        for qq in (q, tie):
            np.testing.assert_array_equal(P.finish_instance(m, qq, np.ones(5, bool), geo),
                                          torch_labels(m, qq, np.ones(5, bool), feat, img, ori))
    got = P.finish_instance(full, tie, np.ones(5, bool), geo)
    assert set(np.unique(got)) <= {0, 1}
    # uint8 masks work like bool ones
    m = person_mask(rng, h, w)
    np.testing.assert_array_equal(P.finish_instance(m.astype(np.uint8), q, np.ones(5, np.uint8), geo),
                                  P.finish_instance(m, q, np.ones(5, bool), geo))


# ------------------------------------------------------------------------------ whole-image finishing

def random_head(rng, d=16, s=12, h=24, w=32, c=9):
    """Raw head outputs with a few clear centers and features clustered per 'person' region."""
    center = rng.normal(-4, 0.5, (1, s, s)).astype(np.float32)
    protos = rng.normal(0, 1, (4, d)).astype(np.float32)
    ins = np.zeros((d, h, w), np.float32)
    region = np.zeros((h, w), int)
    for k, (y0, x0) in enumerate([(0, 0), (0, w // 2), (h // 2, 0), (h // 2, w // 2)]):
        region[y0:y0 + h // 2, x0:x0 + w // 2] = k
    ins[:] = protos[region].transpose(2, 0, 1) + 0.4 * rng.normal(0, 1, (d, h, w)).astype(np.float32)
    for k, (gy, gx) in enumerate([(2, 3), (3, 9), (8, 2), (9, 9)]):
        center[0, gy, gx] = 1.0 + 0.3 * k
    sem_protos = rng.normal(0, 1, (c, d)).astype(np.float32)
    blocks = rng.integers(0, c, (h // 4 + 1, w // 4 + 1))
    cls = np.kron(blocks, np.ones((4, 4), int))[:h, :w]
    sem = sem_protos[cls].transpose(2, 0, 1) + 0.3 * rng.normal(0, 1, (d, h, w)).astype(np.float32)
    seg = sem_protos + 0.1 * rng.normal(0, 1, (c, d)).astype(np.float32)
    return center, ins, sem, seg


def torch_products(center, ins, sem, seg, cfg):
    """The products-v1 tensors from the torch reference steps 1-4 (batch of 1)."""
    scores, grid, count = D.center_peaks(torch.from_numpy(center), cfg.ctr_score, cfg.max_instances)
    d, h, w = ins.shape
    feat = D.grid_to_feature_index(grid.clamp_min(0), center.shape[-1], h, w)
    masks, q_cat, keep, _ = D.instance_products(torch.from_numpy(ins), torch.from_numpy(sem), torch.from_numpy(seg),
                                                feat, cfg.mask_thr, cfg.cate_score_thr)
    valid = torch.arange(cfg.max_instances) < count
    keep = keep & valid[:, None]
    masks = masks & valid[:, None, None]
    return {"scores": scores[None].numpy(), "num_instances": np.array([count]),
            "grid_index": torch.where(valid, grid, -1)[None].numpy(),
            "instance_masks": masks[None].numpy().astype(np.uint8), "keep": keep[None].numpy().astype(np.uint8),
            "cat_conf": q_cat[None].numpy()}


@pytest.mark.parametrize("name,mask_thr", [("shrink", 0.5), ("equal", 0.5), ("enlarge", 0.5), ("shrink", 0.4),
                                           ("enlarge", 0.6), ("equal_area", 0.45)])
def test_finish_products_equals_decode_single(name, mask_thr):
    (h, w), img, ori = GEOMETRIES[name]
    rng = np.random.default_rng(11)
    center, ins, sem, seg = random_head(rng, h=h, w=w)
    cfg = DecodeConfig(ctr_score=0.3, mask_thr=mask_thr, cate_score_thr=0.2, max_instances=6)
    ref = D.decode_single(torch.from_numpy(center), torch.from_numpy(ins), torch.from_numpy(sem),
                          torch.from_numpy(seg), img, ori, cfg)
    outs = torch_products(center, ins, sem, seg, cfg)
    meta = ImageMeta(tuple(ori), tuple(img), (4 * h, 4 * w))
    res = P.finish_products(outs, meta, CIHP_CLASSES[:10], timings={"network": 1.0}, source="x.jpg",
                            mask_thr=mask_thr)
    assert ref.count == 4 and res.num_persons == 4
    np.testing.assert_allclose([p.score for p in res], ref.scores[:ref.count].numpy())
    for p, m in zip(res, ref.part_maps.numpy()):
        np.testing.assert_array_equal(p.parts, m)
        assert p.area > 0
    assert res.image_shape == tuple(ori) and res.source == "x.jpg" and res.timings == {"network": 1.0}
    # max_instances keeps the best persons only
    top = P.finish_products(outs, meta, CIHP_CLASSES[:10], max_instances=2, mask_thr=mask_thr)
    assert top.num_persons == 2
    np.testing.assert_array_equal(top[1].parts, res[1].parts)
    # the batch index selects the image
    two = {k: np.concatenate([np.zeros_like(v), v]) for k, v in outs.items()}
    assert P.finish_products(two, meta, CIHP_CLASSES[:10], index=0).num_persons == 0
    np.testing.assert_array_equal(P.finish_products(two, meta, CIHP_CLASSES[:10], index=1, mask_thr=mask_thr)[0].parts,
                                  res[0].parts)


def test_finish_products_errors():
    meta = ImageMeta((10, 10), (10, 10), (32, 32))
    with pytest.raises(ValueError, match="missing"):
        P.finish_products({"scores": np.zeros((1, 3))}, meta, 20)


def test_numpy_steps_1_to_4_match_torch():
    rng = np.random.default_rng(5)
    center, ins, sem, seg = random_head(rng)
    center[0, 5, 5] = center[0, 5, 6] = 0.8  # a tie: equal neighbours
    cfg = DecodeConfig(ctr_score=0.3, mask_thr=0.5, cate_score_thr=0.2, max_instances=8)
    ref = torch_products(center, ins, sem, seg, cfg)
    got = P.decode_products(center, ins, sem, seg, cfg.ctr_score, cfg.mask_thr, cfg.cate_score_thr, cfg.max_instances)
    assert got["num_instances"][0] == ref["num_instances"][0] >= 4
    np.testing.assert_array_equal(got["grid_index"], ref["grid_index"])
    np.testing.assert_allclose(got["scores"], ref["scores"], rtol=1e-6)
    np.testing.assert_allclose(got["cat_conf"], ref["cat_conf"], atol=1e-5)
    assert (got["instance_masks"] != ref["instance_masks"]).mean() < 1e-3
    assert (got["keep"] != ref["keep"]).sum() == 0
    # peaks alone, against the torch reference, several thresholds
    for thr in (0.0, 0.3, 0.9, 1.0):
        s, i, n = P.center_peaks(center, thr, 5)
        ts, ti, tn = D.center_peaks(torch.from_numpy(center), thr, 5)
        assert n == tn
        np.testing.assert_array_equal(i, ti.numpy())
        np.testing.assert_allclose(s, ts.numpy(), rtol=1e-6)


def test_finish_raw_equals_decode_single():
    rng = np.random.default_rng(9)
    center, ins, sem, seg = random_head(rng)
    (h, w), img, ori = (24, 32), (90, 125), (120, 166)
    cfg = DecodeConfig(ctr_score=0.3, mask_thr=0.5, cate_score_thr=0.2, max_instances=6)
    ref = D.decode_single(torch.from_numpy(center), torch.from_numpy(ins), torch.from_numpy(sem),
                          torch.from_numpy(seg), img, ori, cfg)
    outs = {"center_logits": center[None], "ins_feats": ins[None], "sem_feats": sem[None]}
    meta = ImageMeta(ori, img, (96, 128))
    decode = {"ctr_score": 0.3, "mask_thr": 0.5, "cate_score_thr": 0.2, "max_instances": 6}
    res = P.finish_raw(outs, meta, 10, decode, seg_kernels=seg)
    assert res.num_persons == ref.count == 4
    for p, m in zip(res, ref.part_maps.numpy()):
        assert (p.parts != m).mean() < 1e-3
    with pytest.raises(ValueError, match="seg_kernels"):
        P.finish_raw(outs, meta, 10, decode)
    res2 = P.finish_raw({**outs, "seg_kernels": seg}, meta, 10, decode)
    assert [p.score for p in res2] == [p.score for p in res]


# ------------------------------------------------------------------------------ plugin-v1

@pytest.mark.parametrize("ori", [(45, 60), (90, 125), (181, 250)])
def test_finish_plugin_crop_and_nearest(ori):
    rng = np.random.default_rng(2)
    hp, wp = 96, 128
    img = (90, 125)
    maps = rng.integers(0, 20, (1, 5, hp, wp)).astype(np.uint8)
    maps[0, 3:] = 0
    outs = {"scores": np.array([[0.9, 0.8, 0.7, 0, 0]], np.float32), "num_instances": np.array([3], np.int32),
            "part_maps": maps}
    meta = ImageMeta(ori, img, (hp, wp))
    res = P.finish_plugin(outs, meta, CIHP_CLASSES)
    assert res.num_persons == 3 and res.image_shape == ori
    ref = F.interpolate(torch.from_numpy(maps[0, :3, :img[0], :img[1]].copy())[None].float(), size=ori,
                        mode="nearest")[0].to(torch.uint8).numpy()
    for p, m in zip(res, ref):
        np.testing.assert_array_equal(p.parts, m)
    # TensorRT delivers the labels packed 4 per int32
    packed = dict(outs, part_maps=maps.view(np.int32).reshape(1, 5, hp, wp // 4))
    assert [p.parts.tobytes() for p in P.finish_plugin(packed, meta, CIHP_CLASSES)] == [p.parts.tobytes() for p in res]
    with pytest.raises(ValueError, match="smaller"):
        P.finish_plugin(outs, ImageMeta((200, 200), (100, 130), (96, 128)), CIHP_CLASSES)


def test_postprocess_imports_no_torch():
    code = ("import sys; import uniparser_sdk.runtime.finish, uniparser_sdk.runtime.parser; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
