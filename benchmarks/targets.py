"""What ``uniparser-bench`` runs: model targets and the artefacts of each variant, built and cached.

A :class:`Target` is one model: a config with random weights (planted persons, see
:mod:`.planted`), a ``.pth`` checkpoint, an ``.onnx`` file or a TensorRT engine. Its artefacts are made
by the SDK's public tools only, one per row of the variant table
(:mod:`uniparser_sdk.export.variants`):

* ONNX files: :meth:`Variant.export` -> :mod:`uniparser_sdk.export.onnx_export` (onnxsim on, parity off,
  traced at the benchmark's padded size, dynamic height/width);
* TensorRT engines: :func:`uniparser_sdk.backends.tensorrt.build.build_engine_with_sidecar`;
* OpenVINO IRs (``openvino-*`` rows): the fp32 products graph converted by
  :func:`uniparser_sdk.backends.openvino.convert.convert_onnx` at the row's precision (int8: calibrated
  on ``--calibration`` images, default the bundled samples + synthetic scenes);
* torch rows: the ``.pth`` itself;
* the decode steps 1-4 alone (to split ONNX Runtime's one graph into network and decode): the
  shipped products graph cut between the raw network tensors and its outputs
  (:func:`decode_graph`, names from :mod:`uniparser_sdk.contract`): exactly the decode that runs.

Files are cached in ``~/.cache/uniparser/bench`` (``--cache-dir``, ``$UNIPARSER_CACHE_DIR``) under a key
covering the config, seed, size, K and the model/contract/exporter source code.
"""
from __future__ import annotations

import gc
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np

from uniparser_sdk.errors import UserInputError
from uniparser_sdk.io_utils import atomic_output

from .paper import table2_name
from .planted import SyntheticPersons

__all__ = ["Target", "resolve_targets", "prepare_target", "artefact", "decode_graph", "compute_features",
           "default_cache_dir", "tensorrt_unavailable", "MODEL_SUFFIXES"]

CACHE_VERSION = "2"  # 2: decode graphs cut from the products graph; per-variant ONNX files
MODEL_SUFFIXES = {".pth": "pth", ".pt": "pth", ".onnx": "onnx", ".engine": "engine", ".plan": "engine",
                  ".trt": "engine"}


@dataclass
class Target:
    name: str  # row label
    kind: str  # "config" (random weights) | "pth" | "onnx" | "engine"
    path: Optional[str] = None
    config: object = None  # ModelConfig
    # filled by prepare_target()
    pth: Optional[str] = None
    stem: Optional[str] = None  # cache file stem of the exports
    planted: Optional[SyntheticPersons] = None
    params: Optional[int] = None
    flops: Optional[dict] = None
    seg_kernels: Optional[np.ndarray] = None
    file_meta: object = None  # ModelMeta of an .onnx model file
    artefacts: dict = field(default_factory=dict)  # variant name -> model file
    features: Optional[tuple] = None  # numpy (center (1,S,S), ins (D,h,w), sem (D,h,w)) of image 0
    notes: list = field(default_factory=list)

    @property
    def table2_name(self) -> str:
        if self.kind == "config" and self.config is not None:
            return table2_name(self.config.name)
        return self.name


def default_cache_dir() -> Path:
    env = os.environ.get("UNIPARSER_CACHE_DIR")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "uniparser"
    return base / "bench"


