"""Tests of uniparser_sdk.results (ParseResult, Person, RLE, writers, draw) and uniparser_sdk.io_utils."""
import json
import os

import cv2
import numpy as np
import pytest

from uniparser_sdk.classes import CIHP_CLASSES, MHP_V2_CLASSES, palette
from uniparser_sdk.io_utils import atomic_imwrite, atomic_write_bytes, atomic_write_text, imread
from uniparser_sdk.results import ParseResult, Person, rle_decode, rle_encode

H, W = 60, 80


def two_persons():
    """Low-score person A (hair over upper-clothes) overlapping high-score person B (face)."""
    a = np.zeros((H, W), np.uint8)
    a[10:30, 5:35] = 2       # hair
    a[30:50, 5:35] = 5       # upper-clothes
    b = np.zeros((H, W), np.uint8)
    b[20:40, 25:55] = 13     # face
    b[40:45, 25:55] = 14     # left-arm
    return a, b


@pytest.fixture
def result():
    a, b = two_persons()
    # given in ascending score order on purpose: the result must sort them
    return ParseResult.from_label_maps([0.4, 0.9], [a, b], CIHP_CLASSES,
                                       timings={"decode": 1.25}, source="img.jpg")


# ---------------------------------------------------------------- RLE

@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (13, 17), (64, 48)])
@pytest.mark.parametrize("density", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_rle_round_trip(shape, density):
    rng = np.random.default_rng(shape[0] * 1000 + shape[1] * 10 + int(density * 10))
    mask = rng.random(shape) < density
    rle = rle_encode(mask)
    assert rle["size"] == list(shape)
    assert all(isinstance(c, int) for c in rle["counts"])
    assert sum(rle["counts"]) == mask.size
    back = rle_decode(rle)
    assert back.dtype == bool and back.shape == shape
    np.testing.assert_array_equal(back, mask)
    json.dumps(rle)  # serialisable


def test_rle_edge_cases():
    assert rle_encode(np.zeros((3, 4), bool)) == {"size": [3, 4], "counts": [12]}
    assert rle_encode(np.ones((3, 4), bool)) == {"size": [3, 4], "counts": [0, 12]}
    assert rle_encode(np.ones((1, 1), np.uint8)) == {"size": [1, 1], "counts": [0, 1]}
    assert rle_encode(np.zeros((1, 1), np.uint8)) == {"size": [1, 1], "counts": [1]}
    assert rle_decode({"size": [0, 5], "counts": []}).shape == (0, 5)


def test_rle_coco_convention():
    # column-major order: columns are [0,1], [1,1], [0,0] -> 0 1 1 1 0 0
    mask = np.array([[0, 1, 0],
                     [1, 1, 0]], dtype=np.uint8)
    assert rle_encode(mask) == {"size": [2, 3], "counts": [1, 3, 2]}
    # first pixel set -> counts start with a zero-length run of zeros
    mask2 = np.array([[1, 0],
                      [0, 1]], dtype=bool)          # F order: 1 0 0 1
    assert rle_encode(mask2) == {"size": [2, 2], "counts": [0, 1, 2, 1]}
    np.testing.assert_array_equal(rle_decode({"size": [2, 3], "counts": [1, 3, 2]}), mask.astype(bool))


def test_rle_decode_rejects_bad_input():
    from uniparser_sdk.errors import UniParserError

    with pytest.raises(ValueError, match="sum"):
        rle_decode({"size": [2, 2], "counts": [1, 2]})
    with pytest.raises(ValueError, match="middle of a number"):
        rle_decode({"size": [2, 2], "counts": "abc"})   # 'c' has the "more" bit: truncated
    with pytest.raises(UniParserError, match="outside"):
        rle_decode({"size": [2, 2], "counts": "4 "})
    with pytest.raises(ValueError, match="sum"):
        rle_decode({"size": [2, 2], "counts": "3"})     # one run of 3 != 4 pixels
    with pytest.raises(ValueError):
        rle_decode({"counts": [4]})


# ---------------------------------------------------------------- Person / ParseResult

def test_person_properties():
    a, b = two_persons()
    p = Person(0.5, a)
    assert p.bbox == (5, 10, 35, 50)
    assert p.part_ids == [2, 5]
    assert p.area == 20 * 30 * 2
    assert p.mask.dtype == bool and p.mask.sum() == p.area
    q = Person(0.7, b)
    assert q.bbox == (25, 20, 55, 45)
    assert q.part_ids == [13, 14]
    empty = Person(0.1, np.zeros((H, W), np.uint8))
    assert empty.bbox is None and empty.part_ids == [] and empty.area == 0
    single = np.zeros((H, W), np.int64)
    single[H - 1, W - 1] = 3
    s = Person(1, single)
    assert s.parts.dtype == np.uint8 and s.bbox == (W - 1, H - 1, W, H) and s.part_ids == [3]
    assert isinstance(s.score, float)


def test_person_validation():
    with pytest.raises(ValueError):
        Person(0.5, np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(TypeError):
        Person(0.5, np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError):
        Person(0.5, np.full((2, 2), 300, np.int32))
    with pytest.raises(ValueError):
        Person(float("nan"), np.zeros((2, 2), np.uint8))


def test_persons_sorted(result):
    assert [p.score for p in result] == [0.9, 0.4]
    r = ParseResult([Person(s, np.zeros((4, 4), np.uint8)) for s in (0.1, 0.8, 0.3, 0.8, 0.5)],
                    (4, 4), MHP_V2_CLASSES)
    assert [p.score for p in r.persons] == [0.8, 0.8, 0.5, 0.3, 0.1]
    assert r.num_persons == len(r) == 5
    assert r[0].score == 0.8


def test_result_validation():
    with pytest.raises(ValueError, match="shape"):
        ParseResult([Person(0.5, np.zeros((4, 5), np.uint8))], (4, 4), CIHP_CLASSES)
    with pytest.raises(ValueError, match="out of range"):
        ParseResult([Person(0.5, np.full((4, 4), 20, np.uint8))], (4, 4), CIHP_CLASSES)
    with pytest.raises(ValueError):
        ParseResult.from_label_maps([0.5, 0.6], [np.zeros((4, 4), np.uint8)], CIHP_CLASSES)
    with pytest.raises(ValueError, match="image_shape"):
        ParseResult.from_label_maps([], [], CIHP_CLASSES)


def test_from_label_maps_array_and_num_classes():
    maps = np.zeros((2, 5, 6), np.uint8)
    maps[0, 1, 1] = 1
    r = ParseResult.from_label_maps(np.array([0.2, 0.6], np.float32), maps, 20)
    assert r.classes == CIHP_CLASSES and r.image_shape == (5, 6)
    assert r.persons[1].parts[1, 1] == 1
    empty = ParseResult.from_label_maps([], np.zeros((0, 5, 6), np.uint8), 59)
    assert empty.num_persons == 0 and empty.classes == MHP_V2_CLASSES
    assert empty.semantic.shape == (5, 6) and not empty.semantic.any()
    assert empty.instance_map.dtype == np.int32 and not empty.instance_map.any()


def test_semantic_and_instance_map_overlap(result):
    a, b = two_persons()
    sem, inst = result.semantic, result.instance_map
    assert sem.dtype == np.uint8 and sem.shape == (H, W)
    assert inst.dtype == np.int32 and inst.shape == (H, W)
    # overlap region of A (hair/upper-clothes) and B (face): B has the higher score and wins
    assert sem[25, 30] == 13 and inst[25, 30] == 1
    assert sem[35, 30] == 13 and inst[35, 30] == 1
    # only A
    assert sem[15, 10] == 2 and inst[15, 10] == 2
    assert sem[45, 10] == 5 and inst[45, 10] == 2
    # only B
    assert sem[42, 50] == 14 and inst[42, 50] == 1
    # nothing
    assert sem[55, 70] == 0 and inst[55, 70] == 0
    # exact composite
    expected_inst = np.where(b > 0, 1, np.where(a > 0, 2, 0))
    expected_sem = np.where(b > 0, b, a)
    np.testing.assert_array_equal(inst, expected_inst)
    np.testing.assert_array_equal(sem, expected_sem)
    # equal scores: the earlier person wins
    r = ParseResult.from_label_maps([0.5, 0.5], [a, b], CIHP_CLASSES)
    assert r.instance_map[25, 30] == 1 and r.semantic[25, 30] == 2


# ---------------------------------------------------------------- serialisation / writers

def test_to_dict_and_json(result, tmp_path):
    d = result.to_dict()
    assert all(isinstance(pd["mask"]["counts"], str) for pd in d["persons"])  # COCO compressed RLE
    plain = result.to_dict(compressed=False)
    assert all(isinstance(pd["mask"]["counts"], list) for pd in plain["persons"])
    for pd, qd in zip(d["persons"], plain["persons"]):
        np.testing.assert_array_equal(rle_decode(pd["mask"]), rle_decode(qd["mask"]))
    assert d["num_persons"] == 2 and d["image_shape"] == [H, W] and d["source"] == "img.jpg"
    assert d["timings"] == {"decode": 1.25}
    p0 = d["persons"][0]
    assert p0["score"] == 0.9 and p0["bbox"] == [25, 20, 55, 45]
    assert p0["part_ids"] == [13, 14] and p0["part_names"] == ["face", "left-arm"]
    assert p0["area"] == 30 * 25
    path = result.write_json(tmp_path / "out" / "r.json")
    loaded = json.loads(path.read_text())
    assert loaded == json.loads(result.to_json())
    for pd, p in zip(loaded["persons"], result.persons):
        np.testing.assert_array_equal(rle_decode(pd["mask"]), p.mask)
    assert [x.name for x in (tmp_path / "out").iterdir()] == ["r.json"]


def test_from_dict_round_trip(result):
    d = json.loads(result.to_json(include_parts=True))
    back = ParseResult.from_dict(d)
    assert back == result
    assert ParseResult.from_dict(json.loads(result.to_json(include_parts=True, compressed=False))) == result
    with pytest.raises(ValueError, match="include_parts"):
        ParseResult.from_dict(result.to_dict())


def test_write_mhp(result, tmp_path):
    paths = result.write_mhp(tmp_path / "parsing_annos", "img7")
    assert [p.name for p in paths] == ["img7_02_01.png", "img7_02_02.png"]
    assert sorted(os.listdir(tmp_path / "parsing_annos")) == ["img7_02_01.png", "img7_02_02.png"]
    for path, person in zip(paths, result.persons):
        back = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert back.dtype == np.uint8 and back.shape == (H, W)
        np.testing.assert_array_equal(back, person.parts)
        # 3-channel readers see the label in every channel, hence in the first one
        np.testing.assert_array_equal(imread(path)[:, :, 0], person.parts)
    a, b = two_persons()
    np.testing.assert_array_equal(cv2.imread(str(paths[0]), cv2.IMREAD_UNCHANGED), b)
    empty = ParseResult([], (H, W), CIHP_CLASSES)
    assert empty.write_mhp(tmp_path / "e", "x") == []


def test_write_cihp(result, tmp_path):
    cat, hum = result.write_cihp(tmp_path, "0001")
    assert cat == tmp_path / "Category_ids" / "0001.png"
    assert hum == tmp_path / "Human_ids" / "0001.png"
    sem = cv2.imread(str(cat), cv2.IMREAD_UNCHANGED)
    inst = cv2.imread(str(hum), cv2.IMREAD_UNCHANGED)
    assert sem.dtype == np.uint8 and inst.dtype == np.uint8
    np.testing.assert_array_equal(sem, result.semantic)
    np.testing.assert_array_equal(inst, result.instance_map)


def test_write_cihp_too_many_persons(tmp_path):
    maps = np.zeros((256, 2, 2), np.uint8)
    r = ParseResult.from_label_maps(np.linspace(0, 1, 256), maps, CIHP_CLASSES)
    with pytest.raises(ValueError, match="255"):
        r.write_cihp(tmp_path, "x")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- draw

def test_draw(result, tmp_path):
    img = np.full((H, W, 3), 100, np.uint8)
    alpha = 0.5
    out = result.draw(img, alpha=alpha, legend=False, boxes=False)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    assert np.all(img == 100)  # input untouched
    colors = palette(len(CIHP_CLASSES)).astype(np.float64)

    def blended(cls):
        return np.rint(100 * (1 - alpha) + alpha * colors[cls]).astype(np.uint8)

    # interior pixels (away from outlines): exact blend of the winning part's colour
    np.testing.assert_array_equal(out[15, 10], blended(2))
    np.testing.assert_array_equal(out[45, 10], blended(5))
    np.testing.assert_array_equal(out[25, 30], blended(13))   # overlap: B (face) wins
    np.testing.assert_array_equal(out[42, 45], blended(14))
    # background far from everything is unchanged
    np.testing.assert_array_equal(out[55, 70], [100, 100, 100])
    np.testing.assert_array_equal(out[2, 2], [100, 100, 100])
    # outside any person, everything except a 1-pixel outline ring is untouched
    fg = result.semantic > 0
    ring = cv2.dilate(fg.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert np.all(out[~ring] == 100)
    assert np.any(out[fg] != 100)
    # outlines: the border pixel of person B is drawn in a person colour, not the part blend
    assert not np.array_equal(out[20, 40], blended(13))

    full = result.draw(img, legend=False)  # boxes
    assert full.shape == img.shape and full.dtype == np.uint8
    assert np.any(full != out)
    np.testing.assert_array_equal(full[57, 2], [100, 100, 100])   # bottom-left: no box
    assert result.part_ids == [2, 5, 13, 14]                          # what the legend lists
    # the legend does not fit beside the persons of this 60x80 image: it goes to a panel on the right
    side = result.draw(img)
    assert side.shape == (H, W + side.shape[1] - W, 3) and side.shape[1] > W
    np.testing.assert_array_equal(side[:, :W], full)                  # the image part hides nothing
    assert np.any(side[:, W:] != side[0, -1])                         # swatches and names drawn
    # alpha = 0 keeps part pixels unchanged (only outlines drawn)
    none = result.draw(img, alpha=0.0, legend=False, boxes=False)
    np.testing.assert_array_equal(none[15, 10], [100, 100, 100])


def test_draw_inputs(result, tmp_path):
    gray = np.full((H, W), 100, np.uint8)
    assert result.draw(gray, legend=False).shape == (H, W, 3)
    bgra = np.full((H, W, 4), 100, np.uint8)
    assert result.draw(bgra, legend=False).shape == (H, W, 3)
    np.testing.assert_array_equal(result.draw(gray), result.draw(np.full((H, W, 3), 100, np.uint8)))
    with pytest.raises(ValueError, match="legend"):
        result.draw(gray, legend="top")
    with pytest.raises(ValueError, match="size"):
        result.draw(np.zeros((H + 1, W, 3), np.uint8))
    with pytest.raises(TypeError):
        result.draw(np.zeros((H, W, 3), np.float32))
    empty = ParseResult([], (H, W), CIHP_CLASSES)
    img = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    np.testing.assert_array_equal(empty.draw(img), img)
    path = result.save_overlay(tmp_path / "ov.png", np.full((H, W, 3), 100, np.uint8), legend=False)
    np.testing.assert_array_equal(imread(path), result.draw(np.full((H, W, 3), 100, np.uint8), legend=False))


# ---------------------------------------------------------------- io_utils

def test_atomic_write_no_temp_files(tmp_path):
    d = tmp_path / "sub" / "dir"
    atomic_write_bytes(d / "a.bin", b"\x00\x01\x02")
    atomic_write_text(d / "b.txt", "héllo")
    img = np.arange(12 * 10 * 3, dtype=np.uint8).reshape(12, 10, 3)
    atomic_imwrite(d / "c.png", img)
    atomic_write_text(d / "b.txt", "replaced")  # overwrite
    assert sorted(os.listdir(d)) == ["a.bin", "b.txt", "c.png"]
    assert (d / "a.bin").read_bytes() == b"\x00\x01\x02"
    assert (d / "b.txt").read_text(encoding="utf-8") == "replaced"
    np.testing.assert_array_equal(imread(d / "c.png"), img)


def test_atomic_imwrite_unsupported_extension(tmp_path):
    img = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="extension"):
        atomic_imwrite(tmp_path / "x.foo", img)
    with pytest.raises(ValueError, match="extension"):
        atomic_imwrite(tmp_path / "noext", img)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_failure_leaves_nothing(tmp_path):
    (tmp_path / "keep.txt").write_text("old")
    with pytest.raises(TypeError):
        atomic_write_bytes(tmp_path / "keep.txt", object())  # not bytes-like: fails mid-write
    assert sorted(os.listdir(tmp_path)) == ["keep.txt"]
    assert (tmp_path / "keep.txt").read_text() == "old"
    with pytest.raises(ValueError, match="uint8"):
        atomic_imwrite(tmp_path / "bad.png", np.zeros((4, 4, 3), np.float64))  # png can't do float64
    with pytest.raises(ValueError, match="uint8"):
        atomic_imwrite(tmp_path / "bad.jpg", np.zeros((4, 4), np.uint16))
    assert sorted(os.listdir(tmp_path)) == ["keep.txt"]


def test_imread_non_ascii_and_errors(tmp_path):
    img = np.zeros((5, 7, 3), np.uint8)
    img[1, 2] = (10, 20, 30)
    p = atomic_imwrite(tmp_path / "ünïcødé 画像.png", img)
    back = imread(p)
    assert back.dtype == np.uint8 and back.shape == (5, 7, 3)
    np.testing.assert_array_equal(back, img)
    gray = atomic_imwrite(tmp_path / "g.png", np.full((3, 3), 9, np.uint8))
    assert imread(gray).shape == (3, 3, 3)  # always BGR by default
    with pytest.raises(FileNotFoundError):
        imread(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="decode"):
        imread(tmp_path / "junk.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError):
        imread(tmp_path / "empty.png")
    with pytest.raises(ValueError):
        imread(tmp_path)  # a directory


def test_legend_lists_only_visible_parts():
    a = np.zeros((8, 8), np.uint8)
    a[2:4, 2:4] = 3          # glove, fully hidden by the better person
    a[5:7, 5:7] = 9          # pants, visible
    b = np.zeros((8, 8), np.uint8)
    b[1:5, 1:5] = 2
    r = ParseResult.from_label_maps([0.2, 0.8], [a, b], CIHP_CLASSES)
    assert r.part_ids == [2, 9]
    assert r.persons[1].part_ids == [3, 9]


def test_no_torch_import():
    import subprocess
    import sys
    code = ("import sys, uniparser_sdk.results, uniparser_sdk.io_utils; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_uint16_png_round_trip(tmp_path):
    img = (np.arange(20, dtype=np.uint16) * 3000).reshape(4, 5)
    p = atomic_imwrite(tmp_path / "d.png", img)
    np.testing.assert_array_equal(imread(p, cv2.IMREAD_UNCHANGED), img)


# ---------------------------------------------------------------- legend placement

def _legend_diff(res, img):
    """Pixels where the legend changed the overlay (drawing with vs without it, same size)."""
    return np.any(res.draw(img) != res.draw(img, legend=False), axis=2)


def test_legend_hides_no_person():
    h, w = 300, 400
    img = np.full((h, w, 3), 90, np.uint8)
    p = np.zeros((h, w), np.uint8)
    p[5:120, 250:395] = 2            # a person in the top-right corner, where the legend used to go
    p[60:120, 250:395] = 5
    r = np.zeros((h, w), np.uint8)
    r[130:290, 20:200] = 5           # another person, bottom-left
    q = np.zeros((h, w), np.uint8)
    q[150:280, 230:380] = 13
    res = ParseResult.from_label_maps([0.9, 0.8, 0.7], [p, r, q], CIHP_CLASSES)
    changed = _legend_diff(res, img)
    assert res.draw(img).shape == img.shape and changed.any()
    boxes = np.zeros((h, w), bool)
    for person in res:
        x0, y0, x1, y1 = person.bbox
        boxes[y0:y1, x0:x1] = True
    assert not (changed & boxes).any()           # nothing of any person or its box is covered
    ys, xs = np.nonzero(changed)
    assert ys.max() < 130 and xs.max() < 250     # the free top-left area was taken
    np.testing.assert_array_equal(res.draw(img, legend="inside"), res.draw(img))  # a free spot exists


def test_legend_outside_when_no_room():
    h, w = 120, 160
    img = np.full((h, w, 3), 90, np.uint8)
    full = np.full((h, w), 5, np.uint8)          # one person over the whole image
    res = ParseResult.from_label_maps([0.8], [full], CIHP_CLASSES)
    out = res.draw(img)
    assert out.shape[0] == h and out.shape[1] > w
    np.testing.assert_array_equal(out[:, :w], res.draw(img, legend=False))
    assert res.draw(img, legend="inside").shape == img.shape   # forced inside: over the person
    # "outside": a constant size from all class names, whatever parts are present
    other = ParseResult.from_label_maps([0.8], [np.full((h, w), 2, np.uint8)], CIHP_CLASSES)
    empty = ParseResult([], (h, w), CIHP_CLASSES)
    sizes = {r.draw(img, legend="outside").shape for r in (res, other, empty)}
    assert len(sizes) == 1 and sizes.pop()[1] > w
