"""torch -> ONNX export of UniParser: the end-to-end artefact, its fp16 variant and the raw network.

One self-contained file per export (no external data; the R50/R101 models are far below protobuf's 2 GB
limit), written atomically (temporary file in the destination directory + rename): a failed export
-- tracing, simplification, checker, parity -- leaves no file behind, and an existing file at the
destination is replaced only by a complete, verified one.

Layouts (see :mod:`uniparser_sdk.model_meta`):

* ``products-v1`` (default): :class:`~uniparser_sdk.model.end_to_end.EndToEnd` -- input ``images``
  (dynamic batch, height, width) and ``decode_params`` (the thresholds, fed by the runtime from the
  metadata or the user's overrides), the network and decode steps 1-4 in standard ONNX operators with
  fixed-K outputs plus a count. DCNv2 is the standard ``DeformConv`` operator (opset >= 19).
* ``raw-v1``: the network only (``center_logits``, ``ins_feats``, ``sem_feats``, always float32): the
  input of the fused decode plugin rewrite (:mod:`uniparser_sdk.export.plugin_rewrite`).

fp16 (``fp16=True``): weights and convolutions in half precision; GroupNorm is computed in float32
(its variance is the one place where half precision loses accuracy badly), the graph input stays
float32 and the decode (cosine products, thresholds) runs in float32 on the network's outputs cast
back to float32. The parity report measures the deviation from the float32 PyTorch model.

Parity: before the file is written, the serialized model is run by ONNX Runtime on structured
synthetic images of a size other than the export sample size and compared with PyTorch
(:mod:`uniparser_sdk.export.parity`); beyond tolerance the export fails. For that comparison the
products graph keeps its three raw network tensors under their names (``center_logits``,
``ins_feats``, ``sem_feats``, declared in ``value_info``), so the parity check can expose them as extra
outputs of exactly the graph that ships.
"""
from __future__ import annotations

import copy
import io
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from uniparser_sdk.contract import LAYOUT_PRODUCTS, LAYOUT_RAW, ModelMeta, build_model_meta, get_layout
from uniparser_sdk.contract.layouts import LAYOUT_PRODUCTS_V2, PRODUCTS_LAYOUTS, RAW_V1

from uniparser_sdk.model.end_to_end import EndToEnd
from uniparser_sdk.errors import UniParserError

from uniparser_sdk.io_utils import atomic_write_bytes

from .declare import declare_io

DEFAULT_OPSET = 19
SUPPORTED_OPSETS = (19, 20)  # DeformConv needs 19; 20 is the TorchScript exporter's maximum
MAX_INSTANCES_LIMIT = 3840  # TensorRT's TopK limit
DEFAULT_SAMPLE_HW = (256, 352)
SIZE_DIVISOR = 32
PRODUCER = "uniparser-sdk"



class ExportError(UniParserError, RuntimeError):
    """The export failed; the message says at which step and why. Nothing was written."""


class ParityError(ExportError):
    """ONNX Runtime and PyTorch disagree beyond tolerance (``.report`` holds the numbers)."""

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


