"""TensorRT backend without a GPU: sidecar / profile / allocation logic, and engine building and inference
run through fakes GENERATED from the real bindings of TensorRT 10.16 and 11.4 (and of cuda-python):
every class, method, property and enum member the fakes offer is one the real module of that version
has (tests/backends/tensorrt/api_dumps/*.json, proven equal to the real modules in test_tensorrt_api.py); a name
the real module lacks raises AttributeError, so e.g. ``trt.BuilderFlag.FP16`` fails on the 11.x fake as
it does on the real 11.x. The fakes' "engine" is the ONNX model run by ONNX Runtime; "device memory" is
host memory addressed by pointer (ctypes).
"""
from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import _trt_env as env
from uniparser_sdk.backends.tensorrt import api
from uniparser_sdk.backends.tensorrt import build as tb
from uniparser_sdk.backends.tensorrt import runner as trtb
from uniparser_sdk.contract import ModelMeta, read_onnx_metadata

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

MAJORS = sorted(env.TRT_BINDINGS)


# ------------------------------------------------------------------------------ pure logic (moved from
# test_runtime.py and test_export.py)

def _sidecar_dict(meta: ModelMeta, trt_version="10.3.0.26", cc="8.6", profile=None, **extra):
    profile = profile or {"images": {"min": [1, 3, 64, 64], "opt": [1, 3, 192, 256], "max": [2, 3, 320, 320]}}
    try:
        from uniparser_sdk.backends.tensorrt.build import make_sidecar, profile_from_json
    except ImportError:
        d = {"format": "uniparser-trt-sidecar/1", "props": meta.to_props(), "tensorrt_version": trt_version,
             "compute_capability": cc, "profile": profile}
    else:  # the engine builder's own writer: the runtime must read what it writes
        d = make_sidecar(meta, tensorrt_version=trt_version, compute_capability=cc,
                         profile=profile_from_json(profile), precision="fp32")
    d.update(extra)
    return d


def _meta():
    return ModelMeta(classes=["background", "a", "b"], decode={"ctr_score": 0.3, "mask_thr": 0.5,
                                                               "cate_score_thr": 0.3, "max_instances": 4})


