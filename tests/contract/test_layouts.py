"""Every exported file matches its layout's declaration in uniparser_sdk/contract/layouts.py EXACTLY:
input and output names in order, element types, ranks, fixed dimensions and the names of the dynamic
ones; and the metadata names the layout and precision."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from uniparser_sdk.contract import LAYOUTS, get_layout, read_onnx_metadata  # noqa: E402
from uniparser_sdk.contract.layouts import DYNAMIC_SYMBOLS, TensorSpec  # noqa: E402

ONNX_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16",
               onnx.TensorProto.INT64: "int64", onnx.TensorProto.INT32: "int32", onnx.TensorProto.UINT8: "uint8"}

CASES = [("products-v1", "fp32"), ("products-v1", "fp16"), ("products-v2", "fp32"), ("raw-v1", "fp32"),
         ("raw-v1", "fp16"), ("plugin-v1", "fp32")]


def _dims(value_info):
    out = []
    for d in value_info.type.tensor_type.shape.dim:
        out.append(d.dim_param if d.HasField("dim_param") else d.dim_value if d.HasField("dim_value") else None)
    return out


def _check(value_info, spec: TensorSpec, sizes: dict):
    assert value_info.name == spec.name
    assert ONNX_DTYPES[value_info.type.tensor_type.elem_type] == spec.dtype, spec.name
    got = _dims(value_info)
    assert len(got) == spec.rank, (spec.name, got)
    for axis, (g, want) in enumerate(zip(got, spec.shape)):
        if isinstance(want, int):
            assert g == want, (spec.name, axis, g)
        elif want in DYNAMIC_SYMBOLS:
            assert g == want, (spec.name, axis, g, "dynamic axis must carry the contract's symbol")
        else:  # a fixed symbol: resolved from the model (K, C, D, S, P)
            assert g == sizes[want], (spec.name, axis, g, want)


def test_every_layout_is_exercised():
    assert {lay for lay, _ in CASES} == set(LAYOUTS)


@pytest.mark.parametrize("layout,precision", CASES)
def test_exported_file_matches_its_declaration(exported, default_model, layout, precision):
    model, _ = default_model
    path = exported(layout, precision)
    proto = onnx.load(str(path))
    meta = read_onnx_metadata(proto)
    assert (meta.layout, meta.precision) == (layout, precision)
    decl = get_layout(layout)
    cfg = model.config
    sizes = {"K": int(meta.decode["max_instances"]), "C": cfg.num_classes - 1, "D": cfg.head_channels,
             "S": cfg.num_grid, "P": 3}
    inputs = [i for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    assert [i.name for i in inputs] == list(decl.input_names)
    assert [o.name for o in proto.graph.output] == list(decl.output_names)
    for vi, spec in zip(inputs, decl.inputs):
        _check(vi, spec, sizes)
    for vi, spec in zip(proto.graph.output, decl.outputs):
        _check(vi, spec, sizes)


@pytest.mark.parametrize("layout", ["products-v1", "products-v2", "raw-v1"])
def test_onnxruntime_outputs_have_the_declared_dtypes_and_shapes(exported, default_model, layout):
    ort = pytest.importorskip("onnxruntime")
    from uniparser_sdk.backends.base import decode_params_feed

    model, _ = default_model
    path = exported(layout)
    decl = get_layout(layout)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    b, h, w = 2, 192, 224  # another size than the export's
    feed = {"images": np.random.default_rng(0).standard_normal((b, 3, h, w)).astype(np.float32)}
    if "decode_params" in decl.input_names:
        feed["decode_params"] = decode_params_feed(layout, [0.2, 0.5, 0.3], b)
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
    fh, fw = h // 4 + (2 if model.config.light else 0), w // 4 + (2 if model.config.light else 0)
    sizes = {"batch": b, "height": h, "width": w, "feat_height": fh, "feat_width": fw,
             "K": int(read_onnx_metadata(path).decode["max_instances"]), "C": model.config.num_classes - 1,
             "D": model.config.head_channels, "S": model.config.num_grid, "P": 3}
    for spec in decl.outputs:
        assert outs[spec.name].dtype == np.dtype(spec.dtype), spec.name
        assert outs[spec.name].shape == tuple(sizes.get(d, d) for d in spec.shape), spec.name