@dataclass
class ExportReport:
    path: str
    layout: str
    precision: str
    opset: int
    max_instances: int
    simplified: bool
    simplify_message: str
    num_nodes: int
    op_counts: dict
    size_bytes: int
    parity: object = None  # parity.ParityReport or None
    seconds: dict = field(default_factory=dict)

    def summary(self) -> str:
        ops = ", ".join(f"{k} {v}" for k, v in sorted(self.op_counts.items(), key=lambda kv: -kv[1])[:8])
        simplified = "yes" if self.simplified else "no"
        if self.simplify_message:
            simplified += f" - {self.simplify_message}"
        lines = [f"wrote {self.path} ({self.size_bytes / 2**20:.1f} MiB, layout {self.layout}, {self.precision}, "
                 f"opset {self.opset}, K={self.max_instances})",
                 f"  graph: {self.num_nodes} nodes ({ops}, ...); simplified: {simplified}"]
        if self.parity is not None:
            lines.append(f"  parity: {'PASS' if self.parity.ok else 'FAIL'}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# modules traced for export


class _Fp32GroupNorm(nn.Module):
    """GroupNorm computed in float32 inside a half-precision network."""

    def __init__(self, gn: nn.GroupNorm):
        super().__init__()
        self.num_groups, self.eps = gn.num_groups, gn.eps
        self.weight = nn.Parameter(gn.weight.detach().float().clone(), requires_grad=False)
        self.bias = nn.Parameter(gn.bias.detach().float().clone(), requires_grad=False)

    def forward(self, x):
        return F.group_norm(x.float(), self.num_groups, self.weight, self.bias, self.eps).to(x.dtype)


class _HalfConvFunction(torch.autograd.Function):
    """A half-precision convolution for tracing: exported as a plain ONNX ``Conv`` on float16 tensors,
    evaluated (while tracing) in float32 -- x86 CPUs have no fast float16 convolution, and tracing an
    R101 in true half precision takes tens of minutes."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        b = None if bias is None else bias.float()
        return F.conv2d(x.float(), weight.float(), b, stride, padding, dilation, groups).to(x.dtype)

    @staticmethod
    def symbolic(g, x, weight, bias, stride, padding, dilation, groups):
        kh, kw = weight.type().sizes()[2:]
        inputs = [x, weight] if bias is None else [x, weight, bias]
        return g.op("Conv", *inputs, kernel_shape_i=[kh, kw], strides_i=list(stride),
                    pads_i=[padding[0], padding[1], padding[0], padding[1]], dilations_i=list(dilation),
                    group_i=groups)


class _HalfConv2d(nn.Module):
    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(f"unsupported convolution padding {conv.padding!r} / {conv.padding_mode!r}")
        self.weight = nn.Parameter(conv.weight.detach().half().clone(), requires_grad=False)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().half().clone(), requires_grad=False)
        self.stride, self.padding = tuple(conv.stride), tuple(conv.padding)
        self.dilation, self.groups = tuple(conv.dilation), conv.groups

    def forward(self, x):
        return _HalfConvFunction.apply(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def _replace_modules(module: nn.Module) -> None:
    """GroupNorm -> float32 GroupNorm; Conv2d -> traced half convolution (see _HalfConvFunction)."""
    for name, child in module.named_children():
        if isinstance(child, nn.GroupNorm):
            setattr(module, name, _Fp32GroupNorm(child))
        elif type(child) is nn.Conv2d:
            setattr(module, name, _HalfConv2d(child))
        else:
            _replace_modules(child)


class HalfNetwork(nn.Module):
    """A half-precision copy of a UniParser network for export: float32 images in, half feature maps
    out. GroupNorm stays float32; ``seg_kernels`` is the float32 original (the decode runs in float32).
    Convolutions are traced through :class:`_HalfConvFunction` (export only: their values while
    tracing are computed in float32)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        net = copy.deepcopy(model).eval()
        self._seg_kernels = model.seg_kernels.detach().float().clone()
        net.half()
        _replace_modules(net)
        self.net = net
        self.config = model.config

    @property
    def seg_kernels(self) -> torch.Tensor:
        return self._seg_kernels

    def forward(self, images):
        return self.net(images.half())


class _Tap(nn.Module):
    """Passes the network through and remembers its outputs (so the export wrapper can name them)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.config = net.config
        self.last = None

    @property
    def seg_kernels(self):
        return self.net.seg_kernels

    def forward(self, images):
        self.last = self.net(images)
        return self.last


class ProductsWithRaw(nn.Module):
    """EndToEnd outputs followed by the three raw network tensors (named in the export, then moved
    from the graph outputs to ``value_info``)."""

    def __init__(self, net: nn.Module, max_instances: int):
        super().__init__()
        self.tap = _Tap(net)
        self.e2e = EndToEnd(self.tap, max_instances)

    def forward(self, images, decode_params):
        outs = self.e2e(images, decode_params)
        return (*outs, *self.tap.last)


class RawFloat(nn.Module):
    """The network with float32 outputs (the raw-v1 contract, also for a half-precision network)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, images):
        return tuple(o.float() for o in self.net(images))


# ----------------------------------------------------------------------------------------------
# helpers


def build_meta(model, info: dict | None = None, *, layout: str = LAYOUT_PRODUCTS, precision: str = "fp32",
               max_instances: int | None = None, **decode_overrides) -> ModelMeta:
    """ModelMeta for an export of ``model`` (``info`` as returned by ``load_model``); decode thresholds
    are the config's, with ``decode_overrides`` (ctr_score, mask_thr, cate_score_thr) applied."""
    info = info or {}
    overrides = {k: v for k, v in decode_overrides.items() if v is not None}
    if max_instances is not None:
        overrides["max_instances"] = int(max_instances)
    cfg = replace(model.config, decode=model.config.decode.updated(**overrides))  # validates the names
    return build_model_meta(cfg, layout=layout, source_sha256=str(info.get("sha256", "")),
                            source_format=str(info.get("format", "")), precision=precision,
                            checkpoint_meta=info.get("meta"))


