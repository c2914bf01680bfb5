"""Tests of uniparser_sdk.data: synthetic scenes, CIHP / MHPv2 readers and writers, transforms."""
import struct
import sys
import zlib

import cv2
import numpy as np
import pytest

from uniparser_sdk.classes import CIHP_CLASSES, MHP_V2_CLASSES, flip_permutation
from uniparser_sdk.data import (CIHPDataset, Compose, MHPv2Dataset, Normalize, PadToDivisor, RandomHFlip,
                                RandomResize, SyntheticScenes, make_scene, read_label_png, train_transforms,
                                write_cihp, write_mhp)
from uniparser_sdk.runtime.preprocess import normalize

C = {name: i for i, name in enumerate(CIHP_CLASSES)}
SIZE = (192, 256)


@pytest.fixture(scope="module")
def crowd():
    """12 small scenes with 3..4 persons each."""
    ds = SyntheticScenes(12, seed=3, size=SIZE, persons=(3, 4))
    return [ds[i] for i in range(len(ds))]


def _jpeg(img, quality=95):
    """What a JPEG write + read of ``img`` gives (the layouts store images as .jpg)."""
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert ok and cv2.PSNR(out, img) > 30
    return out


def _centroid_x(label_map, cls):
    xs = np.nonzero(label_map == cls)[1]
    return xs.mean() if xs.size else None


# ---------------------------------------------------------------------------------------------- synthetic
def test_synthetic_format_and_classes():
    ds = SyntheticScenes(2, seed=0, size=SIZE)
    assert len(ds) == 2 and ds.num_classes == 20 and ds.classes == CIHP_CLASSES
    s = ds[1]
    assert set(s) == {"id", "image", "persons"} and s["id"] == ds.ids[1]
    assert s["image"].shape == SIZE + (3,) and s["image"].dtype == np.uint8
    assert 1 <= len(s["persons"]) <= 4
    for p in s["persons"]:
        assert p.shape == SIZE and p.dtype == np.uint8 and p.max() < 20 and (p > 0).any()
    assert ds[-1]["id"] == s["id"]
    with pytest.raises(IndexError):
        ds[2]


def test_synthetic_deterministic_by_seed():
    a, b = SyntheticScenes(3, seed=11, size=SIZE), SyntheticScenes(3, seed=11, size=SIZE)
    for i in range(3):
        x, y = a[i], b[i]
        assert np.array_equal(x["image"], y["image"])
        assert len(x["persons"]) == len(y["persons"])
        assert all(np.array_equal(p, q) for p, q in zip(x["persons"], y["persons"]))
    # scene i depends on (seed, i) only, not on the length of the set
    assert np.array_equal(SyntheticScenes(10, seed=11, size=SIZE)[2]["image"], a[2]["image"])
    # another seed, another index: other scenes
    c = SyntheticScenes(3, seed=12, size=SIZE)
    assert not np.array_equal(a[0]["image"], c[0]["image"])
    assert not np.array_equal(a[0]["image"], a[1]["image"])


def test_persons_overlap_and_visible_maps_disjoint(crowd):
    touching = 0
    for s in crowd:
        fg = np.stack([p > 0 for p in s["persons"]])
        assert fg.sum(0).max() <= 1, "visible person maps must be disjoint"
        owner = np.zeros(SIZE, int)
        for k, p in enumerate(s["persons"], start=1):
            owner[p > 0] = k
        # a pixel of one person next to a pixel of another = an occlusion boundary
        h = (owner[:, 1:] != owner[:, :-1]) & (owner[:, 1:] > 0) & (owner[:, :-1] > 0)
        v = (owner[1:] != owner[:-1]) & (owner[1:] > 0) & (owner[:-1] > 0)
        touching += bool(h.any() or v.any())
    assert touching >= 3, f"only {touching} of {len(crowd)} crowded scenes have overlapping persons"
    assert sum(len(s["persons"]) for s in crowd) >= 3 * len(crowd) - 2  # few people dropped


def test_person_anatomy_and_left_right_convention(crowd):
    checked = 0
    for s in crowd:
        for p in s["persons"]:
            assert (p == C["face"]).any() and (p == C["hair"]).any()
            ys_face = np.nonzero(p == C["face"])[0]
            ys_shoes = np.nonzero((p == C["left-shoe"]) | (p == C["right-shoe"]))[0]
            if ys_shoes.size:
                assert ys_face.mean() < ys_shoes.mean()
            # people face the camera: their LEFT limbs are on the IMAGE RIGHT
            for left, right in (("left-arm", "right-arm"), ("left-leg", "right-leg"), ("left-shoe", "right-shoe")):
                xl, xr = _centroid_x(p, C[left]), _centroid_x(p, C[right])
                if xl is not None and xr is not None:
                    assert xl > xr, (s["id"], left)
                    checked += 1
    assert checked >= 40