def test_trt_sidecar_parsing(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    with pytest.raises(FileNotFoundError, match="sidecar"):
        trtb.read_sidecar(engine)
    (tmp_path / "m.engine.json").write_text(json.dumps(_sidecar_dict(_meta())))
    sc = trtb.read_sidecar(engine)
    assert sc.meta == _meta() and sc.tensorrt_version == "10.3.0.26" and sc.compute_capability == (8, 6)
    assert sc.profile["images"] == trtb.TensorProfile((1, 3, 64, 64), (1, 3, 192, 256), (2, 3, 320, 320))
    # the key "metadata" is accepted for "props"; a bare profile is the images input's
    d = {"metadata": _meta().to_props(), "tensorrt_version": "10.1", "compute_capability": [9, 0],
         "profile": {"min": [1, 3, 32, 32], "max": [1, 3, 64, 64]}}
    sc2 = trtb.EngineSidecar.from_dict(d)
    assert sc2.compute_capability == (9, 0) and sc2.profile["images"].opt == (1, 3, 64, 64)
    for bad, match in [({"props": _meta().to_props()}, "missing"),
                       (dict(d, format="something-else/1"), "not a UniParser engine sidecar"),
                       (dict(d, metadata={"uniparser.layout": "weird-v9"}), "unknown output layout"),
                       (dict(d, profile={"images": {"min": [1, 3, 64, 64], "max": [1, 3, 32, 32]}}), "exceeds"),
                       ([1, 2], "JSON object")]:
        with pytest.raises(ValueError, match=match):
            trtb.EngineSidecar.from_dict(bad)
    (tmp_path / "m.engine.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        trtb.read_sidecar(engine)


@pytest.mark.parametrize("value,expected", [("8.6", (8, 6)), ("sm_86", (8, 6)), ("90", (9, 0)), ([7, 5], (7, 5)),
                                            ((12, 0), (12, 0)), ("12.0", (12, 0))])
def test_trt_compute_capability_parsing(value, expected):
    assert trtb.parse_compute_capability(value) == expected


def test_trt_compatibility_checks():
    sc = trtb.EngineSidecar.from_dict(_sidecar_dict(_meta()))
    trtb.check_compatibility(sc, "10.3.0.30", (8, 6))  # build number differs: fine
    with pytest.raises(trtb.EngineCompatibilityError, match=r"TensorRT 10\.3\.0\.26, this is TensorRT 10\.4\.0"):
        trtb.check_compatibility(sc, "10.4.0", "8.6")
    with pytest.raises(trtb.EngineCompatibilityError, match=r"compute capability 8\.6, this GPU is 9\.0"):
        trtb.check_compatibility(sc, "10.3.0", (9, 0))
    hw = trtb.EngineSidecar.from_dict(_sidecar_dict(_meta(), hardware_compatibility="ampere_plus"))
    trtb.check_compatibility(hw, "10.3.0", (9, 0))
    with pytest.raises(trtb.EngineCompatibilityError, match="Ampere"):
        trtb.check_compatibility(hw, "10.3.0", (7, 5))
    vc = trtb.EngineSidecar.from_dict(_sidecar_dict(_meta(), version_compatible=True))
    trtb.check_compatibility(vc, "10.5.0", (8, 6))
    with pytest.raises(trtb.EngineCompatibilityError):
        trtb.check_compatibility(vc, "11.0.0", (8, 6))


def test_trt_profile_checks_and_fitting():
    prof = trtb.TensorProfile((1, 3, 64, 64), (1, 3, 192, 256), (2, 3, 320, 320))
    trtb.check_input_shape("images", (2, 3, 320, 96), prof)
    with pytest.raises(ValueError, match=r"dim 2: 352 not in \[64, 320\]"):
        trtb.check_input_shape("images", (1, 3, 352, 96), prof)
    with pytest.raises(ValueError, match="dim 0"):
        trtb.check_input_shape("images", (3, 3, 96, 96), prof)
    with pytest.raises(ValueError, match="rank"):
        trtb.check_input_shape("images", (3, 96, 96), prof)
    assert trtb.fit_to_profile((1, 3, 32, 96), prof) == (1, 3, 64, 96)
    odd = trtb.TensorProfile((2, 3, 70, 64), (2, 3, 70, 64), (4, 3, 320, 320))
    assert trtb.fit_to_profile((1, 3, 32, 320), odd) == (2, 3, 96, 320)  # stays a multiple of 32
    with pytest.raises(ValueError, match="outside the engine's optimisation profile"):
        trtb.fit_to_profile((1, 3, 352, 96), prof)
    assert trtb.TensorProfile.parse([[1, 3, 32, 32], [1, 3, 64, 64], [1, 3, 96, 96]]).opt == (1, 3, 64, 64)


def test_trt_allocation_sizes():
    b, k, c, hp, wp = 2, 10, 19, 192, 256
    h, w = hp // 4, wp // 4
    plan = trtb.allocation_plan([
        ("images", (b, 3, hp, wp), np.float32), ("decode_params", (3,), np.float32),
        ("scores", (b, k), np.float32), ("num_instances", (b,), np.int64), ("grid_index", (b, k), np.int64),
        ("instance_masks", (b, k, h, w), np.uint8), ("keep", (b, k, c), np.uint8),
        ("cat_conf", (b, c, h, w), np.float32), ("empty", (0, k), np.float32)])
    sizes = {n: v[2] for n, v in plan.items()}
    assert sizes == {"images": b * 3 * hp * wp * 4, "decode_params": 12, "scores": b * k * 4, "num_instances": b * 8,
                     "grid_index": b * k * 8, "instance_masks": b * k * h * w, "keep": b * k * c,
                     "cat_conf": b * c * h * w * 4, "empty": 1}
    assert list(plan) [0] == "images" and plan["cat_conf"][1] == np.float32
    with pytest.raises(ValueError, match="dynamic"):
        trtb.tensor_nbytes((-1, 3), np.float32)



def test_profile_shapes():
    prof = tb.profile_shapes()
    assert prof == {"images": ((1, 3, 320, 320), (1, 3, 800, 1344), (4, 3, 1344, 1344))}
    p2 = tb.profile_shapes(min_side=300, opt=640, max_side=1333, batch=(1, 2, 8))
    assert p2["images"] == ((1, 3, 320, 320), (2, 3, 640, 640), (8, 3, 1344, 1344))  # rounded up to 32
    assert tb.shape_in_profile((1, 3, 800, 1216), prof["images"])
    assert not tb.shape_in_profile((1, 3, 1376, 800), prof["images"])
    assert not tb.shape_in_profile((5, 3, 800, 800), prof["images"])
    for bad in (dict(min_side=800, max_side=640, opt=640), dict(opt=(1600, 800)), dict(batch=(2, 1, 4)),
                dict(min_side=0), dict(divisor=0)):
        with pytest.raises(ValueError):
            tb.profile_shapes(**bad)
    assert tb.profile_from_json(tb.profile_to_json(prof)) == prof


def _meta_export():
    return ModelMeta(config={"name": "r50"}, classes=["background", "a"],
                     decode={"ctr_score": 0.2, "mask_thr": 0.5, "cate_score_thr": 0.3, "max_instances": 100})


def test_sidecar_round_trip_and_compatibility(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    prof = tb.profile_shapes()
    side = tb.make_sidecar(_meta_export(), tensorrt_version="10.3.0.26", compute_capability=(8, 6), profile=prof,
                           precision="fp16", gpu_name="RTX 3090")
    path = tb.write_sidecar(engine, side)
    assert path == tmp_path / "m.engine.json" == tb.sidecar_path(engine)
    back = tb.read_sidecar(engine)
    assert back["meta"] == _meta_export() and back["compute_capability"] == "8.6" and back["precision"] == "fp16"
    assert tb.profile_from_json(back["profile"]) == prof
    assert tb.read_sidecar(path)["tensorrt_version"] == "10.3.0.26"
    tb.check_compatibility(back, "10.3.0", "8.6")  # build suffix ignored
    tb.check_compatibility(back, "10.3.0.26", (8, 6))
    with pytest.raises(tb.EngineIncompatible, match="TensorRT 10.3.0.26.*TensorRT 10.4.0"):
        tb.check_compatibility(back, "10.4.0", "8.6")
    with pytest.raises(tb.EngineIncompatible, match="compute capability 8.6.*this GPU is 9.0"):
        tb.check_compatibility(back, "10.3.0", "9.0")
    with pytest.raises(tb.SidecarError, match="not found"):
        tb.read_sidecar(tmp_path / "other.engine")
    (tmp_path / "bad.engine.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(tb.SidecarError, match="not a UniParser engine sidecar"):
        tb.read_sidecar(tmp_path / "bad.engine")
    with pytest.raises(ValueError):
        tb.format_compute_capability("sm86")


def test_runtime_reads_the_sidecar(tmp_path):
    rt = pytest.importorskip("uniparser_sdk.backends.tensorrt.sidecar")
    engine = tmp_path / "m.engine"
    side = tb.make_sidecar(_meta_export(), tensorrt_version="10.3.0", compute_capability="8.9",
                           profile=tb.profile_shapes(), precision="fp32")
    tb.write_sidecar(engine, side)
    got = rt.read_sidecar(engine)
    assert got.meta == _meta_export() and tuple(got.compute_capability) == (8, 9)
    assert tuple(got.profile["images"].max) == (4, 3, 1344, 1344)


def test_tensorrt_missing_is_reported(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails even where TensorRT is installed
    with pytest.raises(tb.TensorRTUnavailable, match="TensorRT is not installed.*uniparser-sdk\\[trt\\]"):
        tb.require_tensorrt()


# ------------------------------------------------------------------------------ fakes generated from the dumps

from _trt_fakes import DeviceMemory, cuda_python_fake, install_cuda_python, trt_fake  # noqa: E402


def test_fake_refuses_what_the_real_module_lacks():
    f10, f11 = trt_fake(10), trt_fake(11)
    assert f10.BuilderFlag.FP16.name == "FP16"
    with pytest.raises(AttributeError, match=r"tensorrt 11\.4\.0\.106: BuilderFlag\.FP16 does not exist"):
        f11.BuilderFlag.FP16
    with pytest.raises(AttributeError, match="Builder.platform_has_fast_fp16 does not exist"):
        f11.Builder(None).platform_has_fast_fp16
    with pytest.raises(AttributeError, match="has no attribute 'IInt8EntropyCalibrator2'"):
        f11.IInt8EntropyCalibrator2  # 11.x removed the calibrator API
    assert f10.IInt8EntropyCalibrator2 is not None
    with pytest.raises(KeyError, match="has no BuilderFlag.FP16"):  # a behaviour for a missing name is refused
        env.FakeModule(env.load_dump("tensorrt", "11.4.0.106"), {"BuilderFlag.FP16": lambda: 0})
    with pytest.raises(AttributeError, match="cudaMallocManagedFoo"):
        cuda_python_fake(DeviceMemory()).cudaMallocManagedFoo


def _tiny_onnx(path, dtype=onnx.TensorProto.FLOAT):
    """images -> Conv -> out (float32 or float16 weights): what --fp16 exports look like, in small."""
    from onnx import helper, numpy_helper

    np_t = np.float16 if dtype == onnx.TensorProto.FLOAT16 else np.float32
    nodes = [helper.make_node("Conv", ["x", "w"], ["out"], pads=[1, 1, 1, 1])]
    inits = [numpy_helper.from_array(np.ones((2, 3, 3, 3), np_t), "w")]
    if dtype == onnx.TensorProto.FLOAT16:
        nodes.insert(0, helper.make_node("Cast", ["images"], ["x"], to=dtype))
    else:
        nodes.insert(0, helper.make_node("Identity", ["images"], ["x"]))
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT,
                                                                        ["b", 3, "h", "w"])],
                          [helper.make_tensor_value_info("out", dtype, ["b", 2, "h", "w"])], initializer=inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)]), str(path))
    return path


