"""Static TensorRT-compatibility check (export/trt_check.py) of every graph we export, and of its rules.

The tiny model is exported in every layout (products-v1, products-v2, raw-v1, plugin-v1) and precision (fp32, fp16),
as shipped (onnxsim) and, for products-v1, unsimplified (--no-simplify); each must satisfy the TensorRT
ONNX parser's operator matrix (shared/third_party/onnx-tensorrt/operators-10.1.md, parsed as data).
Small hand-made graphs show that each rule fires, naming node and rule.
"""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
from onnx import TensorProto as TP, helper, numpy_helper  # noqa: E402

from uniparser_sdk.contract import get_layout  # noqa: E402
from uniparser_sdk.export import trt_check as tc  # noqa: E402

VARIANTS = [("products-v1", False, True), ("products-v1", True, True), ("products-v1", False, False),
            ("products-v2", False, True), ("products-v2", True, True), ("raw-v1", False, True), ("raw-v1", True, True),
            ("plugin-v1", False, True), ("plugin-v1", True, True)]


def _id(v):
    return f"{v[0]}-{'fp16' if v[1] else 'fp32'}{'' if v[2] else '-nosimplify'}"


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    from uniparser_sdk.export import onnx_export as ox
    from uniparser_sdk.model.uniparser import UniParser

    torch.manual_seed(0)
    model = UniParser("tiny").eval()
    d = tmp_path_factory.mktemp("trtcheck")
    out = {}
    for layout, fp16, simplify in VARIANTS:
        meta = ox.build_meta(model, layout="raw-v1" if layout == "plugin-v1" else layout, max_instances=8)
        fn = ox.export_plugin_onnx if layout == "plugin-v1" else ox.export_onnx
        path = d / f"{_id((layout, fp16, simplify))}.onnx"
        fn(model, path, meta, fp16=fp16, simplify=simplify, sample_hw=(64, 64), parity=False, log=lambda *_: None)
        out[(layout, fp16, simplify)] = path
    return out


def test_matrix_is_parsed_as_data():
    m = tc.load_operator_matrix()
    assert m.opset_range == (9, 20) and len(m.ops) > 150
    for op in ("Conv", "DeformConv", "Resize", "TopK", "GatherElements", "MatMul", "ArgMax", "MaxPool", "ReduceL2",
               "Where", "Mod", "Xor", "Cast"):
        assert m.get(op).supported, op
    assert m.get("Unique").supported is False and m.get("Xor").types == {"BOOL"}
    assert "UINT8" in m.get("Cast").types and "UINT8" not in m.get("Reshape").types
    assert "INT64" not in m.get("Clip").types and "INT64" in m.get("ConstantOfShape").types  # 'INF64' typo read
    assert "`sorted` must be 1" in m.get("TopK").restrictions and "3840" in m.get("TopK").restrictions
    assert "initializer" in m.get("ReduceL2").restrictions and "Indices" in m.get("MaxPool").restrictions
    assert any("UINT8 is only supported as network input or output" in n for n in m.notes)


def test_missing_matrix_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(tc.OperatorMatrixNotFound, match=r"operators-10\.1\.md was not found.*nope\.md \(argument\)"):
        tc.load_operator_matrix(tmp_path / "nope.md")
    monkeypatch.setenv(tc.MATRIX_ENV, str(tmp_path / "env.md"))
    with pytest.raises(tc.OperatorMatrixNotFound, match=r"env\.md \(\$UNIPARSER_TRT_OPERATORS\)"):
        tc.load_operator_matrix()
    (tmp_path / "x.md").write_text("# not the matrix\n")
    with pytest.raises(ValueError, match="not the operator matrix"):
        tc.load_operator_matrix(tmp_path / "x.md")


@pytest.mark.parametrize("variant", VARIANTS, ids=_id)
def test_every_exported_graph_is_tensorrt_compatible(exports, variant):
    path = exports[variant]
    report = tc.check_onnx(path, plugins=["UniParserDecode"])
    assert report.ok, report.format()
    proto = onnx.load(str(path))
    ops = {n.op_type for n in proto.graph.node}
    layout = get_layout(variant[0])
    assert [o.name for o in proto.graph.output] == list(layout.output_names)
    np_of = {TP.FLOAT: "float32", TP.INT64: "int64", TP.INT32: "int32", TP.UINT8: "uint8"}
    for o in proto.graph.output:  # the contract's dtypes are unchanged
        assert np_of[o.type.tensor_type.elem_type] == layout.spec(o.name).dtype, o.name
    assert {"Conv", "Resize"} <= ops
    if variant[0].startswith("products"):
        assert {"TopK", "ReduceL2", "MaxPool", "MatMul", "GatherElements", "Cast"} <= ops
        producers = {o: n for n in proto.graph.node for o in n.output}
        for name in ("instance_masks", "keep"):  # TensorRT: a UINT8 output comes from a Cast FLOAT->UINT8
            assert producers[name].op_type == "Cast"
    if variant[0] == "plugin-v1":
        assert [op for _, op in report.plugins] == ["UniParserDecode"]


def _model(nodes, inputs, outputs, inits=(), opset=19):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name, t, shape):
    return helper.make_tensor_value_info(name, t, shape)


def _i64(name, v):
    return numpy_helper.from_array(np.array(v, np.int64), name)


