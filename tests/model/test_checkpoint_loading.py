"""Safe loading of real mmdetection-2.x checkpoints: numpy scalars in ``meta``, an ``optimizer`` entry,
and everything else still refused without running it (issue 16, item 3)."""
from __future__ import annotations

import argparse
import io
import os
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from uniparser_sdk.model.checkpoint import CheckpointError, load_model, read_checkpoint  # noqa: E402
from uniparser_sdk.model.uniparser import UniParser  # noqa: E402


@pytest.fixture(scope="module")
def state_dict():
    torch.manual_seed(0)
    return {k: v.clone() for k, v in UniParser("tiny").eval().state_dict().items()}


def mmdet_meta():
    """``meta`` as mmcv/mmdet 2.x write it on one GPU: numpy scalars from init_random_seed and an EvalHook."""
    return {"mmdet_version": "2.25.0", "CLASSES": ("hat", "hair"), "seed": np.int64(1234), "exp_name": "uniparser.py",
            "epoch": 36, "iter": 123456, "hook_msgs": {"best_score": np.float64(0.512), "best_ckpt": "epoch_36.pth",
                                                     "last_ckpt": "epoch_36.pth"},
            "dtype": np.dtype("float32"), "flag": np.bool_(True), "lr": np.float32(6.25e-4)}


def sgd_state(state_dict):
    """A real SGD optimizer state (momentum buffers), as mmcv's save_checkpoint stores it."""
    params = [torch.nn.Parameter(v.float().clone()) for k, v in list(state_dict.items())[:3]]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
    sum(p.sum() for p in params).backward()
    opt.step()
    return opt.state_dict()


def test_numpy_scalars_in_meta_and_an_optimizer_load(tmp_path, state_dict):
    path = tmp_path / "official.pth"
    torch.save({"meta": mmdet_meta(), "state_dict": state_dict, "optimizer": sgd_state(state_dict)}, path)
    model, info = load_model(path)
    assert info["format"] == "mmdetection" and info["config"].blocks == (1, 1, 1, 1)  # inferred from the shapes
    meta = info["meta"]
    assert meta["seed"] == 1234 and type(meta["seed"]) is int  # plain Python from here on
    assert meta["hook_msgs"]["best_score"] == 0.512 and type(meta["hook_msgs"]["best_score"]) is float
    assert meta["dtype"] == "float32" and meta["flag"] is True and meta["lr"] == pytest.approx(6.25e-4)
    assert meta["CLASSES"] == ("hat", "hair") and meta["epoch"] == 36
    assert "optimizer" not in read_checkpoint(path)  # read, held to the same rules, then dropped
    for k, v in model.state_dict().items():
        assert torch.equal(v, state_dict[k]), k


def _rename_globals(path, old: bytes, new: bytes):
    """Rewrite the pickle inside a torch zip checkpoint (protocol 2 GLOBAL opcodes are text lines)."""
    src = zipfile.ZipFile(path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("data.pkl"):
                assert old in data
                data = data.replace(old, new)
            dst.writestr(item, data)
    src.close()
    path.write_bytes(buf.getvalue())


def test_numpy_1x_scalar_names_load(tmp_path, state_dict):
    """The authors' files were written by numpy 1.x: the scalar is pickled as numpy.core.multiarray.scalar."""
    path = tmp_path / "numpy1.pth"
    torch.save({"meta": {"seed": np.int64(7), "best": np.float64(0.25)}, "state_dict": state_dict}, path)
    _rename_globals(path, b"numpy._core.multiarray\nscalar", b"numpy.core.multiarray\nscalar")
    _, info = load_model(path)
    assert info["meta"] == {"seed": 7, "best": 0.25}


class _System:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.parametrize("where", ["meta", "optimizer"])
def test_code_in_a_checkpoint_is_refused_without_running_it(tmp_path, state_dict, where):
    marker = tmp_path / "it-ran"
    payload = {"meta": {"seed": np.int64(1)}, "state_dict": state_dict}
    payload[where] = {"x": _System(f"touch {marker}")}
    path = tmp_path / "evil.pth"
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    msg = str(err.value)
    assert "safe (weights-only)" in msg and f"{os.system.__module__}.system" in msg  # names the global
    assert "trust" not in msg and "weights_only=False" not in msg  # no advice to turn the safety off
    assert not marker.exists()


@pytest.mark.parametrize("value,name", [
    (argparse.Namespace(lr=0.1), "argparse.Namespace"),  # a config object, as some training scripts save
    (np.zeros(3), "numpy"),  # numpy arrays are not on the list: scalars and dtypes only
])
def test_other_globals_stay_refused_and_are_named(tmp_path, state_dict, value, name):
    path = tmp_path / "other.pth"
    torch.save({"meta": {"v": value}, "state_dict": state_dict}, path)
    with pytest.raises(CheckpointError, match="safe \\(weights-only\\)") as err:
        load_model(path)
    assert name in str(err.value) and "not allowed" in str(err.value)