@pytest.mark.parametrize("major", MAJORS)
def test_build_call_sequence_on_generated_fake(major, tmp_path, monkeypatch):
    fake = trt_fake(major)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    f32, f16 = _tiny_onnx(tmp_path / "m.onnx"), _tiny_onnx(tmp_path / "m16.onnx", onnx.TensorProto.FLOAT16)
    cache = tmp_path / "t.cache"
    cache.write_bytes(b"old")
    prof = {"images": ((1, 3, 64, 64), (1, 3, 96, 128), (2, 3, 160, 160))}
    nets, configs = [], []
    orig_net, orig_cfg = fake._behaviours["Builder.create_network"], fake._behaviours["Builder.create_builder_config"]

    # FP16 engine from the FP16 ONNX: strongly typed network, no precision flag (10.x and 11.x)
    info = tb.build_engine(f16, tmp_path / "m16.engine", fp16=True, profile=prof, workspace=1 << 30,
                           timing_cache=cache, log=lambda m: None)
    assert (tmp_path / "m16.engine").read_bytes() == b"PLAN" and cache.read_bytes() == b"old+new"
    assert info["precision"] == "fp16" and info["strongly_typed"] and info["tensorrt_version"] == fake.__version__
    calls = dict((k, a) for k, a in fake.calls)
    strong = int(fake.peek("NetworkDefinitionCreationFlag.STRONGLY_TYPED"))
    assert calls["Builder.create_network"] == (1 << strong,)
    assert calls["IOptimizationProfile.set_shape"] == ("images", *prof["images"])
    assert not any(k == "IBuilderConfig.set_flag" for k, _ in fake.calls)
    assert calls["IBuilderConfig.set_memory_pool_limit"][1] == 1 << 30
    # fp32 ONNX, fp32 engine
    fake.calls.clear()
    assert tb.build_engine(f32, tmp_path / "m.engine", profile=prof, log=lambda m: None)["precision"] == "fp32"
    # fp32 ONNX + fp16=True: the FP16 flag where it exists (10.x), one clear error where it does not (11.x)
    fake.calls.clear()
    if major == 10:
        info = tb.build_engine(f32, tmp_path / "mf.engine", fp16=True, profile=prof, log=lambda m: None)
        assert info["precision"] == "fp16" and not info["strongly_typed"]
        assert ("IBuilderConfig.set_flag", (fake.peek("BuilderFlag.FP16"),)) in fake.calls
        assert dict(fake.calls)["Builder.create_network"] == (0,)
    else:
        with pytest.raises(tb.EngineBuildError, match=r"no BuilderFlag\.FP16.*uniparser-export --fp16"):
            tb.build_engine(f32, tmp_path / "mf.engine", fp16=True, profile=prof, log=lambda m: None)
        assert not (tmp_path / "mf.engine").exists()
    with pytest.raises(tb.EngineBuildError, match="unknown input"):
        tb.build_engine(f32, tmp_path / "x.engine", profile={**prof, "nope": prof["images"]}, log=lambda m: None)
    assert not (tmp_path / "x.engine").exists()
    undeclared = sorted(n for n in fake.used if n not in api.DECLARED)
    assert undeclared == [], f"the build used TensorRT names not declared in api.py: {undeclared}"
    del nets, configs, orig_net, orig_cfg


