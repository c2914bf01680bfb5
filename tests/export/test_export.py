"""uniparser-export: ONNX export, parity, fp16, plugin rewrite, TensorRT helpers (no GPU), CLI.

Kept fast (tiny configs, small images, one shared export per variant): the whole file runs in well
under a minute on two CPU cores.
"""
from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from uniparser_sdk.cli import export as cli  # noqa: E402
from uniparser_sdk.export import onnx_export as ox  # noqa: E402
from uniparser_sdk.export import parity  # noqa: E402
from uniparser_sdk.export import plugin_rewrite as pr  # noqa: E402
from uniparser_sdk.backends.tensorrt import build as tb  # noqa: E402
from uniparser_sdk.model.end_to_end import OUTPUT_NAMES, EndToEnd  # noqa: E402
from uniparser_sdk.model.checkpoint import save_checkpoint  # noqa: E402
from uniparser_sdk.model.uniparser import UniParser  # noqa: E402
from uniparser_sdk.contract import LAYOUT_PLUGIN, LAYOUT_PRODUCTS, ModelMeta, meta_from_props, read_onnx_metadata  # noqa: E402

SAMPLE_HW = (96, 128)


def make_model(name: str = "tiny", seed: int = 0) -> UniParser:
    """Random-init model that finds persons: the center head's logits are spread out (std ~1) and
    centred on 0, so many peaks exceed ctr_score 0.3 while the scores stay far from saturation (no
    near-ties that float rounding could flip between ORT and torch)."""
    torch.manual_seed(seed)
    model = UniParser(name).eval()
    with torch.no_grad():
        model.mask_head.center_heatmap.weight.mul_(15.0)
        model.mask_head.center_heatmap.bias.fill_(0.0)
    return model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A saved random-init tiny checkpoint and its fp32 products-v1 export (shared by several tests)."""
    d = tmp_path_factory.mktemp("export")
    model = make_model("tiny")
    ckpt = save_checkpoint(d / "tiny.pth", model)
    from uniparser_sdk.model.checkpoint import load_model

    loaded, info = load_model(ckpt)
    meta = ox.build_meta(loaded, info)
    logs = []
    report = ox.export_onnx(loaded, d / "tiny.onnx", meta, sample_hw=SAMPLE_HW, log=logs.append)
    return types.SimpleNamespace(dir=d, ckpt=ckpt, model=loaded, info=info, meta=meta, path=d / "tiny.onnx",
                                 report=report, logs=logs)


def _run_ort(path, images, params):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()],
                    sess.run(None, {"images": images, "decode_params": params})))


# ---------------------------------------------------------------------------------------------- ONNX


def test_ort_matches_torch_at_two_other_sizes_batch2(tiny):
    params = np.array([tiny.meta.decode["ctr_score"], tiny.meta.decode["mask_thr"],
                       tiny.meta.decode["cate_score_thr"]], np.float32)
    e2e = EndToEnd(tiny.model, tiny.meta.decode["max_instances"]).eval()
    for i, (h, w) in enumerate([(64, 160), (128, 64)]):  # neither is the export size 96x128
        assert (h, w) != SAMPLE_HW
        images = parity.structured_images(2, h, w, seed=10 + i)
        got = _run_ort(tiny.path, images, params)
        with torch.no_grad():
            ref = {n: t.numpy() for n, t in zip(OUTPUT_NAMES, e2e(torch.from_numpy(images), torch.from_numpy(params)))}
        assert list(got) == OUTPUT_NAMES
        for name in OUTPUT_NAMES:
            assert got[name].shape == ref[name].shape, name
            assert got[name].dtype == ref[name].dtype, name
        counts = got["num_instances"]
        assert counts.shape == (2,) and (counts > 0).all(), "comparison would be vacuous"
        np.testing.assert_array_equal(counts, ref["num_instances"])
        np.testing.assert_array_equal(got["grid_index"], ref["grid_index"])
        np.testing.assert_allclose(got["scores"], ref["scores"], atol=1e-5)
        np.testing.assert_allclose(got["cat_conf"], ref["cat_conf"], atol=1e-4)
        assert (got["instance_masks"] == ref["instance_masks"]).mean() > 0.999
        assert (got["keep"] == ref["keep"]).mean() > 0.99
        assert got["instance_masks"][:, :counts.min()].any()


def test_file_is_self_contained_and_checked(tiny):
    proto = onnx.load(str(tiny.path))
    onnx.checker.check_model(proto, full_check=True)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    assert sorted(p.name for p in tiny.path.parent.iterdir() if p.name.startswith(".")) == []  # no temp files
    assert [i.name for i in proto.graph.input] == ["images", "decode_params"]
    assert [o.name for o in proto.graph.output] == OUTPUT_NAMES
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    ops = {n.op_type for n in proto.graph.node}
    assert "DeformConv" in ops and "TopK" in ops
    assert ops <= {s.name for s in onnx.defs.get_all_schemas_with_history() if s.domain == ""}  # standard ops only
    assert {o.domain for o in proto.opset_import} == {""}
    assert next(o.version for o in proto.opset_import if o.domain == "") == 19
    # the raw tensors are kept named for the parity check
    assert {"center_logits", "ins_feats", "sem_feats"} <= {v.name for v in proto.graph.value_info}


def test_metadata_round_trip(tiny):
    meta = read_onnx_metadata(tiny.path)
    assert meta == meta_from_props(tiny.meta.to_props())
    assert meta.layout == LAYOUT_PRODUCTS and meta.precision == "fp32"
    assert meta.config["name"] == "tiny" and meta.config["num_grid"] == 24
    assert len(meta.classes) == 20 and meta.classes[0] == "background"
    assert meta.decode == {"ctr_score": 0.3, "mask_thr": 0.5, "cate_score_thr": 0.3, "max_instances": 100}
    assert meta.source_sha256 == tiny.info["sha256"] and meta.source_format == "uniparser-sdk"
    import uniparser_sdk

    assert meta.sdk_version == uniparser_sdk.__version__
    assert meta.normalization["mean"] == [123.675, 116.28, 103.53]
    assert meta.input["size_divisor"] == 32


def test_parity_report(tiny):
    rep = tiny.report.parity
    assert rep.ok and rep.layout == LAYOUT_PRODUCTS and rep.batch == 2
    assert rep.sizes and all(s != SAMPLE_HW for s in rep.sizes)
    assert set(rep.raw_rel) == {"center_logits", "ins_feats", "sem_feats"}
    assert max(rep.raw_rel.values()) < 1e-3 and rep.cat_conf < 1e-3
    first, probe = rep.passes
    assert first.union > 0 and first.instances == 1.0 and first.counts_ort == first.counts_ref
    assert probe.ctr_score == 0.0 and probe.union >= first.union
    text = rep.format()
    assert "result: PASS" in text and "ins_feats" in text and "masks agree" in text
    assert any("parity report" in line for line in tiny.logs)
    assert tiny.report.simplified and tiny.report.layout == LAYOUT_PRODUCTS


def test_parity_detects_a_wrong_model(tiny):
    other = make_model("tiny", seed=1)  # different weights, same architecture
    rep = parity.check_parity(tiny.path, other, tiny.meta, sizes=[(64, 64)], batch=1)
    assert not rep.ok and any("center_logits" in f or "cat_conf" in f for f in rep.failures)
    assert "result: FAIL" in rep.format()


def test_fp16_light_export_reports_deviation(tmp_path):
    model = make_model("tiny-light")
    meta = ox.build_meta(model)
    rep = ox.export_onnx(model, tmp_path / "light16.onnx", meta, fp16=True, sample_hw=(64, 96),
                         parity_hw=(96, 64), log=lambda m: None)
    assert rep.precision == "fp16" and rep.parity.ok and rep.parity.precision == "fp16"
    dev = max(rep.parity.raw_rel.values())
    assert 0 < dev <= parity.TOLERANCES["fp16"].raw_rel  # a real deviation, within tolerance
    # low precision keeps reporting its drift from float32 PyTorch, against fixed bounds
    assert rep.parity.reference == "fp32" and rep.parity.raw_noise == {} and rep.parity.deform_conv == []
    assert all(r.noise is None and r.bound == r.floor for r in rep.parity.rows)
    assert "vs fp32 PyTorch" in rep.parity.format() and "fixed bounds" in rep.parity.format()
    assert rep.parity.passes[0].union > 0
    proto = onnx.load(str(tmp_path / "light16.onnx"))
    onnx.checker.check_model(proto)
    inits = {t.name: t.data_type for t in proto.graph.initializer}
    conv_weights = [inits[n.input[1]] for n in proto.graph.node if n.op_type in ("Conv", "DeformConv")]
    assert conv_weights and set(conv_weights) == {onnx.TensorProto.FLOAT16}  # every convolution in half
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # float32 I/O
    meta2 = read_onnx_metadata(proto)
    assert meta2.precision == "fp16" and meta2.config["light"] is True
    # the file runs in ORT at another size; light models have (h+2, w+2) feature maps
    images = parity.structured_images(1, 128, 96)
    out = _run_ort(tmp_path / "light16.onnx", images, np.array([0.0, 0.5, 0.3], np.float32))
    assert out["cat_conf"].dtype == np.float32 and out["cat_conf"].shape[-2:] == (128 // 4 + 2, 96 // 4 + 2)


# --------------------------------------------------------------------------------------- plugin


def _raw_graph():
    """Small hand-made raw-v1 graph (Identity stand-ins for the network)."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Identity", ["images"], ["x"]),
             helper.make_node("ReduceMean", ["x", "axes"], ["center_logits"], keepdims=1),
             helper.make_node("Tile", ["x", "reps"], ["ins_feats"]),
             helper.make_node("Tile", ["x", "reps"], ["sem_feats"])]
    g = helper.make_graph(
        nodes, "raw", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("center_logits", TensorProto.FLOAT, ["batch", 1, "height", "width"]),
         helper.make_tensor_value_info("ins_feats", TensorProto.FLOAT, ["batch", 6, "height", "width"]),
         helper.make_tensor_value_info("sem_feats", TensorProto.FLOAT, ["batch", 6, "height", "width"])],
        initializer=[onnx.numpy_helper.from_array(np.array([1, 2, 1, 1], np.int64), "reps"),
                     onnx.numpy_helper.from_array(np.array([1], np.int64), "axes")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])


