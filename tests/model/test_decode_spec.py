"""Every Python decode implementation against an official-style per-person loop written here from
DESIGN §3 (sigmoid, max-pool windows, per-instance masks, maskness, per-person full-resolution
upsample then argmax, the area rule for the original size), with overridden ``mask_thr`` values:
exact label equality on shrink, equal (same shape and equal area with another shape) and enlarge
geometries.

Implementations: the torch reference (``model.decode.decode_single``), the numpy raw path
(``runtime.decode_numpy`` + ``runtime.finish``) and the in-graph ONNX decode (``model.end_to_end``,
run with onnxruntime, finished by ``runtime.finish.finish_products``). The ONNX graph wraps an
identity "network" (its input is the head features), so the graph's decode and the reference see the
same numbers.
"""
import io
import types

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from uniparser_sdk.contract.layouts import PRODUCTS_V1
from uniparser_sdk.model import decode as D
from uniparser_sdk.model.configs import DecodeConfig
from uniparser_sdk.runtime import finish as P
from uniparser_sdk.runtime.decode_numpy import center_peaks as np_center_peaks
from uniparser_sdk.runtime.geometry import ImageMeta

S, FH, FW, DIM, C = 16, 24, 32, 16, 8
IMG = (90, 124)  # resized image inside the 96 x 128 padded input (features 24 x 32)
GEOMETRIES = {  # original sizes
    "shrink": (60, 83),
    "equal": IMG,
    "equal_area": (93, 120),  # 93 * 120 == 90 * 124: no resize, other shape
    "enlarge": (156, 204),  # nearest 90 -> 156 and 124 -> 204: float32 and float64 rules differ here
}
THRESHOLDS = (0.3, 0.45, 0.6, 0.7)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """These tensors are tiny: torch's intra-op threads only wait on each other (10x slower on a busy
    machine). Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ------------------------------------------------------------------------------ the official-style loop

def official_decode(center, ins, sem, kernels, img_shape, ori_shape, ctr_score, mask_thr, cate_thr,
                    num_thr=None, fg_thr=None, nearest64=False):
    """DESIGN §3, one person at a time, the whole C x h x w stack upsampled per person.

    ``num_thr`` / ``fg_thr`` replace mask_thr in the maskness numerator / foreground test and
    ``nearest64`` uses the float64 nearest rule: the old behaviours, to show the tests tell them apart.
    Returns (scores, grid indices, keep (n, C) bool, labels (n, H, W) uint8), scores descending."""
    num_thr = mask_thr if num_thr is None else num_thr
    fg_thr = mask_thr if fg_thr is None else fg_thr
    s = torch.sigmoid(center.reshape(1, 1, S, S).float())
    win2 = F.max_pool2d(s, 2, stride=1, padding=1)[..., :S, :S]  # itself, upper, left, upper-left
    s = s * (win2 == s).float()
    peak = (F.max_pool2d(s, 5, stride=1, padding=2) == s) & (s > ctr_score)
    flat = s.flatten()
    idx = torch.nonzero(peak.flatten()).flatten()
    idx = idx[torch.sort(flat[idx], descending=True, stable=True).indices]
    d, h, w = ins.shape
    ins_n = ins / ins.norm(dim=0, keepdim=True).clamp_min(1e-12)
    sem_n = sem / sem.norm(dim=0, keepdim=True).clamp_min(1e-12)
    k_n = kernels / kernels.norm(dim=1, keepdim=True).clamp_min(1e-12)
    q_cat = torch.einsum("cd,dhw->chw", k_n, sem_n)
    (ih, iw), (oh, ow) = img_shape, ori_shape
    keeps, maps = [], []
    for g in idx.tolist():
        gy, gx = divmod(g, S)
        k = ins[:, (gy * h) // S, (gx * w) // S]
        q_ins = torch.einsum("d,dhw->hw", k / k.norm().clamp_min(1e-12), ins_n)
        conf = q_cat * (q_ins > mask_thr).float()  # P_ic
        maskness = (conf * (conf > num_thr)).sum((1, 2)) / ((conf > 0.1).sum((1, 2)) + 1e-5)
        keep = maskness > cate_thr
        conf = conf * keep.float()[:, None, None]
        up = F.interpolate(conf[None], size=(4 * h, 4 * w), mode="bilinear", align_corners=False)[..., :ih, :iw]
        if ih * iw > oh * ow:
            up = F.interpolate(up, size=(oh, ow), mode="bilinear", align_corners=False)
        best, arg = up[0].max(0)
        labels = torch.where(best > fg_thr, arg + 1, torch.zeros_like(arg)).to(torch.uint8)
        if ih * iw < oh * ow:
            if nearest64:
                rows = np.minimum(np.floor(np.arange(oh) * (ih / oh)).astype(int), ih - 1)
                cols = np.minimum(np.floor(np.arange(ow) * (iw / ow)).astype(int), iw - 1)
                labels = labels[torch.from_numpy(rows)][:, torch.from_numpy(cols)]
            else:
                labels = F.interpolate(labels[None, None].float(), size=(oh, ow), mode="nearest")[0, 0].to(torch.uint8)
        elif labels.shape != (oh, ow):  # equal areas, another shape: no resize, placed at (0, 0)
            canvas = torch.zeros(oh, ow, dtype=torch.uint8)
            canvas[:min(oh, ih), :min(ow, iw)] = labels[:oh, :ow]
            labels = canvas
        keeps.append(keep)
        maps.append(labels)
    n = len(maps)
    return (flat[idx].numpy(), idx.numpy(), torch.stack(keeps).numpy() if n else np.zeros((0, C), bool),
            torch.stack(maps).numpy() if n else np.zeros((0, oh, ow), np.uint8))


# ------------------------------------------------------------------------------ data

def scene(seed, persons=3):
    """Head outputs whose cosines spread over 0.2..0.95: instance features fade from each person's
    centre to the edge of its box (the mask grows as mask_thr falls); part features mix the part's
    kernel with noise at a strength ramping across the box (part confidences cross every threshold)."""
    rng = np.random.default_rng(seed)
    kernels = rng.normal(size=(C, DIM)).astype(np.float32)
    ins = rng.normal(size=(DIM, FH, FW)).astype(np.float32)
    sem = rng.normal(size=(DIM, FH, FW)).astype(np.float32)
    center = np.full((1, S, S), -4.0, np.float32) + rng.normal(0, 0.2, (1, S, S)).astype(np.float32)
    yy, xx = np.mgrid[:FH, :FW]
    cells = [(4, 4), (5, 11), (11, 6), (12, 12)][:persons]
    for p, (gy, gx) in enumerate(cells):
        fy, fx = gy * FH // S, gx * FW // S
        ry, rx = 5 + p, 6 + p
        proto = rng.normal(size=DIM).astype(np.float32)
        inside = (np.abs(yy - fy) <= ry) & (np.abs(xx - fx) <= rx)
        fade = np.clip(1 - np.maximum(np.abs(yy - fy) / (ry + 1), np.abs(xx - fx) / (rx + 1)), 0, 1)
        ins += (6.0 * fade * inside)[None] * proto[:, None, None]
        cats = rng.choice(C, 3, replace=False)
        y0 = fy - ry
        for j, cat in enumerate(cats):  # three horizontal bands
            band = inside & (yy >= y0 + j * (2 * ry + 1) // 3) & (yy < y0 + (j + 1) * (2 * ry + 1) // 3)
            ramp = 0.3 + 2.7 * (xx - (fx - rx)) / (2 * rx)  # strength 0.3 .. 3 across the box
            sem[:, band] = (ramp[band][None] * kernels[cat][:, None] + sem[:, band])
        center[0, gy, gx] = 1.0 + 0.5 * p
    return center, ins, sem, kernels


SCENES = {seed: scene(seed) for seed in (0, 1)}


def torch_inputs(seed):
    return tuple(torch.from_numpy(a) for a in SCENES[seed])


def cfg_for(thr):
    return DecodeConfig(ctr_score=0.3, mask_thr=thr, cate_score_thr=0.25, max_instances=8)


# ------------------------------------------------------------------------------ torch reference

@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
@pytest.mark.parametrize("seed,thr", [(0, t) for t in THRESHOLDS] + [(1, 0.3), (1, 0.7)])
def test_reference_equals_official_loop(seed, thr, geometry):
    ori = GEOMETRIES[geometry]
    center, ins, sem, kernels = torch_inputs(seed)
    cfg = cfg_for(thr)
    scores, grid, keep, maps = official_decode(center, ins, sem, kernels, IMG, ori, cfg.ctr_score, thr,
                                               cfg.cate_score_thr)
    out = D.decode_single(center, ins, sem, kernels, IMG, ori, cfg)
    assert out.count == len(scores) == 3
    np.testing.assert_array_equal(out.scores[:out.count].numpy(), scores)
    np.testing.assert_array_equal(out.grid_index[:out.count].numpy(), grid)
    np.testing.assert_array_equal(out.keep[:out.count].numpy(), keep)
    assert out.part_maps.shape == (3,) + ori
    np.testing.assert_array_equal(out.part_maps.numpy(), maps)
    assert (maps > 0).sum() > 200 and keep.sum() >= 3  # persons and parts actually survive
    # the same through decode_official_style (the benchmarks' loop)
    np.testing.assert_array_equal(D.decode_official_style(center, ins, sem, kernels, IMG, ori, cfg).numpy(), maps)


def test_mask_thr_matters_in_all_three_places():
    """With the old fixed 0.5 in the maskness numerator or the foreground test, or the float64 nearest
    rule, the official loop gives other results on this data: the exact comparisons above have teeth."""
    center, ins, sem, kernels = torch_inputs(0)
    args = (center, ins, sem, kernels, IMG)
    for thr in (0.3, 0.7):
        ref = official_decode(*args, GEOMETRIES["shrink"], 0.3, thr, 0.25)
        old_num = official_decode(*args, GEOMETRIES["shrink"], 0.3, thr, 0.25, num_thr=0.5)
        old_fg = official_decode(*args, GEOMETRIES["shrink"], 0.3, thr, 0.25, fg_thr=0.5)
        assert not np.array_equal(ref[2], old_num[2])  # other categories kept
        assert not np.array_equal(ref[3], old_fg[3])  # other pixels labelled
    areas = [(official_decode(*args, IMG, 0.3, thr, 0.25)[3] > 0).sum() for thr in THRESHOLDS]
    assert len(set(areas)) == len(THRESHOLDS)
    enl = GEOMETRIES["enlarge"]
    assert not np.array_equal(official_decode(*args, enl, 0.3, 0.45, 0.25)[3],
                              official_decode(*args, enl, 0.3, 0.45, 0.25, nearest64=True)[3])


@pytest.mark.parametrize("geometry", ["shrink", "equal_area", "enlarge"])
def test_negative_mask_thr_labels_every_pixel_like_the_official_argmax(geometry):
    """mask_thr < 0: the zero channels pass the foreground test; the official argmax over all C
    channels then labels every pixel (outside the person: channel 0 -> label 1)."""
    ori = GEOMETRIES[geometry]
    center, ins, sem, kernels = torch_inputs(1)
    cfg = DecodeConfig(ctr_score=0.3, mask_thr=-0.05, cate_score_thr=0.3, max_instances=8)
    _, _, keep, maps = official_decode(center, ins, sem, kernels, IMG, ori, 0.3, -0.05, 0.3)
    out = D.decode_single(center, ins, sem, kernels, IMG, ori, cfg)
    np.testing.assert_array_equal(out.part_maps.numpy(), maps)
    assert not keep.all()  # some category was dropped, so a zero channel takes part in the argmax
    if geometry != "equal_area":
        assert (maps > 0).all()
    prods = P.decode_products(*SCENES[1], 0.3, -0.05, 0.3, 8)
    res = P.finish_products(prods, ImageMeta(ori, IMG, (96, 128)), C + 1, mask_thr=-0.05)
    np.testing.assert_array_equal(np.stack([p.parts for p in res]), maps)


# ------------------------------------------------------------------------------ numpy raw path

@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
@pytest.mark.parametrize("thr", THRESHOLDS)
def test_numpy_raw_path_equals_official_loop(thr, geometry):
    ori = GEOMETRIES[geometry]
    center, ins, sem, kernels = SCENES[0]
    cfg = cfg_for(thr)
    scores, grid, keep, maps = official_decode(*torch_inputs(0), IMG, ori, cfg.ctr_score, thr, cfg.cate_score_thr)
    meta = ImageMeta(ori, IMG, (96, 128))
    decode = {"ctr_score": cfg.ctr_score, "mask_thr": thr, "cate_score_thr": cfg.cate_score_thr, "max_instances": 8}
    res = P.finish_raw({"center_logits": center[None], "ins_feats": ins[None], "sem_feats": sem[None]}, meta,
                       C + 1, decode, seg_kernels=kernels)
    assert res.num_persons == 3
    np.testing.assert_array_equal(np.stack([p.parts for p in res]), maps)
    prods = P.decode_products(center, ins, sem, kernels, cfg.ctr_score, thr, cfg.cate_score_thr, 8)
    np.testing.assert_array_equal(prods["keep"][0, :3].astype(bool), keep)
    np.testing.assert_array_equal(prods["grid_index"][0, :3], grid)


# ------------------------------------------------------------------------------ in-graph ONNX decode

class HeadOutputs(nn.Module):
    """Identity 'network': the input packs the head outputs (center in channel 0's top-left S x S,
    then DIM instance and DIM semantic channels), so the exported decode sees exactly our numbers."""

    def __init__(self, kernels):
        super().__init__()
        self.seg_kernels = nn.Parameter(torch.from_numpy(kernels))
        self.config = types.SimpleNamespace(num_grid=S)

    def forward(self, x):
        return x[:, :1, :S, :S], x[:, 1:1 + DIM], x[:, 1 + DIM:]


def pack(center, ins, sem):
    x = np.zeros((1, 1 + 2 * DIM, FH, FW), np.float32)
    x[0, 0, :S, :S] = center[0]
    x[0, 1:1 + DIM], x[0, 1 + DIM:] = ins, sem
    return x


@pytest.fixture(scope="module")
def onnx_decode():
    import onnxruntime as ort

    from uniparser_sdk.model.end_to_end import EndToEnd

    center, ins, sem, kernels = SCENES[0]
    buf = io.BytesIO()
    torch.onnx.export(EndToEnd(HeadOutputs(kernels), 8).eval(),
                      (torch.from_numpy(pack(center, ins, sem)), torch.tensor([0.3, 0.5, 0.25])), buf,
                      dynamo=False, opset_version=17, input_names=["images", "decode_params"],
                      output_names=list(PRODUCTS_V1.output_names))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1  # tiny graph: threads only cost time on a shared machine
    sess = ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])
    return lambda x, params: dict(zip(PRODUCTS_V1.output_names, sess.run(None, {"images": x, "decode_params": params})))


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
@pytest.mark.parametrize("thr", THRESHOLDS)
def test_onnx_in_graph_decode_equals_reference(onnx_decode, thr, geometry):
    ori = GEOMETRIES[geometry]
    center, ins, sem, kernels = SCENES[0]
    cfg = cfg_for(thr)
    outs = onnx_decode(pack(center, ins, sem), np.array([cfg.ctr_score, thr, cfg.cate_score_thr], np.float32))
    ref = D.decode_single(*torch_inputs(0), IMG, ori, cfg)
    assert int(outs["num_instances"][0]) == ref.count == 3
    np.testing.assert_array_equal(outs["grid_index"][0], ref.grid_index.numpy())
    np.testing.assert_array_equal(outs["keep"][0].astype(bool), ref.keep.numpy())
    res = P.finish_products(outs, ImageMeta(ori, IMG, (96, 128)), C + 1, mask_thr=thr)
    maps = np.stack([p.parts for p in res])
    np.testing.assert_array_equal(maps, ref.part_maps.numpy())
    _, _, _, official = official_decode(*torch_inputs(0), IMG, ori, cfg.ctr_score, thr, cfg.cate_score_thr)
    np.testing.assert_array_equal(maps, official)


# ------------------------------------------------------------------------------ steps 1 and 2 in detail

def brute_force_peaks(s: np.ndarray, thr: np.float32) -> np.ndarray:
    """DESIGN §3 step 1 cell by cell: survive the 2x2 window {itself, upper, left, upper-left}, then be
    the maximum of the 5x5 window of the suppressed map, and score > thr (float32, strict)."""
    n = s.shape[0]
    sup = np.zeros_like(s)
    for y in range(n):
        for x in range(n):
            win = [s[yy, xx] for yy in (y - 1, y) for xx in (x - 1, x) if yy >= 0 and xx >= 0]
            sup[y, x] = s[y, x] if s[y, x] == max(win) else 0
    peak = np.zeros_like(s, dtype=bool)
    for y in range(n):
        for x in range(n):
            win = sup[max(y - 2, 0):y + 3, max(x - 2, 0):x + 3]
            peak[y, x] = sup[y, x] == win.max() and sup[y, x] > thr
    return peak


def test_peaks_equal_brute_force_window_rules():
    rng = np.random.default_rng(3)
    # quantised logits: many equal neighbours (plateaus), where the window rules matter
    logits = (rng.integers(-6, 5, (S, S)) * 0.5).astype(np.float32)
    s = torch.sigmoid(torch.from_numpy(logits)).numpy()
    for thr in (0.2, 0.5, 0.75):
        want = np.flatnonzero(brute_force_peaks(s, np.float32(thr)))
        want = want[np.argsort(-s.ravel()[want], kind="stable")]
        assert len(want) >= 3
        _, t_idx, t_n = D.center_peaks(torch.from_numpy(logits), thr, S * S)
        _, n_idx, n_n = np_center_peaks(logits, thr, S * S)
        assert t_n == n_n == len(want)
        np.testing.assert_array_equal(t_idx[:t_n].numpy(), want)
        np.testing.assert_array_equal(n_idx[:n_n], want)


def test_upper_left_neighbour_suppresses():
    logits = np.full((S, S), -8.0, np.float32)
    logits[4, 4] = 1.0
    logits[5, 5] = 0.9  # only its upper-left neighbour is larger: fails the 2x2 test
    logits[10, 10] = 0.9
    logits[11, 11] = 1.0  # larger lower-right neighbour: (10,10) passes the 2x2 but not the 5x5
    for fn in (lambda: D.center_peaks(torch.from_numpy(logits), 0.5, 10)[1:],
               lambda: np_center_peaks(logits, 0.5, 10)[1:]):
        idx, n = fn()
        assert n == 2 and sorted(np.asarray(idx[:n]).tolist()) == [4 * S + 4, 11 * S + 11]
    # without the 5x5 stage (5,5) would still be suppressed by (4,4): check the 2x2 alone
    s = torch.sigmoid(torch.from_numpy(logits))[None, None]
    win = F.max_pool2d(s, 2, stride=1, padding=1)[..., :-1, :-1]
    assert win[0, 0, 5, 5] == s[0, 0, 4, 4] and win[0, 0, 10, 10] == s[0, 0, 10, 10]


def test_ctr_score_is_strict_in_float32():
    """A score equal to float32(ctr_score) is no peak, although it exceeds the float64 threshold."""
    thr = 0.2
    logit = np.float32(np.log(0.25))
    for step in range(200):  # find a logit whose float32 sigmoid is exactly float32(0.2) in torch and numpy
        t = torch.sigmoid(torch.tensor(logit)).item()
        n = np.float32(1 / (1 + np.exp(-np.float64(logit))))
        if np.float32(t) == np.float32(thr) == n:
            break
        logit = np.nextafter(logit, np.float32(1 if np.float32(t) < np.float32(thr) else -1), dtype=np.float32)
    else:
        pytest.fail("no logit with sigmoid == float32(0.2)")
    assert float(np.float32(thr)) > thr  # float64 would call it a peak
    logits = np.full((S, S), -8.0, np.float32)
    logits[3, 3] = logit
    logits[9, 9] = 2.0
    assert D.center_peaks(torch.from_numpy(logits), thr, 5)[2] == 1
    assert np_center_peaks(logits, thr, 5)[2] == 1


@pytest.mark.parametrize("num_grid", [24, 40])
def test_grid_to_feature_cell_integer_rule_equals_official_float32_on_cuda(num_grid):
    """Official: int((g / S) * h) in float32; on CUDA torch divides a tensor by a scalar as a multiply
    by float32(1 / S). That equals our integer rule (g * h) // S for S in {24, 40} (DESIGN §3)."""
    g = np.arange(num_grid, dtype=np.float32)[:, None]
    h = np.arange(1, 1001, dtype=np.float32)[None, :]
    cuda_style = ((g * (np.float32(1) / np.float32(num_grid))) * h).astype(np.int64)
    integer = (np.arange(num_grid)[:, None] * np.arange(1, 1001)[None, :]) // num_grid
    np.testing.assert_array_equal(cuda_style, integer)
    idx = torch.arange(num_grid * num_grid)
    for fh, fw in ((100, 168), (201, 334), (7, 9)):
        got = D.grid_to_feature_index(idx, num_grid, fh, fw).numpy()
        gy, gx = np.divmod(np.arange(num_grid * num_grid), num_grid)
        np.testing.assert_array_equal(got, cuda_style[gy, fh - 1] * fw + cuda_style[gx, fw - 1])
