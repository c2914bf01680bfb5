"""Triton Inference Server model repository for a UniParser model (``uniparser-triton``).

Layout written (``DIR``)::

    uniparser/              ensemble: what clients call
      config.pbtxt
      1/                    (empty: ensembles have no files)
    uniparser_preprocess/   Python backend: decode + Parser's preprocessing   (CPU instances)
      config.pbtxt  1/model.py  1/model_meta.json
    uniparser_network/      the products-v2 graph, dynamic batching           (GPU/CPU instances)
      config.pbtxt  1/model.onnx   (backend onnxruntime, platform onnxruntime_onnx)
                 or 1/model.plan   (platform tensorrt_plan, when an engine is given)
                 or 1/model.py + 1/model.onnx  (backend python: ONNX Runtime inside the Python
                                                backend, for servers without a recent onnxruntime backend)
    uniparser_postprocess/  Python backend: the numpy finishing -> label maps, scores, JSON (CPU instances)
      config.pbtxt  1/model.py  1/model_meta.json

Why an ensemble and not one Python model around ``Parser``: the network then runs on Triton's own
onnxruntime / TensorRT backend, which batches requests of equal shape itself (the dynamic batcher needs
the products-v2 layout: Triton prepends a batch axis to every input, so thresholds are one row per
image), runs on the GPU without Python in the loop, and scales independently of the CPU-bound
pre/post-processing (their own instance counts). The Python steps run this SDK's code
(:mod:`uniparser_sdk.serving.pipeline`), so results equal ``Parser.predict``.

Client-facing tensors of the ensemble (one image per request; batch axis 1):

=================  ===========  ==========  ====================================================
name               dtype        dims        meaning
=================  ===========  ==========  ====================================================
``image_bytes``    TYPE_STRING  [1]         input, optional: an encoded image file (PNG, JPEG, ...)
``image``          TYPE_UINT8   [-1,-1,-1]  input, optional: raw pixels HxWxC, BGR (C = 1, 3, 4)
``thresholds``     TYPE_FP32    [3]         input, optional: [ctr_score, mask_thr, cate_score_thr]
``scores``         TYPE_FP32    [-1]        one per person, descending
``part_maps``      TYPE_UINT8   [-1,-1,-1]  persons x H x W part labels at the original size
``semantic``       TYPE_UINT8   [-1,-1]     H x W, the best-scoring person's label per pixel
``result_json``    TYPE_STRING  [1]         ParseResult.to_json(include_parts=True): RLE masks
=================  ===========  ==========  ====================================================

Exactly one of ``image_bytes`` / ``image`` per request. The ensemble's ``parameters`` carry the class
names, the default thresholds and the layout, so any client can label the maps.

torch-free; reads the ONNX file with ``onnx`` when installed, else ONNX Runtime.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from ..contract import DECODE_PARAM_ORDER, ModelMeta, read_onnx_metadata
from ..contract.layouts import BATCH, DYNAMIC_SYMBOLS, LAYOUT_PRODUCTS_V2, PRODUCTS_V2, TensorSpec
from ..errors import UserInputError

__all__ = ["ENSEMBLE", "PREPROCESS", "NETWORK", "POSTPROCESS", "NETWORK_BACKENDS", "RepositoryError",
           "RepositoryOptions", "model_configs", "write_triton_repository", "network_tensors", "ENSEMBLE_INPUTS",
           "ENSEMBLE_OUTPUTS", "TRITON_DTYPES"]

ENSEMBLE = "uniparser"
PREPROCESS = "uniparser_preprocess"
NETWORK = "uniparser_network"
POSTPROCESS = "uniparser_postprocess"
NETWORK_BACKENDS = ("onnxruntime", "tensorrt", "python")

#: numpy dtype name (the contract's) -> Triton data type
TRITON_DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64", "int32": "TYPE_INT32",
                 "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL", "bytes": "TYPE_STRING"}

# (name, triton dtype, dims, optional) of the ensemble; see the module docstring
ENSEMBLE_INPUTS = (("image_bytes", "TYPE_STRING", [1], True), ("image", "TYPE_UINT8", [-1, -1, -1], True),
                   ("thresholds", "TYPE_FP32", [len(DECODE_PARAM_ORDER)], True))
ENSEMBLE_OUTPUTS = (("scores", "TYPE_FP32", [-1]), ("part_maps", "TYPE_UINT8", [-1, -1, -1]),
                    ("semantic", "TYPE_UINT8", [-1, -1]), ("result_json", "TYPE_STRING", [1]))
# pre -> network / post tensors (see uniparser_sdk.serving.pipeline)
PRE_OUTPUTS = (("images", "TYPE_FP32", None), ("decode_params", "TYPE_FP32", None),
               ("image_meta", "TYPE_INT64", [6]))
# postprocess outputs -> ensemble outputs (postprocess keeps the contract's names for its inputs)
POST_OUTPUTS = {"person_scores": "scores", "part_maps": "part_maps", "semantic": "semantic",
                "result_json": "result_json"}

_MODEL_PY = '''"""Triton Python-backend model {name!r}, written by uniparser-triton (uniparser-sdk {version}).

