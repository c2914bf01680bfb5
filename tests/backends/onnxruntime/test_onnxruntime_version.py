"""The ONNX Runtime backend refuses onnxruntime < 1.25 with a message naming the needed version (issue 16,
item 4): ONNX DeformConv kernels arrived in 1.25; 1.17-1.24 fail to load our models with NOT_IMPLEMENTED."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ort = pytest.importorskip("onnxruntime")

from uniparser_sdk.backends.onnxruntime import runner  # noqa: E402
from uniparser_sdk.errors import UniParserError  # noqa: E402


def test_installed_onnxruntime_is_new_enough_and_setup_pins_it():
    runner.check_onnxruntime_version(ort)  # the real module, unchanged
    setup = (Path(__file__).resolve().parents[3] / "setup.py").read_text()
    pins = dict(re.findall(r'"(onnxruntime(?:-gpu)?)(>=[\d.]+)', setup))
    assert pins == {"onnxruntime": ">=1.25", "onnxruntime-gpu": ">=1.25"}


@pytest.mark.parametrize("version", ["1.24.4", "1.17.0", "0.9.9"])
def test_backend_refuses_an_old_onnxruntime(monkeypatch, tmp_path, version):
    monkeypatch.setattr(ort, "__version__", version)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"never opened")
    with pytest.raises(runner.OnnxRuntimeTooOld) as err:
        runner.OnnxRuntimeBackend(model, device="cpu")
    msg = str(err.value)
    assert f"onnxruntime {version} is too old" in msg and ">= 1.25" in msg and "DeformConv" in msg
    assert "pip install -U 'onnxruntime>=1.25'" in msg
    assert isinstance(err.value, UniParserError) and isinstance(err.value, ImportError)


def test_parser_reports_it_too(monkeypatch, tmp_path):
    from uniparser_sdk import Parser

    monkeypatch.setattr(ort, "__version__", "1.20.1")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"never opened")
    with pytest.raises(runner.OnnxRuntimeTooOld, match=r"onnxruntime 1\.20\.1 is too old.*>= 1\.25"):
        Parser(model, device="cpu")


@pytest.mark.parametrize("version", ["1.25.0", "1.26.0.dev20260101", "1.32.0+cu128", "2.0.0", "unknown"])
def test_new_enough_versions_pass_the_check(monkeypatch, tmp_path, version):
    monkeypatch.setattr(ort, "__version__", version)
    runner.check_onnxruntime_version(ort)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="onnxruntime cannot load"):  # past the check, at the real load
        runner.OnnxRuntimeBackend(model, device="cpu")
