"""uniparser-bench: the CLI runs end to end on the tiny configs and writes its JSON, table and chart.

No timing assertions (timings are a benchmark, never a test): only structure, counts and that the
synthetic-persons mode makes the decode find the requested number of persons.
"""
import json

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from uniparser_sdk.benchmarks import bench, flops, plot  # noqa: E402


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """One CLI run shared by the tests below (tiny + tiny-light, torch + onnxruntime, 2 timed calls)."""
    out = tmp_path_factory.mktemp("bench")
    argv = ["--table2", "--configs", "tiny,tiny-light", "--backends", "torch,onnxruntime,tensorrt",
            "--size", "192x128", "--num-images", "5", "--persons", "2.6", "--warmup", "1", "--iters", "5",
            "--decode-iters", "2", "--threads", "1", "--json", str(out / "bench.json"), "--plot", str(out / "t2.png"),
            "--cache-dir", str(out / "cache")]
    return out, argv


@pytest.fixture(scope="module")
def bench_output(bench_run):
    import contextlib
    import io

    out, argv = bench_run
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = bench.main(argv)
    return rc, buf.getvalue(), json.loads((out / "bench.json").read_text()), out


def test_cli_runs_and_writes_json(bench_output):
    rc, text, doc, out = bench_output
    assert rc == 0
    for key in ("format", "host", "settings", "method", "results", "comparisons", "decode_comparison", "table2",
                "paper_table2", "skipped"):
        assert key in doc, key
    for key in ("python", "cpu", "torch", "onnxruntime", "numpy", "opencv"):
        assert key in doc["host"]
    rows = {(r["model"], r["backend"]) for r in doc["results"]}
    assert rows == {("tiny", "torch"), ("tiny", "onnxruntime"), ("tiny-light", "torch"), ("tiny-light", "onnxruntime")}
    for r in doc["results"]:
        for key in ("ms", "images_per_s", "persons_per_image", "params_m", "gflops", "gmacs", "peak_rss_mib",
                    "providers", "threads", "device", "split"):
            assert key in r, key
        for stage in ("total", "preprocess", "network", "decode", "postprocess"):
            s = r["ms"][stage]
            assert s["n"] == 5 and s["median"] >= 0 and s["p90"] >= s["min"]
        assert r["params_m"] > 0 and r["gflops"] > 0 and r["images_per_s"] > 0
        assert r["threads"]
    # tensorrt is not installed on the CPU test machines: reported as skipped with a reason
    if doc["host"]["tensorrt"] is None:
        assert any(s["backend"] == "tensorrt" for s in doc["skipped"])
        assert "tensorrt: skipped:" in text


def test_synthetic_persons_are_decoded(bench_output):
    """Random weights: every call decodes exactly the planted number of persons (mean 2.6 over 5 images)."""
    _, _, doc, _ = bench_output
    assert doc["settings"]["person_counts"] == [3, 2, 3, 2, 3]
    for r in doc["results"]:
        assert r["persons_per_image"] == pytest.approx(2.6)
        assert r["parts_per_person"] >= 2
    methods = doc["decode_comparison"]["methods"]
    assert methods[0]["method"].startswith("official")
    for m in methods:
        assert m["persons_per_call"] > 0
        assert m["pixels_differing_from_official"] == 0, m["method"]


def test_tables_and_chart(bench_output):
    _, text, doc, out = bench_output
    assert "Table 2 form" in text and "paper (quoted)" in text and "RTX 3090" in text
    assert "ONNX Runtime vs PyTorch eager" in text and "Light vs full" in text and "official-style" in text
    assert "tiny-light (test config)" in text
    comp = doc["comparisons"]
    assert {e["model"] for e in comp["onnxruntime_vs_torch"]} == {"tiny", "tiny-light"}
    assert {e["backend"] for e in comp["light_vs_full"]} == {"torch", "onnxruntime"}
    assert comp["paper_light_vs_full"]["decrease_ms"] == 20
    measured = [r for r in doc["table2"] if r["source"] == "measured"]
    quoted = [r for r in doc["table2"] if r["source"] != "measured"]
    assert len(measured) == 4 and any(r["method"] == "UniParser" and r["t_infer_ms"] == 102 for r in quoted)
    img = cv2.imread(str(out / "t2.png"))
    assert img is not None and img.shape[0] > 200 and img.shape[1] > 200