def test_plugin_rewrite_structure():
    raw = _raw_graph()
    seg = np.random.default_rng(0).normal(size=(19, 6)).astype(np.float32)
    out = pr.rewrite_to_plugin(raw, seg, max_instances=50, ctr_score=0.2, mask_thr=0.5, cate_score_thr=0.3)
    onnx.checker.check_model(out, full_check=True)
    nodes = pr.plugin_nodes(out)
    assert len(nodes) == 1
    node = nodes[0]
    assert node.op_type == "UniParserDecode" == pr.PLUGIN_NAME and node.domain == pr.PLUGIN_DOMAIN
    assert list(node.input) == ["center_logits", "ins_feats", "sem_feats", "seg_kernels"]
    assert list(node.output) == ["scores", "num_instances", "part_maps"]
    attrs = pr.plugin_attributes(node)
    assert attrs["plugin_version"] == "1" and attrs["plugin_namespace"] == "uniparser"
    assert attrs["max_instances"] == 50
    assert attrs["ctr_score"] == pytest.approx(0.2) and attrs["mask_thr"] == pytest.approx(0.5)
    assert attrs["cate_score_thr"] == pytest.approx(0.3)
    # the network is untouched; graph I/O is the plugin contract
    assert [n.op_type for n in out.graph.node[:-1]] == [n.op_type for n in raw.graph.node]
    assert [i.name for i in out.graph.input] == ["images"]
    outs = {o.name: o.type.tensor_type for o in out.graph.output}
    assert list(outs) == ["scores", "num_instances", "part_maps"]
    assert outs["scores"].elem_type == onnx.TensorProto.FLOAT
    assert outs["num_instances"].elem_type == onnx.TensorProto.INT32
    # TensorRT plugins cannot output UINT8: the uint8 labels (B, K, 4h, 4w) travel packed as int32 (B, K, 4h, w)
    assert outs["part_maps"].elem_type == onnx.TensorProto.INT32
    assert [d.dim_param or d.dim_value for d in outs["part_maps"].shape.dim] == ["batch", 50, "part_height", "width"]
    seg_init = next(t for t in out.graph.initializer if t.name == "seg_kernels")
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(seg_init), seg)
    assert [i.name for i in raw.graph.output] == ["center_logits", "ins_feats", "sem_feats"]  # input not mutated
    with pytest.raises(pr.PluginRewriteError):
        pr.rewrite_to_plugin(out, seg, max_instances=50, ctr_score=0.2, mask_thr=0.5, cate_score_thr=0.3)
    with pytest.raises(pr.PluginRewriteError):
        pr.rewrite_to_plugin(raw, seg[:, :5], max_instances=50, ctr_score=0.2, mask_thr=0.5, cate_score_thr=0.3)


