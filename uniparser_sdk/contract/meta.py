"""Metadata that travels inside exported models (ONNX ``metadata_props``; the TensorRT sidecar JSON).

Torch-free: a runtime learns everything about a model file from it (layout, classes, thresholds,
normalisation, input policy, precision). There is ONE builder (:func:`build_model_meta`) and one reader
per carrier (:func:`read_onnx_metadata`, :func:`meta_from_props` for the sidecar's copy). The decode
thresholds are stored once, in ``decode``; files written before that rule also carried them inside
``config["decode"]``, which the reader folds into ``decode`` (``decode`` wins).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Mapping

from .constants import DEFAULT_DECODE, DEFAULT_SCALE, FEATURE_STRIDE, MEAN_RGB, SIZE_DIVISOR, STD_RGB
from .layouts import LAYOUT_PRODUCTS, get_layout
from ..errors import UserInputError

PREFIX = "uniparser."
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


class MetadataError(UserInputError):
    """A model file carries no, or malformed, UniParser metadata."""


@dataclass
class ModelMeta:
    layout: str = LAYOUT_PRODUCTS
    config: dict = field(default_factory=dict)  # ModelConfig.to_dict() without "decode"
    classes: list = field(default_factory=list)
    decode: dict = field(default_factory=dict)  # ctr_score, mask_thr, cate_score_thr, max_instances
    normalization: dict = field(default_factory=lambda: {
        "mean": list(MEAN_RGB), "std": list(STD_RGB), "color": "rgb"})
    input: dict = field(default_factory=lambda: {"scale": list(DEFAULT_SCALE), "size_divisor": SIZE_DIVISOR,
                                                 "feature_stride": FEATURE_STRIDE})
    sdk_version: str = ""
    source_sha256: str = ""
    source_format: str = ""
    precision: str = "fp32"

    _JSON = ("config", "classes", "decode", "normalization", "input")

    def __post_init__(self):
        get_layout(self.layout)  # UnknownLayoutError (a ValueError) for a layout this SDK does not know
        legacy = (self.config or {}).get("decode")
        if isinstance(legacy, dict):  # thresholds stored once: fold the old copy into ``decode``
            self.config = {k: v for k, v in self.config.items() if k != "decode"}
            self.decode = {**legacy, **(self.decode or {})}

    @property
    def thresholds(self) -> dict:
        """The decode thresholds of this model (library defaults for keys the file lacks)."""
        out = dict(DEFAULT_DECODE)
        out.update({k: v for k, v in (self.decode or {}).items() if k in out and v is not None})
        return out

    @property
    def contract(self):
        """The :class:`~uniparser_sdk.contract.layouts.Layout` this model's outputs follow."""
        return get_layout(self.layout)

    def to_props(self) -> dict[str, str]:
        out = {}
        for k, v in asdict(self).items():
            out[PREFIX + k] = json.dumps(v, sort_keys=True) if k in self._JSON else str(v)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_props(), indent=2, sort_keys=True)


def meta_from_props(props: Mapping[str, object]) -> ModelMeta:
    """ModelMeta from ``uniparser.*`` key/value pairs (ONNX metadata_props, or the sidecar's copy whose
    values may already be decoded JSON)."""
    if PREFIX + "layout" not in props:
        raise MetadataError("model file carries no UniParser metadata (was it exported by uniparser-export?)")
    kw = {}
    for name in ModelMeta.__dataclass_fields__:
        key = PREFIX + name
        if key not in props:
            continue
        value = props[key]
        if name in ModelMeta._JSON:
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as e:
                    raise MetadataError(f"metadata {key} is not valid JSON: {e}") from None
        else:
            value = str(value)
        kw[name] = value
    return ModelMeta(**kw)


def read_onnx_metadata(model_or_path) -> ModelMeta:
    """ModelMeta of an ONNX file (path) or ``onnx.ModelProto``; uses ``onnx`` when installed, else
    ONNX Runtime (the runtime install has no onnx package)."""
    if hasattr(model_or_path, "metadata_props"):
        return meta_from_props({p.key: p.value for p in model_or_path.metadata_props})
    path = str(model_or_path)
    try:
        import onnx
    except ImportError:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        return meta_from_props(dict(sess.get_modelmeta().custom_metadata_map))
    proto = onnx.load(path, load_external_data=False)
    return meta_from_props({p.key: p.value for p in proto.metadata_props})


def build_model_meta(config, *, layout: str = LAYOUT_PRODUCTS, source_sha256: str = "", source_format: str = "",
                     precision: str = "fp32", decode: Mapping | None = None,
                     checkpoint_meta: Mapping | None = None) -> ModelMeta:
    """The one place that turns a ``ModelConfig`` (+ the checkpoint's own meta) into ``ModelMeta``.

    ``decode``: thresholds to store (defaults: the config's). The input scale is the checkpoint's
    ``input_scale`` when training recorded one, else the config's."""
    from .. import __version__
    from ..classes import classes_for

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    ckpt = checkpoint_meta or {}
    scale = ckpt.get("input_scale") or list(getattr(config, "input_scale", DEFAULT_SCALE))
    cfg = config.to_dict()
    dec = dict(cfg.pop("decode", None) or {})
    dec.update({k: v for k, v in (decode or {}).items() if v is not None})
    return ModelMeta(layout=layout, config=cfg, classes=list(classes_for(config.num_classes)), decode=dec,
                     input={"scale": [int(scale[0]), int(scale[1])], "size_divisor": SIZE_DIVISOR,
                            "feature_stride": FEATURE_STRIDE},
                     sdk_version=__version__, source_sha256=source_sha256, source_format=source_format,
                     precision=precision)
