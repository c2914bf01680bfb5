"""Fused decode kernels: the C++ CPU twin (built here with g++) against the specification
(uniparser_sdk.model.decode.decode_single), the CUDA source compiled with nvcc, and (GPU machines only) the
CUDA op against the specification."""
from __future__ import annotations

import ctypes
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from uniparser_sdk.fused import (PLUGIN_ATTRIBUTES, PLUGIN_INPUTS, PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_OUTPUTS,
                                   PLUGIN_VERSION, unpack_part_maps)
from uniparser_sdk.fused import build as kbuild
from uniparser_sdk.fused.cpu import DecodeError, decode_cpu, load_library, peaks_cpu
from uniparser_sdk.data.decode_scenes import structured_scene
from uniparser_sdk.model.configs import DecodeConfig
from uniparser_sdk.model.decode import decode_single


# ----------------------------------------------------------------------------------------------- helpers

def two_person_scene():
    """Hand-built: two overlapping persons (instance channels 0 and 1, both in the overlap), four part classes
    and a fifth class present everywhere in person A's lower half at cosine ~0.33 only (counted in the maskness
    denominator, never in the numerator: dropped)."""
    S, D, h, w, C = 10, 8, 16, 20, 5
    ins = np.zeros((D, h, w), np.float32)
    ins[7] = 1.0  # background direction
    a = np.zeros((h, w), bool)
    a[2:11, 2:11] = True
    b = np.zeros((h, w), bool)
    b[6:15, 8:18] = True
    ins[7][a | b] = 0.0
    ins[0][a] = 1.0
    ins[1][b] = 1.0
    eye = np.eye(D, dtype=np.float32)
    seg = np.stack([eye[2], eye[3], eye[4], eye[5], eye[6]])
    sem = np.zeros((D, h, w), np.float32)
    sem[0] = 1.0  # background: orthogonal to every class
    rows = np.arange(h)[:, None] * np.ones((1, w), int)
    for mask, upper, lower, split in ((a, 0, 1, 6), (b, 2, 3, 10)):
        up = mask & (rows < split)
        lo = mask & (rows >= split)
        sem[:, up] = seg[upper][:, None]
        sem[:, lo] = seg[lower][:, None]
    lo_a = a & (rows >= 6) & ~b
    sem[:, lo_a] = (seg[1] + 0.35 * seg[4])[:, None]  # class 4 at cosine 0.33 in A's lower half
    # vary the directions a little (background channel 0) so that the cosines are not exactly flat
    sem[0] += 0.2 * (1.0 + np.sin(np.arange(w)))[None, :] * (1.0 + 0.5 * np.cos(np.arange(h)))[:, None]
    logits = np.full((S, S), -8.0, np.float32)
    logits[4, 3] = 2.0  # -> feature cell (6, 6): person A only
    logits[7, 6] = 1.5  # -> feature cell (11, 12): person B only
    return logits, ins, sem, seg


def run_both(logits, ins, sem, seg, img, ori, ctr=0.2, mask_thr=0.5, cate=0.3, k=10, max_maps=None):
    cfg = DecodeConfig(ctr_score=ctr, mask_thr=mask_thr, cate_score_thr=cate, max_instances=k)
    ref = decode_single(torch.from_numpy(np.asarray(logits))[None], torch.from_numpy(ins), torch.from_numpy(sem),
                        torch.from_numpy(seg), img, ori, cfg)
    out = decode_cpu(logits, ins, sem, seg, img, ori, ctr, mask_thr, cate, k, max_maps=max_maps)
    return ref, out


