"""Low-precision CPU variants (issue 14): the openvino-* / torch-* rows of the variant table,
uniparser-export --variant openvino-* (fp32 ONNX -> IR, parity report, nothing partial), the torch bf16
autocast path, and uniparser-bench rows side by side with ONNX Runtime FP32. Tiny models, small sizes;
no timing assertions."""
import contextlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from uniparser_sdk.export import variants as V  # noqa: E402

DEFAULT_MODEL = Path(__import__("uniparser_sdk").__file__).parent / "assets" / "default_model.pth"


def test_variant_rows():
    for p in ("fp32", "bf16", "int8"):
        v = V.get_variant(f"openvino-{p}")
        assert (v.layout, v.precision, v.target, v.onnx_precision) == ("products-v1", p, "openvino", "fp32")
        assert v.converted and not v.checkpoint and v.export_options() == {"fp16": False}
        assert v.onnx_suffix == "" and v.artefact_suffix == f"-openvino-{p}.xml"
    for p in ("fp32", "bf16"):
        v = V.get_variant(f"torch-{p}")
        assert v.checkpoint and v.target == "torch"
        with pytest.raises(V.UnknownVariantError, match="nothing to export"):
            v.export_options()
    f = V.variant_from_flags
    assert f(precision="bf16", target="openvino").name == "openvino-bf16"
    assert f(precision="int8").name == "openvino-int8" and f(precision="bf16").name == "openvino-bf16"
    assert f(precision="fp16").name == "products-fp16" and f(precision="fp32").name == "products-fp32"
    assert f(target="openvino").name == "openvino-fp32" and f(fp16=True).name == "products-fp16"
    assert f(precision="fp16", target="tensorrt").name == "products-fp16-tensorrt"
    for kw in ({"precision": "bf16", "target": "onnxruntime"}, {"fp16": True, "precision": "bf16"},
               {"engine": True, "target": "openvino"}):
        with pytest.raises(V.UnknownVariantError):
            f(**kw)
    assert V.default_variant("openvino").name == "openvino-fp32" and V.default_variant("torch").name == "torch-fp32"
    assert "openvino-int8" in V.format_table()


def _export(argv, capsys):
    from uniparser_sdk.cli import export as cli_export

    rc = cli_export.main(argv)
    return rc, capsys.readouterr()


def test_export_cli_openvino_usage_errors(tmp_path, capsys):
    base = [str(DEFAULT_MODEL), "--no-parity", "--no-simplify", "--sample-size", "96x64"]
    for extra, msg in ((["--variant", "openvino-bf16", "-o", str(tmp_path / "m.onnx")], "must end in .xml"),
                       (["--variant", "openvino-bf16", "--calibration", str(tmp_path)], "int8 only"),
                       (["--variant", "products-fp32", "--calibration", str(tmp_path)], "OpenVINO variants"),
                       (["--variant", "torch-bf16"], "nothing to export"),
                       (["--precision", "bf16", "--target", "onnxruntime"], "no variant"),
                       (["--variant", "openvino-bf16", "--precision", "int8"], "contradicts"),
                       (["--variant", "openvino-int8", "--engine"], "TensorRT"),
                       (["--variant", "openvino-int8", "--calibration", str(tmp_path / "nope"),
                         "-o", str(tmp_path / "m.xml")], "not found")):
        rc, cap = _export(base + extra, capsys)
        assert rc == 2 and msg in cap.err, (extra, cap.err)
    assert list(tmp_path.iterdir()) == []


def test_export_cli_writes_ir_and_parity_report(tmp_path, capsys):
    pytest.importorskip("openvino")
    from uniparser_sdk.runtime.parser import Parser

    out = tmp_path / "m.xml"
    rc, cap = _export([str(DEFAULT_MODEL), "--precision", "bf16", "--target", "openvino", "--no-simplify",
                       "--sample-size", "160x128", "--eval-images", "0", "--threads", "1", "-o", str(out)], capsys)
    assert rc == 0, cap.err
    assert "parity: PASS" in cap.out and "parity of bf16 vs fp32" in cap.out and "mask" in cap.out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin", "m.xml"]  # the temporary ONNX is gone
    with Parser(out, threads=1) as p:
        assert p.meta.precision == "bf16" and p.backend.threads == 1
        assert len(p.predict(np.zeros((96, 128, 3), np.uint8))) >= 0


def test_export_cli_int8_calibration_folder_and_failed_conversion(tmp_path, capsys, monkeypatch):
    pytest.importorskip("nncf")
    from uniparser_sdk.backends.openvino import convert as C
    from uniparser_sdk.backends.openvino.calibrate import calibration_images

    cal = tmp_path / "cal"
    cal.mkdir()
    for i, im in enumerate(calibration_images(synthetic=0)[:2]):
        cv2.imwrite(str(cal / f"{i}.png"), im)
    outdir = tmp_path / "out"
    base = [str(DEFAULT_MODEL), "--variant", "openvino-int8", "--no-parity", "--no-simplify", "--sample-size", "96x64",
            "--calibration", str(cal), "--no-report", "-q"]
    rc, cap = _export(base + ["-o", str(outdir / "m.xml")], capsys)
    assert rc == 0, cap.err
    assert sorted(p.name for p in outdir.iterdir()) == ["m.bin", "m.xml"]

    def boom(*a, **k):
        raise RuntimeError("conversion failed")

    monkeypatch.setattr(C, "convert_onnx", boom)
    rc, cap = _export(base + ["-o", str(outdir / "n.xml")], capsys)
    assert rc == 1 and "conversion failed" in cap.err
    assert sorted(p.name for p in outdir.iterdir()) == ["m.bin", "m.xml"]  # nothing partial, no temp ONNX