CASES = {
    "reshape_uint8": (
        lambda: _model([helper.make_node("Cast", ["x"], ["u"], to=TP.UINT8, name="c"),
                        helper.make_node("Reshape", ["u", "s"], ["y"], name="r")],
                       [_vi("x", TP.FLOAT, [2, 2])], [_vi("y", TP.UINT8, [4])], [_i64("s", [4])]),
        [("c", "uint8", "inside the network"), ("r", "uint8", "may only feed a Cast"),
         ("r", "uint8", "must come from a Cast"), ("r", "dtype", "input 'u' is UINT8; TensorRT's Reshape supports"),
         ("r", "dtype", "output 'y' is UINT8")]),
    "cast_bool_uint8": (
        lambda: _model([helper.make_node("Cast", ["x"], ["y"], to=TP.UINT8, name="c")],
                       [_vi("x", TP.BOOL, [2])], [_vi("y", TP.UINT8, [2])]),
        [("c", "uint8", "casts BOOL -> UINT8")]),
    "matmul_int64": (
        lambda: _model([helper.make_node("MatMul", ["a", "a"], ["y"], name="mm")],
                       [_vi("a", TP.INT64, [2, 2])], [_vi("y", TP.INT64, [2, 2])]),
        [("mm", "dtype", "input 'a' is INT64"), ("mm", "dtype", "input 'a' is INT64"),
         ("mm", "dtype", "output 'y' is INT64")]),
    "topk_unsorted_big_dynamic": (
        lambda: _model([helper.make_node("TopK", ["x", "k"], ["v", "i"], sorted=0, name="t1"),
                        helper.make_node("TopK", ["x", "k2"], ["v2", "i2"], name="t2")],
                       [_vi("x", TP.FLOAT, [1, 5000]), _vi("k2", TP.INT64, [1])],
                       [_vi("v", TP.FLOAT, [1, 4000]), _vi("i", TP.INT64, [1, 4000]), _vi("v2", TP.FLOAT, [1, None]),
                        _vi("i2", TP.INT64, [1, None])], [_i64("k", [4000])]),
        [("t1", "restriction", "`sorted` must be 1"), ("t1", "restriction", "K = 4000 must be less than 3840"),
         ("t2", "restriction", "must be a build-time constant")]),
    "reducel2_axes_input": (
        lambda: _model([helper.make_node("ReduceL2", ["x", "ax"], ["y"], name="rl2")],
                       [_vi("x", TP.FLOAT, [2, 3]), _vi("ax", TP.INT64, [1])], [_vi("y", TP.FLOAT, None)], opset=18),
        [("rl2", "restriction", "`axes` ('ax') must be an initializer")]),
    "resize_cubic_crop": (
        lambda: _model([helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="cubic",
                                         coordinate_transformation_mode="tf_crop_and_resize", name="rs")],
                       [_vi("x", TP.FLOAT, [1, 1, 4, 4])], [_vi("y", TP.FLOAT, [1, 1, 8, 8])],
                       [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc")]),
        [("rs", "restriction", "mode 'cubic'"), ("rs", "restriction", "'tf_crop_and_resize'")]),
    "maxpool_indices": (
        lambda: _model([helper.make_node("MaxPool", ["x"], ["y", "idx"], kernel_shape=[2, 2], name="mp")],
                       [_vi("x", TP.FLOAT, [1, 1, 4, 4])], [_vi("y", TP.FLOAT, None), _vi("idx", TP.INT64, None)]),
        [("mp", "restriction", "`Indices` output")]),
    "deformconv_asymmetric": (
        lambda: _model([helper.make_node("DeformConv", ["x", "w", "off"], ["y"], kernel_shape=[3, 3],
                                         pads=[1, 1, 0, 0], name="dc")],
                       [_vi("x", TP.FLOAT, [1, 1, 5, 5]), _vi("off", TP.FLOAT, [1, 18, 4, 4])],
                       [_vi("y", TP.FLOAT, None)],
                       [numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")]),
        [("dc", "restriction", "begin and end along each spatial axis")]),
    "unsupported_ops_and_opset": (
        lambda: _model([helper.make_node("Unique", ["x"], ["y"], name="u"),
                        helper.make_node("MadeUpOp", ["x"], ["z"], name="m")],
                       [_vi("x", TP.FLOAT, [3])], [_vi("y", TP.FLOAT, None), _vi("z", TP.FLOAT, None)], opset=21),
        [("<graph>", "opset", "opset 21 is outside"), ("u", "op", "marked unsupported"),
         ("m", "op", "not in the TensorRT ONNX parser's operator matrix")]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_rule_names_node_and_rule(case):
    make, expected = CASES[case]
    report = tc.check_onnx(make())
    got = [(v.node, v.rule, v.message) for v in report.violations]
    for node, rule, needle in expected:
        assert any(n == node and r == rule and needle in m for n, r, m in got), (needle, report.format())
    assert len(got) == len(expected), report.format()
    with pytest.raises(tc.TrtCompatibilityError, match=rf"node '{expected[0][0]}'.*\[{expected[0][1]}\]"):
        tc.require_trt_compatible(make())


def test_cli_check_trt(exports, tmp_path, capsys):
    from uniparser_sdk.cli import export as cli

    assert cli.main(["--check-trt", str(exports[("products-v1", True, True)])]) == 0
    assert "PASS" in capsys.readouterr().out
    bad = tmp_path / "bad.onnx"
    onnx.save(CASES["cast_bool_uint8"][0](), str(bad))
    assert cli.main(["--check-trt", str(bad)]) == 1
    cap = capsys.readouterr()
    assert "FAIL (1 violation(s))" in cap.out
    assert "node 'c' (Cast) [uint8]: casts BOOL -> UINT8" in cap.err.strip().splitlines()[-1]
    assert cli.main(["--check-trt", str(tmp_path / "none.onnx")]) == 2
    assert cli.main(["--check-trt", str(bad), "--trt-operators", str(tmp_path / "missing.md")]) == 2
    assert "operators-10.1.md was not found" in capsys.readouterr().err