def test_make_scene_and_label_sets():
    s = make_scene(np.random.default_rng(0), (128, 160), 1)
    assert len(s["persons"]) == 1 and s["image"].shape == (128, 160, 3)
    assert make_scene(np.random.default_rng(0), (128, 160), 0)["persons"] == []
    cihp = SyntheticScenes(1, seed=4, size=SIZE, persons=(2, 2))[0]
    mhp = SyntheticScenes(1, seed=4, size=SIZE, persons=(2, 2), label_set="mhp")
    assert mhp.num_classes == 59
    m = mhp[0]
    assert np.array_equal(cihp["image"], m["image"])
    names = {MHP_V2_CLASSES[v] for p in m["persons"] for v in np.unique(p) if v}
    assert {"face", "hair"} <= names and names <= set(MHP_V2_CLASSES)
    for pc, pm in zip(cihp["persons"], m["persons"]):
        assert np.array_equal(pc > 0, pm > 0)
        assert np.array_equal(pm == MHP_V2_CLASSES.index("face"), pc == C["face"])
        # hands are part of the arm in CIHP, separate classes in MHPv2
        hand = np.isin(pm, [MHP_V2_CLASSES.index("left-hand"), MHP_V2_CLASSES.index("right-hand")])
        assert np.isin(pc[hand], [C["left-arm"], C["right-arm"], C["glove"]]).all()
    with pytest.raises(ValueError):
        SyntheticScenes(1, persons=(3, 1))


def test_data_modules_do_not_import_torch():
    import subprocess
    code = "import sys, uniparser_sdk.data; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------- flip
def test_flip_swaps_left_right_classes():
    img = np.zeros((4, 6, 3), np.uint8)
    img[1, 1] = (10, 20, 30)
    lab = np.zeros((4, 6), np.uint8)
    lab[1, 1] = C["left-arm"]
    lab[2, 4] = C["right-shoe"]
    lab[3, 0] = C["face"]
    out = RandomHFlip(p=1.0, classes=CIHP_CLASSES)({"id": "x", "image": img, "persons": [lab]})
    q = out["persons"][0]
    assert out["flip"] is True
    assert q[1, 4] == C["right-arm"] and q[2, 1] == C["left-shoe"] and q[3, 5] == C["face"]
    assert np.count_nonzero(q) == 3
    assert tuple(out["image"][1, 4]) == (10, 20, 30)
    same = RandomHFlip(p=0.0, classes=CIHP_CLASSES)({"id": "x", "image": img, "persons": [lab]})
    assert same["flip"] is False and np.array_equal(same["persons"][0], lab)
    with pytest.raises(TypeError):
        RandomHFlip(p=0.5)


def test_flip_scene_keeps_left_on_image_right(crowd):
    s = crowd[0]
    out = RandomHFlip(p=1.0, classes=CIHP_CLASSES)(s)
    perm = flip_permutation(CIHP_CLASSES)
    W = SIZE[1]
    assert np.array_equal(out["image"], s["image"][:, ::-1])
    for p, q in zip(s["persons"], out["persons"]):
        assert np.array_equal(q, perm[p[:, ::-1]])
        ys, xs = np.nonzero(p == C["left-arm"])
        if ys.size:
            assert (q[ys, W - 1 - xs] == C["right-arm"]).all()
        xl, xr = _centroid_x(q, C["left-arm"]), _centroid_x(q, C["right-arm"])
        if xl is not None and xr is not None:
            assert xl > xr
    # MHPv2 classes: hands / boots / ... swap too
    perm_m = RandomHFlip(p=1.0, classes=MHP_V2_CLASSES).perm
    assert perm_m[MHP_V2_CLASSES.index("left-hand")] == MHP_V2_CLASSES.index("right-hand")
    assert perm_m[MHP_V2_CLASSES.index("right-boot")] == MHP_V2_CLASSES.index("left-boot")
    assert perm_m[MHP_V2_CLASSES.index("coat")] == MHP_V2_CLASSES.index("coat")