def test_torch_bf16_agrees_with_fp32():
    from uniparser_sdk.backends.openvino.calibrate import calibration_images
    from uniparser_sdk.evaluation.agreement import compare_results
    from uniparser_sdk.runtime.parser import Parser

    images = calibration_images(synthetic=4)
    with Parser(DEFAULT_MODEL, device="cpu", threads=1) as ref, \
            Parser(DEFAULT_MODEL, device="cpu", threads=1, precision="bf16") as cand:
        assert cand.meta.precision == "bf16" and "bf16 autocast" in cand.providers[0]
        a = compare_results([ref.predict(im) for im in images], [cand.predict(im) for im in images])
    assert a["persons_reference"] > 0
    assert a["persons_matched_fraction"] >= 0.95
    assert a["mask_agreement"] >= 0.99 and a["part_agreement"] >= 0.98


def test_torch_bf16_network_runs_in_bf16_and_decode_in_fp32():
    from uniparser_sdk.backends.torch.runner import TorchBackend
    from uniparser_sdk.errors import UserInputError
    from uniparser_sdk.model.dcn import ModulatedDeformConv2d
    from uniparser_sdk.runtime.parser import Parser

    be = TorchBackend(DEFAULT_MODEL, device="cpu", precision="bf16")
    seen = {}
    convs = [m for m in be.model.modules() if isinstance(m, torch.nn.Conv2d)]
    convs[0].register_forward_hook(lambda m, a, o: seen.setdefault("conv", o.dtype) and None)
    dcn = [m for m in be.model.modules() if isinstance(m, ModulatedDeformConv2d)]
    if dcn:
        dcn[0].register_forward_pre_hook(lambda m, a: seen.setdefault("dcn_in", a[0].dtype) and None)
    x = np.zeros((1, 3, 128, 160), np.float32)
    out = be.infer(x, np.array([0.1, 0.5, 0.1], np.float32))
    assert seen["conv"] == torch.bfloat16
    if dcn:
        assert seen["dcn_in"] == torch.float32  # the backend's pre-hook (registered first) made it float32
    assert out["scores"].dtype == np.float32 and out["cat_conf"].dtype == np.float32
    assert convs[0].weight.is_contiguous(memory_format=torch.channels_last)
    be.close()
    with pytest.raises(UserInputError, match="fp32 or bf16"):
        TorchBackend(DEFAULT_MODEL, device="cpu", precision="int8")
    with pytest.raises(ValueError, match="precision= applies to .pth"):
        Parser("whatever.onnx", precision="bf16")


def test_bench_rows_side_by_side(tmp_path):
    pytest.importorskip("openvino")
    from uniparser_sdk.benchmarks import bench

    out = tmp_path / "b.json"
    argv = ["--configs", "tiny", "--size", "192x128", "--num-images", "2", "--warmup", "1", "--iters", "2",
            "--threads", "1", "--no-decode-compare", "--json", str(out), "--cache-dir", str(tmp_path / "cache"),
            "--variants", "products-fp32,openvino-fp32,openvino-bf16,torch-fp32,torch-bf16"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert bench.main(argv) == 0
    text, doc = buf.getvalue(), json.loads(out.read_text())
    rows = {(r["backend"], r["variant"]): r for r in doc["results"]}
    assert set(rows) == {("onnxruntime", "products-fp32"), ("openvino", "openvino-fp32"),
                         ("openvino", "openvino-bf16"), ("torch", "torch-fp32"), ("torch", "torch-bf16")}
    assert rows[("openvino", "openvino-bf16")]["threads"]["openvino_inference_num_threads"] == 1
    assert rows[("onnxruntime", "products-fp32")]["threads"]["onnxruntime_intra_op"] == 1
    assert rows[("torch", "torch-bf16")]["threads"]["torch"] == 1
    assert "bf16" in rows[("torch", "torch-bf16")]["providers"][0]
    for r in doc["results"]:
        assert r["reference"] == "onnxruntime products-fp32" and r["speedup_vs_reference"] > 0
        assert r["peak_rss_mib"] and r["precision"] in ("fp32", "bf16")
        if r["variant"] != "products-fp32":
            a = r["agreement_vs_reference"]
            assert a["images"] == 2 and a["persons_matched_fraction"] == 1.0  # planted persons
            assert a["mask_agreement"] > 0.95
    assert len(doc["vs_reference"]) == 5
    assert "Side by side" in text and "x ref" in text
    assert sorted(p.suffix for p in (tmp_path / "cache").glob("*openvino*")) == [".bin", ".bin", ".xml", ".xml"]
    # --backends filters the rows of --variants
    assert bench.row_plan(bench.resolve_targets([], ["tiny"])[0], ["onnxruntime"],
                          [V.get_variant("openvino-bf16"), V.get_variant("products-fp32")])[0][1].name == "products-fp32"