def effective_max_instances(model, max_instances: int) -> int:
    """K is capped by the number of grid cells S*S (there cannot be more peaks)."""
    s = int(model.config.num_grid)
    return max(1, min(int(max_instances), s * s))


def validate_export_args(opset: int, max_instances: int, sample_hw) -> None:
    if opset not in SUPPORTED_OPSETS:
        raise ValueError(f"opset {opset} is not supported: DeformConv needs opset >= 19 and the exporter "
                         f"goes up to {SUPPORTED_OPSETS[-1]}; choose one of {list(SUPPORTED_OPSETS)}")
    if not 1 <= int(max_instances) <= MAX_INSTANCES_LIMIT:
        raise ValueError(f"max instances must be in 1..{MAX_INSTANCES_LIMIT} (TensorRT's TopK limit), "
                         f"got {max_instances}")
    h, w = sample_hw
    if h <= 0 or w <= 0 or h % SIZE_DIVISOR or w % SIZE_DIVISOR:
        raise ValueError(f"sample size {w}x{h} (WIDTHxHEIGHT) must be positive multiples of {SIZE_DIVISOR}")


def _dim_names(proto) -> dict:
    out = {}
    for vi in list(proto.graph.input) + list(proto.graph.output):
        out[vi.name] = [d.dim_param if d.HasField("dim_param") else None for d in vi.type.tensor_type.shape.dim]
    return out


def _restore_dim_names(proto, names: dict) -> None:
    """onnxsim renames symbolic dimensions; put ours back (the runtime and TensorRT read them)."""
    for vi in list(proto.graph.input) + list(proto.graph.output):
        want = names.get(vi.name)
        dims = vi.type.tensor_type.shape.dim
        if not want or len(want) != len(dims):
            continue
        for d, name in zip(dims, want):
            if name is not None and not d.HasField("dim_value"):
                d.dim_param = name


def simplify_model(proto, log: Callable[[str], None] = print):
    """onnxsim with a clean fallback: returns (model, simplified?, message)."""
    try:
        import onnxsim
    except ImportError:
        return proto, False, ("onnxsim is not installed (pip install 'uniparser-sdk[export]'); "
                              "kept the unsimplified graph")
    names = _dim_names(proto)
    before = len(proto.graph.node)
    try:
        simplified, ok = onnxsim.simplify(proto)
    except Exception as exc:  # onnxsim raises many kinds of errors
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return proto, False, f"onnxsim failed ({type(exc).__name__}: {first}); kept the unsimplified graph"
    if not ok:
        return proto, False, "onnxsim could not validate the simplified graph; kept the unsimplified graph"
    _restore_dim_names(simplified, names)
    return simplified, True, f"{before} -> {len(simplified.graph.node)} nodes"


def _move_outputs_to_value_info(proto, names) -> None:
    keep, moved = [], []
    for vi in proto.graph.output:
        (moved if vi.name in names else keep).append(vi)
    del proto.graph.output[:]
    proto.graph.output.extend(keep)
    existing = {vi.name for vi in proto.graph.value_info}
    proto.graph.value_info.extend(vi for vi in moved if vi.name not in existing)


def products_v1_view(proto):
    """A copy of a products-v2 graph that takes products-v1's ``decode_params`` (3,): the one row is
    expanded to (batch, 3) in front of the unchanged v2 graph (the parity gate feeds one set of
    thresholds). Only for checking; never written."""
    import onnx
    from onnx import TensorProto, helper

    view = copy.deepcopy(proto)
    g = view.graph
    rows = "decode_params__rows"
    for node in g.node:
        for i, name in enumerate(node.input):
            if name == "decode_params":
                node.input[i] = rows
    for vi in g.input:
        if vi.name == "decode_params":
            vi.CopyFrom(helper.make_tensor_value_info("decode_params", TensorProto.FLOAT, [3]))
    g.initializer.extend([onnx.numpy_helper.from_array(np.array([1, 3], np.int64), "decode_params__one_row"),
                          onnx.numpy_helper.from_array(np.array([0], np.int64), "decode_params__axis0"),
                          onnx.numpy_helper.from_array(np.array([3], np.int64), "decode_params__three")])
    prefix = [
        helper.make_node("Reshape", ["decode_params", "decode_params__one_row"], ["decode_params__row"]),
        helper.make_node("Shape", ["images"], ["decode_params__ishape"]),
        helper.make_node("Gather", ["decode_params__ishape", "decode_params__axis0"], ["decode_params__b"], axis=0),
        helper.make_node("Concat", ["decode_params__b", "decode_params__three"], ["decode_params__shape"], axis=0),
        helper.make_node("Expand", ["decode_params__row", "decode_params__shape"], [rows]),
    ]
    nodes = prefix + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    return view