# ---------------------------------------------------------------------------------------------- CIHP
def test_cihp_write_read_round_trip(tmp_path, crowd):
    root = tmp_path / "instance-level_human_parsing"
    ids = write_cihp(str(root), crowd[:3], split="Training")
    write_cihp(str(root), crowd[3:5], split="val")
    assert (root / "Training" / "train_id.txt").read_text().split() == ids
    hum = cv2.imread(str(root / "Training" / "Human_ids" / f"{ids[0]}.png"), cv2.IMREAD_UNCHANGED)
    assert hum.ndim == 2 and set(np.unique(hum)) == set(range(len(crowd[0]["persons"]) + 1))
    for ds_root in (root, tmp_path):  # the dataset folder or its parent
        ds = CIHPDataset(str(ds_root), "train")
        assert len(ds) == 3 and ds.num_classes == 20
        for s, r in zip(crowd[:3], ds):
            assert r["id"] == s["id"]
            assert len(r["persons"]) == len(s["persons"])
            for p, q in zip(s["persons"], r["persons"]):
                assert q.dtype == np.uint8 and np.array_equal(p, q)
            assert np.array_equal(r["image"], _jpeg(s["image"]))
    val = CIHPDataset(str(root), "Validation")
    assert [s["id"] for s in val] == [s["id"] for s in crowd[3:5]]
    # writing the same ids again keeps the list free of duplicates
    write_cihp(str(root), crowd[:1], split="train")
    assert len(CIHPDataset(str(root), "train")) == 3


def test_cihp_clear_errors(tmp_path, crowd):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="nope"):
        CIHPDataset(str(missing))
    root = tmp_path / "cihp"
    write_cihp(str(root), crowd[:1], split="train")
    with pytest.raises(FileNotFoundError, match="Validation"):
        CIHPDataset(str(root), "val")
    with pytest.raises(ValueError, match="split"):
        CIHPDataset(str(root), "test")
    (root / "Training" / "Human_ids" / f"{crowd[0]['id']}.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"Human_ids.*\.png"):
        CIHPDataset(str(root), "train")
    (root / "Training" / "train_id.txt").unlink()
    with pytest.raises(FileNotFoundError, match="train_id.txt"):
        CIHPDataset(str(root), "train")


# ---------------------------------------------------------------------------------------------- MHPv2
def test_mhp_write_read_round_trip_rgb_and_gray(tmp_path, crowd):
    root = tmp_path / "LV-MHP-v2"
    write_mhp(str(root), crowd[:2], split="train", channels=3)
    write_mhp(str(root), crowd[2:3], split="val", channels=1)
    sid, n = crowd[0]["id"], len(crowd[0]["persons"])
    # a real 3-channel annotation: label in red (PIL's first channel = OpenCV's channel 2), others 0
    raw = cv2.imread(str(root / "train" / "parsing_annos" / f"{sid}_{n:02d}_01.png"), cv2.IMREAD_UNCHANGED)
    assert raw.shape == SIZE + (3,)
    assert np.array_equal(raw[:, :, 2], crowd[0]["persons"][0]) and not raw[:, :, :2].any()
    gray = cv2.imread(str(root / "val" / "parsing_annos" / f"{crowd[2]['id']}_"
                          f"{len(crowd[2]['persons']):02d}_01.png"), cv2.IMREAD_UNCHANGED)
    assert gray.ndim == 2
    for split, expect in (("train", crowd[:2]), ("val", crowd[2:3])):
        ds = MHPv2Dataset(str(tmp_path), split, classes=CIHP_CLASSES)  # parent folder works too
        assert [s["id"] for s in ds] == [s["id"] for s in expect]
        for s, r in zip(expect, ds):
            assert len(r["persons"]) == len(s["persons"])
            for p, q in zip(s["persons"], r["persons"]):
                assert np.array_equal(p, q)
            assert np.array_equal(r["image"], _jpeg(s["image"]))
    assert MHPv2Dataset(str(root), "train").num_classes == 59


def test_label_png_channel_conventions(tmp_path):
    lab = np.arange(60, dtype=np.uint8).reshape(6, 10)
    bgr = np.stack([np.full_like(lab, 200), np.full_like(lab, 100), lab], axis=2)
    cv2.imwrite(str(tmp_path / "rgb.png"), bgr)
    assert np.array_equal(read_label_png(str(tmp_path / "rgb.png")), lab)
    cv2.imwrite(str(tmp_path / "rgba.png"), np.dstack([bgr, np.full_like(lab, 255)]))
    assert np.array_equal(read_label_png(str(tmp_path / "rgba.png")), lab)
    cv2.imwrite(str(tmp_path / "gray.png"), lab)
    assert np.array_equal(read_label_png(str(tmp_path / "gray.png")), lab)

    # indexed PNG (palette): OpenCV expands it to colours, the reader must give the indices back
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    pal = np.random.default_rng(0).permutation(256 * 3).reshape(256, 3) % 251  # distinct colours
    raw = b"".join(b"\x00" + row.tobytes() for row in lab)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 10, 6, 8, 3, 0, 0, 0))
           + chunk(b"PLTE", pal.astype(np.uint8).tobytes()) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    (tmp_path / "pal.png").write_bytes(png)
    assert cv2.imread(str(tmp_path / "pal.png"), cv2.IMREAD_UNCHANGED).ndim == 3
    assert np.array_equal(read_label_png(str(tmp_path / "pal.png")), lab)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_label_png(str(tmp_path / "missing.png"))


