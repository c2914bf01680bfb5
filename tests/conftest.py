import os

import numpy as np
import pytest


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (skipped without one)")
    config.addinivalue_line("markers", "slow: longer end-to-end tests")


def pytest_collection_modifyitems(config, items):
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)
    try:
        import torch
        torch.manual_seed(0)
    except ImportError:
        pass
    yield


@pytest.fixture(scope="session", autouse=True)
def _threads():
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    yield


# ---- the tiny model, exported once per session --------------------------------------------------------

DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "uniparser_sdk", "assets", "default_model.pth")
SESSION_SAMPLE_HW = (256, 320)  # export size; tests run the files at other sizes


@pytest.fixture(scope="session")
def default_model():
    """The embedded default model (tiny config, trained on synthetic scenes) and its load info."""
    pytest.importorskip("torch")
    from uniparser_sdk.model.checkpoint import load_model

    return load_model(DEFAULT_MODEL)


@pytest.fixture(scope="session")
def exported(tmp_path_factory, default_model):
    """``exported(layout="products-v1", precision="fp32")`` -> path of the default model exported in that
    layout / precision; each file is exported once per session (no parity run: tests/export checks it)."""
    pytest.importorskip("onnx")
    from uniparser_sdk.export import onnx_export as ox

    model, info = default_model
    root = tmp_path_factory.mktemp("session-exports")
    cache = {}

    def get(layout: str = "products-v1", precision: str = "fp32"):
        key = (layout, precision)
        if key not in cache:
            path = root / f"tiny-{layout}-{precision}.onnx"
            fp16 = precision == "fp16"
            if layout == "plugin-v1":
                meta = ox.build_meta(model, info, layout="raw-v1", precision=precision)
                ox.export_plugin_onnx(model, path, meta, fp16=fp16, sample_hw=SESSION_SAMPLE_HW, parity=False,
                                      log=lambda *a: None)
            else:
                meta = ox.build_meta(model, info, layout=layout, precision=precision)
                ox.export_onnx(model, path, meta, fp16=fp16, sample_hw=SESSION_SAMPLE_HW, parity=False,
                               log=lambda *a: None)
            cache[key] = path
        return cache[key]

    return get