def test_plugin_export_and_onnxsim_fallback(tmp_path, monkeypatch):
    import onnxsim

    def broken(*a, **k):
        raise RuntimeError("simulated onnxsim crash")

    monkeypatch.setattr(onnxsim, "simplify", broken)
    model = make_model("tiny-light")
    logs = []
    rep = ox.export_plugin_onnx(model, tmp_path / "p.onnx", ox.build_meta(model, max_instances=30), sample_hw=(64, 96),
                                log=logs.append)
    assert not rep.simplified and "onnxsim failed" in rep.simplify_message and "simulated" in rep.simplify_message
    assert any("kept the unsimplified graph" in m for m in logs)
    assert rep.parity.ok and rep.parity.layout == "raw-v1" and rep.layout == LAYOUT_PLUGIN
    proto = onnx.load(str(tmp_path / "p.onnx"))
    onnx.checker.check_model(proto)
    (node,) = pr.plugin_nodes(proto)
    assert pr.plugin_attributes(node)["max_instances"] == 30
    assert [i.name for i in proto.graph.input] == ["images"]
    assert [o.name for o in proto.graph.output] == ["scores", "num_instances", "part_maps"]
    meta = read_onnx_metadata(proto)
    assert meta.layout == LAYOUT_PLUGIN and meta.decode["max_instances"] == 30
    seg = onnx.numpy_helper.to_array(next(t for t in proto.graph.initializer if t.name == "seg_kernels"))
    np.testing.assert_array_equal(seg, model.seg_kernels.detach().numpy())


