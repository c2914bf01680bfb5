"""OpenVINO backend: DeformConv mapping, IR conversion with metadata, bf16 / int8, Parser over .xml,
uniparser-quantize (issue 14)."""
import threading

import numpy as np
import pytest

ov = pytest.importorskip("openvino")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from uniparser_sdk.backends.openvino import convert as C  # noqa: E402
from uniparser_sdk.backends.openvino.calibrate import calibration_images  # noqa: E402
from uniparser_sdk.cli import quantize as Q  # noqa: E402
from uniparser_sdk.contract import read_onnx_metadata  # noqa: E402
from uniparser_sdk.contract.layouts import RAW_V1  # noqa: E402
from uniparser_sdk.errors import UserInputError  # noqa: E402
from uniparser_sdk.runtime.parser import Parser  # noqa: E402

DEFAULT_MODEL = __import__("pathlib").Path(__import__("uniparser_sdk").__file__).parent / "assets" / "default_model.pth"


@pytest.fixture(scope="module")
def onnx_model(exported):
    """The embedded default model, exported once per session (tests/conftest.py) at 256x320."""
    return exported("products-v1")


def _deformconv_model(path, with_bias=True):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    inits = [numpy_helper.from_array(w, "W")] + ([numpy_helper.from_array(b, "B")] if with_bias else [])
    ins = ["X", "W", "offset"] + (["B"] if with_bias else [""]) + ["mask"]
    node = helper.make_node("DeformConv", ins, ["Y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2],
                            dilations=[1, 1], group=1, offset_group=1)
    g = helper.make_graph([node], "dcn", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 3, 9, 11]),
                                          helper.make_tensor_value_info("offset", TensorProto.FLOAT, [1, 18, 5, 6]),
                                          helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 9, 5, 6])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4, 5, 6])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
    onnx.save(m, str(path))


@pytest.mark.parametrize("with_bias", [True, False])
def test_deformconv_extension_matches_onnxruntime(tmp_path, with_bias):
    """Offsets up to +-4 px push samples across every border: the zero-padded bilinear sampling must agree."""
    _deformconv_model(tmp_path / "dcn.onnx", with_bias)
    rng = np.random.default_rng(4)
    feed = {"X": rng.standard_normal((1, 3, 9, 11)).astype(np.float32),
            "offset": rng.uniform(-4, 4, (1, 18, 5, 6)).astype(np.float32),
            "mask": rng.uniform(0, 1, (1, 9, 5, 6)).astype(np.float32)}
    want = ort.InferenceSession(str(tmp_path / "dcn.onnx"), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    core = C.make_core()
    got = core.compile_model(C.read_onnx(tmp_path / "dcn.onnx", core), "CPU",
                             {"INFERENCE_PRECISION_HINT": "f32"})(feed)
    got = next(iter(got.values()))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.abs(want).max() > 1.0  # not a trivial all-zero output


def test_fp32_ir_equals_onnxruntime(onnx_model, tmp_path):
    meta = C.convert_onnx(onnx_model, tmp_path / "m.xml", "fp32", log=lambda *a: None)
    assert meta.precision == "fp32" and (tmp_path / "m.bin").is_file()
    assert not list(tmp_path.glob(".*"))  # no temporary leftovers
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 288, 352)).astype(np.float32)  # another size than the export's
    params = np.array([0.2, 0.5, 0.3], np.float32)
    want = dict(zip([o.name for o in ort.InferenceSession(str(onnx_model)).get_outputs()],
                    ort.InferenceSession(str(onnx_model)).run(None, {"images": x, "decode_params": params})))
    with Parser(tmp_path / "m.xml") as p:
        got = p.backend.infer(x, params)
        assert p.backend.last_inference_time() > 0
    assert set(got) == set(want)
    for k in ("num_instances", "grid_index", "instance_masks", "keep"):
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
        assert got[k].dtype == want[k].dtype
    np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-5)
    np.testing.assert_allclose(got["cat_conf"], want["cat_conf"], atol=1e-4)


def test_ir_metadata_round_trip_and_refusals(onnx_model, tmp_path):
    C.convert_onnx(onnx_model, tmp_path / "m.xml", "bf16", log=lambda *a: None)
    src = read_onnx_metadata(onnx_model)
    got = C.read_meta(ov.Core().read_model(str(tmp_path / "m.xml")))
    assert got.precision == "bf16" and src.precision == "fp32"
    got.precision = "fp32"
    assert got == src
    bare = ov.Core().read_model(str(tmp_path / "m.xml"))
    bare.get_rt_info().clear() if hasattr(bare.get_rt_info(), "clear") else None
    plain = tmp_path / "plain.xml"
    ov.save_model(C.read_onnx(onnx_model), str(plain))
    with pytest.raises(UserInputError, match="without UniParser metadata"):
        Parser(plain)
    with pytest.raises(UserInputError, match="must end in .xml"):
        C.convert_onnx(onnx_model, tmp_path / "m.bin2", "bf16")
    with pytest.raises(UserInputError, match="fp32, bf16 or int8"):
        C.convert_onnx(onnx_model, tmp_path / "x.xml", "fp8")