@pytest.mark.parametrize("major", MAJORS)
def test_plugin_library_loaded_once(major, tmp_path, monkeypatch):
    fake = trt_fake(major)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    lib = tmp_path / "libuniparser_trt_plugin.so"
    lib.write_bytes(b"\x7fELF")
    f32 = _tiny_onnx(tmp_path / "m.onnx")
    for i in range(3):  # a second build_engine(plugin_lib=...) in one process used to raise
        tb.build_engine(f32, tmp_path / f"m{i}.engine", plugin_lib=lib, profile=tb.profile_shapes(64, 64, 128),
                        log=lambda m: None)
    assert fake.state["load_library"] == [str(lib.resolve())]
    from uniparser_sdk.backends.tensorrt.plugin import load_plugin_library
    assert load_plugin_library(fake, lib) == "registered"
    with pytest.raises(tb.EngineBuildError, match="plugin library not found"):
        tb.build_engine(f32, tmp_path / "y.engine", plugin_lib=tmp_path / "missing.so", log=lambda m: None)


def test_static_check_stops_a_bad_graph_before_tensorrt(tmp_path, monkeypatch):
    from onnx import helper

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # TensorRT is never reached
    g = helper.make_graph([helper.make_node("Cast", ["x"], ["b"], to=onnx.TensorProto.BOOL, name="to_bool"),
                           helper.make_node("Cast", ["b"], ["y"], to=onnx.TensorProto.UINT8, name="to_u8")], "g",
                          [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.UINT8, [2])])
    bad = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)]), str(bad))
    with pytest.raises(tb.EngineBuildError, match=r"node 'to_u8' \(Cast\) \[uint8\]: casts BOOL -> UINT8"):
        tb.build_engine(bad, tmp_path / "bad.engine", log=lambda m: None)
    assert not (tmp_path / "bad.engine").exists()