def test_mhp_clear_errors(tmp_path, crowd):
    with pytest.raises(FileNotFoundError, match="LV-MHP-v2"):
        MHPv2Dataset(str(tmp_path / "LV-MHP-v2"))
    root = tmp_path / "mhp"
    write_mhp(str(root), crowd[:1], split="train")
    with pytest.raises(FileNotFoundError, match=r"val\.txt"):
        MHPv2Dataset(str(root), "val")
    with pytest.raises(ValueError, match="split"):
        MHPv2Dataset(str(root), "test")
    sid, n = crowd[0]["id"], len(crowd[0]["persons"])
    annos = root / "train" / "parsing_annos"
    (annos / f"{sid}_{n:02d}_{n:02d}.png").rename(annos / f"{sid}_{n:02d}_{n + 1:02d}.png")
    with pytest.raises(ValueError, match="inconsistent"):
        MHPv2Dataset(str(root), "train")
    assert len(MHPv2Dataset(str(root), "train", strict=False)[0]["persons"]) == n
    for f in annos.iterdir():
        f.unlink()
    with pytest.raises(FileNotFoundError, match=f"{sid}_<NN>_<KK>"):
        MHPv2Dataset(str(root), "train")
    with pytest.raises(ValueError, match="no persons"):
        write_mhp(str(root), [{"id": "empty", "image": crowd[0]["image"], "persons": []}])


# ---------------------------------------------------------------------------------------------- transforms
@pytest.mark.parametrize("hw", [(384, 512), (100, 1000), (1200, 700), (900, 90)])
def test_random_resize_respects_limits(hw):
    h, w = hw
    lab = np.zeros((h, w), np.uint8)
    lab[h // 4: h // 2, w // 4: w // 2] = 5
    lab[h // 2:, w // 2:] = 17
    sample = {"id": "x", "image": np.zeros((h, w, 3), np.uint8), "persons": [lab]}
    rr = RandomResize(seed=0)
    shorts = set()
    for _ in range(12):
        out = rr(sample)
        nh, nw = out["image"].shape[:2]
        assert out["img_shape"] == (nh, nw) and out["ori_shape"] == (h, w)
        assert max(nh, nw) <= 1333 and min(nh, nw) <= 800
        assert min(nh, nw) in range(640, 801, 32) or max(nh, nw) == 1333
        assert abs(nh / nw - h / w) < 0.02 * h / w + 2 / min(nw, nh)  # keep ratio
        assert out["persons"][0].shape == (nh, nw)
        assert set(np.unique(out["persons"][0])) == {0, 5, 17}  # nearest: no new labels
        shorts.add(min(nh, nw))
    if max(h, w) / min(h, w) < 1333 / 800:
        assert len(shorts) > 2  # several scales drawn
    a, b = RandomResize(seed=5), RandomResize(seed=5)
    assert [a(sample)["img_shape"] for _ in range(5)] == [b(sample)["img_shape"] for _ in range(5)]


def test_pad_to_32_and_normalize():
    img = np.random.default_rng(0).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    lab = np.full((45, 70), 3, np.uint8)
    out = Compose([Normalize(), PadToDivisor(32)])({"id": "x", "image": img, "persons": [lab]})
    assert out["image"].shape == (64, 96, 3) and out["image"].dtype == np.float32
    assert out["pad_shape"] == (64, 96) and out["img_shape"] == (45, 70)
    assert np.allclose(out["image"][:45, :70], normalize(img)) and not out["image"][45:].any()
    p = out["persons"][0]
    assert p.shape == (64, 96) and (p[:45, :70] == 3).all() and not p[45:].any() and not p[:, 70:].any()
    same = PadToDivisor(32)({"id": "x", "image": np.zeros((64, 32, 3), np.uint8), "persons": []})
    assert same["pad_shape"] == (64, 32)


def test_train_pipeline_on_scene(crowd):
    out = train_transforms(CIHP_CLASSES, seed=1)(crowd[1])
    hp, wp = out["pad_shape"]
    h, w = out["img_shape"]
    assert hp % 32 == 0 and wp % 32 == 0 and hp - 32 < h <= hp and wp - 32 < w <= wp
    assert min(h, w) in range(640, 801, 32) and out["image"].shape == (hp, wp, 3)
    assert len(out["persons"]) == len(crowd[1]["persons"])
    assert all(p.shape == (hp, wp) and p.dtype == np.uint8 for p in out["persons"])
    assert crowd[1]["image"].dtype == np.uint8 and crowd[1]["image"].shape == SIZE + (3,)  # input untouched
