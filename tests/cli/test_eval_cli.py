"""uniparser-eval (uniparser_sdk.cli.evaluate) and the prediction-folder format
(uniparser_sdk.evaluation.predictions)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from uniparser_sdk.classes import CIHP_CLASSES
from uniparser_sdk.cli.evaluate import main
from uniparser_sdk.data import SyntheticScenes, write_cihp, write_mhp
from uniparser_sdk.evaluation.predictions import (PredictionFolder, PredictionFormatError, PredictionWriter,
                                                  detect_style)
from uniparser_sdk.results import ParseResult

SEED, SIZE, N = 4321, (96, 128), 6
SYN = ["--dataset", "synthetic", "--synthetic-seed", str(SEED), "--synthetic-size", f"{SIZE[1]}x{SIZE[0]}",
       "--num-images", str(N), "--no-progress"]


@pytest.fixture(scope="module")
def scenes():
    ds = SyntheticScenes(N, seed=SEED, size=SIZE)
    return [ds[i] for i in range(N)]


def _gt_result(sample, scores=None):
    persons = sample["persons"]
    scores = [1.0] * len(persons) if scores is None else scores
    return ParseResult.from_label_maps(scores, persons, CIHP_CLASSES, image_shape=SIZE)


def _write_mhp_preds(out, samples, extra=None, drop=None):
    """GT persons as MHPv2-style predictions with ParseResult.write_mhp and a hand-written scores.json.
    ``drop``: (image index, person index) left out; ``extra``: {image index: [(score, map)]}."""
    scores = {}
    for i, s in enumerate(samples):
        items = [(1.0 - 0.01 * k, p) for k, p in enumerate(s["persons"]) if drop != (i, k)]
        items += (extra or {}).get(i, [])
        res = ParseResult.from_label_maps([sc for sc, _ in items], [m for _, m in items], CIHP_CLASSES,
                                          image_shape=SIZE)
        res.write_mhp(out, s["id"])
        n = res.num_persons
        for k, p in enumerate(res.persons, start=1):
            scores[f"{s['id']}_{n:02d}_{k:02d}"] = p.score
    (out / "scores.json").write_text(json.dumps(scores))
    return out


def _run(argv, capsys):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(rc, err):
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("uniparser-eval: error: ")
    assert "Traceback" not in err
    return lines[0]


def _num_gt(samples):
    return sum(len(s["persons"]) for s in samples)


# ---- the exact path: GT written as predictions ------------------------------------------------------

def test_help_exits_0(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "--predictions" in capsys.readouterr().out


def test_gt_as_mhp_predictions_is_perfect(tmp_path, scenes, capsys):
    preds = _write_mhp_preds(tmp_path / "preds", scenes)
    out_json = tmp_path / "out" / "metrics.json"
    rc, out, err = _run(["--predictions", preds, *SYN, "--json", out_json], capsys)
    assert rc == 0, err
    m = json.loads(out_json.read_text())
    assert m["AP50"] == 1.0 and m["APvol"] == 1.0 and m["PCP50"] == 1.0 and m["mIoU"] == 1.0
    assert m["num_images"] == N and m["num_gt"] == m["num_pred"] == _num_gt(scenes)
    assert m["AP"]["0.5"] == 1.0 and set(m["AP"]) == {f"{t / 10:g}" for t in range(1, 10)}
    assert m["dataset"]["name"] == "synthetic" and m["dataset"]["seed"] == SEED
    assert m["source"]["format"] == "mhp"
    assert m["wall_s"] > 0 and m["images_per_s"] > 0
    # table on stdout, no temporary files next to the JSON
    for label in ("AP^p_50", "AP^p_vol", "PCP_50", "mIoU", "images/s"):
        assert label in out
    assert "100.00" in out
    assert os.listdir(out_json.parent) == ["metrics.json"]


def test_dropped_person_gives_known_values(tmp_path, scenes, capsys):
    G = _num_gt(scenes)
    preds = _write_mhp_preds(tmp_path / "preds", scenes, drop=(0, 0))
    out_json = tmp_path / "m.json"
    rc, _, err = _run(["--predictions", preds, *SYN, "--json", out_json], capsys)
    assert rc == 0, err
    m = json.loads(out_json.read_text())
    # every remaining prediction is a perfect TP: recall stops at (G-1)/G with precision 1
    assert m["AP50"] == pytest.approx((G - 1) / G, abs=1e-12)
    assert m["APvol"] == pytest.approx((G - 1) / G, abs=1e-12)
    assert m["PCP50"] == pytest.approx((G - 1) / G, abs=1e-12)
    assert m["mIoU"] < 1.0
    assert m["num_pred"] == G - 1


def test_top_scored_false_positive_gives_known_ap(tmp_path, scenes, capsys):
    G = _num_gt(scenes)
    union = np.any([p > 0 for p in scenes[0]["persons"]], axis=0)
    spot = next(((y, x) for y in range(0, SIZE[0] - 8, 4) for x in range(0, SIZE[1] - 8, 4)
                 if not union[y:y + 8, x:x + 8].any()), None)
    assert spot is not None
    blob = np.zeros(SIZE, np.uint8)
    blob[spot[0]:spot[0] + 8, spot[1]:spot[1] + 8] = 1      # a "hat" where no GT person is
    preds = _write_mhp_preds(tmp_path / "preds", scenes, extra={0: [(5.0, blob)]})
    out_json = tmp_path / "m.json"
    rc, _, err = _run(["--predictions", preds, *SYN, "--json", out_json], capsys)
    assert rc == 0, err
    m = json.loads(out_json.read_text())
    # FP first, then G TPs: precision k/(k+1) at recall k/G; the VOC envelope makes it G/(G+1) everywhere
    assert m["AP50"] == pytest.approx(G / (G + 1), abs=1e-12)
    assert m["PCP50"] == 1.0
    assert m["num_pred"] == G + 1


def test_without_scores_json_every_score_is_one(tmp_path, scenes, capsys):
    preds = _write_mhp_preds(tmp_path / "preds", scenes)
    (preds / "scores.json").unlink()
    out_json = tmp_path / "m.json"
    rc, _, err = _run(["--predictions", preds, *SYN, "--json", out_json], capsys)
    assert rc == 0
    assert "scores 1.0" in err
    assert json.loads(out_json.read_text())["AP50"] == 1.0


def test_cihp_layout_dataset_with_both_prediction_styles(tmp_path, scenes, capsys):
    root = tmp_path / "instance-level_human_parsing"
    write_cihp(str(root), scenes, split="val")
    mhp_preds = _write_mhp_preds(tmp_path / "mhp_preds", scenes)
    with PredictionWriter(tmp_path / "cihp_preds", style="cihp") as w:
        for s in scenes:
            w.add(s["id"], _gt_result(s, [0.9 - 0.1 * k for k in range(len(s["persons"]))]))
    assert detect_style(tmp_path / "cihp_preds") == "cihp"
    for preds, style in ((mhp_preds, "mhp"), (tmp_path / "cihp_preds", "cihp")):
        out_json = tmp_path / f"{style}.json"
        # --root may also name the parent of instance-level_human_parsing
        rc, out, err = _run(["--predictions", preds, "--dataset", "cihp", "--root", tmp_path, "--split", "val",
                             "--no-progress", "--json", out_json], capsys)
        assert rc == 0, err
        m = json.loads(out_json.read_text())
        assert (m["AP50"], m["APvol"], m["PCP50"], m["mIoU"]) == (1.0, 1.0, 1.0, 1.0), style
        assert m["dataset"]["split"] == "val" and m["num_images"] == N
        assert m["source"]["format"] == style
        assert m["class_iou"]["background"] == 1.0


def test_mhp_layout_dataset(tmp_path, capsys):
    ds = SyntheticScenes(3, seed=7, size=SIZE, label_set="mhp")
    samples = [ds[i] for i in range(3)]
    root = tmp_path / "LV-MHP-v2"
    write_mhp(str(root), samples, split="val")
    with PredictionWriter(tmp_path / "preds") as w:
        for s in samples:
            w.add(s["id"], ParseResult.from_label_maps([1.0] * len(s["persons"]), s["persons"], 59))
    out_json = tmp_path / "m.json"
    rc, _, err = _run(["--predictions", tmp_path / "preds", "--dataset", "mhp", "--root", root,
                       "--no-progress", "--json", out_json], capsys)
    assert rc == 0, err
    m = json.loads(out_json.read_text())
    assert m["AP50"] == 1.0 and m["PCP50"] == 1.0 and m["dataset"]["num_classes"] == 59


def test_num_images_subset_notes_extra_ids(tmp_path, scenes, capsys):
    preds = _write_mhp_preds(tmp_path / "preds", scenes)
    argv = ["--predictions", preds, *SYN[:-3], "--num-images", "2", "--no-progress"]
    rc, out, err = _run(argv, capsys)
    assert rc == 0
    assert "not among the evaluated images" in err
    assert "100.00" in out


# ---- errors: one line, exit 2 --------------------------------------------------------------------

def test_missing_root(tmp_path, scenes, capsys):
    preds = _write_mhp_preds(tmp_path / "preds", scenes)
    rc, _, err = _run(["--predictions", preds, "--dataset", "cihp", "--root", tmp_path / "nope"], capsys)
    assert "not found" in _one_line_error(rc, err)
    rc, _, err = _run(["--predictions", preds, "--dataset", "mhp"], capsys)
    assert "--root is required" in _one_line_error(rc, err)


def test_missing_predictions_folder(tmp_path, capsys):
    rc, _, err = _run(["--predictions", tmp_path / "nope", *SYN], capsys)
    assert "predictions folder not found" in _one_line_error(rc, err)
    (tmp_path / "empty").mkdir()
    rc, _, err = _run(["--predictions", tmp_path / "empty", *SYN], capsys)
    assert "no prediction files" in _one_line_error(rc, err)


def test_class_mismatch_predictions(tmp_path, scenes, capsys):
    s = scenes[0]
    bad = s["persons"][0].copy()
    bad[bad > 0] = 45                                # an MHPv2 label, beyond the 20 CIHP classes
    preds = _write_mhp_preds(tmp_path / "preds", scenes)
    res = ParseResult.from_label_maps([1.0], [bad], 59)
    for f in preds.glob(f"{s['id']}_*.png"):
        f.unlink()
    res.write_mhp(preds, s["id"])
    scores = json.loads((preds / "scores.json").read_text())
    scores[f"{s['id']}_01_01"] = 1.0
    (preds / "scores.json").write_text(json.dumps(scores))
    rc, _, err = _run(["--predictions", preds, *SYN], capsys)
    line = _one_line_error(rc, err)
    assert "label 45" in line and "20 classes" in line


def test_mismatched_ids_and_sizes(tmp_path, scenes, capsys):
    preds = _write_mhp_preds(tmp_path / "preds", scenes)
    other_seed = ["--predictions", preds, *SYN[:2], "--synthetic-seed", "1", *SYN[4:]]
    rc, _, err = _run(other_seed, capsys)
    assert "none of the" in _one_line_error(rc, err)
    other_size = ["--predictions", preds, *SYN[:4], "--synthetic-size", "64x64", *SYN[6:]]
    rc, _, err = _run(other_size, capsys)
    assert "96x128" in _one_line_error(rc, err)


def test_stale_files_and_missing_scores(tmp_path, scenes, capsys):
    preds = _write_mhp_preds(tmp_path / "preds", scenes)
    sid = scenes[0]["id"]
    # a stale file of an earlier run with another person count
    (preds / f"{sid}_09_01.png").write_bytes((preds / f"{sid}_{len(scenes[0]['persons']):02d}_01.png").read_bytes())
    rc, _, err = _run(["--predictions", preds, *SYN], capsys)
    assert "disagree on the person count" in _one_line_error(rc, err)
    (preds / f"{sid}_09_01.png").unlink()
    scores = json.loads((preds / "scores.json").read_text())
    del scores[f"{sid}_{len(scenes[0]['persons']):02d}_01"]
    (preds / "scores.json").write_text(json.dumps(scores))
    rc, _, err = _run(["--predictions", preds, *SYN], capsys)
    assert "has no score for" in _one_line_error(rc, err)
    (preds / "scores.json").write_text("{not json")
    rc, _, err = _run(["--predictions", preds, *SYN], capsys)
    assert "not valid JSON" in _one_line_error(rc, err)


def test_usage_errors(tmp_path, capsys):
    for argv in ([*SYN], ["model.onnx", "--predictions", tmp_path, *SYN], ["--predictions", tmp_path],
                 ["--predictions", tmp_path, *SYN, "--synthetic-size", "12"]):
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in argv])
        assert exc.value.code == 2
    capsys.readouterr()
    rc, _, err = _run(["model.xyz", *SYN], capsys)
    assert "unknown model file type" in _one_line_error(rc, err)
    rc, _, err = _run([tmp_path / "missing.onnx", *SYN], capsys)
    assert "not found" in _one_line_error(rc, err)


# ---- the prediction-folder reader and writer ---------------------------------------------------------

def test_prediction_folder_orders_by_score_and_composes_semantic(tmp_path):
    a = np.zeros((8, 8), np.uint8)
    a[:4] = 2
    b = np.zeros((8, 8), np.uint8)
    b[2:6] = 5
    ParseResult.from_label_maps([1.0, 1.0], [a, b], CIHP_CLASSES).write_mhp(tmp_path, "img")
    (tmp_path / "scores.json").write_text(json.dumps({"img_02_01.png": 0.2, "img_02_02": 0.7}))
    folder = PredictionFolder(tmp_path)
    assert folder.style == "mhp" and folder.ids == ["img"] and "img" in folder and folder.has_scores
    pred = folder.load("img", shape=(8, 8), num_classes=20)
    assert [s for s, _ in pred.persons] == [0.7, 0.2]
    np.testing.assert_array_equal(pred.persons[0][1], b)
    # the highest-scoring person wins shared pixels (ParseResult.semantic's rule)
    expected = ParseResult.from_label_maps([0.2, 0.7], [a, b], CIHP_CLASSES).semantic
    np.testing.assert_array_equal(pred.semantic, expected)
    empty = folder.load("other", shape=(8, 8))
    assert empty.persons == [] and not empty.semantic.any()
    with pytest.raises(PredictionFormatError, match="label 5"):
        folder.load("img", num_classes=5)


def test_prediction_folder_cihp_scores_as_dict_and_in_parsing_annos(tmp_path):
    a = np.zeros((8, 8), np.uint8)
    a[:3] = 2
    b = np.zeros((8, 8), np.uint8)
    b[5:] = 9
    res = ParseResult.from_label_maps([0.9, 0.4], [a, b], CIHP_CLASSES)
    res.write_cihp(tmp_path / "c", "x")
    (tmp_path / "c" / "scores.json").write_text(json.dumps({"x": {"1": 0.1, "2": 0.8}}))
    pred = PredictionFolder(tmp_path / "c").load("x")
    assert [s for s, _ in pred.persons] == [0.8, 0.1]
    np.testing.assert_array_equal(pred.persons[0][1], b)
    np.testing.assert_array_equal(pred.semantic, res.semantic)
    # MHPv2-style files may sit in DIR/parsing_annos
    res.write_mhp(tmp_path / "m" / "parsing_annos", "x")
    folder = PredictionFolder(tmp_path / "m")
    assert folder.ids == ["x"] and [s for s, _ in folder.load("x").persons] == [1.0, 1.0]


def test_prediction_writer_replaces_stale_files_and_merges_scores(tmp_path):
    a = np.zeros((8, 8), np.uint8)
    a[:3] = 2
    with PredictionWriter(tmp_path) as w:
        w.add("x", ParseResult.from_label_maps([0.9, 0.5], [a, a], CIHP_CLASSES))
        w.add("y", ParseResult.from_label_maps([0.3], [a], CIHP_CLASSES))
    with PredictionWriter(tmp_path) as w:                       # rewrite x with one person only
        w.add("x", ParseResult.from_label_maps([0.6], [a], CIHP_CLASSES))
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["x_01_01.png", "y_01_01.png"]
    assert json.loads((tmp_path / "scores.json").read_text()) == {"x_01_01": 0.6, "y_01_01": 0.3}


# ---- a model file ----------------------------------------------------------------------------------

def _parser_available():
    try:
        import torch  # noqa: F401

        from uniparser_sdk.runtime.parser import Parser  # noqa: F401
    except ImportError:
        return False
    return True


needs_parser = pytest.mark.skipif(not _parser_available(), reason="runtime Parser or torch not available")


@pytest.fixture(scope="module")
def tiny_pth(tmp_path_factory):
    import torch

    from uniparser_sdk.model.checkpoint import save_checkpoint
    from uniparser_sdk.model.uniparser import UniParser
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.pth"
    save_checkpoint(path, UniParser("tiny"))
    return path


@needs_parser
def test_model_file_on_synthetic_json_keys(tmp_path, tiny_pth, capsys):
    out_json = tmp_path / "m.json"
    rc, out, err = _run([tiny_pth, "--dataset", "synthetic", "--num-images", "3", "--synthetic-size", "64x64",
                         "--device", "cpu", "--ctr-score", "0.25", "--no-progress", "--json", out_json], capsys)
    assert rc == 0, err
    m = json.loads(out_json.read_text())
    for key in ("AP50", "APvol", "PCP50", "mIoU"):
        assert m[key] is None or (isinstance(m[key], float) and 0.0 <= m[key] <= 1.0), key
    assert m["num_images"] == 3 and isinstance(m["num_gt"], int) and m["num_gt"] > 0
    assert isinstance(m["num_pred"], int)
    assert set(m["AP"]) == set(m["PCP"]) and len(m["AP"]) == 9
    assert len(m["class_iou"]) == 20
    assert m["source"]["model"] == str(tiny_pth) and m["source"]["device"] == "cpu"
    assert m["source"]["decode"]["ctr_score"] == 0.25
    assert m["dataset"]["label_set"] == "cihp"
    for key in ("wall_s", "images_per_s", "inference_s", "inference_images_per_s"):
        assert isinstance(m[key], float) and m[key] > 0
    assert "inference alone" in out


@needs_parser
def test_model_class_mismatch(tmp_path, tiny_pth, capsys):
    ds = SyntheticScenes(1, seed=3, size=SIZE, label_set="mhp")
    root = tmp_path / "LV-MHP-v2"
    write_mhp(str(root), [ds[0]], split="val")
    rc, _, err = _run([tiny_pth, "--dataset", "mhp", "--root", root, "--device", "cpu"], capsys)
    line = _one_line_error(rc, err)
    assert "20 classes" in line and "59" in line
