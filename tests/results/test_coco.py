"""COCO compressed RLE (ours == pycocotools, byte for byte, both ways) and the COCO results file
(pycocotools loads it and COCOeval scores it). Persons are synthetic scenes' label maps."""
import json

import numpy as np
import pytest

from uniparser_sdk.classes import CIHP_CLASSES
from uniparser_sdk.data.synthetic import make_scene
from uniparser_sdk.results import (CocoResultsWriter, ParseResult, coco_image_id, coco_results, results_from_coco,
                                   rle_compress, rle_decode, rle_encode)

mask_api = pytest.importorskip("pycocotools.mask")


def scene_result(seed, size=(240, 320), persons=3):
    s = make_scene(np.random.default_rng(seed), size, num_persons=persons)
    scores = np.linspace(0.9, 0.5, len(s["persons"]))
    return ParseResult.from_label_maps(scores, s["persons"][::-1], CIHP_CLASSES), s["image"]


def _ref(mask):
    return mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (17, 13), (120, 97), (480, 640)])
@pytest.mark.parametrize("density", [0.0, 0.02, 0.5, 0.97, 1.0])
def test_compressed_rle_matches_pycocotools(shape, density):
    rng = np.random.default_rng(shape[0] * 7919 + shape[1] + int(density * 100))
    mask = rng.random(shape) < density
    ours = rle_compress(mask)
    ref = _ref(mask)
    assert ours == {"size": list(ref["size"]), "counts": ref["counts"].decode("ascii")}
    np.testing.assert_array_equal(rle_decode(ours), mask)
    np.testing.assert_array_equal(rle_decode(ref), mask)                 # bytes counts read too
    np.testing.assert_array_equal(mask_api.decode(ours).astype(bool), mask)
    assert rle_compress(rle_encode(mask)) == ours                        # uncompressed -> compressed
    assert int(mask_api.area(ours)) == int(mask.sum())


def test_large_counts_and_negative_deltas():
    """Runs longer than 2**15 and shrinking runs (negative differences) on a 1000x1333 image."""
    m = np.zeros((1000, 1333), bool)
    m[:, 700:] = True            # one run of 633k pixels
    m[10:20, 100:110] = True     # short runs after long ones
    m[999, 0] = True
    assert rle_compress(m)["counts"] == _ref(m)["counts"].decode()
    np.testing.assert_array_equal(rle_decode(rle_compress(m)), m)


def test_pycocotools_decodes_our_json_to_identical_masks(tmp_path):
    res, _ = scene_result(3)
    assert res.num_persons >= 2
    path = res.write_json(tmp_path / "r.json", include_parts=True)
    data = json.loads(path.read_text())
    for pd, person in zip(data["persons"], res):
        np.testing.assert_array_equal(mask_api.decode(pd["mask"]).astype(bool), person.mask)
        for part in pd["parts"]:
            np.testing.assert_array_equal(mask_api.decode(part["mask"]).astype(bool), person.parts == part["id"])
    assert ParseResult.from_dict(data) == res


def test_compressed_json_is_smaller():
    """The issue's case: a 1000x1333 person; compressed RLE JSON is ~2x+ smaller than list counts."""
    s = make_scene(np.random.default_rng(11), (1000, 1333), num_persons=1, scale_range=(0.8, 0.9))
    res = ParseResult.from_label_maps([0.9], s["persons"][:1], CIHP_CLASSES)
    small = len(res.to_json(include_parts=True))
    big = len(res.to_json(include_parts=True, compressed=False))
    assert big / small > 2.0, (big, small)


def test_coco_results_file_round_trip_and_cocoeval(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    results = [scene_result(seed)[0] for seed in (1, 2, 5)]
    ids = [coco_image_id(name) for name in ("000000000101.jpg", "102", "000000000103")]
    assert ids == [101, 102, 103]
    with CocoResultsWriter(tmp_path / "res.json") as w:
        for iid, res in zip(ids, results):
            w.add(iid, res)
    entries = json.loads((tmp_path / "res.json").read_text())
    assert entries == coco_results(results, ids)
    assert len(entries) == sum(r.num_persons for r in results)
    e = entries[0]
    assert e["category_id"] == 1 and isinstance(e["segmentation"]["counts"], str)
    x, y, w_, h_ = e["bbox"]
    x0, y0, x1, y1 = results[0][0].bbox
    assert (x, y, w_, h_) == (x0, y0, x1 - x0, y1 - y0) and e["area"] == results[0][0].area
    # our reader rebuilds the results (label maps from the parts)
    back = results_from_coco(tmp_path / "res.json", CIHP_CLASSES)
    for iid, res in zip(ids, results):
        assert back[iid] == res
    # pycocotools: ground truth = the same person masks -> every detection matches, AP = 1
    images, anns = [], []
    for iid, res in zip(ids, results):
        h, w = res.image_shape
        images.append({"id": iid, "height": h, "width": w, "file_name": f"{iid:012d}.jpg"})
        for p in res:
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": 1, "iscrowd": 0,
                         "segmentation": rle_compress(p.mask), "area": p.area,
                         "bbox": [float(v) for v in mask_api.toBbox(rle_compress(p.mask))]})
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
    gt.createIndex()
    dt = gt.loadRes(str(tmp_path / "res.json"))
    assert len(dt.dataset["annotations"]) == len(entries)
    for ann, e in zip(dt.dataset["annotations"], entries):  # our segmentations, as pycocotools reads them
        src = results[ids.index(ann["image_id"])]
        m = mask_api.decode(dt.annToRLE(ann)).astype(bool)
        assert any(np.array_equal(m, p.mask) and e["score"] == p.score for p in src)
    ev = COCOeval(gt, dt, iouType="segm")
    ev.params.maxDets = [1, 10, 100]
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)