def set_metadata(proto, meta: ModelMeta) -> None:
    import uniparser_sdk

    props = meta.to_props()
    kept = [p for p in proto.metadata_props if p.key not in props]
    del proto.metadata_props[:]
    for p in kept:
        proto.metadata_props.add(key=p.key, value=p.value)
    for k, v in sorted(props.items()):
        proto.metadata_props.add(key=k, value=v)
    proto.producer_name = PRODUCER
    proto.producer_version = uniparser_sdk.__version__
    proto.doc_string = (f"UniParser multi-human parsing ({meta.config.get('name', '?')}), layout {meta.layout}, "
                        f"{meta.precision}; metadata under the 'uniparser.' keys")


def check_model(proto) -> None:
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ExportError(f"onnx.checker rejected the exported graph: {str(exc).splitlines()[0]}") from exc


def atomic_write_model(proto_or_bytes, path) -> int:
    """Serialize (single file, no external data) into a temporary file next to ``path``, then rename."""
    data = proto_or_bytes if isinstance(proto_or_bytes, (bytes, bytearray)) else proto_or_bytes.SerializeToString()
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"output path {path} is a directory; give a file name ending in .onnx")
    atomic_write_bytes(path, data)
    return len(data)


# ----------------------------------------------------------------------------------------------
# export


def trace_to_onnx(model, *, layout: str = LAYOUT_PRODUCTS, opset: int = DEFAULT_OPSET, fp16: bool = False,
                  max_instances: int = 100, sample_hw=DEFAULT_SAMPLE_HW):
    """Trace ``model`` (a UniParser in eval mode) into an in-memory ONNX ModelProto (unsimplified,
    no metadata). products-v1 keeps the raw tensors as extra graph outputs (see module doc)."""
    import onnx

    model = model.eval()
    net = HalfNetwork(model) if fp16 else model
    h, w = sample_hw
    images = torch.zeros(1, 3, h, w)
    images.normal_(generator=torch.Generator().manual_seed(0))
    decl = get_layout(layout)
    if layout in PRODUCTS_LAYOUTS:
        module = ProductsWithRaw(net, max_instances).eval()
        # products-v1: one set of thresholds (3,); products-v2: one row per image (batch, 3)
        params = torch.tensor([0.5, 0.5, 0.5], dtype=torch.float32)
        args = (images, params if decl.spec("decode_params").rank == 1 else params[None])
        # the raw tensors are traced as extra outputs, then kept as value_info for the parity check
        input_names, output_names = list(decl.input_names), list(decl.output_names) + list(RAW_V1.output_names)
    elif layout == LAYOUT_RAW:
        module = RawFloat(net).eval()
        args = (images,)
        input_names, output_names = list(decl.input_names), list(decl.output_names)
    else:
        raise ValueError(f"cannot trace layout {layout!r}: use {LAYOUT_PRODUCTS!r} or {LAYOUT_RAW!r} "
                         "(the plugin layout is a rewrite of raw-v1)")
    axes = decl.dynamic_axes(input_names + output_names)
    buf = io.BytesIO()
    import warnings
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings on static sizes (S x S grid, K) are expected
        torch.onnx.export(module, args, buf, input_names=input_names, output_names=output_names,
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False)
    return onnx.load_from_string(buf.getvalue())