# ------------------------------------------------------------------------------ inference on the generated fakes

K = 6


def _export_tiny(path, layout="products-v1"):
    """A random tiny model whose decode finds persons, exported in ``layout`` with K slots."""
    import torch

    from uniparser_sdk.export import onnx_export as ox
    from uniparser_sdk.model.uniparser import UniParser

    torch.manual_seed(0)
    model = UniParser("tiny").eval()
    with torch.no_grad():
        model.mask_head.center_heatmap.bias.fill_(0.0)
        model.mask_head.seg_kernels.copy_(torch.rand_like(model.mask_head.seg_kernels))
    ox.export_onnx(model, path, ox.build_meta(model, max_instances=K, layout=layout), max_instances=K,
                   sample_hw=(64, 64), parity=False, log=lambda *_: None)
    return path


@pytest.fixture(scope="module")
def products_onnx(tmp_path_factory):
    path = _export_tiny(tmp_path_factory.mktemp("trt") / "tiny.onnx")
    return path


def _engine(products_onnx, tmp_path, fake, profile):
    engine = tmp_path / "tiny.engine"
    engine.write_bytes(Path(products_onnx).read_bytes())  # the fake runtime 'deserialises' the ONNX
    fake.box["profile"] = {"images": profile}
    meta = read_onnx_metadata(products_onnx)
    tb.write_sidecar(engine, tb.make_sidecar(meta, tensorrt_version=fake.__version__, compute_capability="8.6",
                                             profile={"images": profile}, precision="fp32"))
    return engine


