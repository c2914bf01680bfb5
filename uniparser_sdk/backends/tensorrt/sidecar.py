"""The TensorRT engine sidecar ``<engine>.json``: the one place that writes, reads and checks it.

A serialized TensorRT engine carries no UniParser metadata, so the exporter writes this JSON file next to
it and the runtime reads it before deserialising the engine::

    {"format": "uniparser-trt-sidecar/1",
     "props": {...},                  # ModelMeta properties (the ONNX ``metadata_props`` keys)
     "tensorrt_version": "10.3.0.26", # the TensorRT that built the engine
     "compute_capability": "8.6",     # the GPU architecture it was built for
     "profile": {"images": {"min": [N, C, H, W], "opt": [...], "max": [...]},
                 "decode_params": {"min": [N, 3], ...}},  # products-v2 only: same batch range
     "plugin": {"library": ...} | null, "precision": "fp16", "gpu_name": ..., "onnx_sha256": ...}

``profile`` has one entry per dynamic engine input: ``images`` always; products-v2 engines also
``decode_params`` (batch, 3) with the images' batch range (products-v1's decode_params (3,) is static and
has none). Readers also accept ``"metadata"`` for ``"props"``, a sidecar without ``"format"``, a bare profile (the
``images`` input's), a list of profiles (profile 0 is used) and ``[min, opt, max]`` profile entries.
Engines are tied to the TensorRT version (major.minor.patch) and the GPU compute capability that built
them: :func:`check_compatibility` refuses a mismatch with a clear message, unless the sidecar says the
engine was built version-compatible (``"version_compatible": true``: later TensorRT of the same major)
or hardware-compatible (``"hardware_compatibility": "ampere_plus"``: any sm_80+ GPU).

Plain Python: imports neither torch nor tensorrt (used by :mod:`uniparser_sdk.backends.tensorrt.build`
and :mod:`uniparser_sdk.backends.tensorrt`).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ...contract import ModelMeta, meta_from_props
from ...errors import UniParserError, UserInputError

__all__ = [
    "SIDECAR_FORMAT", "SidecarError", "SidecarNotFoundError", "EngineCompatibilityError", "TensorProfile",
    "EngineSidecar", "sidecar_path", "make_sidecar", "write_sidecar", "read_sidecar", "check_compatibility",
    "parse_compute_capability", "format_compute_capability", "version_tuple", "parse_profile",
    "profile_to_json", "profile_from_json", "shape_in_profile",
]

SIDECAR_FORMAT = "uniparser-trt-sidecar/1"
_REQUIRED = ("tensorrt_version", "compute_capability", "profile")


class SidecarError(UserInputError):
    """The sidecar is missing, unreadable or not a valid UniParser engine sidecar."""


class SidecarNotFoundError(SidecarError, FileNotFoundError):
    """The engine has no sidecar next to it."""


class EngineCompatibilityError(UniParserError, RuntimeError):
    """The engine was built for another TensorRT version or GPU architecture."""


# --------------------------------------------------------------------------------------------
# compute capability and versions


def parse_compute_capability(value) -> tuple[int, int]:
    """``"8.6"``, ``"sm_86"``, ``"86"``, ``[8, 6]`` or ``(8, 6)`` -> (8, 6); ValueError otherwise."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    s = str(value).strip().lower()
    if s.startswith("sm_"):
        s = s[3:]
    a, dot, b = s.partition(".")
    if dot and a.isdigit() and b.isdigit():
        return int(a), int(b)
    if not dot and s.isdigit() and len(s) >= 2:
        return int(s[:-1]), int(s[-1])
    raise ValueError(f"cannot read a compute capability from {value!r} (expected e.g. '8.6', 'sm_86' or (8, 6))")


def format_compute_capability(value) -> str:
    """Any form :func:`parse_compute_capability` reads -> ``"M.m"`` (the form stored in the sidecar)."""
    major, minor = parse_compute_capability(value)
    return f"{major}.{minor}"


def version_tuple(version, n: int = 3) -> tuple[int, ...]:
    """The first ``n`` numeric components of a version string, zero-padded: '10.3.0.26' -> (10, 3, 0),
    '10.1' -> (10, 1, 0), '10.3.0rc1' -> (10, 3, 0). Stops at the first component that does not start
    with a digit."""
    parts = []
    for p in str(version).strip().split("."):
        m = re.match(r"\d+", p)
        if not m:
            break
        parts.append(int(m.group()))
    return tuple((parts + [0] * n)[:n])


