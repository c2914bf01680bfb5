"""ONNX -> TensorRT engine, for TensorRT 10.x and 11.x, plus the engine's JSON sidecar.

Thin on purpose: everything that needs no GPU -- the optimisation-profile shapes, the sidecar format,
the compatibility test, the static ONNX check -- is plain Python and unit-tested; :func:`build_engine`
only calls the TensorRT Python API, and every name it uses is declared in
:mod:`uniparser_sdk.backends.tensorrt.api` and tested against the real 10.16 and 11.4 bindings.

Version-aware by feature detection (``hasattr`` on the real module, never the version string):

* precision, the strongly-typed way: the engine's precision is the ONNX's. The network is created
  ``STRONGLY_TYPED`` where the flag exists (TensorRT >= 10; accepted and ignored by 11.x, where strong
  typing is permanent), so an FP16 engine is built from the FP16 ONNX (``uniparser-export --fp16``).
  ``fp16=True`` on a float32 ONNX needs ``BuilderFlag.FP16`` (TensorRT 10 only, weakly typed network):
  on 11.x that is one clear error telling to export the FP16 ONNX. INT8 is only possible through Q/DQ
  nodes in the ONNX (no calibrator API: 11.x removed it).
* ``Builder.platform_has_fast_fp16`` (gone in 11.x) is only read where it exists.
* plugins: :mod:`.plugin` asks the registry before loading (``loadLibrary`` returns null for an already
  registered library).

Before TensorRT sees the graph, :func:`uniparser_sdk.export.trt_check.require_trt_compatible` checks it
against the TensorRT ONNX parser's operator matrix (clear error naming node and rule).
``tensorrt`` is imported lazily; this module imports without it (and without torch).

The sidecar ``<engine>.json`` carries what the runtime needs besides the plan: the model's
``ModelMeta`` properties (same keys as the ONNX ``metadata_props``), the TensorRT version and GPU
compute capability the engine was built for (an engine only runs on those: :func:`check_compatibility`
refuses a mismatch with a clear message), the optimisation profile and the plugin it needs. Its format
is owned by :mod:`uniparser_sdk.backends.tensorrt.sidecar` (shared with the runtime); the names are re-exported here.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from . import sidecar as _sidecar
from ...errors import UniParserError
from ...io_utils import atomic_write_bytes
from .sidecar import (  # noqa: F401  (the sidecar format lives there; re-exported)
    SIDECAR_FORMAT, EngineCompatibilityError, SidecarError, check_compatibility, format_compute_capability,
    make_sidecar, profile_from_json, profile_to_json, shape_in_profile, sidecar_path, version_tuple,
    write_sidecar,
)

DEFAULT_MIN_SIDE = 320
DEFAULT_OPT = (800, 1344)  # (height, width): 1333x800 padded to multiples of 32, landscape
DEFAULT_MAX_SIDE = 1344
DEFAULT_BATCH = (1, 1, 4)
DEFAULT_WORKSPACE = 4 << 30
INSTALL_HINT = "pip install 'uniparser-sdk[trt]' (TensorRT >= 10.1, < 12 and an NVIDIA GPU with its driver)"
SUPPORTED_MAJORS = (10, 11)  # the [trt] extra's tested range: tensorrt>=10.1,<12


class TensorRTUnavailable(UniParserError, RuntimeError):
    """TensorRT or a usable GPU is missing (the message says which and what to do)."""


class EngineBuildError(UniParserError, RuntimeError):
    pass


EngineIncompatible = EngineCompatibilityError  # the engine was built for another TensorRT version or GPU


# ----------------------------------------------------------------------------------------------
# pure python: profile (the sidecar format is :mod:`uniparser_sdk.backends.tensorrt.sidecar`)


def _round_up(x: int, d: int) -> int:
    return -(-int(x) // d) * d


def profile_shapes(min_side: int = DEFAULT_MIN_SIDE, opt=DEFAULT_OPT, max_side: int = DEFAULT_MAX_SIDE,
                   divisor: int = 32, batch=DEFAULT_BATCH, input_name: str = "images",
                   layout: str | None = None) -> dict:
    """Optimisation profile of the dynamic image input: ``{input_name: (min, opt, max)}``, each an
    NCHW shape tuple. Sides are rounded up to ``divisor`` (the padded input sizes the runtime feeds);
    min covers ``min_side`` x ``min_side``, max ``max_side`` x ``max_side`` (both orientations of a
    1333x800 image fit in 1344 x 1344), opt is (height, width) or one side.

    ``layout`` (a contract layout name): also the entries of its other inputs whose only dynamic axis is
    the batch, with the same batch range (:func:`batch_input_profiles`: products-v2 adds
    ``decode_params`` ((bmin, 3), (bopt, 3), (bmax, 3)); products-v1's static (3,) input gets none).
    :func:`build_engine` completes such entries from the parsed ONNX inputs anyway."""
    if divisor <= 0:
        raise ValueError(f"divisor must be positive, got {divisor}")
    if isinstance(opt, int):
        opt = (opt, opt)
    opt = tuple(int(v) for v in opt)
    batch = tuple(int(b) for b in batch)
    if len(opt) != 2 or len(batch) != 3:
        raise ValueError(f"opt must be (height, width) and batch (min, opt, max); got {opt}, {batch}")
    if min(min_side, max_side, *opt) <= 0 or min(batch) <= 0:
        raise ValueError("profile sides and batch sizes must be positive")
    lo, hi = _round_up(min_side, divisor), _round_up(max_side, divisor)
    oh, ow = _round_up(opt[0], divisor), _round_up(opt[1], divisor)
    if not lo <= hi:
        raise ValueError(f"min side {min_side} > max side {max_side}")
    if not (lo <= oh <= hi and lo <= ow <= hi):
        raise ValueError(f"opt shape {oh}x{ow} lies outside [{lo}, {hi}]")
    if not batch[0] <= batch[1] <= batch[2]:
        raise ValueError(f"batch must satisfy min <= opt <= max, got {batch}")
    prof = {input_name: ((batch[0], 3, lo, lo), (batch[1], 3, oh, ow), (batch[2], 3, hi, hi))}
    if layout is not None:
        prof.update(batch_input_profiles(layout, prof[input_name], images=input_name))
    return prof


def _batch_range(images_entry) -> tuple[int, int, int]:
    mn, op, mx = (tuple(int(v) for v in s) for s in images_entry)
    return mn[0], op[0], mx[0]


def batch_only_profile(shape, images_entry) -> tuple:
    """(min, opt, max) of an input whose only dynamic dimension is the leading batch axis (``shape``: the
    ONNX / TensorRT input shape, -1 or None for dynamic), with the batch range of the ``images`` profile
    entry: products-v2's ``decode_params`` (batch, 3) -> ((bmin, 3), (bopt, 3), (bmax, 3)). ValueError
    when another dimension is dynamic (that input needs its own profile entry)."""
    dims = [-1 if d is None or int(d) < 0 else int(d) for d in shape]
    if not dims or dims[0] != -1 or any(d < 0 for d in dims[1:]):
        raise ValueError(f"shape {tuple(shape)}: only a leading dynamic batch axis can follow the images' batch range")
    return tuple((b, *dims[1:]) for b in _batch_range(images_entry))


def batch_input_profiles(layout: str, images_entry, images: str = "images") -> dict:
    """Profile entries of a contract layout's other inputs whose only dynamic axis is ``batch``, with the
    images' batch range; read from the layout's declared shapes (:mod:`uniparser_sdk.contract.layouts`):
    products-v2 -> ``{"decode_params": ((bmin, 3), (bopt, 3), (bmax, 3))}``; products-v1 (decode_params
    (3,), static), raw-v1 and plugin-v1 -> ``{}``."""
    from ...contract import get_layout
    from ...contract.constants import DECODE_PARAM_ORDER
    from ...contract.layouts import BATCH, DYNAMIC_SYMBOLS

    out = {}
    for spec in get_layout(layout).inputs:
        if spec.name == images:
            continue
        dyn = spec.dynamic_axes
        if not dyn:
            continue  # static: no profile entry
        if dyn != {0: BATCH}:
            raise ValueError(f"layout {layout}: input {spec.name} {spec.shape} has dynamic axes other than the "
                             "batch; give its profile explicitly")
        shape = spec.resolve({"P": len(DECODE_PARAM_ORDER)})
        if any(isinstance(d, str) and d not in DYNAMIC_SYMBOLS for d in shape):
            raise ValueError(f"layout {layout}: input {spec.name} {spec.shape}: unknown fixed size")
        out[spec.name] = batch_only_profile([-1, *shape[1:]], images_entry)
    return out


def complete_profile(profile: dict, network_inputs: dict, images: str = "images") -> dict:
    """``profile`` plus an entry for every network input it lacks whose only dynamic dimension is the
    leading batch axis (``network_inputs``: ``{name: shape}`` as the parsed ONNX declares it, -1 for
    dynamic): such an input takes the images' batch range (products-v2's ``decode_params`` (batch, 3)).
    Static inputs (products-v1's ``decode_params`` (3,)) get no entry. Raises ValueError for a dynamic
    input that cannot be completed (other dynamic axes, or no ``images`` entry to take the batch from)."""
    out = dict(profile)
    for name, shape in network_inputs.items():
        dims = tuple(int(d) for d in shape)
        if name in out or not any(d < 0 for d in dims):
            continue
        if images not in out:
            raise ValueError(f"input {name!r} has dynamic shape {dims} but no profile (and no {images!r} entry "
                             "to take the batch range from)")
        try:
            out[name] = batch_only_profile(dims, out[images])
        except ValueError:
            raise ValueError(f"input {name!r} has dynamic shape {dims} but no profile") from None
    return out


def read_sidecar(engine_or_sidecar_path) -> dict:
    """:func:`uniparser_sdk.backends.tensorrt.sidecar.read_sidecar` as a dict: the stored keys plus ``meta``
    (a :class:`ModelMeta`)."""
    return _sidecar.read_sidecar(engine_or_sidecar_path).as_dict()


# ----------------------------------------------------------------------------------------------
# environment


def require_tensorrt():
    """Import tensorrt (10.x or 11.x) or raise :class:`TensorRTUnavailable` with a clear message."""
    try:
        import tensorrt as trt  # noqa: F401
    except ImportError as exc:
        raise TensorRTUnavailable(f"TensorRT is not installed; install it with: {INSTALL_HINT}") from exc
    except Exception as exc:  # a broken install (missing libnvinfer.so, ...)
        raise TensorRTUnavailable(f"TensorRT cannot be imported ({type(exc).__name__}: {exc}); "
                                  f"check the install: {INSTALL_HINT}") from exc
    major = version_tuple(getattr(trt, "__version__", "0"))[0]
    if major < 10:
        raise TensorRTUnavailable(f"TensorRT {trt.__version__} is too old: this SDK needs TensorRT 10 or newer")
    return trt


def gpu_compute_capability() -> tuple[str, str]:
    """(compute capability 'M.m', GPU name) of device 0, via torch, then nvidia-smi.
    Raises :class:`TensorRTUnavailable` when no GPU is found."""
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return f"{major}.{minor}", torch.cuda.get_device_name(0)
    except Exception:
        pass
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=compute_cap,name", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20, check=True).stdout
            first = out.strip().splitlines()[0]
            cc, name = (s.strip() for s in first.split(",", 1))
            return format_compute_capability(cc), name
        except Exception:
            pass
    raise TensorRTUnavailable("no NVIDIA GPU found (neither torch.cuda nor nvidia-smi sees one): "
                              "TensorRT engines can only be built and run on a GPU")


def check_environment() -> dict:
    """Everything --engine needs, checked before any work: TensorRT 10, a GPU, a usable builder."""
    trt = require_tensorrt()
    cc, name = gpu_compute_capability()
    logger = trt.Logger(trt.Logger.ERROR)
    try:
        builder = trt.Builder(logger)
    except Exception as exc:
        builder, err = None, exc
    else:
        err = None
    if builder is None:
        raise TensorRTUnavailable(f"TensorRT cannot create a builder on this machine (no usable CUDA GPU or driver)"
                                  f"{': ' + str(err) if err else ''}")
    return {"tensorrt_version": trt.__version__, "compute_capability": cc, "gpu_name": name}


# ----------------------------------------------------------------------------------------------
# build (GPU only; not exercised by the CPU test suite)


def load_plugin_library(trt, plugin_lib) -> str:
    """Register the plugin of a shared library before parsing (idempotent: see :mod:`.plugin`)."""
    from .plugin import PluginLoadError, load_plugin_library as _load

    try:
        return _load(trt, plugin_lib)
    except PluginLoadError as exc:
        raise EngineBuildError(str(exc)) from None


def onnx_is_fp16(data: bytes) -> bool:
    """Whether the ONNX computes in FP16 (a float16 initializer or graph tensor): uniparser-export --fp16."""
    import onnx

    proto = onnx.load_from_string(data)
    f16 = onnx.TensorProto.FLOAT16
    g = proto.graph
    return (any(t.data_type == f16 for t in g.initializer)
            or any(vi.type.tensor_type.elem_type == f16 for vi in list(g.value_info) + list(g.output))
            or any(a.t.data_type == f16 for n in g.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"))


def precision_plan(trt, fp16_requested: bool, onnx_fp16: bool) -> dict:
    """How to get the wanted precision from this TensorRT, by feature detection:
    ``{"strongly_typed": bool, "fp16_flag": bool, "precision": "fp16" | "fp32"}``.
    Raises :class:`EngineBuildError` when a float32 ONNX should become FP16 and this TensorRT has no
    ``BuilderFlag.FP16`` (11.x)."""
    has_strong = hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
    has_fp16_flag = hasattr(trt.BuilderFlag, "FP16")
    if onnx_fp16 or not fp16_requested:
        return {"strongly_typed": has_strong, "fp16_flag": False, "precision": "fp16" if onnx_fp16 else "fp32"}
    if has_fp16_flag:  # TensorRT 10: a float32 ONNX, FP16 kernels chosen by the builder (weakly typed)
        return {"strongly_typed": False, "fp16_flag": True, "precision": "fp16"}
    raise EngineBuildError(
        f"TensorRT {trt.__version__} has no BuilderFlag.FP16 (strong typing is permanent since 11.0): an FP16 "
        "engine is built from an FP16 ONNX -- export it with `uniparser-export --fp16` and build from that file")


def network_flags(trt, strongly_typed: bool) -> int:
    """``create_network`` flags: explicit batch is the only mode in 10.x/11.x (0); STRONGLY_TYPED where asked."""
    if not strongly_typed:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def build_engine(onnx_path, engine_path, fp16: bool = False, profile: dict | None = None,
                 workspace: int = DEFAULT_WORKSPACE, timing_cache=None, plugin_lib=None, log=print,
                 check: bool = True, operators=None) -> dict:
    """Build a serialized engine from ``onnx_path`` and write it atomically to ``engine_path``.

    ``fp16``: an FP16 engine; built strongly typed from an FP16 ONNX on every TensorRT, from a float32
    ONNX only where ``BuilderFlag.FP16`` exists (10.x). ``profile``: ``{input: (min, opt, max)}`` for every
    dynamic input (default :func:`profile_shapes`; an input whose only dynamic axis is the batch, such as
    products-v2's ``decode_params`` (batch, 3), gets the images' batch range when missing, see
    :func:`complete_profile`); ``timing_cache``: a file read if present and written
    back after the build; ``plugin_lib``: shared library with the ``UniParserDecode`` plugin (needed for
    plugin-v1 graphs). ``check``: run the static TensorRT ONNX-parser check first (``operators``: the
    operator matrix path, see :mod:`uniparser_sdk.export.trt_check`).
    Returns ``{"tensorrt_version", "profile", "precision", "seconds", "strongly_typed"}`` (``profile``: the
    one set on the builder, completed)."""
    import time

    data = Path(onnx_path).read_bytes()
    if check:
        try:
            from uniparser_sdk.export.trt_check import TrtCompatibilityError, require_trt_compatible
        except ImportError as exc:
            raise EngineBuildError(f"the TensorRT ONNX check needs onnx ({exc}): pip install 'uniparser-sdk[export]' "
                                   "or pass check=False") from None
        from ...fused import PLUGIN_NAME

        try:
            require_trt_compatible(data, matrix=operators, plugins=[PLUGIN_NAME], path=str(onnx_path))
        except TrtCompatibilityError as exc:
            raise EngineBuildError(f"{onnx_path} would not import into TensorRT: {exc}") from None
    trt = require_tensorrt()
    profile = profile or profile_shapes()
    logger = trt.Logger(trt.Logger.WARNING)
    if plugin_lib is not None:
        load_plugin_library(trt, plugin_lib)
    trt.init_libnvinfer_plugins(logger, "")
    try:
        onnx_fp16 = onnx_is_fp16(data)
    except ImportError:  # no onnx package: the caller's fp16 describes the file (the CLI's case)
        onnx_fp16 = bool(fp16)
    plan_p = precision_plan(trt, fp16, onnx_fp16)

    builder = trt.Builder(logger)
    if builder is None:
        raise TensorRTUnavailable("TensorRT cannot create a builder (no usable CUDA GPU)")
    network = builder.create_network(network_flags(trt, plan_p["strongly_typed"]))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(data, str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(f"TensorRT could not parse {onnx_path}: " + " | ".join(errors or ["unknown error"]))

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace))
    if plan_p["fp16_flag"]:
        if hasattr(builder, "platform_has_fast_fp16") and not builder.platform_has_fast_fp16:
            log("      warning: this GPU has no fast FP16; building anyway")
        config.set_flag(trt.BuilderFlag.FP16)

    opt_profile = builder.create_optimization_profile()
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    # inputs whose only dynamic axis is the batch (products-v2's decode_params (batch, 3)) follow the
    # images' batch range: read from the parsed ONNX input's shape, not from its name
    try:
        profile = complete_profile(profile, {t.name: tuple(t.shape) for t in inputs})
    except ValueError as exc:
        raise EngineBuildError(str(exc)) from None
    for tensor in inputs:
        if tensor.name in profile:
            mn, op, mx = profile[tensor.name]
            opt_profile.set_shape(tensor.name, mn, op, mx)
    unknown = set(profile) - {t.name for t in inputs}
    if unknown:
        raise EngineBuildError(f"profile names unknown input(s) {sorted(unknown)}; the network has "
                               f"{[t.name for t in inputs]}")
    config.add_optimization_profile(opt_profile)

    cache_path = Path(timing_cache) if timing_cache else None
    cache_bytes = cache_path.read_bytes() if cache_path and cache_path.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, False)

    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError("TensorRT failed to build the engine (see the TensorRT log above)")
    seconds = time.perf_counter() - t0
    atomic_write_bytes(Path(engine_path), plan)
    if cache_path is not None:
        atomic_write_bytes(cache_path, config.get_timing_cache().serialize())
    return {"tensorrt_version": trt.__version__, "profile": profile, "precision": plan_p["precision"],
            "seconds": seconds, "strongly_typed": plan_p["strongly_typed"]}


def build_engine_with_sidecar(onnx_path, engine_path, *, fp16: bool = False, profile: dict | None = None,
                              workspace: int = DEFAULT_WORKSPACE, timing_cache=None, plugin_lib=None,
                              env: dict | None = None, log=print, check: bool = True, operators=None) -> dict:
    """:func:`build_engine` plus the engine's sidecar (metadata read from the ONNX, TensorRT version, GPU,
    profile, precision, plugin, ONNX sha256). ``env``: :func:`check_environment`'s dict (computed when
    None). On any failure neither the engine nor the sidecar is left behind. Returns build_engine's dict."""
    import hashlib

    from ...contract import read_onnx_metadata

    env = env or check_environment()
    profile = profile or profile_shapes()
    engine_path = Path(engine_path)
    built = build_engine(onnx_path, engine_path, fp16=fp16, profile=profile, workspace=workspace,
                         timing_cache=timing_cache, plugin_lib=plugin_lib, log=log, check=check, operators=operators)
    try:
        meta = read_onnx_metadata(onnx_path)
        plugin = None
        if plugin_lib is not None:
            from ...fused import PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION

            plugin = {"name": PLUGIN_NAME, "version": PLUGIN_VERSION, "namespace": PLUGIN_NAMESPACE,
                      "library": str(plugin_lib)}
        digest = hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest()
        sidecar = make_sidecar(meta, tensorrt_version=built["tensorrt_version"],
                               compute_capability=env["compute_capability"], profile=built["profile"],
                               precision=built["precision"], plugin=plugin, gpu_name=env.get("gpu_name", ""),
                               onnx_sha256=digest)
        write_sidecar(engine_path, sidecar)
    except BaseException:
        engine_path.unlink(missing_ok=True)
        raise
    return built
