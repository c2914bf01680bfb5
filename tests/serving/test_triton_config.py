"""Triton repository configs, products-v2 and per-image thresholds.

Configs: every config.pbtxt parses as Triton's ModelConfig protobuf (tritonclient.grpc.model_config_pb2,
read in the tritonserver environment, see test_triton_server.py) and its tensors match the contract
and the exported ONNX file. products-v2: decode_params (batch, 3), one row of thresholds per image,
gives per image exactly what products-v1 gives with that image's thresholds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from test_triton_server import export_default, run_driver, server_env  # noqa: E402
from uniparser_sdk.backends.base import decode_params_feed  # noqa: E402
from uniparser_sdk.contract import read_onnx_metadata  # noqa: E402
from uniparser_sdk.contract.layouts import PRODUCTS_V1, PRODUCTS_V2  # noqa: E402
from uniparser_sdk.serving import repository as rp  # noqa: E402

TRITON_TO_NP = {"TYPE_FP32": "float32", "TYPE_INT64": "int64", "TYPE_UINT8": "uint8", "TYPE_INT32": "int32"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("v2")
    return d, export_default(d)


def test_products_v2_contract():
    assert PRODUCTS_V2.spec("decode_params").shape == ("batch", "P")
    assert PRODUCTS_V1.spec("decode_params").shape == ("P",)
    assert PRODUCTS_V2.outputs == PRODUCTS_V1.outputs
    assert PRODUCTS_V2.dynamic_axes(["decode_params"]) == {"decode_params": {0: "batch"}}


def test_decode_params_feed_follows_the_declared_rank():
    p = np.array([0.2, 0.5, 0.3], np.float32)
    assert decode_params_feed("products-v1", p, 4).shape == (3,)
    rows = decode_params_feed("products-v2", p, 4)
    assert rows.shape == (4, 3) and (rows == p).all()
    per = np.array([[0.2, 0.5, 0.3], [0.4, 0.6, 0.2]], np.float32)
    np.testing.assert_array_equal(decode_params_feed("products-v2", per, 2), per)
    np.testing.assert_array_equal(decode_params_feed("products-v1", np.stack([p, p]), 2), p)  # equal rows
    with pytest.raises(ValueError, match="products-v2"):
        decode_params_feed("products-v1", per, 2)  # v1 has one set per call
    with pytest.raises(ValueError, match="one row of 3 per image"):
        decode_params_feed("products-v2", per, 3)


def test_exported_v2_file_and_per_image_thresholds(exported):
    from uniparser_sdk.backends.onnxruntime.runner import OnnxRuntimeBackend
    from uniparser_sdk.export.parity import structured_images

    _, paths = exported
    proto = onnx.load(str(paths["products-v2"]))
    dp = next(i for i in proto.graph.input if i.name == "decode_params")
    assert [d.dim_param or d.dim_value for d in dp.type.tensor_type.shape.dim] == ["batch", 3]
    assert read_onnx_metadata(paths["products-v2"]).layout == "products-v2"
    images = structured_images(2, 128, 160, seed=3)
    rows = np.array([[0.1, 0.5, 0.25], [0.3, 0.7, 0.4]], np.float32)
    with OnnxRuntimeBackend(paths["products-v2"], device="cpu") as v2, \
            OnnxRuntimeBackend(paths["products-v1"], device="cpu") as v1:
        both = v2.infer(images, rows)
        for i in range(2):
            one = v1.infer(images[i:i + 1], rows[i])
            for name in PRODUCTS_V1.output_names:
                np.testing.assert_array_equal(both[name][i:i + 1], one[name], err_msg=name)
        assert both["num_instances"][0] != both["num_instances"][1] or \
            not np.array_equal(both["keep"][0], both["keep"][1])
        # the same thresholds for the whole batch: (3,) broadcast to every row
        same = v2.infer(images, rows[0])
        np.testing.assert_array_equal(same["num_instances"][0], both["num_instances"][0])


def test_writer_refuses_v1_and_non_empty_dirs(exported, tmp_path):
    _, paths = exported
    with pytest.raises(rp.RepositoryError, match="products-v2"):
        rp.write_triton_repository(paths["products-v1"], tmp_path / "r")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(rp.RepositoryError, match="not empty"):
        rp.write_triton_repository(paths["products-v2"], tmp_path / "full")
    assert (tmp_path / "full" / "x").read_text() == "keep me"
    with pytest.raises(rp.RepositoryError, match="engine"):
        rp.write_triton_repository(paths["products-v2"], tmp_path / "t", network_backend="tensorrt")
    with pytest.raises(rp.RepositoryError, match="max_batch_size"):
        rp.write_triton_repository(paths["products-v2"], tmp_path / "b", options=rp.RepositoryOptions(max_batch_size=0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]  # nothing half-written


def _dims(t):
    return [int(v) for v in t.get("dims", [])]


def test_configs_parse_as_model_config_and_match_the_contract(exported, tmp_path):
    env = server_env()
    _, paths = exported
    onnx_path = paths["products-v2"]
    repos = {b: rp.write_triton_repository(onnx_path, tmp_path / b, network_backend=b) for b in ("onnxruntime", "python")}
    for backend, repo in repos.items():
        check_repository_configs(run_driver(env, "configs", repo, tmp_path / f"{backend}.json"), backend, repo,
                                 onnx_path)


def check_repository_configs(cfgs, backend, repo, onnx_path, max_batch=8, engine_path=None):
    """``cfgs`` (every config.pbtxt of ``repo`` parsed as Triton's ModelConfig, by model name) match the
    contract, the ONNX file and each other (the ensemble's steps hand over declared tensors)."""
    meta = read_onnx_metadata(onnx_path)
    io = rp.onnx_io(onnx_path)
    k, c = int(meta.thresholds["max_instances"]), len(meta.classes) - 1
    assert sorted(cfgs) == sorted([rp.ENSEMBLE, rp.PREPROCESS, rp.NETWORK, rp.POSTPROCESS])
    net = cfgs[rp.NETWORK]
    if backend == "onnxruntime":
        assert net["platform"] == "onnxruntime_onnx" and net["backend"] == "onnxruntime"
        assert (repo / rp.NETWORK / "1" / "model.onnx").read_bytes() == onnx_path.read_bytes()
    elif backend == "tensorrt":
        assert net["platform"] == "tensorrt_plan" and net["backend"] == "tensorrt"
        assert (repo / rp.NETWORK / "1" / "model.plan").read_bytes() == Path(engine_path).read_bytes()
        assert net["instance_group"][0]["kind"] == "KIND_GPU"
    else:
        assert net["backend"] == "python" and (repo / rp.NETWORK / "1" / "model.py").is_file()
    assert int(net["max_batch_size"]) == max_batch and "dynamic_batching" in net
    assert [int(v) for v in net["dynamic_batching"]["preferred_batch_size"]] == \
        sorted({max(1, max_batch // 2), max_batch})
    # the network's tensors: the contract's names / dtypes, the ONNX file's names / dtypes / ranks
    for group, specs in (("input", PRODUCTS_V2.inputs), ("output", PRODUCTS_V2.outputs)):
        got = {t["name"]: t for t in net[group]}
        assert list(got) == [s.name for s in specs]
        for s in specs:
            t = got[s.name]
            assert TRITON_TO_NP[t["data_type"]] == s.dtype == io[s.name][0], s.name
            dims = _dims(t)
            if s.rank == 1:  # (batch,) -> dims [1], reshape []
                assert dims == [1] and t["reshape"] == {}, s.name
            else:
                assert len(dims) + 1 == s.rank == len(io[s.name][1]), s.name
                for d, want, file_dim in zip(dims, s.shape[1:], io[s.name][1][1:]):
                    if isinstance(want, str) and want in ("K", "C", "P"):
                        assert d == {"K": k, "C": c, "P": 3}[want], (s.name, want)
                        assert file_dim in (d, None) or isinstance(file_dim, str)
                    elif isinstance(want, int):
                        assert d == want == file_dim
                    else:
                        assert d == -1, (s.name, want)
    # Python steps run on CPU instances; the ensemble joins the steps through declared tensors
    for name in (rp.PREPROCESS, rp.POSTPROCESS):
        assert cfgs[name]["backend"] == "python"
        assert cfgs[name]["instance_group"][0]["kind"] == "KIND_CPU"
    ens = cfgs[rp.ENSEMBLE]
    assert ens["platform"] == "ensemble"
    assert {t["name"]: t["data_type"] for t in ens["input"]} == \
        {"image_bytes": "TYPE_STRING", "image": "TYPE_UINT8", "thresholds": "TYPE_FP32"}
    assert all(t.get("optional") for t in ens["input"])
    assert [t["name"] for t in ens["output"]] == ["scores", "part_maps", "semantic", "result_json"]
    params = {p: v["string_value"] for p, v in ens["parameters"].items()}
    assert tuple(__import__("json").loads(params["classes"])) == tuple(meta.classes)
    produced = {t["name"] for t in ens["input"]}
    steps = ens["ensemble_scheduling"]["step"]
    assert [s["model_name"] for s in steps] == [rp.PREPROCESS, rp.NETWORK, rp.POSTPROCESS]
    for s in steps:
        model = cfgs[s["model_name"]]
        assert set(s["input_map"]) == {t["name"] for t in model["input"]}, s["model_name"]
        assert set(s["input_map"].values()) <= produced, s["model_name"]
        assert set(s["output_map"]) <= {t["name"] for t in model["output"]}, s["model_name"]
        produced |= set(s["output_map"].values())
        # a tensor handed from one step to the next has the same type and dims on both sides
        for key, value in s["input_map"].items():
            for prev in steps:
                for out_key, out_val in prev.get("output_map", {}).items():
                    if out_val == value:
                        src = next(t for t in cfgs[prev["model_name"]]["output"] if t["name"] == out_key)
                        dst = next(t for t in model["input"] if t["name"] == key)
                        assert (src["data_type"], _dims(src)) == (dst["data_type"], _dims(dst)), value
    assert {t["name"] for t in ens["output"]} <= produced


def test_uniparser_triton_cli(exported, tmp_path, capsys):
    from uniparser_sdk.cli import triton as cli

    _, paths = exported
    # a checkpoint (the embedded default model) is exported as products-v2 first
    assert cli.main(["-o", str(tmp_path / "repo"), "--onnx", str(tmp_path / "m.onnx"), "--max-batch-size", "4",
                     "--network-backend", "python", "--no-dynamic-batching"]) == 0
    assert read_onnx_metadata(tmp_path / "m.onnx").layout == "products-v2"
    net = (tmp_path / "repo" / rp.NETWORK / "config.pbtxt").read_text()
    assert "max_batch_size: 4" in net and "dynamic_batching" not in net and 'backend: "python"' in net
    assert (tmp_path / "repo" / rp.NETWORK / "1" / "model.onnx").read_bytes() == (tmp_path / "m.onnx").read_bytes()
    assert "wrote the model repository" in capsys.readouterr().out
    # a products-v1 file: a usage error naming the fix, nothing written
    assert cli.main([str(paths["products-v1"]), "-o", str(tmp_path / "v1")]) == 2
    assert "products-v2" in capsys.readouterr().err and not (tmp_path / "v1").exists()


def test_parser_reads_products_v2_like_v1(exported):
    from uniparser_sdk.runtime import Parser

    _, paths = exported
    samples = sorted((__import__("pathlib").Path(__file__).resolve().parents[2] / "uniparser_sdk" / "assets"
                      / "samples").glob("*.png"))[:2]
    with Parser(paths["products-v1"], device="cpu") as p1, Parser(paths["products-v2"], device="cpu") as p2:
        assert p2.layout == "products-v2"
        for s in samples:
            a, b = p1.predict(str(s)), p2.predict(str(s))
            assert a.num_persons > 0 and a.persons == b.persons
        # a batch with per-call thresholds: v2 is fed one row per image by the backend
        a = p1.predict_batch([str(s) for s in samples], ctr_score=0.35)
        b = p2.predict_batch([str(s) for s in samples], ctr_score=0.35)
        assert [r.persons for r in a] == [r.persons for r in b]


# ---------------------------------------------------------------------------------------------- uniparser-export --triton-repo

def _export_cli(argv, capsys):
    from uniparser_sdk.cli import export as cli

    code = cli.main([*map(str, argv), "--sample-size", "128x96", "-q"])
    return code, capsys.readouterr()


def test_export_triton_repo(tmp_path, capsys):
    """uniparser-export --triton-repo DIR: the products-v2 export (parity-checked), then the repository, whose
    config.pbtxt files parse as Triton's ModelConfig and match the contract and the written ONNX file."""
    env = server_env()
    onnx_path, repo = tmp_path / "m.onnx", tmp_path / "repo"
    code, out = _export_cli(["-o", onnx_path, "--triton-repo", repo], capsys)
    assert code == 0, out.err
    meta = read_onnx_metadata(onnx_path)
    assert meta.layout == "products-v2" and meta.precision == "fp32"
    check_repository_configs(run_driver(env, "configs", repo, tmp_path / "cfg.json"), "onnxruntime", repo, onnx_path)
    # the default output name is the products-v2 row's
    (tmp_path / "cwd").mkdir()
    import os

    old = os.getcwd()
    try:
        os.chdir(tmp_path / "cwd")
        code, out = _export_cli(["--triton-repo", "r", "--no-parity"], capsys)
    finally:
        os.chdir(old)
    assert code == 0, out.err
    assert sorted(p.name for p in (tmp_path / "cwd").iterdir()) == ["r", "uniparser-default-products-v2.onnx"]


@pytest.mark.parametrize("flags,match", [
    (["--variant", "products-fp32"], r"--variant products-fp32 \(products-v1\) contradicts --triton-repo: .*products-v2"),
    (["--variant", "plugin-fp32-tensorrt"], r"--variant plugin-fp32-tensorrt \(plugin-v1\) contradicts --triton-repo"),
    (["--fp16"], r"--fp16 contradicts --triton-repo: .*products-v2-fp32"),
    (["--plugin"], r"--plugin contradicts --triton-repo"),
    (["--variant", "nope"], r"unknown variant 'nope'"),
])
def test_export_triton_repo_refuses_contradictions(flags, match, tmp_path, capsys):
    import re

    code, out = _export_cli(["-o", tmp_path / "m.onnx", "--triton-repo", tmp_path / "repo", *flags], capsys)
    assert code == 2 and re.search(match, out.err), out.err
    assert list(tmp_path.iterdir()) == []  # refused before any work


def test_export_triton_repo_refusals_before_work_and_no_partial_repository(tmp_path, capsys, monkeypatch):
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("keep me")
    code, out = _export_cli(["-o", tmp_path / "m.onnx", "--triton-repo", full], capsys)
    assert code == 2 and "not an empty directory" in out.err and (full / "x").read_text() == "keep me"
    assert not (tmp_path / "m.onnx").exists()
    code, out = _export_cli(["-o", tmp_path / "d" / "m.onnx", "--triton-repo", tmp_path / "d"], capsys)
    assert code == 2 and "would hold the output" in out.err
    # the repository fails half-way (a copy fails): no repository, no temporary directory, the ONNX file is complete
    import shutil
    import types

    def fail(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rp, "shutil", types.SimpleNamespace(copyfile=fail, rmtree=shutil.rmtree))
    code, out = _export_cli(["-o", tmp_path / "m.onnx", "--triton-repo", tmp_path / "repo", "--no-parity"], capsys)
    assert code == 1 and "Triton repository failed" in out.err and "nothing was written to" in out.err, out.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "m.onnx"]
    assert read_onnx_metadata(tmp_path / "m.onnx").layout == "products-v2"


@pytest.mark.parametrize("major", [10, 11])
def test_export_triton_repo_with_engine_on_the_generated_fake(major, tmp_path, capsys, monkeypatch):
    """--engine --triton-repo: the products-v2 engine (TensorRT fake generated from the real 10.x / 11.x
    bindings), its decode_params profile in the sidecar, and the repository's network as tensorrt_plan
    with max_batch_size = the profile's largest batch."""
    import sys

    from _trt_fakes import trt_fake
    from uniparser_sdk.backends.tensorrt import build as tb

    env = server_env()
    fake = trt_fake(major)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(tb, "check_environment", lambda: {"tensorrt_version": fake.__version__,
                                                          "compute_capability": "8.6", "gpu_name": "fake GPU"})
    onnx_path, repo = tmp_path / "m.onnx", tmp_path / "repo"
    code, out = _export_cli(["-o", onnx_path, "--engine", "--batch", "1,2,4", "--min-size", "64", "--opt-size", "128",
                             "--max-size", "256", "--timing-cache", tmp_path / "t.cache", "--no-parity",
                             "--triton-repo", repo], capsys)
    assert code == 0, out.err
    engine = tmp_path / "m.engine"
    side = tb.read_sidecar(engine)
    assert side["meta"].layout == "products-v2"
    assert tb.profile_from_json(side["profile"]) == {"images": ((1, 3, 64, 64), (2, 3, 128, 128), (4, 3, 256, 256)),
                                                      "decode_params": ((1, 3), (2, 3), (4, 3))}
    set_shapes = {a[0]: tuple(a[1:]) for k, a in fake.calls if k == "IOptimizationProfile.set_shape"}
    assert set_shapes["decode_params"] == ((1, 3), (2, 3), (4, 3))
    check_repository_configs(run_driver(env, "configs", repo, tmp_path / "cfg.json"), "tensorrt", repo, onnx_path,
                             max_batch=4, engine_path=engine)


def test_products_v2_is_not_the_exporters_default_yet():
    """Decision (issues 15 / 17 follow-up): uniparser-export's default stays products-v1 for now.

    What holds for products-v2: TensorRT builds set its decode_params profile on the generated 10.x / 11.x
    fakes (test_tensorrt_backend), Parser finishes it like v1 (test_parser_reads_products_v2_like_v1), the
    export's parity gate passes on it (test_export_triton_repo runs it), ONNX Runtime gives per image what v1
    gives (test_exported_v2_file_and_per_image_thresholds) and the bench's products-v2-fp32 row runs.
    What blocks it: the variant table has products-v2 in fp32 only -- no fp16, OpenVINO or torch counterpart of
    the products-v1 rows -- so a v2 default would make the layout depend on --fp16 / --target; and no real
    TensorRT has built a v2 engine yet (fakes only). This test fails once the table gains those rows: switch
    default_variant / variant_from_flags to products-v2 then (v1 files keep loading: the Parser test above
    opens one)."""
    from uniparser_sdk.export import variants as vt

    assert vt.variant_from_flags().name == "products-fp32" and vt.variant_from_flags().layout == "products-v1"
    v2 = {(v.precision, v.target) for v in vt.VARIANTS if v.layout == "products-v2"}
    v1 = {(v.precision, v.target) for v in vt.VARIANTS if v.layout == "products-v1"}
    assert v2 == {("fp32", "onnxruntime"), ("fp32", "tensorrt")}
    assert ("fp16", "onnxruntime") in v1 - v2 and ("fp16", "tensorrt") in v1 - v2