# --------------------------------------------------------------------------------------------
# optimisation profiles


@dataclass(frozen=True)
class TensorProfile:
    """Optimisation-profile bounds of one input tensor (inclusive)."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def __post_init__(self):
        if not (len(self.min) == len(self.opt) == len(self.max)):
            raise ValueError(f"profile ranks differ: min {self.min}, opt {self.opt}, max {self.max}")
        if any(a > b for a, b in zip(self.min, self.max)):
            raise ValueError(f"profile min {self.min} exceeds max {self.max}")

    @classmethod
    def parse(cls, value) -> "TensorProfile":
        """``{"min": [...], "opt": [...], "max": [...]}`` (``opt`` defaults to ``max``), ``[min, opt, max]``
        or a :class:`TensorProfile`."""
        if isinstance(value, TensorProfile):
            return value
        if isinstance(value, dict):
            try:
                mn, mx = value["min"], value["max"]
            except KeyError as exc:
                raise ValueError(f"profile entry needs 'min' and 'max': {value!r}") from exc
            op = value.get("opt", mx)
        elif isinstance(value, (list, tuple)) and len(value) == 3:
            mn, op, mx = value
        else:
            raise ValueError(f"cannot read a profile from {value!r}")
        return cls(tuple(int(v) for v in mn), tuple(int(v) for v in op), tuple(int(v) for v in mx))

    def contains(self, shape: Sequence[int]) -> bool:
        shape = tuple(int(v) for v in shape)
        return len(shape) == len(self.min) and all(a <= s <= b for a, s, b in zip(self.min, shape, self.max))

    def to_json(self) -> dict:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


def parse_profile(data) -> dict[str, TensorProfile]:
    """A sidecar's ``"profile"`` -> ``{input name: TensorProfile}`` (see the module doc for the forms)."""
    if isinstance(data, dict) and {"min", "max"} <= set(data):
        data = {"images": data}  # a bare profile is the images input's
    if isinstance(data, list):  # [{"images": {...}}, ...] -- profile 0 is the one used
        data = data[0] if data else {}
    if not isinstance(data, dict):
        raise ValueError("'profile' must map input names to min/opt/max shapes")
    return {str(k): TensorProfile.parse(v) for k, v in data.items()}


def profile_to_json(profile: dict) -> dict:
    """``{name: (min, opt, max) | TensorProfile}`` -> ``{name: {"min": [...], "opt": [...], "max": [...]}}``."""
    return {str(name): TensorProfile.parse(entry).to_json() for name, entry in profile.items()}


def profile_from_json(data) -> dict[str, tuple]:
    """Inverse of :func:`profile_to_json`: ``{name: (min, opt, max)}`` of shape tuples."""
    return {name: (p.min, p.opt, p.max) for name, p in parse_profile(data).items()}


def shape_in_profile(shape: Sequence[int], profile_entry) -> bool:
    """Whether ``shape`` lies within ``profile_entry`` (``(min, opt, max)``, a JSON entry or a TensorProfile)."""
    return TensorProfile.parse(profile_entry).contains(shape)


# --------------------------------------------------------------------------------------------
# the sidecar


def _meta_from_props(props) -> ModelMeta:
    if not isinstance(props, dict):
        raise ValueError("the metadata must be an object of ModelMeta properties")
    return meta_from_props({str(k): v for k, v in props.items()})