def _images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in ((96, 128), (150, 100), (64, 64))]


@pytest.mark.parametrize("major", MAJORS)
def test_inference_on_generated_fakes_cuda_python(major, products_onnx, tmp_path, monkeypatch):
    from uniparser_sdk.runtime import Parser

    mem = DeviceMemory()
    fake, rt = trt_fake(major, mem), cuda_python_fake(mem)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    install_cuda_python(monkeypatch, rt)
    profile = ((1, 3, 64, 64), (1, 3, 128, 128), (4, 3, 192, 192))
    engine = _engine(products_onnx, tmp_path, fake, profile)
    with Parser(products_onnx, device="cpu", scale=(128, 96)) as ref, Parser(engine, device="cuda", scale=(128, 96)) as p:
        assert p.providers == [f"TensorRT {fake.__version__}", "cuda-python"]
        c = p.backend.input_constraints()
        assert c.max_hw == (192, 192) and c.max_batch == 4 and c.min_hw == (64, 64)
        for img in _images():
            a, b = p.predict(img), ref.predict(img)  # the same ONNX through the TensorRT backend's plumbing
            assert a.image_shape == b.image_shape and a.num_persons == b.num_persons > 0
            np.testing.assert_array_equal([q.score for q in a], [q.score for q in b])
            for pa, pb in zip(a, b):
                np.testing.assert_array_equal(pa.parts, pb.parts)
        n_buffers = len(mem.buffers)
        p.predict(_images()[0])  # same shape: buffers reused, nothing new allocated
        assert len(mem.buffers) == n_buffers and len(mem.pinned) > 0  # host buffers are pinned (cudaMallocHost)
        before = len(fake.state["contexts"])
        with ThreadPoolExecutor(3) as pool:
            out = list(pool.map(p.predict, [_images()[1]] * 6))
        assert all(r.num_persons == out[0].num_persons for r in out)
        new = fake.state["contexts"][before:]
        assert len({tid for tid, _ in new}) == len(new) >= 1  # one execution context per thread
        with pytest.raises(ValueError, match="optimisation profile"):
            p.backend.infer(np.zeros((1, 3, 224, 64), np.float32), np.zeros(3, np.float32))
    assert not mem.buffers and not mem.pinned  # close() freed device and pinned memory
    used = {n for n in fake.used if n not in api.DECLARED}
    assert used == set(), f"inference used TensorRT names not declared in api.py: {sorted(used)}"
    assert any(k == "cudaMemcpyAsync" for k, _ in rt.calls) and any(k == "cudaMallocHost" for k, _ in rt.calls)