# TensorRT (profiles, sidecar, engine building on generated fakes): tests/backends/tensorrt/test_tensorrt_backend.py


# ------------------------------------------------------------------------------------------ CLI


def test_cli_help(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--fp16", "--max-instances", "--ctr-score", "--no-simplify", "--engine", "--plugin", "--opset"):
        assert flag in out


def _one_line_error(capsys, needle):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("uniparser-export: error:") and needle in err and "Traceback" not in err
    return err


def test_cli_user_mistakes_exit_2(tmp_path, capsys, monkeypatch):
    assert cli.main([str(tmp_path / "missing.pth")]) == 2
    _one_line_error(capsys, "checkpoint not found")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint")
    assert cli.main([str(junk), "-o", str(tmp_path / "j.onnx")]) == 2
    _one_line_error(capsys, "cannot load")
    assert cli.main([str(junk), "--ctr-score", "1.5"]) == 2
    _one_line_error(capsys, "[0, 1]")
    assert cli.main([str(junk), "--opset", "17"]) == 2
    _one_line_error(capsys, "opset")
    assert cli.main([str(junk), "--sample-size", "128x100"]) == 2
    _one_line_error(capsys, "multiples of 32")
    assert cli.main([str(junk), "--config", "r1000"]) == 2
    _one_line_error(capsys, "unknown --config")
    monkeypatch.setattr(cli, "DEFAULT_MODEL", tmp_path / "assets" / "default_model.pth")
    assert cli.main([]) == 2
    _one_line_error(capsys, "default model is missing")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.pth"]


def test_cli_unwritable_output_leaves_nothing(tiny, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main([str(tiny.ckpt), "-o", str(blocker / "sub" / "m.onnx")]) == 2
    _one_line_error(capsys, "not a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_cli_engine_without_tensorrt(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    out = tmp_path / "m.onnx"
    assert cli.main([str(tiny.ckpt), "-o", str(out), "--engine"]) == 1  # the job cannot run here (exit codes: uniparser_sdk.errors)
    err = _one_line_error(capsys, "TensorRT is not installed")
    assert "--engine" in err
    assert list(tmp_path.iterdir()) == []  # stopped before any work


def test_cli_parity_failure_leaves_nothing(tiny, tmp_path, capsys, monkeypatch):
    impossible = parity.Tolerances(raw_rel=-1, cat_conf=-1, scores=-1, instances=2, masks=2, keep=2)
    monkeypatch.setitem(parity.TOLERANCES, "fp32", impossible)
    # skip the (slow, already tested) tracing: reuse the fixture's graph
    monkeypatch.setattr(ox, "trace_to_onnx", lambda *a, **k: onnx.load(str(tiny.path)))
    out = tmp_path / "out" / "m.onnx"
    code = cli.main([str(tiny.ckpt), "-o", str(out), "--no-simplify", "--sample-size", "64x64",
                     "--parity-size", "96x64"])
    assert code == 1
    captured = capsys.readouterr()
    assert "result: FAIL" in captured.out
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "parity check failed" in err and "nothing was written" in err
    assert not out.exists() and (not out.parent.exists() or list(out.parent.iterdir()) == [])


def test_cli_official_checkpoint_needs_no_flags(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    official = tmp_path / "Uniparser_tiny_official.pth"
    torch.save({"state_dict": {k: v for k, v in tiny.model.state_dict().items()},
                "meta": {"mmdet_version": "2.11.0"}}, official)
    code = cli.main([str(official), "--sample-size", "96x64", "--parity-size", "64x96"])
    out = capsys.readouterr().out
    assert code == 0, out
    for step in ("[1/2] loading", "mmdetection checkpoint", "[2/2] exporting ONNX", "parity report", "result: PASS",
                 "done in"):
        assert step in out
    path = tmp_path / "Uniparser_tiny_official.onnx"  # default output: ./<checkpoint name>.onnx
    meta = read_onnx_metadata(path)
    assert meta.source_format == "mmdetection" and meta.layout == LAYOUT_PRODUCTS
    assert meta.config["num_classes"] == 20 and meta.config["light"] is False
    assert meta.config["dcn_stages"] == [False, True, True, True]
    assert meta.source_sha256 and len(meta.classes) == 20
    onnx.checker.check_model(onnx.load(str(path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([official.name, path.name])
