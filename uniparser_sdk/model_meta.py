"""Metadata that travels inside exported models (ONNX ``metadata_props``; TensorRT sidecar JSON).

Torch-free: the runtime reads it to know everything about a model file (classes, thresholds,
normalisation, input policy, output layout) without any other file. All values are strings; the
structured ones are JSON.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

PREFIX = "uniparser."
# Output layouts a runtime must know how to finish:
LAYOUT_PRODUCTS = "products-v1"  # network + decode steps 1-4 in graph; host finishes (see export/graph_decode.py)
LAYOUT_PLUGIN = "plugin-v1"  # network + fused UniParserDecode plugin node: part maps at padded resolution
LAYOUT_RAW = "raw-v1"  # network only: center_logits, ins_feats, sem_feats (+ seg_kernels in metadata)
LAYOUTS = (LAYOUT_PRODUCTS, LAYOUT_PLUGIN, LAYOUT_RAW)


@dataclass
class ModelMeta:
    layout: str = LAYOUT_PRODUCTS
    config: dict = field(default_factory=dict)  # ModelConfig.to_dict()
    classes: list = field(default_factory=list)
    decode: dict = field(default_factory=dict)  # ctr_score, mask_thr, cate_score_thr, max_instances
    normalization: dict = field(default_factory=lambda: {
        "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375], "color": "rgb"})
    input: dict = field(default_factory=lambda: {"scale": [1333, 800], "size_divisor": 32, "feature_stride": 4})
    sdk_version: str = ""
    source_sha256: str = ""
    source_format: str = ""
    precision: str = "fp32"

    _JSON = ("config", "classes", "decode", "normalization", "input")

    def to_props(self) -> dict[str, str]:
        out = {}
        for k, v in asdict(self).items():
            out[PREFIX + k] = json.dumps(v, sort_keys=True) if k in self._JSON else str(v)
        return out

    @classmethod
    def from_props(cls, props: dict[str, str]) -> "ModelMeta":
        if PREFIX + "layout" not in props:
            raise ValueError("model file carries no UniParser metadata (was it exported by uniparser-export?)")
        kw = {}
        for name in cls.__dataclass_fields__:
            key = PREFIX + name
            if key in props:
                kw[name] = json.loads(props[key]) if name in cls._JSON else props[key]
        meta = cls(**kw)
        if meta.layout not in LAYOUTS:
            raise ValueError(f"unknown output layout {meta.layout!r}; this SDK knows {LAYOUTS}")
        return meta

    def to_json(self) -> str:
        return json.dumps(self.to_props(), indent=2, sort_keys=True)


def build_model_meta(config, *, layout: str = LAYOUT_PRODUCTS, source_sha256: str = "", source_format: str = "",
                     precision: str = "fp32", decode: dict | None = None, checkpoint_meta: dict | None = None) -> ModelMeta:
    """The one place that turns a ``ModelConfig`` (+ the checkpoint's own meta) into ``ModelMeta``.

    ``decode``: thresholds to store (defaults: the config's). The input scale is the checkpoint's
    ``input_scale`` when training recorded one, else the config's."""
    from . import __version__
    from .classes import classes_for

    ckpt = checkpoint_meta or {}
    scale = ckpt.get("input_scale") or list(getattr(config, "input_scale", (1333, 800)))
    dec = asdict(config.decode)
    dec.update({k: v for k, v in (decode or {}).items() if v is not None})
    return ModelMeta(layout=layout, config=config.to_dict(), classes=list(classes_for(config.num_classes)),
                     decode=dec, input={"scale": [int(scale[0]), int(scale[1])], "size_divisor": 32,
                                        "feature_stride": 4},
                     sdk_version=__version__, source_sha256=source_sha256, source_format=source_format,
                     precision=precision)