It runs uniparser-sdk's own code: install the SDK into the Python environment the Python backend uses
(pip install uniparser-sdk in the server image, or an EXECUTION_ENV_PATH archive).
"""
from uniparser_sdk.serving.triton_models import {cls} as TritonPythonModel  # noqa: F401
'''


class RepositoryError(UserInputError):
    """The model file or the options cannot make a Triton repository (the message says why)."""


@dataclass(frozen=True)
class RepositoryOptions:
    """Serving knobs written into the config.pbtxt files.

    ``max_batch_size``: per model (Triton's dynamic batcher stacks up to this many requests of equal
    image shape for the network). ``dynamic_batching``: on/off; ``max_queue_delay_us``: how long the
    batcher may wait to fill a batch. ``network_instances`` / ``network_kind``: execution instances
    of the network (``auto`` lets Triton choose: GPU when it has one); ``cpu_instances``: instances
    of each Python step. ``threads``: intra-op threads of ONNX Runtime (0 = its default).
    """

    max_batch_size: int = 8
    dynamic_batching: bool = True
    max_queue_delay_us: int = 2000
    network_instances: int = 1
    network_kind: str = "auto"  # auto | gpu | cpu
    cpu_instances: int = 2
    threads: int = 0

    def check(self) -> None:
        if not 1 <= int(self.max_batch_size) <= 1024:
            raise RepositoryError(f"max_batch_size must be in 1..1024, got {self.max_batch_size}")
        if int(self.network_instances) < 1 or int(self.cpu_instances) < 1:
            raise RepositoryError("instance counts must be >= 1")
        if self.network_kind not in ("auto", "gpu", "cpu"):
            raise RepositoryError(f"network_kind must be auto, gpu or cpu, got {self.network_kind!r}")
        if int(self.max_queue_delay_us) < 0 or int(self.threads) < 0:
            raise RepositoryError("max_queue_delay_us and threads must be >= 0")


# ---------------------------------------------------------------------------------------------- shapes

def _sizes(meta: ModelMeta) -> dict:
    cfg = meta.config or {}
    n = int(cfg.get("num_classes") or len(meta.classes))
    return {"K": int(meta.thresholds["max_instances"]), "C": n - 1, "P": len(DECODE_PARAM_ORDER),
            "S": int(cfg.get("num_grid", 40)), "D": 128}


def triton_dims(spec: TensorSpec, sizes: Mapping[str, int]) -> tuple[list, Optional[list]]:
    """Contract shape (with its leading ``batch``) -> (Triton ``dims``, ``reshape`` or None). A tensor
    that is only (batch,) becomes dims [1] with reshape [] (Triton's rule for batched scalars)."""
    shape = spec.resolve(sizes)
    if not shape or shape[0] != BATCH:
        raise RepositoryError(f"tensor {spec.name} {spec.shape} has no leading batch axis; Triton's batcher "
                              "needs one (export the products-v2 layout)")
    dims = [-1 if d in DYNAMIC_SYMBOLS else int(d) for d in shape[1:]]
    if not dims:
        return [1], []
    return dims, None


def network_tensors(meta: ModelMeta) -> tuple[list, list]:
    """[(name, triton dtype, dims, reshape)] of the network's inputs and outputs, from the contract."""
    sizes = _sizes(meta)
    ins = [(t.name, TRITON_DTYPES[t.dtype], *triton_dims(t, sizes)) for t in PRODUCTS_V2.inputs]
    outs = [(t.name, TRITON_DTYPES[t.dtype], *triton_dims(t, sizes)) for t in PRODUCTS_V2.outputs]
    return ins, outs


# ---------------------------------------------------------------------------------------------- pbtxt

def _dims(d) -> str:
    return "[ " + ", ".join(str(int(v)) for v in d) + " ]"


def _tensor(name, dtype, dims, reshape=None, optional=False) -> str:
    lines = [f'    name: "{name}"', f"    data_type: {dtype}", f"    dims: {_dims(dims)}"]
    if reshape is not None:
        lines.append(f"    reshape: {{ shape: {_dims(reshape)} }}")
    if optional:
        lines.append("    optional: true")
    return "  {\n" + "\n".join(lines) + "\n  }"


def _block(key: str, items: list) -> str:
    return f"{key} [\n" + ",\n".join(items) + "\n]\n"


def _params(params: Mapping[str, str]) -> str:
    out = ""
    for k, v in params.items():
        out += f"parameters {{\n  key: {json.dumps(k)}\n  value: {{ string_value: {json.dumps(str(v))} }}\n}}\n"
    return out


def _batching(opts: RepositoryOptions) -> str:
    if not opts.dynamic_batching:
        return ""
    sizes = sorted({s for s in (opts.max_batch_size // 2, opts.max_batch_size) if s >= 1})
    return ("dynamic_batching {\n"
            f"  preferred_batch_size: {_dims(sizes)}\n"
            f"  max_queue_delay_microseconds: {int(opts.max_queue_delay_us)}\n"
            "}\n")


def _instances(count: int, kind: str) -> str:
    k = {"gpu": "\n    kind: KIND_GPU", "cpu": "\n    kind: KIND_CPU", "auto": ""}[kind]
    return f"instance_group [\n  {{\n    count: {int(count)}{k}\n  }}\n]\n"


def _header(name: str, engine: str, opts: RepositoryOptions) -> str:
    return f'name: "{name}"\n{engine}\nmax_batch_size: {int(opts.max_batch_size)}\n'


def _network_config(meta: ModelMeta, backend: str, opts: RepositoryOptions) -> str:
    ins, outs = network_tensors(meta)
    engine = {"onnxruntime": 'platform: "onnxruntime_onnx"\nbackend: "onnxruntime"',
              "tensorrt": 'platform: "tensorrt_plan"\nbackend: "tensorrt"',
              "python": 'backend: "python"'}[backend]
    kind = "cpu" if backend == "python" else ("gpu" if backend == "tensorrt" else opts.network_kind)
    text = _header(NETWORK, engine, opts)
    text += _block("input", [_tensor(*t) for t in ins]) + _block("output", [_tensor(*t) for t in outs])
    text += _instances(opts.network_instances, kind) + _batching(opts)
    params = {"uniparser_layout": LAYOUT_PRODUCTS_V2}
    if backend == "onnxruntime" and opts.threads:
        params["intra_op_thread_count"] = str(int(opts.threads))
    if backend == "python":
        params["threads"] = str(int(opts.threads))
    return text + _params(params)


def _preprocess_config(opts: RepositoryOptions) -> str:
    text = _header(PREPROCESS, 'backend: "python"', opts)
    text += _block("input", [_tensor(n, d, dims, optional=o) for n, d, dims, o in ENSEMBLE_INPUTS])
    text += _block("output", [_tensor("images", "TYPE_FP32", [3, -1, -1]),
                              _tensor("decode_params", "TYPE_FP32", [len(DECODE_PARAM_ORDER)]),
                              _tensor("image_meta", "TYPE_INT64", [6])])
    return text + _instances(opts.cpu_instances, "cpu")


def _postprocess_config(meta: ModelMeta, opts: RepositoryOptions) -> str:
    _, outs = network_tensors(meta)
    ins = [_tensor(*t) for t in outs] + [_tensor("image_meta", "TYPE_INT64", [6]),
                                         _tensor("decode_params", "TYPE_FP32", [len(DECODE_PARAM_ORDER)])]
    dims = {n: d for n, _, d in ENSEMBLE_OUTPUTS}
    types = {n: t for n, t, _ in ENSEMBLE_OUTPUTS}
    text = _header(POSTPROCESS, 'backend: "python"', opts)
    text += _block("input", ins)
    text += _block("output", [_tensor(own, types[ens], dims[ens]) for own, ens in POST_OUTPUTS.items()])
    return text + _instances(opts.cpu_instances, "cpu")


def _ensemble_config(meta: ModelMeta, opts: RepositoryOptions) -> str:
    _, outs = network_tensors(meta)
    text = _header(ENSEMBLE, 'platform: "ensemble"', opts)
    text += _block("input", [_tensor(n, d, dims, optional=o) for n, d, dims, o in ENSEMBLE_INPUTS])
    text += _block("output", [_tensor(n, d, dims) for n, d, dims in ENSEMBLE_OUTPUTS])

    def step(model, inputs: Mapping[str, str], outputs: Mapping[str, str]) -> str:
        lines = [f'model_name: "{model}"', "model_version: -1"]
        lines += [f'input_map {{ key: "{k}" value: "{v}" }}' for k, v in inputs.items()]
        lines += [f'output_map {{ key: "{k}" value: "{v}" }}' for k, v in outputs.items()]
        return "    {\n" + "".join(f"      {line}\n" for line in lines) + "    }"

    pre = step(PREPROCESS, {n: n for n, *_ in ENSEMBLE_INPUTS}, {n: f"pre_{n}" for n, *_ in PRE_OUTPUTS})
    net = step(NETWORK, {"images": "pre_images", "decode_params": "pre_decode_params"},
               {t[0]: f"net_{t[0]}" for t in outs})
    post_in = {t[0]: f"net_{t[0]}" for t in outs}
    post_in.update({"image_meta": "pre_image_meta", "decode_params": "pre_decode_params"})
    post = step(POSTPROCESS, post_in, dict(POST_OUTPUTS))
    text += "ensemble_scheduling {\n  step [\n" + ",\n".join([pre, net, post]) + "\n  ]\n}\n"
    import uniparser_sdk

    params = {"classes": json.dumps(list(meta.classes)),
              "thresholds": json.dumps({k: float(meta.thresholds[k]) for k in DECODE_PARAM_ORDER}),
              "max_instances": str(int(meta.thresholds["max_instances"])),
              "layout": meta.layout, "sdk_version": uniparser_sdk.__version__,
              "source_sha256": meta.source_sha256}
    return text + _params(params)


def model_configs(meta: ModelMeta, network_backend: str = "onnxruntime",
                  options: Optional[RepositoryOptions] = None) -> dict[str, str]:
    """config.pbtxt text of each model of the repository, by model name (nothing written)."""
    opts = options or RepositoryOptions()
    opts.check()
    if network_backend not in NETWORK_BACKENDS:
        raise RepositoryError(f"network backend must be one of {NETWORK_BACKENDS}, got {network_backend!r}")
    if meta.layout != LAYOUT_PRODUCTS_V2:
        raise RepositoryError(f"Triton's dynamic batcher needs the {LAYOUT_PRODUCTS_V2} layout (decode_params one "
                              f"row per image); this model is {meta.layout}: re-export it with "
                              f"uniparser-export --variant products-v2-fp32 (or uniparser-export --triton-repo DIR)")
    return {ENSEMBLE: _ensemble_config(meta, opts), PREPROCESS: _preprocess_config(opts),
            NETWORK: _network_config(meta, network_backend, opts), POSTPROCESS: _postprocess_config(meta, opts)}


# ---------------------------------------------------------------------------------------------- ONNX I/O

def onnx_io(path) -> dict[str, tuple[str, list]]:
    """{tensor name: (numpy dtype name, dims)} of an ONNX file's graph inputs and outputs (symbolic
    dimensions as strings)."""
    try:
        import onnx
    except ImportError:
        onnx = None
    if onnx is not None:
        proto = onnx.load(str(path), load_external_data=False)
        out = {}
        for vi in list(proto.graph.input) + list(proto.graph.output):
            tt = vi.type.tensor_type
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name
            out[vi.name] = (dtype, [d.dim_param if d.HasField("dim_param") else
                                    (int(d.dim_value) if d.HasField("dim_value") else None) for d in tt.shape.dim])
        return out
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
             "tensor(int32)": "int32", "tensor(uint8)": "uint8", "tensor(bool)": "bool"}
    return {t.name: (names.get(t.type, t.type), list(t.shape)) for t in list(sess.get_inputs()) + list(sess.get_outputs())}


def check_onnx_against_contract(path, meta: ModelMeta) -> None:
    """Refuse an ONNX file whose inputs/outputs differ from the products-v2 declaration."""
    io = onnx_io(path)
    sizes = _sizes(meta)
    problems = []
    for spec in PRODUCTS_V2.inputs + PRODUCTS_V2.outputs:
        if spec.name not in io:
            problems.append(f"{spec.name} missing")
            continue
        dtype, dims = io[spec.name]
        want = spec.resolve(sizes)
        if dtype != spec.dtype:
            problems.append(f"{spec.name} is {dtype}, the contract says {spec.dtype}")
        # a symbolic dimension in the file (onnxsim leaves K and C unnamed on some outputs) accepts the
        # contract's fixed size; two different fixed sizes, or another rank, do not
        if len(dims) != len(want) or any(isinstance(w, int) and isinstance(d, int) and d != w
                                         for d, w in zip(dims, want)):
            problems.append(f"{spec.name} has shape {dims}, the contract says {list(want)}")
    if problems:
        raise RepositoryError(f"{path} does not follow {LAYOUT_PRODUCTS_V2}: " + "; ".join(problems))


# ---------------------------------------------------------------------------------------------- writer

def write_triton_repository(onnx_path, out_dir, *, engine_path=None, network_backend: Optional[str] = None,
                            options: Optional[RepositoryOptions] = None, overwrite: bool = False) -> Path:
    """Write the model repository (see the module docstring) for a products-v2 ONNX file; returns
    ``out_dir``. ``engine_path``: a TensorRT engine of that file (network backend ``tensorrt``).
    ``network_backend``: ``onnxruntime`` (default), ``tensorrt`` (default with an engine) or
    ``python``. The directory is built next to ``out_dir`` and renamed into place: a failure leaves
    nothing; an existing non-empty ``out_dir`` is replaced only with ``overwrite``."""
    onnx_path = Path(onnx_path)
    out_dir = Path(out_dir)
    if not onnx_path.is_file():
        raise RepositoryError(f"ONNX model not found: {onnx_path}")
    backend = network_backend or ("tensorrt" if engine_path else "onnxruntime")
    if backend == "tensorrt" and not engine_path:
        raise RepositoryError("network backend tensorrt needs the engine (engine_path / --engine)")
    if engine_path is not None and not Path(engine_path).is_file():
        raise RepositoryError(f"TensorRT engine not found: {engine_path}")
    if out_dir.exists() and not out_dir.is_dir():
        raise RepositoryError(f"{out_dir} is a file; a model repository is a directory (give a new or empty one)")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise RepositoryError(f"{out_dir} exists and is not empty; pass overwrite=True (--overwrite) to replace it")
    meta = read_onnx_metadata(onnx_path)
    opts = options or RepositoryOptions()
    if backend == "tensorrt":
        opts = _fit_engine_batch(engine_path, opts)
    configs = model_configs(meta, backend, opts)
    check_onnx_against_contract(onnx_path, meta)
    import uniparser_sdk

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        meta_json = json.dumps(meta.to_props(), indent=2, sort_keys=True)
        for name, text in configs.items():
            (tmp / name / "1").mkdir(parents=True)
            (tmp / name / "config.pbtxt").write_text(text)
        for name, cls in ((PREPROCESS, "PreprocessModel"), (POSTPROCESS, "PostprocessModel")):
            (tmp / name / "1" / "model.py").write_text(_MODEL_PY.format(name=name, cls=cls,
                                                                        version=uniparser_sdk.__version__))
            (tmp / name / "1" / "model_meta.json").write_text(meta_json)
        net = tmp / NETWORK / "1"
        if backend == "tensorrt":
            shutil.copyfile(engine_path, net / "model.plan")
        else:
            shutil.copyfile(onnx_path, net / "model.onnx")
        if backend == "python":
            (net / "model.py").write_text(_MODEL_PY.format(name=NETWORK, cls="OnnxNetworkModel",
                                                           version=uniparser_sdk.__version__))
        os.chmod(tmp, 0o755)
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _fit_engine_batch(engine_path, opts: RepositoryOptions) -> RepositoryOptions:
    """max_batch_size <= the engine profile's largest batch (read from its sidecar when present)."""
    from dataclasses import replace

    try:
        from ..backends.tensorrt.sidecar import read_sidecar

        side = read_sidecar(engine_path)
    except Exception as exc:  # no sidecar: the engine's limits are unknown here
        raise RepositoryError(f"cannot read the engine's sidecar ({exc}); it tells the profile's batch sizes") from None
    if side.meta.layout != LAYOUT_PRODUCTS_V2:
        raise RepositoryError(f"the engine was built from a {side.meta.layout} model; Triton needs "
                              f"{LAYOUT_PRODUCTS_V2} (decode_params (batch, 3) in the profile)")
    prof = side.profile.get("images")
    dp = side.profile.get("decode_params")
    if prof is not None and dp is not None and \
            (dp.min[0], dp.opt[0], dp.max[0]) != (prof.min[0], prof.opt[0], prof.max[0]):
        raise RepositoryError(f"the engine's decode_params profile batch {dp.min[0]}..{dp.max[0]} differs from its "
                              f"images batch {prof.min[0]}..{prof.max[0]}; rebuild it with uniparser-export --engine")
    if prof is not None:
        mx = int(prof.max[0])
        if mx < opts.max_batch_size:
            opts = replace(opts, max_batch_size=mx)
    return opts