def _source_digest() -> str:
    """Digest of the code an export depends on (model, contract, exporter): cached files are rebuilt
    when it changes."""
    import uniparser_sdk
    import uniparser_sdk.export as ex

    root = Path(uniparser_sdk.__file__).resolve().parent
    ex_dir = Path(ex.__file__).resolve().parent
    files = sorted((root / "model").glob("*.py")) + sorted((root / "contract").glob("*.py"))
    files += [ex_dir / "onnx_export.py", ex_dir / "plugin_rewrite.py"]
    h = hashlib.sha256(CACHE_VERSION.encode())
    for f in files:
        if f.is_file():
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def _file_sha(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def resolve_targets(models, configs) -> list[Target]:
    out = []
    for m in models:
        p = Path(m)
        if not p.is_file():
            raise UserInputError(f"model file not found: {m}")
        kind = MODEL_SUFFIXES.get(p.suffix.lower())
        if kind is None:
            raise UserInputError(f"{m}: unknown model file type {p.suffix.lower()!r} (expected .pth, .onnx, "
                                 ".engine/.plan)")
        out.append(Target(name=p.name, kind=kind, path=str(p)))
    if configs:
        from uniparser_sdk.model.configs import get_config

        for name in configs:
            try:
                cfg = get_config(name)
            except ValueError as exc:
                raise UserInputError(str(exc)) from None
            out.append(Target(name=cfg.name, kind="config", config=cfg))
    return out


def prepare_target(t: Target, *, seed: int, persons: float, max_instances: int, pad_hw, scale, cache: Path,
                   log) -> None:
    """Weights (random weights are saved as a cached .pth), planted persons, parameters and GFLOPs."""
    import torch

    from . import flops as flops_mod

    model = None
    if t.kind == "config":
        from uniparser_sdk.model.checkpoint import save_checkpoint
        from uniparser_sdk.model.uniparser import UniParser

        cfg = t.config
        torch.manual_seed(int(seed))
        key = hashlib.sha256(json.dumps([cfg.to_dict(), seed, max_instances, list(pad_hw), list(scale),
                                         _source_digest()], sort_keys=True).encode()).hexdigest()[:10]
        t.stem = f"{cfg.name}-{pad_hw[0]}x{pad_hw[1]}-{key}"
        model = UniParser(cfg).eval()
        t.planted = SyntheticPersons(model.seg_kernels.detach().numpy(), cfg.num_grid,
                                     max_persons=max(8, int(math.ceil(persons)) + 2), aspect=pad_hw[0] / pad_hw[1],
                                     seed=seed)
        pth = cache / f"{t.stem}.pth"
        if not pth.is_file():
            save_checkpoint(pth, model, meta={"note": "uniparser-bench random weights", "seed": seed})
        t.pth = str(pth)
    elif t.kind == "pth":
        from uniparser_sdk.model.checkpoint import load_model

        model, info = load_model(t.path)
        t.config = info["config"]
        t.pth = t.path
        t.stem = f"{Path(t.path).stem}-{pad_hw[0]}x{pad_hw[1]}-{_file_sha(t.path)}-{_source_digest()}"
    elif t.kind == "onnx":
        try:
            import onnx

            from uniparser_sdk.contract import read_onnx_metadata
            from uniparser_sdk.model.configs import ModelConfig

            proto = onnx.load(t.path, load_external_data=False)
            t.file_meta = read_onnx_metadata(proto)
            if t.file_meta.config:
                t.config = ModelConfig.from_dict(t.file_meta.config)
            t.params = int(sum(int(np.prod(init.dims)) for init in proto.graph.initializer))
            t.notes.append("params counted from the ONNX initializers")
        except Exception as exc:
            t.notes.append(f"no config in the ONNX metadata ({type(exc).__name__})")
    if model is not None:
        from uniparser_sdk.model.uniparser import parameter_breakdown

        t.params = int(parameter_breakdown(model)["total"])
        t.seg_kernels = model.seg_kernels.detach().float().cpu().numpy()
    if t.config is not None:
        try:
            t.flops = flops_mod.count_flops(t.config, pad_hw).to_dict()
        except Exception as exc:
            t.notes.append(f"FLOPs not counted: {type(exc).__name__}: {exc}")
    del model
    gc.collect()


def _export(t: Target, variant, path: Path, *, pad_hw, scale, max_instances: int, log) -> None:
    """The variant's ONNX file of ``t`` through the SDK exporter (planted-persons hook traced in)."""
    from uniparser_sdk.model.checkpoint import load_model

    model, info = load_model(t.pth)
    handle = t.planted.install(model) if t.planted is not None else None
    if t.planted is not None:
        info = {**info, "format": "uniparser-bench random weights"}
    inp = {"scale": [int(max(scale)), int(min(scale))], "size_divisor": 32, "feature_stride": 4}
    try:
        meta = replace(variant.build_meta(model, info, max_instances=max_instances), input=inp)
        variant.export(model, path, meta, simplify=True, parity=False, sample_hw=tuple(pad_hw),
                       max_instances=max_instances, log=lambda s: log("  " + s))
    finally:
        if handle is not None:
            handle.remove()
        del model
        gc.collect()


def tensorrt_unavailable() -> Optional[str]:
    """Why no TensorRT engine can be built or run here (None when it can)."""
    try:
        from uniparser_sdk.backends.tensorrt import build as tb
    except Exception as exc:
        return f"uniparser_sdk.backends.tensorrt unavailable ({type(exc).__name__})"
    try:
        tb.check_environment()
    except Exception as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def _plugin_library() -> Optional[str]:
    from uniparser_sdk import fused

    p = Path(os.environ.get("UNIPARSER_TRT_PLUGIN") or fused.KERNELS_DIR / "build" / fused.PLUGIN_LIBRARY_NAME)
    return str(p) if p.is_file() else None


def _engine(onnx_path: str, variant, pad_hw, cache: Path, log, tag: str) -> str:
    from uniparser_sdk.backends.tensorrt import build as tb

    env = tb.check_environment()
    extra = "" if variant.onnx_precision == variant.precision else f"-{variant.precision}"
    engine = cache / f"{Path(onnx_path).stem}{extra}-trt{env['tensorrt_version']}-sm{env['compute_capability']}.engine"
    if engine.is_file() and tb.sidecar_path(engine).is_file():
        return str(engine)
    plugin_lib = None
    if variant.plugin:
        plugin_lib = _plugin_library()
        if plugin_lib is None:
            raise UserInputError("the plugin variant needs the UniParserDecode library: set UNIPARSER_TRT_PLUGIN "
                                 "or build kernels/build (cmake)")
    profile = tb.profile_shapes(min(320, *pad_hw), opt=tuple(pad_hw), max_side=max(1344, *pad_hw))
    log(f"[{tag}] building TensorRT engine ({variant.name}) -> {engine}")
    tb.build_engine_with_sidecar(onnx_path, engine, fp16=variant.engine_fp16, profile=profile,
                                 timing_cache=cache / "trt-timing.cache", plugin_lib=plugin_lib, env=env, log=log)
    return str(engine)


def _openvino_ir(onnx_path: str, variant, cache: Path, log, tag: str, calibration=(None, None)) -> str:
    """The OpenVINO IR of ``variant`` converted from the fp32 graph ``onnx_path`` (cached)."""
    from uniparser_sdk.backends.openvino.convert import convert_onnx, openvino

    ov = openvino()
    folder, limit = calibration
    key = ""
    if variant.precision == "int8":
        src = [str(Path(folder).resolve()) if folder else "default", limit]
        key = "-cal" + hashlib.sha256(json.dumps(src).encode()).hexdigest()[:8]
    xml = cache / f"{Path(onnx_path).stem}{key}-ov{ov.__version__.split('-')[0]}{variant.artefact_suffix}"
    if xml.is_file() and xml.with_suffix(".bin").is_file():
        return str(xml)
    calib = None
    if variant.precision == "int8":
        from uniparser_sdk.backends.openvino.calibrate import calibration_images

        calib = calibration_images(folder, limit=limit)
    log(f"[{tag}] converting to OpenVINO IR ({variant.name}"
        f"{f', calibrating on {len(calib)} images' if calib is not None else ''}) -> {xml}")
    t0 = time.perf_counter()
    convert_onnx(onnx_path, xml, variant.precision, calibration=calib, progress=False, log=lambda m: log("  " + m))
    log(f"[{tag}] conversion took {time.perf_counter() - t0:.1f} s")
    return str(xml)


def artefact(t: Target, variant, *, pad_hw, scale, max_instances: int, cache: Path, log,
             calibration=(None, None)) -> str:
    """The model file ``Parser`` opens for ``variant`` of ``t`` (exported / built when not cached).
    Raises ``UserInputError`` (with the reason) when the target cannot provide that variant."""
    if variant.name in t.artefacts:
        return t.artefacts[variant.name]
    if variant.target is None:
        raise UserInputError(f"{variant.name} is an intermediate graph that Parser does not run")
    if variant.checkpoint:
        if t.pth is None:
            raise UserInputError(f"no PyTorch weights for a .{t.kind} file")
        return t.pth
    if t.kind == "engine":
        if not variant.engine:
            raise UserInputError("a TensorRT engine runs on tensorrt only")
        path = t.path
    elif t.kind == "onnx":
        m = t.file_meta
        if m is not None and (m.layout, m.precision) != (variant.layout, variant.onnx_precision):
            raise UserInputError(f"the file is {m.layout} {m.precision}; an .onnx model runs as it is (pass a "
                                 ".pth or --configs for other variants)")
        path = t.path if not variant.engine else _engine(t.path, variant, pad_hw, cache, log, t.name)
        if variant.converted:
            path = _openvino_ir(t.path, variant, cache, log, t.name, calibration)
    else:
        onnx_path = cache / f"{t.stem}{variant.onnx_suffix}.onnx"
        if not onnx_path.is_file():
            log(f"[{t.name}] exporting ONNX ({variant.layout}, {variant.onnx_precision}"
                f"{', random weights + synthetic-persons hook' if t.planted is not None else ''}) -> {onnx_path}")
            t0 = time.perf_counter()
            _export(t, variant, onnx_path, pad_hw=pad_hw, scale=scale, max_instances=max_instances, log=log)
            log(f"[{t.name}] export took {time.perf_counter() - t0:.1f} s")
        path = str(onnx_path) if not variant.engine else _engine(str(onnx_path), variant, pad_hw, cache, log,
                                                                 t.name)
        if variant.converted:
            path = _openvino_ir(str(onnx_path), variant, cache, log, t.name, calibration)
    t.artefacts[variant.name] = path
    return path


def decode_graph(onnx_path, cache: Optional[Path] = None) -> Optional[str]:
    """Decode steps 1-4 alone, cut from a products graph: inputs = the raw network tensors
    (``RAW_V1`` outputs, kept under their names in the products graph) + ``decode_params`` (+ any other
    graph input the decode reads, e.g. ``images`` for its batch size: :func:`.timing.decode_feed` feeds
    those a minimal zero tensor); outputs = the layout's outputs. None for other layouts. Cached next
    to the graph (or in ``cache``)."""
    import onnx
    import onnx.utils

    from uniparser_sdk.contract import RAW_V1, get_layout, read_onnx_metadata

    src = Path(onnx_path)
    layout = get_layout(read_onnx_metadata(str(src)).layout)
    if "decode_params" not in layout.input_names or not all(
            any(t.name == n for t in layout.internals) for n in RAW_V1.output_names):
        return None
    out = (Path(cache) if cache else src.parent) / f"{src.stem}-{_file_sha(src)[:8]}.decode.onnx"
    if not out.is_file():
        with atomic_output(out, suffix=".onnx") as tmp:
            # the graph's own inputs are offered too: the decode may read e.g. the batch size off ``images``
            # (a Shape node); graph inputs the decode does not use are dropped again
            onnx.utils.extract_model(str(src), str(tmp), list(RAW_V1.output_names) + list(layout.input_names),
                                     list(layout.output_names), check_model=False)
            proto = onnx.load(str(tmp))
            used = {name for node in proto.graph.node for name in node.input}
            kept = [vi for vi in proto.graph.input if vi.name in used or vi.name in RAW_V1.output_names]
            del proto.graph.input[:]
            proto.graph.input.extend(kept)
            onnx.save(proto, str(tmp))
    return str(out)


def compute_features(t: Target, image, scale) -> Optional[tuple]:
    """Network outputs of ``image`` (with the synthetic-persons hook) from the PyTorch weights, untimed."""
    if t.pth is None:
        return None
    import torch

    from uniparser_sdk.model.checkpoint import load_model
    from uniparser_sdk.runtime.preprocess import preprocess

    model, _ = load_model(t.pth)
    handle = t.planted.install(model) if t.planted is not None else None
    x, _ = preprocess(image, scale)
    with torch.inference_mode():
        c, i, s = model(torch.from_numpy(x))
    if handle is not None:
        handle.remove()
    out = (c[0].numpy().copy(), i[0].numpy().copy(), s[0].numpy().copy())
    del model
    gc.collect()
    return out
