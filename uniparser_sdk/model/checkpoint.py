"""Checkpoint I/O: our own format and the authors' official mmdetection-2.x checkpoints.

Loading always uses ``torch.load(weights_only=True)``: a checkpoint downloaded from the internet can
hold tensors, dicts, lists and primitive values, never executable objects. The one addition to
torch's allowlist is numpy's scalar and dtype reconstruction (:data:`NUMPY_SAFE_GLOBALS`): mmcv /
mmdet 2.x write numpy scalars into ``meta`` (``meta["seed"]`` from ``init_random_seed`` is a numpy
int64, an EvalHook's ``hook_msgs["best_score"]`` a numpy float64). Rebuilding a numpy scalar from its
dtype and raw bytes runs no code. Any other global (a class, ``os.system``, ...) is refused before
anything in the file runs, and the error names it. ``optimizer`` (and our ``scheduler``) entries are
read like everything else -- so they are held to the same rule -- and then ignored.

Our format: ``{"format": "uniparser-sdk/1", "config": ModelConfig.to_dict(), "state_dict": ..., "meta": {...}}``
(training checkpoints add ``optimizer``, ``scheduler``, ``iteration``).
Official format: ``{"state_dict": {"backbone.*", "neck.*", "mask_head.*"}, "meta": {...}}``; the variant
(depth, light, number of classes) is inferred from the tensor shapes.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path

import torch

from .configs import CONFIGS, DEPTH_BLOCKS, DecodeConfig, ModelConfig
from .uniparser import UniParser
from ..errors import UserInputError
from ..io_utils import atomic_output

FORMAT = "uniparser-sdk/1"
# Keys the official checkpoints hold that our model does not use at inference (kept in the model
# so that loading is strict; listed here so tools can say so).
UNUSED_KEYS = ("mask_head.ins_coord_conv.weight", "mask_head.ins_coord_conv.bias")


# entries of a training checkpoint that inference never uses (dropped right after loading)
IGNORED_ENTRIES = ("optimizer", "scheduler")


class CheckpointError(UserInputError):
    """The file is not a UniParser checkpoint we can load (message says why)."""


def _numpy_safe_globals() -> list:
    """numpy's scalar and dtype reconstruction, as ``(callable, name in the pickle)`` pairs: the scalar
    constructor under its numpy 1.x (``numpy.core``) and 2.x (``numpy._core``) names, ``numpy.dtype``
    and the dtype classes of ``numpy.dtypes``. Nothing else of numpy (no arrays, no ``_reconstruct``)."""
    try:
        import numpy as np
    except ImportError:
        return []
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    allowed = [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"),
               (np.dtype, "numpy.dtype")]
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25
    for name in dir(dtypes) if dtypes is not None else ():
        cls = getattr(dtypes, name)
        if isinstance(cls, type) and issubclass(cls, np.dtype):
            allowed.append((cls, f"numpy.dtypes.{name}"))
    return allowed


NUMPY_SAFE_GLOBALS = _numpy_safe_globals()


def _refused_globals(path, exc: Exception) -> list:
    """Names of the globals a weights-only load refuses in ``path`` (read from the pickle's opcodes,
    nothing executed); falls back to the name in torch's message."""
    names = []
    try:
        with torch.serialization.safe_globals(NUMPY_SAFE_GLOBALS):
            names = list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # not a zip checkpoint, truncated file, ...
        names = []
    if not names:
        names = re.findall(r"GLOBAL ([\w.]+) was not an allowed global", str(exc))
    return sorted(set(names))


def _plain(value):
    """Checkpoint meta as plain Python: numpy scalars -> int/float/bool, dtypes -> their name."""
    import numpy as np

    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.dtype):
        return str(value)
    return value


