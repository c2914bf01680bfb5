"""Named model configurations (pure data: importable without torch)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from ..contract.constants import DEFAULT_DECODE  # decode defaults and constants are declared once there

DEPTH_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


@dataclass(frozen=True)
class DecodeConfig:
    """Decode thresholds (DESIGN §3); stored in exported models, overridable at run time."""

    ctr_score: float = DEFAULT_DECODE["ctr_score"]
    mask_thr: float = DEFAULT_DECODE["mask_thr"]
    cate_score_thr: float = DEFAULT_DECODE["cate_score_thr"]
    max_instances: int = DEFAULT_DECODE["max_instances"]

    def updated(self, **overrides) -> "DecodeConfig":
        valid = {f.name for f in fields(self)}
        bad = set(overrides) - valid
        if bad:
            raise ValueError(f"unknown decode option(s) {sorted(bad)}; valid: {sorted(valid)}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class ModelConfig:
    name: str = "r50"
    depth: int = 50
    blocks: tuple = (3, 4, 6, 3)
    base_width: int = 64
    dcn_stages: tuple = (False, True, True, True)
    fpn_channels: int = 256
    head_channels: int = 128
    stacked_convs: int = 4
    num_grid: int = 40
    gn_groups: int = 32
    light: bool = False
    num_classes: int = 59
    frozen_stages: int = 1
    # keep-ratio test scale (long side limit, short side limit); the official models use (1333, 800)
    input_scale: tuple = (1333, 800)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["blocks"], d["dcn_stages"] = list(self.blocks), list(self.dcn_stages)
        d["input_scale"] = list(self.input_scale)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        valid = {f.name for f in fields(cls)}
        unknown = set(d) - valid
        if unknown:
            raise ValueError(f"unknown model config key(s): {sorted(unknown)}")
        if "decode" in d and isinstance(d["decode"], dict):
            d["decode"] = DecodeConfig(**d["decode"])
        for key in ("blocks", "dcn_stages", "input_scale"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


def _official(name, depth, light, ctr_score, num_classes=59, cate=0.3):
    return ModelConfig(name=name, depth=depth, blocks=DEPTH_BLOCKS[depth], light=light,
                       num_classes=num_classes, decode=DecodeConfig(ctr_score=ctr_score, cate_score_thr=cate))


CONFIGS = {
    "r50": _official("r50", 50, False, 0.2),
    "r101": _official("r101", 101, False, 0.1),
    "r50-light": _official("r50-light", 50, True, 0.3),
    "r101-light": _official("r101-light", 101, True, 0.3),
    "r101-cihp-light": _official("r101-cihp-light", 101, True, 0.1, num_classes=20, cate=0.275),
    # Small model for CPU tests and the embedded demo model: CIHP classes, 1 block per stage,
    # narrow widths, DCN kept in stages 2-4 so that every code path of the big models runs.
    "tiny": ModelConfig(name="tiny", depth=0, blocks=(1, 1, 1, 1), base_width=16, fpn_channels=32,
                        head_channels=32, num_grid=24, gn_groups=8, light=False, num_classes=20,
                        frozen_stages=-1, input_scale=(384, 288), decode=DecodeConfig(ctr_score=0.3, cate_score_thr=0.3)),
}
CONFIGS["tiny-light"] = replace(CONFIGS["tiny"], name="tiny-light", light=True)


def get_config(name_or_path: str, **overrides) -> ModelConfig:
    """A named config (``r50``, ``r101``, ``r50-light``, ``r101-light``, ``tiny``, ...) or a JSON file."""
    if name_or_path in CONFIGS:
        cfg = CONFIGS[name_or_path]
    elif Path(name_or_path).suffix == ".json" and Path(name_or_path).is_file():
        cfg = ModelConfig.from_dict(json.loads(Path(name_or_path).read_text()))
    else:
        raise ValueError(f"unknown config {name_or_path!r}; choose one of {sorted(CONFIGS)} or a .json file")
    return replace(cfg, **overrides) if overrides else cfg