def test_bf16_runs_the_network_in_bf16_and_the_decode_in_fp32(onnx_model, tmp_path):
    C.convert_onnx(onnx_model, tmp_path / "m.xml", "bf16", log=lambda *a: None)
    network, decode = C.split_network_and_decode(tmp_path / "m.xml")
    assert {p.get_any_name() for p in network.inputs} == {"images"}
    assert sorted(p.get_any_name() for p in network.outputs) == sorted(RAW_V1.output_names)
    assert {p.get_any_name() for p in decode.inputs} >= set(RAW_V1.output_names) | {"decode_params"}
    assert {"Convolution", "DeformableConvolution"}.isdisjoint(op.get_type_name() for op in decode.get_ordered_ops())
    x = np.random.default_rng(1).standard_normal((1, 3, 128, 160)).astype(np.float32)
    with Parser(tmp_path / "m.xml") as p:
        prof = p.backend.profile(x, np.array([0.2, 0.5, 0.3], np.float32))
    matmuls = [k for stage, _, t, k, _ in prof if t == "MatMul"]
    assert matmuls and all("f32" in k for k in matmuls), matmuls  # the cosine products
    convs = [k for stage, _, t, k, _ in prof if t == "Convolution"]
    if "avx512_bf16" in open("/proc/cpuinfo").read():  # a CPU with native bf16 runs the network in it
        assert any("bf16" in k for k in convs), convs


def test_bf16_and_int8_parity_report(onnx_model, tmp_path):
    reports = {}
    for prec in ("bf16", "int8"):
        C.convert_onnx(onnx_model, tmp_path / f"m-{prec}.xml", prec, progress=False, log=lambda *a: None,
                       calibration=calibration_images(synthetic=4) if prec == "int8" else None)
        reports[prec] = rep = Q.parity_report(onnx_model, tmp_path / f"m-{prec}.xml", eval_images=8, progress=False)
        a = rep["agreement"]
        assert a["images"] == 4 + Q.PARITY_SCENES and a["persons_reference"] > 0
        assert rep["metrics"]["fp32"]["AP50"] >= 0 and prec in rep["metrics"]
        text = Q.format_report(rep)
        assert "AP^p_50" in text and prec in text
    # bf16 stays close to fp32 on the default model; int8 drifts more (see README for the full table)
    b = reports["bf16"]["agreement"]
    assert b["persons_matched_fraction"] >= 0.95 and b["mask_agreement"] >= 0.97
    assert b["score_drift_max"] < 0.02
    assert reports["int8"]["agreement"]["persons_matched_fraction"] >= 0.8


def test_int8_calibration_is_deterministic_and_validated(onnx_model, tmp_path):
    imgs = calibration_images(synthetic=4)
    for name in ("a", "b"):
        C.convert_onnx(onnx_model, tmp_path / f"{name}.xml", "int8", calibration=imgs, progress=False,
                       log=lambda *a: None)
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
    with pytest.raises(UserInputError, match="calibration folder not found"):
        calibration_images(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="no images"):
        calibration_images(str(tmp_path / "empty"))


def test_parser_over_ir_is_thread_safe(onnx_model, tmp_path):
    C.convert_onnx(onnx_model, tmp_path / "m.xml", "fp32", log=lambda *a: None)
    imgs = calibration_images(synthetic=0)
    with Parser(onnx_model) as ref, Parser(tmp_path / "m.xml", threads=1) as p:
        want = [ref.predict(im) for im in imgs]
        got = [None] * len(imgs)

        def work(i):
            got[i] = p.predict(imgs[i])
        ts = [threading.Thread(target=work, args=(i,)) for i in range(len(imgs))]
        [t.start() for t in ts]
        [t.join() for t in ts]
    for a, b in zip(want, got):
        assert a.num_persons == b.num_persons
        for pa, pb in zip(a.persons, b.persons):
            assert abs(pa.score - pb.score) < 1e-5
            assert (pa.parts != pb.parts).mean() < 1e-3


def test_quantize_cli(onnx_model, tmp_path, capsys):
    out = tmp_path / "q.xml"
    assert Q.main([str(onnx_model), "--precision", "bf16", "-o", str(out), "--eval-images", "4", "-q",
                   "--report", str(tmp_path / "r.json")]) == 0
    text = capsys.readouterr().out
    assert "parity of bf16 vs fp32" in text and out.is_file() and (tmp_path / "r.json").is_file()
    assert Q.main([str(tmp_path / "missing.onnx")]) == 2
    assert "model file not found" in capsys.readouterr().err
    assert Q.main([str(DEFAULT_MODEL)]) == 2
    assert "expected an .onnx model" in capsys.readouterr().err
    assert Q.main([str(onnx_model), "--calibration", str(tmp_path)]) == 2
    with pytest.raises(SystemExit) as e:
        Q.main(["--help"])
    assert e.value.code == 0
