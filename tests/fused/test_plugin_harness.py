"""TensorRT plugin without a GPU (issue 17 items 4, 7.6): the plugin compiled against the real TensorRT 10.16 and
11.1 headers (object compile, -Wall -Wextra -Werror on our sources), linked into the CPU harness
(kernels/testing/trt_plugin_harness.cpp) and driven with the names and fields `uniparser-export --plugin` writes;
and load_trt_plugin's registry-first loading."""
from __future__ import annotations

import ctypes
import subprocess
import sys
import types

import pytest

import uniparser_sdk.fused as fused
from uniparser_sdk.contract.layouts import PLUGIN_ATTRIBUTES, PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION
from uniparser_sdk.fused import build as kbuild

HEADER_SETS = kbuild.trt_header_sets()
NEED = pytest.mark.skipif(
    not HEADER_SETS or kbuild.find_cuda() is None,
    reason=f"needs the TensorRT header sets ({kbuild.shared_dir()}/third_party/tensorrt/*/include, or "
           "UNIPARSER_TRT_HEADERS) and the CUDA toolkit (nvcc, cuda_runtime_api.h, libcudart_static.a)")


def test_header_sets_are_the_two_supported_majors():
    if not HEADER_SETS:
        pytest.skip(f"no TensorRT headers under {kbuild.shared_dir()}")
    majors = sorted(kbuild.header_version(d).split(".")[0] for d in HEADER_SETS)
    assert majors == ["10", "11"], [str(d) for d in HEADER_SETS]


def test_exporter_node_matches_the_contract():
    node = kbuild.plugin_node_fields()
    assert node["source"] == "export.plugin_rewrite.rewrite_to_plugin"  # onnx is installed in the dev venv
    assert (node["op_type"], node["version"], node["namespace"]) == (PLUGIN_NAME, PLUGIN_VERSION, PLUGIN_NAMESPACE)
    assert set(node["fields"]) == set(PLUGIN_ATTRIBUTES)
    for name, (typ, _) in node["fields"].items():
        assert typ == ("INT" if PLUGIN_ATTRIBUTES[name] is int else "FLOAT")


@pytest.fixture(scope="module")
def harnesses(tmp_path_factory):
    if not HEADER_SETS or kbuild.find_cuda() is None:
        pytest.skip("no TensorRT headers or no CUDA toolkit")
    out = {}
    for d in HEADER_SETS:
        ver = kbuild.header_version(d)
        out[ver] = kbuild.build_plugin_harness(d, tmp_path_factory.mktemp(f"trt{ver}"))
    return out


@NEED
def test_plugin_harness_with_the_exporters_node(harnesses):
    node = kbuild.plugin_node_fields()
    for ver, exe in harnesses.items():
        rep = kbuild.run_harness(exe, node)
        assert rep["ok"] and rep["failures"] == 0 and rep["checks"] >= 100, rep
        assert str(rep["tensorrt_major"]) == ver.split(".")[0]
        assert rep["declared"] == {"max_instances": "INT32", "ctr_score": "FLOAT32", "mask_thr": "FLOAT32",
                                   "cate_score_thr": "FLOAT32"}
        assert rep["enqueue_checked"]  # no GPU here: enqueue ran and failed cleanly with a logged CUDA error


@NEED
@pytest.mark.parametrize("change", ["name", "namespace", "version", "extra_field", "missing_field", "int_as_float"])
def test_plugin_harness_detects_a_mismatch(harnesses, change):
    """The harness fails when the exporter's node and the plugin disagree (it is not a test that cannot fail)."""
    node = kbuild.plugin_node_fields()
    fields = dict(node["fields"])
    if change == "name":
        node["name"] = "UniParserDecodeX"
    elif change == "namespace":
        node["namespace"] = ""
    elif change == "version":
        node["version"] = "2"
    elif change == "extra_field":
        fields["score_thr"] = ("FLOAT", 0.5)
    elif change == "missing_field":
        fields.pop("mask_thr")
    else:
        fields["ctr_score"] = ("INT", 1)
    node["fields"] = fields
    exe = next(iter(harnesses.values()))
    with pytest.raises(kbuild.KernelBuildError, match="FAIL"):
        kbuild.run_harness(exe, node)


def test_trt_check_without_headers_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("UNIPARSER_SHARED_DIR", str(tmp_path / "nowhere"))
    monkeypatch.delenv("UNIPARSER_TRT_HEADERS", raising=False)
    with pytest.raises(kbuild.KernelBuildError, match="no TensorRT header set found.*nowhere"):
        kbuild.trt_check()


# ---------------------------------------------------------------------------------------------- load_trt_plugin

def _fake_tensorrt(registered: bool):
    calls = []

    class Registry:
        def get_creator(self, name, version, namespace):
            calls.append((name, version, namespace))
            return object() if registered else None

    mod = types.ModuleType("tensorrt")
    mod.get_plugin_registry = lambda: Registry()
    return mod, calls


def test_load_trt_plugin_checks_the_registry_first(monkeypatch, tmp_path):
    mod, calls = _fake_tensorrt(registered=True)
    monkeypatch.setitem(sys.modules, "tensorrt", mod)
    monkeypatch.setattr(fused, "_LOADED", {})
    # registered already (e.g. by an earlier build_engine(plugin_lib=...)): no second load, no error
    assert fused.load_trt_plugin(tmp_path / "does-not-exist.so") is None
    assert calls == [(PLUGIN_NAME, PLUGIN_VERSION, PLUGIN_NAMESPACE)]


def test_load_trt_plugin_loads_once(monkeypatch, tmp_path):
    mod, _ = _fake_tensorrt(registered=False)
    monkeypatch.setitem(sys.modules, "tensorrt", mod)
    monkeypatch.setattr(fused, "_LOADED", {})
    with pytest.raises(FileNotFoundError, match="fused.build --trt"):
        fused.load_trt_plugin(tmp_path / "missing.so")
    # a stand-in library with the registration entry point, counting its calls
    src = tmp_path / "fake_plugin.c"
    src.write_text("static int n = 0;\n__attribute__((visibility(\"default\"))) int uniparser_trt_register_plugin(void)"
                   " { return n++ == 0 ? 0 : -1; }\n__attribute__((visibility(\"default\"))) int calls(void)"
                   " { return n; }\n")
    lib_path = tmp_path / "libfake_plugin.so"
    subprocess.run(["gcc", "-shared", "-fPIC", str(src), "-o", str(lib_path)], check=True)
    a = fused.load_trt_plugin(lib_path)
    b = fused.load_trt_plugin(lib_path)  # second call: the cached handle, no second registration
    assert a is b and isinstance(a, ctypes.CDLL)
    a.calls.restype = ctypes.c_int
    assert a.calls() == 1