@dataclass
class EngineSidecar:
    """A validated sidecar: the parsed fields plus ``raw``, the stored JSON object."""

    meta: ModelMeta
    tensorrt_version: str
    compute_capability: tuple[int, int]
    profile: dict[str, TensorProfile] = field(default_factory=dict)
    raw: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d, source: str = "sidecar") -> "EngineSidecar":
        """Validate a sidecar's JSON object; raises :class:`SidecarError` naming ``source``."""
        if not isinstance(d, dict):
            raise SidecarError(f"{source}: expected a JSON object, got {type(d).__name__}")
        fmt = d.get("format")
        if fmt is not None and fmt != SIDECAR_FORMAT:
            raise SidecarError(f"{source}: not a UniParser engine sidecar this SDK reads "
                               f"(format {fmt!r}, expected {SIDECAR_FORMAT!r})")
        meta_key = "props" if "props" in d else "metadata"  # the builder writes "props"
        missing = [k for k in (meta_key, *_REQUIRED) if k not in d]
        if missing:
            raise SidecarError(f"{source}: missing key(s) {missing}")
        try:
            meta = _meta_from_props(d[meta_key])
            cc = parse_compute_capability(d["compute_capability"])
            profile = parse_profile(d["profile"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SidecarError(f"{source}: invalid content: {exc}") from exc
        return cls(meta, str(d["tensorrt_version"]), cc, profile, d)

    def as_dict(self) -> dict:
        """The stored keys plus ``"meta"`` (the :class:`ModelMeta`)."""
        return dict(self.raw, meta=self.meta)


def sidecar_path(engine_path) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


def make_sidecar(meta: ModelMeta | dict, *, tensorrt_version: str, compute_capability, profile: dict,
                 precision: str, plugin: dict | None = None, gpu_name: str = "", onnx_sha256: str = "") -> dict:
    """The sidecar's JSON object (metadata and profile validated)."""
    props = meta.to_props() if isinstance(meta, ModelMeta) else dict(meta)
    _meta_from_props(props)  # validate (a bad ModelMeta is a ValueError from ModelMeta itself)
    return {
        "format": SIDECAR_FORMAT,
        "props": props,
        "tensorrt_version": str(tensorrt_version),
        "compute_capability": format_compute_capability(compute_capability),
        "gpu_name": gpu_name,
        "precision": precision,
        "profile": profile_to_json(profile),
        "plugin": plugin,
        "onnx_sha256": onnx_sha256,
    }


def write_sidecar(engine_path, sidecar: dict) -> Path:
    """Write ``sidecar`` (from :func:`make_sidecar`) atomically to :func:`sidecar_path` of the engine."""
    from ...io_utils import atomic_write_text

    return atomic_write_text(sidecar_path(engine_path), json.dumps(sidecar, indent=2, sort_keys=True) + "\n")


def read_sidecar(engine_or_sidecar_path) -> EngineSidecar:
    """Read and validate the sidecar of an engine (pass the engine path or the ``.json`` path).

    Raises :class:`SidecarNotFoundError` (also a FileNotFoundError) when it is missing and
    :class:`SidecarError` when it is unreadable or invalid."""
    p = Path(engine_or_sidecar_path)
    if p.suffix.lower() != ".json":
        p = sidecar_path(p)
    if not p.is_file():
        raise SidecarNotFoundError(f"engine metadata sidecar not found: {p} (uniparser-export --engine writes it "
                                   "next to the engine; an engine without it cannot be used)")
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise SidecarError(f"cannot read engine sidecar {p}: {exc}") from exc
    return EngineSidecar.from_dict(data, str(p))


def check_compatibility(sidecar: EngineSidecar | dict, trt_version: str, compute_capability) -> None:
    """Raise :class:`EngineCompatibilityError` unless the engine runs with this TensorRT version and GPU.

    The rule: same TensorRT major.minor.patch (the build number is ignored) and same compute capability;
    an engine built version-compatible runs on the same or a later TensorRT of the same major, one built
    ``hardware_compatibility: ampere_plus`` on any GPU of compute capability 8.0 or newer. Every mismatch
    is named in the one error."""
    if not isinstance(sidecar, EngineSidecar):
        sidecar = EngineSidecar.from_dict(sidecar)
    raw = sidecar.raw or {}
    problems = []
    built_v, here_v = version_tuple(sidecar.tensorrt_version), version_tuple(trt_version)
    if built_v != here_v and not (raw.get("version_compatible") and here_v[0] == built_v[0] and here_v >= built_v):
        problems.append(f"it was built with TensorRT {sidecar.tensorrt_version}, this is TensorRT {trt_version}")
    cc_built, cc_here = tuple(sidecar.compute_capability), parse_compute_capability(compute_capability)
    if str(raw.get("hardware_compatibility", "none")).lower() in ("ampere_plus", "ampere+"):
        if cc_here < (8, 0):
            problems.append(f"it was built for Ampere or newer GPUs (sm_80+), this GPU is "
                            f"sm_{cc_here[0]}{cc_here[1]}")
    elif cc_built != cc_here:
        problems.append(f"it was built for GPU compute capability {cc_built[0]}.{cc_built[1]}, this GPU is "
                        f"{cc_here[0]}.{cc_here[1]}")
    if problems:
        raise EngineCompatibilityError(
            "cannot use this TensorRT engine: " + "; ".join(problems)
            + ". Engines are tied to the TensorRT version and GPU architecture that built them: rebuild it on "
            "this machine with `uniparser-export MODEL --engine`, or run the .onnx file.")