def test_inference_refusals(products_onnx, tmp_path, monkeypatch):
    from uniparser_sdk._lazy import MissingDependency
    from uniparser_sdk.runtime import Parser

    mem = DeviceMemory()
    fake = trt_fake(11, mem)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    install_cuda_python(monkeypatch, cuda_python_fake(mem, cc=(7, 5)))
    engine = _engine(products_onnx, tmp_path, fake, ((1, 3, 64, 64), (1, 3, 64, 64), (1, 3, 128, 128)))
    with pytest.raises(ValueError, match="CUDA GPU only"):
        Parser(engine, device="cpu")
    with pytest.raises(trtb.EngineCompatibilityError, match="compute capability 8.6, this GPU is 7.5"):
        Parser(engine)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", None)
    monkeypatch.setitem(sys.modules, "cuda.bindings", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    monkeypatch.setitem(sys.modules, "pycuda", None)
    with pytest.raises(MissingDependency, match=r"uniparser-sdk\[trt\].*uniparser-sdk\[trt-pycuda\]"):
        Parser(engine)
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(MissingDependency, match=r"uniparser-sdk\[trt\]"):
        Parser(engine)


# ------------------------------------------------------------------------------ products-v2: decode_params (batch, 3)

@pytest.fixture(scope="module")
def products_v2_onnx(tmp_path_factory):
    """The tiny model of ``products_onnx`` exported as products-v2 (one row of thresholds per image)."""
    path = _export_tiny(tmp_path_factory.mktemp("trt-v2") / "tiny-v2.onnx", layout="products-v2")
    return path


def test_profile_shapes_follow_the_layout():
    imgs = ((1, 3, 320, 320), (2, 3, 800, 1344), (4, 3, 1344, 1344))
    v2 = tb.profile_shapes(batch=(1, 2, 4), layout="products-v2")
    assert v2 == {"images": imgs, "decode_params": ((1, 3), (2, 3), (4, 3))}
    assert tb.profile_shapes(batch=(1, 2, 4), layout="products-v1") == {"images": imgs}  # (3,) is static
    for lay in ("raw-v1", "plugin-v1"):
        assert tb.profile_shapes(batch=(1, 2, 4), layout=lay) == {"images": imgs}
    assert tb.profile_from_json(tb.profile_to_json(v2)) == v2
    # completion from the parsed ONNX inputs: a batch-only dynamic input takes the images' batch range
    done = tb.complete_profile({"images": imgs}, {"images": (-1, 3, -1, -1), "decode_params": (-1, 3)})
    assert done["decode_params"] == ((1, 3), (2, 3), (4, 3))
    assert tb.complete_profile({"images": imgs}, {"images": (-1, 3, -1, -1), "decode_params": (3,)}) == {"images": imgs}
    with pytest.raises(ValueError, match="'other' has dynamic shape"):
        tb.complete_profile({"images": imgs}, {"images": (-1, 3, -1, -1), "other": (-1, -1)})
    with pytest.raises(ValueError, match="no 'images' entry"):
        tb.complete_profile({}, {"decode_params": (-1, 3)})


def _set_shapes(fake):
    return {a[0]: tuple(a[1:]) for k, a in fake.calls if k == "IOptimizationProfile.set_shape"}


@pytest.mark.parametrize("major", MAJORS)
def test_v2_build_sets_the_decode_params_profile(major, products_onnx, products_v2_onnx, tmp_path, monkeypatch):
    """products-v2: the builder gets decode_params min/opt/max (B, 3) with the images' batch range (read from
    the parsed ONNX input's rank), and the sidecar records it; products-v1 is unchanged (static (3,), no entry)."""
    fake = trt_fake(major)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    images = tb.profile_shapes(64, (96, 128), 192, batch=(1, 2, 4))  # what uniparser-export passes
    env_ = {"tensorrt_version": fake.__version__, "compute_capability": "8.6", "gpu_name": "fake"}
    want_dp = ((1, 3), (2, 3), (4, 3))

    for name, onnx_path in (("v2", products_v2_onnx), ("v1", products_onnx)):
        fake.calls.clear()
        engine = tmp_path / f"{name}.engine"
        built = tb.build_engine_with_sidecar(onnx_path, engine, profile=images, env=env_, log=lambda m: None)
        shapes = _set_shapes(fake)
        side = tb.read_sidecar(engine)
        assert shapes["images"] == images["images"] and built["profile"]["images"] == images["images"]
        if name == "v2":
            assert side["meta"].layout == "products-v2"
            assert shapes["decode_params"] == want_dp
            assert built["profile"]["decode_params"] == want_dp
            assert tb.profile_from_json(side["profile"])["decode_params"] == want_dp
            # the explicit profile_shapes(layout=...) entry gives the same calls
            fake.calls.clear()
            tb.build_engine(onnx_path, tmp_path / "v2b.engine", log=lambda m: None,
                            profile=tb.profile_shapes(64, (96, 128), 192, batch=(1, 2, 4), layout="products-v2"))
            assert _set_shapes(fake) == shapes
        else:
            assert side["meta"].layout == "products-v1"
            assert set(shapes) == {"images"} and set(built["profile"]) == {"images"}
            assert set(side["profile"]) == {"images"}
    undeclared = sorted(n for n in fake.used if n not in api.DECLARED)
    assert undeclared == [], f"the build used TensorRT names not declared in api.py: {undeclared}"


@pytest.mark.parametrize("major", MAJORS)
def test_v2_engine_feeds_one_row_per_image(major, products_v2_onnx, tmp_path, monkeypatch):
    """A products-v2 engine through the runner: set_input_shape covers decode_params (B, 3) for each batch
    size, and per-image thresholds give per image what the ONNX gives (ONNX Runtime is the fake's engine)."""
    from uniparser_sdk.backends.onnxruntime.runner import OnnxRuntimeBackend
    from uniparser_sdk.export.parity import structured_images

    mem = DeviceMemory()
    fake, rt = trt_fake(major, mem), cuda_python_fake(mem)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    install_cuda_python(monkeypatch, rt)
    prof = tb.profile_shapes(64, 128, 192, batch=(1, 1, 4), layout="products-v2")
    engine = tmp_path / "tiny-v2.engine"
    engine.write_bytes(Path(products_v2_onnx).read_bytes())  # the fake runtime 'deserialises' the ONNX
    fake.box["profile"] = prof
    tb.write_sidecar(engine, tb.make_sidecar(read_onnx_metadata(products_v2_onnx), tensorrt_version=fake.__version__,
                                             compute_capability="8.6", profile=prof, precision="fp32"))
    rows = np.array([[0.1, 0.5, 0.25], [0.3, 0.7, 0.4], [0.2, 0.5, 0.3]], np.float32)
    with trtb.TensorRTBackend(engine) as be, OnnxRuntimeBackend(products_v2_onnx, device="cpu") as ref:
        assert set(be._profiles) == {"images", "decode_params"}
        for b in (1, 3):
            fake.calls.clear()
            imgs = structured_images(b, 96, 128, seed=b)
            got, want = be.infer(imgs, rows[:b]), ref.infer(imgs, rows[:b])
            for name in want:
                np.testing.assert_array_equal(got[name], want[name], err_msg=name)
            set_shapes = {a[0]: tuple(a[1]) for k, a in fake.calls if k == "IExecutionContext.set_input_shape"}
            assert set_shapes == {"images": (b, 3, 96, 128), "decode_params": (b, 3)}
        one = be.infer(structured_images(2, 96, 128, seed=2), rows[0])  # (3,): broadcast to every image
        assert one["scores"].shape[0] == 2
        with pytest.raises(ValueError, match="dim 0"):
            be.infer(structured_images(5, 64, 64, seed=5), rows[0])  # beyond the profile's batch
    assert not mem.buffers and not mem.pinned


# ------------------------------------------------------------------------------ GPU (needs TensorRT and a GPU)

@pytest.mark.gpu
@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16"])
def test_gpu_tensorrt_engine(products_onnx, tmp_path, fp16):
    """A real engine from the tiny products-v1 ONNX (fp16: from its FP16 export), run like the ONNX."""
    pytest.importorskip("tensorrt")
    from uniparser_sdk.runtime import Parser

    onnx_path = products_onnx
    if fp16:
        import torch

        from uniparser_sdk.export import onnx_export as ox
        from uniparser_sdk.model.uniparser import UniParser

        torch.manual_seed(0)
        model = UniParser("tiny").eval()
        onnx_path = tmp_path / "tiny-fp16.onnx"
        ox.export_onnx(model, onnx_path, ox.build_meta(model, max_instances=K), fp16=True, max_instances=K,
                       sample_hw=(64, 64), parity=False, log=lambda *_: None)
    engine = tmp_path / "tiny.engine"
    profile = {"images": ((1, 3, 64, 64), (1, 3, 128, 128), (4, 3, 192, 192))}
    built = tb.build_engine_with_sidecar(onnx_path, engine, fp16=fp16, profile=profile, log=lambda *_: None)
    assert built["precision"] == ("fp16" if fp16 else "fp32")
    with Parser(onnx_path, device="cpu", scale=(128, 96)) as ref, Parser(engine, scale=(128, 96)) as p:
        for img in _images():
            a, b = p.predict(img), ref.predict(img)
            assert a.image_shape == b.image_shape
            if not fp16:
                assert abs(a.num_persons - b.num_persons) <= 1
        with ThreadPoolExecutor(4) as pool:
            par = list(pool.map(p.predict, _images() * 4))
        ser = [p.predict(im) for im in _images() * 4]
        for a, b in zip(par, ser):
            assert a.num_persons == b.num_persons
            np.testing.assert_array_equal([q.score for q in a], [q.score for q in b])