def file_sha256(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def read_checkpoint(path, training_state: bool = False) -> dict:
    """The checkpoint's dict through the safe path. ``training_state=True`` keeps the optimizer/scheduler
    entries (resuming a run needs them); otherwise they are dropped after the safe load."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(NUMPY_SAFE_GLOBALS):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, unsafe globals, truncated files
        refused = _refused_globals(path, exc)
        if refused:
            raise CheckpointError(
                f"cannot load {path} as a safe (weights-only) PyTorch checkpoint: it refers to "
                f"{', '.join(refused)}, which is not allowed (a checkpoint may hold tensors, containers, numbers, "
                "strings and numpy scalars/dtypes; nothing in it was run)") from None
        raise CheckpointError(f"cannot load {path} as a safe (weights-only) PyTorch checkpoint: "
                              f"{str(exc).splitlines()[0]}") from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(obj).__name__}")
    for key in () if training_state else IGNORED_ENTRIES:
        obj.pop(key, None)
    if isinstance(obj.get("meta"), dict):
        obj["meta"] = _plain(obj["meta"])
    return obj


def extract_state_dict(obj: dict) -> dict:
    sd = obj.get("state_dict", obj.get("model", obj))
    if not isinstance(sd, dict) or not sd:
        raise CheckpointError("checkpoint holds no state_dict")
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    tensors = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    if not any(k.startswith("mask_head.") for k in tensors):
        raise CheckpointError("state_dict has no 'mask_head.*' keys: not a UniParser checkpoint")
    return tensors


def infer_config(sd: dict, decode: DecodeConfig | None = None) -> ModelConfig:
    """Recover the variant from the weight shapes alone."""
    try:
        blocks = tuple(
            1 + max(int(m.group(1)) for k in sd for m in [re.match(rf"backbone\.layer{i}\.(\d+)\.", k)] if m)
            for i in range(1, 5))
        base_width = sd["backbone.conv1.weight"].shape[0]
        fpn_channels = sd["neck.lateral_convs.0.conv.weight"].shape[0]
        dekr = sd["mask_head.dekr_convs.weight"]
        head_channels = sd["mask_head.center_convs.0.conv.weight"].shape[0]
        num_classes = sd["mask_head.seg_kernels"].shape[0] + 1
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"cannot infer the model variant: missing {exc}") from exc
    stacked = 1 + max(int(m.group(1)) for k in sd for m in [re.match(r"mask_head\.center_convs\.(\d+)\.", k)] if m)
    light = dekr.shape[-1] == 1
    dcn_stages = tuple(f"backbone.layer{i}.0.conv2.conv_offset.weight" in sd for i in range(1, 5))
    depth = next((d for d, b in DEPTH_BLOCKS.items() if b == blocks), 0)
    name = {50: "r50", 101: "r101"}.get(depth, "custom") + ("-light" if light else "")
    if num_classes == 20 and depth == 101 and light:
        name = "r101-cihp-light"
    gn_groups = 32 if head_channels % 32 == 0 else 8
    base = CONFIGS.get(name)
    if decode is None:
        decode = base.decode if base is not None else DecodeConfig()
    return ModelConfig(name=name, depth=depth, blocks=blocks, base_width=base_width, dcn_stages=dcn_stages,
                       fpn_channels=fpn_channels, head_channels=head_channels, stacked_convs=stacked,
                       gn_groups=gn_groups, light=light, num_classes=num_classes, decode=decode,
                       num_grid=base.num_grid if base else 40)


def load_model(path, config: ModelConfig | str | None = None, device="cpu"):
    """Load our or an official checkpoint. Returns ``(model in eval mode, info dict)``.

    ``info``: ``format`` ("uniparser-sdk" or "mmdetection"), ``config``, ``sha256``, ``ignored_keys``.
    """
    obj = read_checkpoint(path)
    sd = extract_state_dict(obj)
    ours = obj.get("format") == FORMAT
    if isinstance(config, str):
        from .configs import get_config
        config = get_config(config)
    if config is None:
        config = ModelConfig.from_dict(obj["config"]) if ours and "config" in obj else infer_config(sd)
    model = UniParser(config)
    expected = model.state_dict()
    mismatched = [k for k in sd if k in expected and tuple(sd[k].shape) != tuple(expected[k].shape)]
    if mismatched:
        k = mismatched[0]
        raise CheckpointError(f"{len(mismatched)} tensor(s) do not fit config {config.name!r}, e.g. {k}: "
                              f"{tuple(sd[k].shape)} vs {tuple(expected[k].shape)}")
    result = model.load_state_dict(sd, strict=False)
    missing = [k for k in result.missing_keys if k not in UNUSED_KEYS and not k.endswith("num_batches_tracked")]
    if missing:
        raise CheckpointError(f"{len(missing)} key(s) missing from the checkpoint, e.g. {missing[:3]}")
    model.to(device).eval()
    info = {
        "format": "uniparser-sdk" if ours else "mmdetection",
        "config": config,
        "sha256": file_sha256(path),
        "ignored_keys": sorted(result.unexpected_keys),
        "meta": obj.get("meta", {}) if isinstance(obj.get("meta", {}), dict) else {},
    }
    return model, info


def checkpoint_dict(model: UniParser, meta: dict | None = None, **extra) -> dict:
    return {"format": FORMAT, "config": model.config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "meta": dict(meta or {}), **extra}


def save_checkpoint(path, model: UniParser, meta: dict | None = None, **extra) -> Path:
    """Write our checkpoint format atomically (temporary file + rename)."""
    path = Path(path)
    with atomic_output(path) as tmp:
        torch.save(checkpoint_dict(model, meta, **extra), tmp)
    return path


def with_decode(config: ModelConfig, **overrides) -> ModelConfig:
    return replace(config, decode=config.decode.updated(**overrides))
