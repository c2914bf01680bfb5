"""API contract of the TensorRT backend against the REAL bindings (no GPU, no TensorRT libraries).

The tests install ``tensorrt-cu12-bindings==10.16.0.72`` and ``tensorrt-cu13-bindings==11.4.0.106``
(cached ``--target`` dirs, see tests/_trt_env.py), import them over stub libnvinfer / libnvinfer_plugin /
libnvonnxparser libraries built with gcc, and prove that every TensorRT name the SDK uses
(:mod:`uniparser_sdk.backends.tensorrt.api`, checked to cover the sources) exists in both majors, that the
feature-detected names are present exactly where expected, and that the committed dumps the fakes are
generated from equal the real modules. Same for cuda-python (``cuda.bindings.runtime``, imports without
a driver) and pycuda (names read from its 2026.1 sources; building it takes minutes).
"""
from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

import _trt_env as env
from uniparser_sdk.backends.tensorrt import api
from uniparser_sdk.backends.tensorrt.cuda import CUDA_PYTHON_API, PYCUDA_API

# in the subprocess that imports the real bindings: does a dotted name exist on the module?
_HAS = """def has(name):
    obj = {root}
    for part in name.split("."):
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True
"""
PKG = Path(api.__file__).resolve().parent
MAJORS = sorted(env.TRT_BINDINGS)


def _need(fn, *a):
    try:
        return fn(*a)
    except env.Unavailable as exc:
        if os.environ.get("UNIPARSER_OFFLINE"):
            pytest.skip(f"offline: {exc}")
        raise


def test_tested_bindings_are_the_declared_range():
    assert env.TRT_BINDINGS == api.TESTED_BINDINGS
    setup = (env.REPO / "setup.py").read_text()
    assert '"tensorrt>=10.1,<12"' in setup and "cuda-python" in setup


@pytest.mark.parametrize("major", MAJORS)
def test_real_bindings_have_every_name_the_sdk_uses(major):
    _need(env.stub_libs, major)
    code = f"""
import json
import tensorrt as trt
from uniparser_sdk.backends.tensorrt import api, build

{_HAS.format(root="trt")}
out = {{"version": trt.__version__,
        "missing": [n for n in api.REQUIRED if not has(n)],
        "optional": {{n: has(n) for n in api.OPTIONAL}}}}
# the SDK's own feature detection, on the real module
out["plan_fp16_onnx"] = build.precision_plan(trt, True, True)
out["flags_strong"] = build.network_flags(trt, True)
try:
    out["plan_fp32_onnx_fp16"] = build.precision_plan(trt, True, False)
except build.EngineBuildError as exc:
    out["plan_fp32_onnx_fp16"] = "error: " + str(exc)
out["require"] = build.require_tensorrt().__version__
print(json.dumps(out))
"""
    out = json.loads(env.run_tensorrt(major, code).strip().splitlines()[-1])
    assert out["version"] == env.TRT_BINDINGS[major][1] == out["require"]
    assert out["missing"] == [], f"TensorRT {out['version']} lacks {out['missing']}"
    assert out["optional"] == api.EXPECTED_OPTIONAL[major]
    assert out["plan_fp16_onnx"] == {"strongly_typed": True, "fp16_flag": False, "precision": "fp16"}
    if major == 10:
        assert out["flags_strong"] == 2  # 1 << STRONGLY_TYPED (1)
        assert out["plan_fp32_onnx_fp16"] == {"strongly_typed": False, "fp16_flag": True, "precision": "fp16"}
    else:
        assert out["flags_strong"] == 1  # 1 << STRONGLY_TYPED (0): accepted, ignored
        assert out["plan_fp32_onnx_fp16"].startswith("error: TensorRT 11.4.0.106 has no BuilderFlag.FP16")
        assert "--fp16" in out["plan_fp32_onnx_fp16"]


@pytest.mark.parametrize("major", MAJORS)
def test_committed_dump_equals_the_real_module(major):
    """The fakes are generated from tests/backends/tensorrt/api_dumps/*.json: they must be the real module's dump
    (regenerate with `python tests/_trt_env.py`)."""
    _need(env.stub_libs, major)
    version = env.TRT_BINDINGS[major][1]
    assert env.dump_tensorrt(major) == env.load_dump("tensorrt", version)


def _source_uses():
    """``trt.X.Y`` chains and hasattr/getattr member strings in backends/tensorrt/*.py."""
    chains, strings = set(), set()
    for path in sorted(PKG.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                parts, cur = [], node
                while isinstance(cur, ast.Attribute):
                    parts.append(cur.attr)
                    cur = cur.value
                if isinstance(cur, ast.Name) and cur.id in ("trt", "tensorrt"):
                    chains.add(".".join(reversed(parts)))
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr")
                    and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)):
                strings.add((path.name, node.args[1].value))
    return chains, strings


def test_declared_names_cover_the_sources():
    chains, strings = _source_uses()
    assert chains, "no trt.* uses found: the AST walk is broken"
    # a chain may end in a method call on the result (trt.Logger.WARNING is declared; trt.Logger too)
    undeclared = sorted(c for c in chains if c not in api.DECLARED)
    assert undeclared == [], f"TensorRT names used in backends/tensorrt but not declared in api.py: {undeclared}"
    members = {n.split(".")[-1] for n in api.DECLARED}
    cuda_members = {n.split(".")[-1] for n in CUDA_PYTHON_API + PYCUDA_API}
    for fname, s in sorted(strings):
        assert s in members or s in cuda_members or s in {"_local", "state", "_pinned"}, \
            f"{fname}: hasattr/getattr of {s!r}, declared nowhere in api.py / cuda.py"


def test_cuda_python_has_every_name_the_adapter_uses():
    paths = [_need(env.install, *env.CUDA_BINDINGS)]
    code = f"""
import json
from cuda.bindings import runtime as rt
names = {list(CUDA_PYTHON_API)!r}
{_HAS.format(root="rt")}
print(json.dumps([n for n in names if not has(n)]))
"""
    assert json.loads(env.run_python(code, paths).strip()) == []
    assert env.dump_cuda_runtime() == env.load_dump("cuda-bindings-runtime", env.CUDA_BINDINGS[0][1])


def test_cuda_python_adapter_calls_only_declared_names():
    tree = ast.parse((PKG / "cuda.py").read_text())
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "_call" \
                and node.args and isinstance(node.args[0], ast.Constant):
            used.add(node.args[0].value)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "rt":
            used.add(node.attr)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                and isinstance(node.value.value, ast.Attribute) and node.value.value.attr == "rt":
            used.add(f"{node.value.attr}.{node.attr}")
    assert used, "AST walk found no cuda-python uses"
    declared = set(CUDA_PYTHON_API) | {n.split(".")[0] for n in CUDA_PYTHON_API}
    assert sorted(used - declared) == []


def test_pycuda_sources_have_every_name_the_adapter_uses():
    got = _need(env.pycuda_api)
    assert got == env.load_dump("pycuda-driver", env.PYCUDA_SDIST[1])
    missing = []
    for name in PYCUDA_API:
        cls, _, member = name.partition(".")
        if not member:
            if cls not in got["functions"] and cls not in got["classes"]:
                missing.append(name)
        elif member not in got["classes"].get(cls, ()):
            missing.append(name)
    assert missing == [], f"pycuda {got['version']} lacks {missing}"