def test_cached_exports_are_reused(bench_output, capsys):
    _, _, _, out = bench_output
    argv = ["--configs", "tiny", "--backends", "onnxruntime", "--size", "192x128", "--warmup", "0", "--iters", "1",
            "--num-images", "1", "--threads", "1", "--no-decode-compare", "--cache-dir", str(out / "cache")]
    assert bench.main(argv) == 0
    text = capsys.readouterr().out
    assert "exporting ONNX" not in text
    assert "onnxruntime" in text


def test_user_errors_exit_2(capsys, tmp_path):
    assert bench.main(["--size", "big", "--cache-dir", str(tmp_path)]) == 2
    assert bench.main(["--configs", "nope", "--cache-dir", str(tmp_path)]) == 2
    assert bench.main(["--backends", "cuda-magic", "--cache-dir", str(tmp_path)]) == 2
    assert bench.main([str(tmp_path / "missing.onnx"), "--cache-dir", str(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err


def test_person_counts_and_size():
    assert bench.person_counts(2.6, 5) == [3, 2, 3, 2, 3]
    assert sum(bench.person_counts(1.5, 10)) == 15
    assert bench.person_counts(0, 3) == [0, 0, 0]
    assert bench.parse_size("1333x800") == (1333, 800)


def test_planted_thresholds_select_n_persons():
    seg = np.random.default_rng(0).standard_normal((19, 32)).astype(np.float32)
    sp = bench.SyntheticPersons(seg, num_grid=24, max_persons=8, aspect=0.6)
    scores = sp.scores
    assert scores == sorted(scores, reverse=True)
    for n in range(0, 9):
        thr = sp.threshold(n)
        assert sum(s > thr for s in scores) == n
    cells = sp.cells
    assert all(max(abs(a[0] - b[0]), abs(a[1] - b[1])) >= 3 for i, a in enumerate(cells) for b in cells[i + 1:])


def test_flops_counts_dcn_and_matches_flop_counter():
    rep = flops.count_flops("tiny", (128, 192))
    parts = rep.parts
    assert parts["backbone DCN sampling"] > 0 and parts["backbone DCN offset convs"] > 0
    assert rep.gflops == pytest.approx(2 * rep.gmacs)
    # FlopCounterMode sees the convolutions and the DCN main products, not the sampling (a grid_sample)
    assert flops.flop_counter_macs("tiny", (128, 192)) == rep.macs - parts["backbone DCN sampling"]
    # a plain conv: 3x3, 8->16 channels on 10x12 -> 16 * 10 * 12 * 8 * 9 MACs
    conv = torch.nn.Conv2d(8, 16, 3, padding=1)
    macs = {}
    h = conv.register_forward_hook(lambda m, i, o: macs.setdefault("n", o.shape[1] * o.shape[2] * o.shape[3]
                                                                      * m.in_channels * 9))
    conv(torch.zeros(1, 8, 10, 12))
    h.remove()
    assert macs["n"] == 16 * 10 * 12 * 8 * 9


def test_plot_writes_png(tmp_path):
    p = plot.bar_chart(tmp_path / "c.png", [
        {"title": "a", "unit": "ms", "bars": [{"label": "x", "value": 3.0}, {"label": "y", "value": 0.0}]},
        {"title": "b " * 200, "unit": "M", "bars": [{"label": "z", "value": 12, "group": "paper"}]}],
        title="t", footnote="f " * 300)
    img = cv2.imread(str(p))
    assert img is not None and img.shape[2] == 3
    with pytest.raises(ValueError):
        plot.bar_chart(tmp_path / "d.png", [{"title": "empty", "bars": []}])