def assert_same(ref, out):
    assert out["count"] == ref.count
    np.testing.assert_array_equal(out["grid_index"], ref.grid_index.numpy())
    np.testing.assert_allclose(out["scores"], ref.scores.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(out["keep"], ref.keep.numpy())
    maps = ref.part_maps.numpy()
    assert out["part_maps"].dtype == np.uint8
    assert out["part_maps"].shape == maps.shape
    diff = int((out["part_maps"] != maps).sum())
    assert diff == 0, f"{diff} label pixels differ"


GEOMETRIES = [
    ((90, 120), (90, 120)),    # identity
    ((90, 120), (45, 61)),     # shrink (bilinear before the argmax)
    ((90, 120), (200, 260)),   # enlarge (nearest on labels)
    ((96, 128), (96, 128)),    # no crop
    ((70, 101), (33, 47)),     # crop + shrink
    ((90, 120), (120, 60)),    # fewer pixels: shrink mode, but rows grow
    ((90, 120), (60, 190)),    # more pixels: enlarge mode, but rows shrink under nearest
]


@pytest.fixture(scope="module")
def lib():
    return load_library()


@pytest.fixture(scope="module")
def probe():
    """Host build of kernels/uniparser_decode_core.h (kernels/testing/core_probe.cpp): the very rules the CPU twin
    and the CUDA kernels compile."""
    p = ctypes.CDLL(str(kbuild.build_core_probe()))
    p.probe_nearest_table.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    p.probe_grid_to_feature.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    p.probe_peak_tests.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    p.probe_final_shrink.argtypes = [ctypes.c_int] * 4
    p.probe_part_label.argtypes = [ctypes.c_float, ctypes.c_int, ctypes.c_float]
    p.probe_maskness_tests.argtypes = [ctypes.c_float, ctypes.c_float]
    return p


def torch_nearest(out_size, in_size):
    """The source row of every output row, as F.interpolate(mode="nearest", size=...) picks it."""
    x = torch.arange(in_size, dtype=torch.float32).reshape(1, 1, in_size, 1)
    return F.interpolate(x, size=(out_size, 1), mode="nearest")[0, 0, :, 0].long().numpy()


def probe_nearest(probe, out_size, in_size):
    t = np.zeros(out_size, np.int32)
    probe.probe_nearest_table(out_size, in_size, t.ctypes.data)
    return t


# Independent official-style decode (torch ops as the official loop uses them: F.interpolate per person over its
# full C x h x w stack, the run-time mask_thr in all three places, the area rule): NOT model/decode.py.
def official_loop(logits, ins, sem, seg, img, ori, ctr, mask_thr, cate, k, num_thr=None, fg_thr=None):
    """Independent official-style decode: returns ({grid index: (H, W) uint8 labels}, {grid index: keep (C,)}).
    num_thr / fg_thr replace mask_thr in the maskness numerator / the foreground test (to show that they matter)."""
    num_thr = mask_thr if num_thr is None else num_thr
    fg_thr = mask_thr if fg_thr is None else fg_thr
    lg = torch.from_numpy(np.asarray(logits, np.float32)).reshape(1, 1, *np.shape(logits)[-2:])
    S = lg.shape[-1]
    s = torch.sigmoid(lg)
    hmax2 = F.max_pool2d(s, 2, stride=1, padding=1)[..., :-1, :-1]
    hs = s * (hmax2 == s).float()
    peak = (F.max_pool2d(hs, 5, stride=1, padding=2) == hs) & (hs > ctr)
    flat = hs.flatten()
    idx = torch.nonzero(peak.flatten()).flatten().tolist()
    idx = sorted(idx, key=lambda g: (-float(flat[g]), g))[:k]
    fi = torch.from_numpy(ins)
    d, h, w = fi.shape
    fs = torch.from_numpy(sem)
    sem_n = F.normalize(fs.reshape(d, -1), dim=0)
    ins_n = F.normalize(fi.reshape(d, -1), dim=0)
    q_cat = (F.normalize(torch.from_numpy(seg), dim=1) @ sem_n).reshape(-1, h, w)
    (ih, iw), (oh, ow) = img, ori
    inv = torch.tensor(1.0, dtype=torch.float32) / S  # CUDA divides by a scalar as x * float32(1/S)
    out, keeps = {}, {}
    for g in idx:
        gy, gx = divmod(g, S)
        fy = int(torch.floor(torch.tensor(float(gy)) * inv * h))
        fx = int(torch.floor(torch.tensor(float(gx)) * inv * w))
        kern = F.normalize(fi[:, fy, fx], dim=0)
        mask = ((kern @ ins_n).reshape(h, w) > mask_thr).float()
        P = q_cat * mask
        num = (P * (P > num_thr)).sum((1, 2))
        den = (P > 0.1).float().sum((1, 2))
        keep = num / (den + 1e-5) > cate
        conf = (P * keep.float()[:, None, None])[None]
        conf = F.interpolate(conf, size=(4 * h, 4 * w), mode="bilinear", align_corners=False)[..., :ih, :iw]
        if ih * iw > oh * ow:
            conf = F.interpolate(conf, size=(oh, ow), mode="bilinear", align_corners=False)
        best, arg = conf[0].max(0)
        lab = torch.where(best > fg_thr, arg + 1, torch.zeros_like(arg)).to(torch.uint8)
        if ih * iw < oh * ow:
            lab = F.interpolate(lab[None, None].float(), size=(oh, ow), mode="nearest")[0, 0].to(torch.uint8)
        elif lab.shape != (oh, ow):
            canvas = torch.zeros(oh, ow, dtype=torch.uint8)
            canvas[:min(oh, ih), :min(ow, iw)] = lab[:oh, :ow]
            lab = canvas
        out[g] = lab.numpy()
        keeps[g] = keep.numpy()
    return out, keeps


#: (resized image, original) pairs of real photos through the 1333 x 800 keep-ratio resize
PHOTO_PAIRS = [
    ((750, 1333), (1080, 1920)),   # 1080p landscape: enlarge (nearest; float64 gets 7 rows wrong)
    ((384, 576), (704, 1056)),     # enlarge (float64 differs in 1272 pixels)
    ((800, 450), (1920, 1080)),    # portrait 1080p
    ((800, 1067), (480, 640)),     # VGA upscaled by the test resize: shrink (bilinear before the argmax)
]


# ----------------------------------------------------------------------------------------------- tests

def test_library_builds_and_caches(lib):
    assert lib.uniparser_decode_abi_version() == 1
    p1 = kbuild.build_cpu()
    p2 = kbuild.build_cpu()
    assert p1 == p2 and p1.is_file()


def test_rebuild_on_source_change(tmp_path, monkeypatch):
    # the cache logic on a tiny stand-in source (fast): same sources -> same library, changed -> rebuilt
    src = tmp_path / "kernels"
    src.mkdir()
    for name in kbuild.CPU_HEADERS:
        shutil.copy(kbuild.KERNELS_DIR / name, src / name)
    (src / "uniparser_decode_cpu.cpp").write_text(
        '#include "uniparser_decode.h"\nextern "C" int uniparser_decode_abi_version(void) { return 1; }\n')
    monkeypatch.setenv("UNIPARSER_KERNELS_DIR", str(src))
    monkeypatch.setenv("UNIPARSER_KERNELS_BUILD_DIR", str(tmp_path / "build"))
    a = kbuild.build_cpu()
    assert a.parent == tmp_path / "build" and kbuild.build_cpu() == a
    with open(src / "uniparser_decode_cpu.cpp", "a") as f:
        f.write("// changed\n")
    b = kbuild.build_cpu()
    assert a != b and a.is_file() and b.is_file()
    assert ctypes.CDLL(str(b)).uniparser_decode_abi_version() == 1


@pytest.mark.parametrize("img,ori", GEOMETRIES)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_structured_matches_reference(seed, img, ori):
    ref, out = run_both(*structured_scene(seed), img, ori)
    assert ref.count >= 1
    assert_same(ref, out)


def test_random_scenes_are_not_trivial():
    kept = labelled = 0
    for seed in range(4):
        ref, out = run_both(*structured_scene(seed), (90, 120), (90, 120))
        kept += int(out["keep"].sum())
        labelled += int((out["part_maps"] > 0).sum())
    assert kept >= 8 and labelled > 1000


@pytest.mark.parametrize("seed", [10, 11])
def test_random_larger_features(seed):
    scene = structured_scene(seed, S=40, D=32, h=50, w=84, C=20, persons=4, parts=5)
    ref, out = run_both(*scene, (200, 333), (400, 666), k=20)
    assert_same(ref, out)
    ref, out = run_both(*scene, (200, 333), (150, 250), k=20)
    assert_same(ref, out)


@pytest.mark.parametrize("img,ori", [((60, 75), (60, 75)), ((60, 75), (30, 37)), ((60, 75), (120, 150)),
                                     ((64, 80), (70, 40)), ((60, 75), (50, 100))])
def test_two_overlapping_persons(img, ori):
    scene = two_person_scene()
    ref, out = run_both(*scene, img, ori)
    assert_same(ref, out)
    assert out["count"] == 2
    keep = out["keep"]
    assert keep[0, 0] and keep[0, 1] and not keep[0, 4]  # class 4 (maskness ~0) dropped
    assert keep[1, 2] and keep[1, 3]
    maps = out["part_maps"]
    assert {1, 2} <= set(np.unique(maps[0]).tolist()) and 5 not in maps[0]
    assert {3, 4} <= set(np.unique(maps[1]).tolist()) and not ({1, 5} & set(np.unique(maps[1]).tolist()))
    assert ((maps[0] > 0) & (maps[1] > 0)).any()  # the overlap belongs to both persons


def test_category_dropped_below_maskness_threshold():
    logits, ins, sem, seg = two_person_scene()
    for cate in (0.3, 0.9, 1.0):
        ref, out = run_both(logits, ins, sem, seg, (60, 75), (60, 75), cate=cate)
        assert_same(ref, out)
    assert not out["keep"].any() and not out["part_maps"].any()  # all dropped (maskness < 1), persons kept
    assert out["count"] == 2


def test_no_person():
    logits, ins, sem, seg = two_person_scene()
    logits = np.full_like(logits, -10.0)
    ref, out = run_both(logits, ins, sem, seg, (60, 75), (30, 40))
    assert_same(ref, out)
    assert out["count"] == 0 and out["part_maps"].shape == (0, 30, 40)
    assert (out["grid_index"] == -1).all() and not out["scores"].any()
    out = decode_cpu(logits, ins, sem, seg, (60, 75), (30, 40), 0.2, 0.5, 0.3, 10, max_maps=3)
    assert out["part_maps"].shape == (3, 30, 40) and not out["part_maps"].any()


@pytest.mark.parametrize("img,ori", [((1, 1), (1, 1)), ((1, 1), (3, 2)), ((4, 4), (1, 1)), ((3, 2), (1, 1))])
def test_one_by_one(img, ori):
    D, C = 4, 3
    ins = np.zeros((D, 1, 1), np.float32)
    ins[0] = 1.0
    sem = np.zeros((D, 1, 1), np.float32)
    sem[1, 0, 0], sem[2, 0, 0] = 0.9, 0.2
    seg = np.eye(C, D, k=1, dtype=np.float32)  # class 0 along channel 1, class 1 along channel 2, ...
    logits = np.full((1, 1), 3.0, np.float32)
    ref, out = run_both(logits, ins, sem, seg, img, ori)
    assert_same(ref, out)
    assert out["count"] == 1 and (out["part_maps"] == 1).all()


def test_k_smaller_than_peaks_and_ties():
    S, D, h, w, C = 12, 8, 12, 12, 3
    rng = np.random.default_rng(5)
    ins = rng.normal(0, 0.3, (D, h, w)).astype(np.float32)
    sem = rng.normal(0, 0.3, (D, h, w)).astype(np.float32)
    seg = rng.normal(0, 1, (C, D)).astype(np.float32)
    logits = np.full((S, S), -8.0, np.float32)
    cells = [(1, 1), (1, 7), (6, 3), (6, 9), (10, 5)]
    for y, x in cells:
        logits[y, x] = 2.0  # five tied peaks
    logits[10, 5] = 2.5     # one higher
    for k in (1, 2, 3, 4, 5, 6, 10):
        ref, out = run_both(logits, ins, sem, seg, (48, 48), (48, 48), k=k)
        assert_same(ref, out)
        expected = [10 * S + 5] + [y * S + x for y, x in cells[:4]]  # score desc, ties by flat index
        n = min(k, 5)
        assert out["count"] == n
        assert list(out["grid_index"][:n]) == expected[:n]
    scores, grid, count = peaks_cpu(logits, 0.2, 3)
    assert count == 3 and list(grid) == expected[:3]


def test_adjacent_equal_peaks():
    # equal scores next to each other: 2x2 and 5x5 tests with ties, identical to the reference
    S = 8
    logits = np.full((S, S), -5.0, np.float32)
    logits[3, 3] = logits[3, 4] = logits[4, 3] = 1.0
    logits[6, 6] = 1.0
    scene = structured_scene(3, S=S, D=8, h=16, w=16, C=4, persons=0)
    ref, out = run_both(logits, *scene[1:], (60, 60), (60, 60))
    assert_same(ref, out)


@pytest.mark.parametrize("max_maps", [0, 1, 2, 5])
def test_max_maps(max_maps):
    scene = structured_scene(1)
    ref, out = run_both(*scene, (90, 120), (60, 80), max_maps=max_maps)
    n = min(ref.count, max_maps)
    assert out["part_maps"].shape == (max_maps, 60, 80)
    np.testing.assert_array_equal(out["part_maps"][:n], ref.part_maps.numpy()[:n])
    assert not out["part_maps"][n:].any()


def test_input_forms():
    logits, ins, sem, seg = structured_scene(2)
    a = decode_cpu(logits, ins, sem, seg, (90, 120), (90, 120), 0.2, 0.5, 0.3, 10)
    b = decode_cpu(logits[None].astype(np.float64), np.asfortranarray(ins), sem.astype(np.float64), seg,
                   [90, 120], np.array([90, 120]), 0.2, 0.5, 0.3, 10)
    for key in ("scores", "grid_index", "keep", "part_maps"):
        np.testing.assert_array_equal(a[key], b[key])


def test_python_errors():
    logits, ins, sem, seg = structured_scene(0)
    args = (0.2, 0.5, 0.3, 10)
    with pytest.raises(ValueError, match="same shape"):
        decode_cpu(logits, ins, sem[:, :-1], seg, (90, 120), (90, 120), *args)
    with pytest.raises(ValueError, match="seg_kernels"):
        decode_cpu(logits, ins, sem, seg[:, :-1], (90, 120), (90, 120), *args)
    with pytest.raises(ValueError, match="larger than the upsampled"):
        decode_cpu(logits, ins, sem, seg, (97, 120), (90, 120), *args)
    with pytest.raises(ValueError, match="square"):
        decode_cpu(logits[:, :-1], ins, sem, seg, (90, 120), (90, 120), *args)
    with pytest.raises(ValueError, match="255"):
        decode_cpu(logits, ins, sem, np.ones((256, ins.shape[0]), np.float32), (90, 120), (90, 120), *args)
    with pytest.raises(ValueError, match="NaN"):
        decode_cpu(logits, ins, sem, seg, (90, 120), (90, 120), float("nan"), 0.5, 0.3, 10)
    with pytest.raises(ValueError, match="max_instances"):
        decode_cpu(logits, ins, sem, seg, (90, 120), (90, 120), 0.2, 0.5, 0.3, 0)
    with pytest.raises(ValueError, match="ori_shape"):
        decode_cpu(logits, ins, sem, seg, (90, 120), (0, 5), *args)


def test_c_error_codes(lib):
    f = ctypes.POINTER(ctypes.c_float)
    buf = (ctypes.c_float * 64)()
    ibuf = (ctypes.c_int * 64)()
    ubuf = (ctypes.c_ubyte * 64)()
    fp = ctypes.cast(buf, f)
    ip = ctypes.cast(ibuf, ctypes.POINTER(ctypes.c_int))
    up = ctypes.cast(ubuf, ctypes.POINTER(ctypes.c_ubyte))

    def call(S=2, D=2, h=2, w=2, C=2, K=2, thr=0.5, img=(4, 4), ori=(4, 4), maps=up, max_maps=1, center=fp):
        return lib.uniparser_decode_cpu(center, S, fp, fp, fp, D, h, w, C, K, 0.2, thr, 0.3, img[0], img[1], ori[0],
                                        ori[1], fp, ip, ip, up, maps, max_maps)

    assert call() == 0
    assert call(center=None) == -1
    assert call(maps=None) == -1
    assert call(maps=None, max_maps=0) == 0
    assert call(S=0) == -2 and call(K=0) == -2
    assert call(img=(9, 4)) == -3 and call(ori=(0, 4)) == -3
    assert call(C=256) == -4
    assert call(max_maps=-1) == -5
    assert call(thr=float("nan")) == -6
    for code in range(-10, 1):
        assert lib.uniparser_decode_error_string(code)
    assert b"unknown" in lib.uniparser_decode_error_string(-99)
    with pytest.raises(DecodeError) as ei:
        from uniparser_sdk.fused.cpu import _check
        _check(lib, -3)
    assert ei.value.name == "UNIPARSER_ERR_BAD_GEOMETRY"


def test_plugin_contract_constants():
    assert (PLUGIN_NAME, PLUGIN_VERSION, PLUGIN_NAMESPACE) == ("UniParserDecode", "1", "uniparser")
    assert PLUGIN_INPUTS == ("center_logits", "ins_feats", "sem_feats", "seg_kernels")
    assert PLUGIN_OUTPUTS == ("scores", "num_instances", "part_maps")
    assert list(PLUGIN_ATTRIBUTES) == ["max_instances", "ctr_score", "mask_thr", "cate_score_thr"]
    labels = np.arange(2 * 3 * 8 * 12, dtype=np.uint8).reshape(2, 3, 8, 12)
    packed = labels.view(np.int32)  # what the plugin's int32 (B, K, 4h, w) buffer holds
    assert packed.shape == (2, 3, 8, 3)
    np.testing.assert_array_equal(unpack_part_maps(packed), labels)
    contract = (kbuild.KERNELS_DIR / "PLUGIN_CONTRACT.md").read_text()
    for name in PLUGIN_INPUTS + PLUGIN_OUTPUTS + tuple(PLUGIN_ATTRIBUTES):
        assert name in contract


def test_nvcc_compiles_cuda_source():
    if shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").is_file():
        pytest.skip("nvcc not found")
    assert kbuild.cuda_check(archs=(75, 120))


# ------------------------------------------------------------------- issue 16: the core's rules, mask_thr, photo sizes

def assert_official(out, scene, img, ori, mask_thr, ctr=0.2, cate=0.3, k=10):
    """The twin's result equals the independent official-style loop, slot by slot (matched by grid cell)."""
    maps, keeps = official_loop(*scene, img, ori, ctr, mask_thr, cate, k)
    assert out["count"] == len(maps)
    for i in range(out["count"]):
        g = int(out["grid_index"][i])
        np.testing.assert_array_equal(out["keep"][i], keeps[g])
        diff = int((out["part_maps"][i] != maps[g]).sum())
        assert diff == 0, f"slot {i}: {diff} label pixels differ from the official-style loop"


def test_core_nearest_equals_torch_on_hundreds_of_pairs(probe):
    rng = np.random.default_rng(16)
    pairs = [(1080, 750), (1920, 1333), (704, 384), (1056, 576), (4032, 1067), (3024, 800), (1920, 800)]
    pairs += [(int(a), int(b)) for a, b in rng.integers(1, 4100, size=(400, 2))]
    pairs += [(o, i) for i in (1, 2, 3, 7, 100) for o in (1, 2, 3, 5, 200, 201)]
    f64_wrong = 0
    for out_size, in_size in pairs:
        want = torch_nearest(out_size, in_size)
        np.testing.assert_array_equal(probe_nearest(probe, out_size, in_size), want, err_msg=f"{in_size}->{out_size}")
        f64 = np.minimum(np.floor(np.arange(out_size) * (in_size / out_size)), in_size - 1)
        f64_wrong += int((f64 != want).any())
    assert f64_wrong >= 10  # the float64 rule really is another rule on such pairs
    assert probe_nearest(probe, 1080, 750)[180] == 124 and probe_nearest(probe, 704, 384)[55] == 30


@pytest.mark.parametrize("S", [24, 40])
def test_core_grid_to_feature_equals_official_float32(probe, S):
    # official int((g / S) * h): on CUDA a tensor divided by a scalar is g * float32(1 / S), in float32
    from uniparser_sdk.model.decode import grid_to_feature_index
    g = np.arange(S * S)
    gy, gx = (g // S).astype(np.float32), (g % S).astype(np.float32)
    inv = np.float32(1) / np.float32(S)
    sizes = [(1, 1), (200, 334), (192, 336), (96, 144), (37, 53)] + [(h, 2049 - h) for h in range(1, 2049, 5)]
    for h, w in sizes:
        got = np.zeros(S * S, np.int64)
        probe.probe_grid_to_feature(S, h, w, got.ctypes.data)
        fy = np.floor(gy * inv * np.float32(h)).astype(np.int64)
        fx = np.floor(gx * inv * np.float32(w)).astype(np.int64)
        np.testing.assert_array_equal(got, fy * w + fx, err_msg=f"S={S} h={h} w={w}")
        np.testing.assert_array_equal(got, grid_to_feature_index(torch.from_numpy(g), S, h, w).numpy())


def test_core_peak_tests_equal_torch_max_pools(probe):
    rng = np.random.default_rng(3)
    for S in (1, 2, 5, 16, 40):
        for _ in range(5):
            s = rng.choice(np.float32([0.1, 0.5, 0.7, 0.9]), size=(S, S)).astype(np.float32)  # many equal neighbours
            surv, lmax = np.zeros((S, S), np.uint8), np.zeros((S, S), np.uint8)
            probe.probe_peak_tests(s.ctypes.data, S, surv.ctypes.data, lmax.ctypes.data)
            t = torch.from_numpy(s)[None, None]
            want2 = (F.max_pool2d(t, 2, stride=1, padding=1)[..., :-1, :-1] == t)[0, 0].numpy()
            want5 = (F.max_pool2d(t, 5, stride=1, padding=2) == t)[0, 0].numpy()
            np.testing.assert_array_equal(surv.astype(bool), want2)
            np.testing.assert_array_equal(lmax.astype(bool), want5)
    s = np.zeros((3, 3), np.float32)
    s[1, 1], s[0, 0] = 0.5, 0.9  # only the UPPER-LEFT neighbour is larger
    surv, lmax = np.zeros((3, 3), np.uint8), np.zeros((3, 3), np.uint8)
    probe.probe_peak_tests(s.ctypes.data, 3, surv.ctypes.data, lmax.ctypes.data)
    assert surv[1, 1] == 0 and surv[0, 0] == 1


def test_core_area_rule_and_thresholds(probe):
    assert probe.probe_final_shrink(100, 100, 50, 199) == 1   # 9950 < 10000 pixels: shrink, though columns grow
    assert probe.probe_final_shrink(100, 100, 200, 51) == 0   # 10200 > 10000: enlarge, though columns shrink
    assert probe.probe_final_shrink(100, 100, 125, 80) == 0   # equal areas: no resize
    for thr in (0.3, 0.45, 0.6):
        t32 = float(np.float32(thr))
        assert probe.probe_part_label(t32 + 1e-3, 4, thr) == 5 and probe.probe_part_label(t32, 4, thr) == 0
        assert probe.probe_maskness_tests(t32 + 1e-3, thr) == 3  # numerator (> mask_thr) and denominator (> 0.1)
        assert probe.probe_maskness_tests(t32, thr) == 2          # strict: equal to mask_thr is not in the numerator
    assert probe.probe_maskness_tests(float(np.float32(0.1)), 0.45) == 0  # the denominator's 0.1 is fixed, strict


@pytest.mark.parametrize("mask_thr", [0.3, 0.45, 0.6])
@pytest.mark.parametrize("img,ori", GEOMETRIES + [((90, 120), (120, 90)), ((90, 120), (135, 80))])
def test_mask_thr_override_matches_reference_and_official(mask_thr, img, ori):
    for seed in (0, 1):
        scene = structured_scene(seed)
        ref, out = run_both(*scene, img, ori, mask_thr=mask_thr)
        assert_same(ref, out)
        assert_official(out, scene, img, ori, mask_thr)


def test_mask_thr_reaches_numerator_and_foreground_test():
    # the same scenes decoded with the numerator / foreground test fixed at 0.5 give other keeps / labels, so the
    # equality above really checks that the run-time mask_thr is used in those two places
    num_differs = fg_differs = 0
    for seed in range(4):
        scene = structured_scene(seed)
        for thr in (0.3, 0.6):
            out = decode_cpu(*scene, (90, 120), (90, 120), 0.2, thr, 0.3, 10)
            _, k_fixed = official_loop(*scene, (90, 120), (90, 120), 0.2, thr, 0.3, 10, num_thr=0.5)
            m_fixed, _ = official_loop(*scene, (90, 120), (90, 120), 0.2, thr, 0.3, 10, fg_thr=0.5)
            g = [int(x) for x in out["grid_index"][:out["count"]]]
            num_differs += sum(int((out["keep"][i] != k_fixed[gi]).any()) for i, gi in enumerate(g))
            fg_differs += sum(int((out["part_maps"][i] != m_fixed[gi]).sum()) for i, gi in enumerate(g))
    assert num_differs > 0 and fg_differs > 0


@pytest.mark.parametrize("img,ori", PHOTO_PAIRS)
def test_photo_sizes_match_reference_and_official(img, ori):
    hp, wp = -(-img[0] // 32) * 32, -(-img[1] // 32) * 32  # padded network input
    scene = structured_scene(7, S=40, D=16, h=hp // 4, w=wp // 4, C=7, persons=3, parts=3)
    ref, out = run_both(*scene, img, ori, k=5)
    assert out["count"] >= 2 and int((out["part_maps"] > 0).sum()) > 10000
    assert_same(ref, out)
    assert_official(out, scene, img, ori, 0.5, k=5)
    if ori[0] * ori[1] > img[0] * img[1]:
        # the nearest step alone: the twin's labels at the resized size, resized by torch, are its labels at (H, W)
        at = decode_cpu(*scene, img, img, 0.2, 0.5, 0.3, 5)["part_maps"]
        want = F.interpolate(torch.from_numpy(at)[None].float(), size=ori, mode="nearest")[0].to(torch.uint8).numpy()
        np.testing.assert_array_equal(out["part_maps"], want)
        rows = np.minimum(np.floor(np.arange(ori[0]) * (img[0] / ori[0])), img[0] - 1).astype(int)
        cols = np.minimum(np.floor(np.arange(ori[1]) * (img[1] / ori[1])), img[1] - 1).astype(int)
        f64 = at[:, rows][:, :, cols]
        if img in ((750, 1333), (384, 576)):
            assert (f64 != out["part_maps"]).any()  # float64 indices would have failed this test


KERNEL_BLOCKS = {"k_peaks": 1024, "k_norms": 256, "k_kernels": 256, "k_cosine<true>": 128, "k_cosine<false>": 128,
                 "k_bbox": 256, "k_maskness_partial": 256, "k_maskness_final": 256, "k_geometry": 256,
                 "k_finish": 256}


def test_debug_build_registers_fit_the_block_size():
    """-G -Xptxas -v: every kernel's registers x its launch block size fit the 65,536 registers of a block (k_peaks
    needed 96 x 1024 before __launch_bounds__, and a -G build's launch failed)."""
    if kbuild.find_cuda() is None:
        pytest.skip("nvcc not found")
    src = (kbuild.sources_dir() / kbuild.CUDA_SOURCE).read_text()
    assert "constexpr int kPeakThreads = 1024;" in src and "constexpr int kThreads = 256;" in src
    assert "constexpr int kCosPix = 128;" in src and "kFinishX = 32, kFinishY = 8;" in src
    regs = kbuild.ptxas_registers(arch=75, debug=True)
    assert set(regs) == set(KERNEL_BLOCKS)
    for name, r in regs.items():
        allocated = -(-r // 8) * 8  # registers are allocated per thread in units of 8
        assert allocated * KERNEL_BLOCKS[name] <= 65536, f"{name}: {r} registers x {KERNEL_BLOCKS[name]} threads"


# ----------------------------------------------------------------------------------------------- GPU

@pytest.mark.gpu
@pytest.mark.parametrize("img,ori", GEOMETRIES[:5])
@pytest.mark.parametrize("seed", [0, 1])
def test_cuda_op_matches_reference(seed, img, ori):
    from uniparser_sdk.fused import torch_op
    if not torch_op.is_available():
        pytest.skip("CUDA op unavailable (no CUDA torch / GPU / nvcc)")
    logits, ins, sem, seg = structured_scene(seed)
    cfg = DecodeConfig(ctr_score=0.2, mask_thr=0.5, cate_score_thr=0.3, max_instances=10)
    t = [torch.from_numpy(a) for a in (logits, ins, sem, seg)]
    ref = decode_single(t[0][None], t[1], t[2], t[3], img, ori, cfg)
    dev = [a.cuda() for a in t]
    out = torch_op.decode_cuda(*dev, img, ori, 0.2, 0.5, 0.3, 10)
    assert out["count"] == ref.count
    np.testing.assert_array_equal(out["grid_index"].cpu().numpy(), ref.grid_index.numpy())
    np.testing.assert_allclose(out["scores"].cpu().numpy(), ref.scores.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(out["keep"].cpu().numpy(), ref.keep.numpy())
    np.testing.assert_array_equal(out["part_maps"].cpu().numpy(), ref.part_maps.numpy())


@pytest.mark.gpu
def test_cuda_op_hand_built_and_slots():
    from uniparser_sdk.fused import torch_op
    if not torch_op.is_available():
        pytest.skip("CUDA op unavailable (no CUDA torch / GPU / nvcc)")
    for scene, img, ori in ((two_person_scene(), (60, 75), (30, 37)), (two_person_scene(), (60, 75), (120, 150))):
        ref, cpu_out = run_both(*scene, img, ori)
        dev = [torch.from_numpy(np.ascontiguousarray(a)).cuda() for a in scene]
        out = torch_op.decode_cuda(*dev, img, ori, 0.2, 0.5, 0.3, 10, max_maps=4)
        maps = out["part_maps"].cpu().numpy()
        np.testing.assert_array_equal(maps[:2], ref.part_maps.numpy())
        assert not maps[2:].any()
        np.testing.assert_array_equal(out["keep"].cpu().numpy(), ref.keep.numpy())


@pytest.mark.gpu
def test_cuda_op_allocates_only_count_maps_and_refuses_k_above_grid_limit():
    from uniparser_sdk.fused import torch_op
    if not torch_op.is_available():
        pytest.skip("CUDA op unavailable (no CUDA torch / GPU / nvcc)")
    scene = two_person_scene()
    dev = [torch.from_numpy(np.ascontiguousarray(a)).cuda() for a in scene]
    out = torch_op.decode_cuda(*dev, (60, 75), (120, 150), 0.2, 0.5, 0.3, 100)  # K = 100 slots, 2 persons
    assert out["count"] == 2 and tuple(out["part_maps"].shape) == (2, 120, 150)
    assert out["part_maps"].untyped_storage().nbytes() == 2 * 120 * 150  # not a view of K maps
    with pytest.raises(RuntimeError, match="overflow|grid"):
        torch_op.decode_cuda(*dev, (60, 75), (60, 75), 0.2, 0.5, 0.3, 65535 * 32 + 1)


@pytest.mark.gpu
@pytest.mark.parametrize("mask_thr", [0.3, 0.45, 0.6])
@pytest.mark.parametrize("img,ori", PHOTO_PAIRS[:2] + [((90, 120), (120, 90))])
def test_cuda_op_mask_thr_and_photo_sizes(mask_thr, img, ori):
    from uniparser_sdk.fused import torch_op
    if not torch_op.is_available():
        pytest.skip("CUDA op unavailable (no CUDA torch / GPU / nvcc)")
    hp, wp = -(-img[0] // 32) * 32, -(-img[1] // 32) * 32
    scene = structured_scene(7, S=40, D=16, h=hp // 4, w=wp // 4, C=7, persons=3, parts=3)
    ref, cpu_out = run_both(*scene, img, ori, mask_thr=mask_thr, k=5)
    out = torch_op.decode_cuda(*[torch.from_numpy(a).cuda() for a in scene], img, ori, 0.2, mask_thr, 0.3, 5)
    assert out["count"] == ref.count
    np.testing.assert_array_equal(out["keep"].cpu().numpy(), ref.keep.numpy())
    np.testing.assert_array_equal(out["part_maps"].cpu().numpy(), ref.part_maps.numpy())