def export_onnx(model, path, meta: ModelMeta, opset: int = DEFAULT_OPSET, fp16: bool = False,
                simplify: bool = True, max_instances: int | None = None, sample_hw=DEFAULT_SAMPLE_HW, *,
                parity: bool = True, parity_hw=None, parity_batch: int = 2, log: Callable[[str], None] = print,
                postprocess: Callable | None = None) -> ExportReport:
    """Export ``model`` to ``path`` (layout ``meta.layout``: products-v1 or raw-v1) and return a report.

    ``max_instances`` (K) defaults to ``meta.decode["max_instances"]`` (100); it is capped at the S*S
    grid cells and written back into the metadata.

    Steps: trace -> (onnxsim) -> metadata -> onnx.checker -> parity (ONNX Runtime vs PyTorch at a size
    other than ``sample_hw``; raises :class:`ParityError` beyond tolerance) -> atomic write.
    ``postprocess(proto, meta) -> (proto, meta)`` may rewrite the verified graph before it is written
    (the plugin variant); the graph it returns is checked again.
    """
    from . import parity as parity_mod

    layout = meta.layout
    if max_instances is None:
        max_instances = int(meta.decode.get("max_instances", 100))
    validate_export_args(opset, max_instances, sample_hw)
    k = effective_max_instances(model, max_instances)
    if k != max_instances:
        log(f"note: max instances {max_instances} > {model.config.num_grid}^2 grid cells; using K={k}")
    precision = "fp16" if fp16 else "fp32"
    meta = replace(meta, precision=precision, decode={**meta.decode, "max_instances": k})
    seconds = {}

    t0 = time.perf_counter()
    log(f"tracing {meta.config.get('name', 'model')} -> ONNX (layout {layout}, {precision}, "
        f"opset {opset}, K={k}, sample {sample_hw[1]}x{sample_hw[0]})")
    try:
        proto = trace_to_onnx(model, layout=layout, opset=opset, fp16=fp16, max_instances=k, sample_hw=sample_hw)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ExportError(f"tracing to ONNX failed: {type(exc).__name__}: {first}") from exc
    seconds["trace"] = time.perf_counter() - t0

    simplified, message = False, "disabled (--no-simplify)"
    if simplify:
        t0 = time.perf_counter()
        log("simplifying with onnxsim")
        proto, simplified, message = simplify_model(proto, log)
        log(f"  {message}")
        seconds["simplify"] = time.perf_counter() - t0

    if layout in PRODUCTS_LAYOUTS:
        _move_outputs_to_value_info(proto, set(RAW_V1.output_names))
    declare_io(proto, meta)
    set_metadata(proto, meta)
    t0 = time.perf_counter()
    check_model(proto)
    data = proto.SerializeToString()
    seconds["check"] = time.perf_counter() - t0

    report_parity = None
    if parity:
        t0 = time.perf_counter()
        sizes = parity_mod.parity_sizes(sample_hw, parity_hw)
        log(f"parity check: ONNX Runtime vs PyTorch on {parity_batch} images at "
            f"{', '.join(f'{w}x{h}' for h, w in sizes)} (export sample {sample_hw[1]}x{sample_hw[0]})")
        if layout == LAYOUT_PRODUCTS_V2:  # the gate feeds one set of thresholds: check a (3,) view of it
            report_parity = parity_mod.check_parity(products_v1_view(proto).SerializeToString(), model,
                                                    replace(meta, layout=LAYOUT_PRODUCTS), sizes=sizes,
                                                    batch=parity_batch)
        else:
            report_parity = parity_mod.check_parity(data, model, meta, sizes=sizes, batch=parity_batch)
        seconds["parity"] = time.perf_counter() - t0
        log(report_parity.format())
        if not report_parity.ok:
            raise ParityError("parity check failed: " + "; ".join(report_parity.failures), report_parity)

    if postprocess is not None:
        proto, meta = postprocess(proto, meta)
        declare_io(proto, meta)
        set_metadata(proto, meta)
        check_model(proto)
        data = proto.SerializeToString()

    t0 = time.perf_counter()
    try:
        size = atomic_write_model(data, path)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from exc
    seconds["write"] = time.perf_counter() - t0
    ops = Counter(n.op_type for n in proto.graph.node)
    return ExportReport(path=str(path), layout=meta.layout, precision=precision, opset=opset, max_instances=k,
                        simplified=simplified, simplify_message=message, num_nodes=len(proto.graph.node),
                        op_counts=dict(ops), size_bytes=size, parity=report_parity, seconds=seconds)


def export_plugin_onnx(model, path, meta: ModelMeta, opset: int = DEFAULT_OPSET, fp16: bool = False,
                       simplify: bool = True, max_instances: int | None = None, sample_hw=DEFAULT_SAMPLE_HW,
                       **kw) -> ExportReport:
    """The plugin-v1 variant: the raw-v1 network (parity-checked) plus one fused ``UniParserDecode``
    node whose thresholds are node attributes (baked in; the metadata records them)."""
    from uniparser_sdk.contract import LAYOUT_PLUGIN

    from .plugin_rewrite import rewrite_to_plugin

    seg = model.seg_kernels.detach().float().cpu().numpy()

    def to_plugin(proto, m):
        d = m.decode
        new = rewrite_to_plugin(proto, seg, max_instances=int(d["max_instances"]), ctr_score=d["ctr_score"],
                                mask_thr=d["mask_thr"], cate_score_thr=d["cate_score_thr"])
        return new, replace(m, layout=LAYOUT_PLUGIN)

    raw_meta = replace(meta, layout=LAYOUT_RAW)
    return export_onnx(model, path, raw_meta, opset=opset, fp16=fp16, simplify=simplify,
                       max_instances=max_instances, sample_hw=sample_hw, postprocess=to_plugin, **kw)
