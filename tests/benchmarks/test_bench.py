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

from uniparser_sdk.benchmarks import bench, flops, paper, plot, targets  # noqa: E402
from uniparser_sdk.export import variants  # noqa: E402


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
    assert bench.main(["--variants", "products-fp99", "--cache-dir", str(tmp_path)]) == 2
    assert bench.main(["--variants", "raw-fp32", "--cache-dir", str(tmp_path)]) == 2
    assert bench.main(["--size", "16x16", "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "WIDTHxHEIGHT" in err
    assert "Traceback" not in err


def test_help_exits_0(capsys):
    assert bench.main(["--help"]) == 0
    assert "--variants" in capsys.readouterr().out


def test_person_counts_and_size():
    from uniparser_sdk.cli.common import parse_size

    assert bench.person_counts(2.6, 5) == [3, 2, 3, 2, 3]
    assert sum(bench.person_counts(1.5, 10)) == 15
    assert bench.person_counts(0, 3) == [0, 0, 0]
    # the SDK's one size convention: WIDTHxHEIGHT on the command line, (H, W) inside
    assert parse_size("1333x800") == (800, 1333)
    args = bench.build_arg_parser().parse_args(["--size", "192x128"])
    assert args.size == (128, 192)


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


def test_rows_record_their_variant(bench_output):
    _, _, doc, _ = bench_output
    by_backend = {r["backend"]: r["variant"] for r in doc["results"]}
    assert by_backend == {"torch": "torch-fp32", "onnxruntime": "products-fp32"}
    for r in doc["results"]:
        # stage times come from the runtime itself: backend = Backend.last_inference_time of each call
        assert r["ms"]["backend"]["n"] == 5


def test_variant_table_is_declared_once():
    names = variants.variant_names()
    assert len(names) == len(set(names))
    v = variants.get_variant("products-fp16")
    assert (v.layout, v.precision, v.target) == ("products-v1", "fp16", "onnxruntime")
    assert v.export_options() == {"fp16": True} and v.onnx_suffix == "-fp16"
    # the export CLI's flags select rows of the same table
    assert variants.variant_from_flags() is variants.get_variant("products-fp32")
    assert variants.variant_from_flags(fp16=True, engine=True).name == "products-fp16-tensorrt"
    assert variants.variant_from_flags(plugin=True).name == "plugin-fp32-tensorrt"
    assert variants.get_variant("plugin-fp16-tensorrt").onnx_suffix == "-fp16-plugin"
    assert variants.get_variant("raw-fp32").target is None
    with pytest.raises(variants.UnknownVariantError):
        variants.get_variant("products-int3")
    # a row whose graph precision the exporter cannot write says so (adding e.g. bf16 is one line)
    bf16 = variants.Variant("products-bf16", "products-v1", "bf16", "onnxruntime")
    with pytest.raises(variants.UnknownVariantError):
        bf16.export_options()
    assert variants.Variant("products-int8", "products-v1", "int8", "onnxruntime",
                            graph_precision="fp32").export_options() == {"fp16": False}
    # the bench's default rows are the table's products rows
    t = targets.Target(name="x", kind="config")
    plan = bench.row_plan(t, ["torch", "onnxruntime", "tensorrt"], trt_fp16=True)
    assert [(b, v and v.name) for b, v in plan] == [("torch", "torch-fp32"), ("onnxruntime", "products-fp32"),
                                                     ("tensorrt", "products-fp16-tensorrt")]


def test_decode_graph_is_cut_from_the_products_graph(bench_output):
    """The ONNX Runtime decode split times the shipped graph's own decode: inputs and outputs are the
    contract's names."""
    import onnx

    from uniparser_sdk.contract import PRODUCTS_V1, RAW_V1

    _, _, doc, out = bench_output
    decs = sorted((out / "cache").glob("*.decode.onnx"))
    assert decs
    g = onnx.load(str(decs[0])).graph
    inputs = [i.name for i in g.input]
    assert inputs[:3] == list(RAW_V1.output_names) and "decode_params" in inputs
    assert set(inputs) <= set(RAW_V1.output_names) | set(PRODUCTS_V1.input_names)  # e.g. images, for its batch
    assert [o.name for o in g.output] == list(PRODUCTS_V1.output_names)
    assert not {n.op_type for n in g.node} & {"Conv", "DeformConv"}  # no network in it


def test_paper_quotes_shared_with_params_cli(capsys):
    from uniparser_sdk.cli import params

    assert paper.PAPER_PARAMS_M == {"r50": 36.73, "r50-light": 30.54}
    assert bench.PAPER_TABLE2 is paper.PAPER_TABLE2
    assert params.PAPER_M is paper.PAPER_PARAMS_M


def test_decode_compare_standalone(capsys, tmp_path):
    """The former decode_bench.py: same methods on a synthetic scene, all label maps equal."""
    from uniparser_sdk.benchmarks import decode_compare

    out = tmp_path / "d.json"
    assert decode_compare.main(["--runs", "1", "--warmup", "0", "--image", "160x128", "--classes", "7",
                                "--dim", "16", "--persons", "2", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["methods"][0]["method"].startswith("official")
    assert all(m["pixels_differing_from_official"] == 0 for m in d["methods"])
    assert decode_compare.main(["--image", "wide"]) == 2


def test_no_private_attribute_reads_across_modules():
    """The benchmark modules read only public names of other objects (no ``x._name`` of another module)."""
    import re
    from pathlib import Path

    root = Path(bench.__file__).resolve().parent
    pat = re.compile(r"\b(?!self\b|cls\b)([a-z_][a-z0-9_]*)\._[a-z]")
    offenders = []
    for f in sorted(root.glob("*.py")):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            code = line.split("#")[0]
            for m in pat.finditer(code):
                offenders.append(f"{f.name}:{n}: {code.strip()}")
    assert not offenders, offenders
    assert all(len(f.read_text().splitlines()) < 400 for f in root.glob("*.py"))


def test_export_cli_reads_the_variant_table(tmp_path, capsys):
    """uniparser-export: --variant NAME selects a row; the old flags select the same rows."""
    import onnx

    from uniparser_sdk.cli import export as cli_export
    from uniparser_sdk.contract import read_onnx_metadata

    assert cli_export.main(["--variant", "products-int3", "-o", str(tmp_path / "x.onnx")]) == 2
    assert cli_export.main(["--variant", "products-fp32", "--fp16", "-o", str(tmp_path / "x.onnx")]) == 2
    assert "contradicts" in capsys.readouterr().err
    out = tmp_path / "m16.onnx"
    assert cli_export.main(["--variant", "products-fp16", "--no-parity", "--no-simplify", "--sample-size", "96x64",
                            "-o", str(out), "-q"]) == 0
    meta = read_onnx_metadata(onnx.load(str(out), load_external_data=False))
    assert (meta.layout, meta.precision) == ("products-v1", "fp16")


def test_engine_build_writes_the_sidecar(bench_output, tmp_path, monkeypatch):
    """backends/tensorrt/build.build_engine_with_sidecar (used by the bench and uniparser-export --engine):
    the sidecar carries the ONNX file's metadata; a failed sidecar leaves no engine behind (TensorRT
    itself is faked: no GPU here)."""
    from uniparser_sdk.backends.tensorrt import build as tb
    from uniparser_sdk.contract import read_onnx_metadata

    _, _, _, out = bench_output
    onnx_path = next(p for p in (out / "cache").glob("*.onnx") if not p.name.endswith(".decode.onnx"))

    def fake_build(onnx_file, engine_path, fp16=False, profile=None, **kw):
        Path(engine_path).write_bytes(b"plan")
        return {"tensorrt_version": "10.3.0", "profile": profile, "precision": "fp16" if fp16 else "fp32",
                "seconds": 0.0}

    from pathlib import Path

    monkeypatch.setattr(tb, "build_engine", fake_build)
    env = {"tensorrt_version": "10.3.0", "compute_capability": "8.6", "gpu_name": "fake"}
    eng = tmp_path / "m.engine"
    tb.build_engine_with_sidecar(onnx_path, eng, fp16=True, env=env, log=lambda s: None)
    side = tb.read_sidecar(eng)
    assert eng.is_file() and tb.sidecar_path(eng).is_file()
    assert side["precision"] == "fp16" and side["meta"] == read_onnx_metadata(str(onnx_path))

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(tb, "write_sidecar", broken)
    with pytest.raises(OSError):
        tb.build_engine_with_sidecar(onnx_path, tmp_path / "n.engine", env=env, log=lambda s: None)
    assert not (tmp_path / "n.engine").exists()
