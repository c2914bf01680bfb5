"""Static TensorRT-compatibility check of an ONNX file, run before TensorRT is ever called.

TensorRT's ONNX parser documents what it imports in its operator matrix (``operators-10.1.md`` of
onnx-tensorrt: per operator *Supported* Y/N, the supported data types and restrictions). This module
parses that matrix **as data** and checks a graph against it, node by node, without TensorRT:

* ``op``: the operator is in the matrix and marked ``Y`` (a node in a non-ONNX domain, or whose op type is
  a plugin name given by the caller, is a plugin: the parser hands it to the plugin registry);
* ``opset``: the default-domain opset lies in the matrix's opset range (9..20);
* ``dtype``: the data tensors of each node (the inputs/outputs bound to the operator's primary type
  constraint in the ONNX schema -- ``T`` of ``Add``, both sides of ``Cast``; shape/index/``axes``
  parameters are the schema's own fixed types and are not data) have a type the matrix lists, so INT64
  where the matrix has no INT64 (``MatMul``, ``Clip``, ``Resize``, ...) is reported;
* the UINT8 rules of TensorRT (``uint8``): UINT8 only as a network input or output; a UINT8 network
  output produced by a ``Cast`` (or ``Identity``); a UINT8 tensor consumed only by a ``Cast``; UINT8
  conversions only to/from FLOAT or FLOAT16 (not BOOL, INT8, INT32, ...);
* the restrictions column (``restriction``): ``TopK`` ``sorted`` = 1 and a build-time ``K`` < 3840;
  ``axes`` an initializer for the ``Reduce*`` family, ``Slice``, ``Pad``, ``Squeeze``, ``CumSum``, a constant
  for ``Unsqueeze``; ``Resize`` coordinate / mode / nearest modes / aspect-ratio policy / no antialias;
  pooling 2-D or 3-D with unit dilations, ``MaxPool`` without its ``Indices`` output; ``DeformConv`` 1-D
  or 2-D with symmetric pads; ``Constant`` without sparse or string values; ``LayerNormalization`` only
  ``Y``; ``Dropout`` not training.

Each violation names the node, the rule and what to change; :func:`check_onnx` returns a
:class:`TrtCheckReport`, :func:`require_trt_compatible` raises :class:`TrtCompatibilityError` (one
message, every violation listed). ``uniparser-export --check-trt MODEL.onnx`` runs it from the command
line and every ``--engine`` export runs it before building.

The matrix file is found at, in order: the ``matrix=`` argument, ``$UNIPARSER_TRT_OPERATORS``,
``<repo>/../shared/third_party/onnx-tensorrt/operators-10.1.md`` (where CI keeps the real artefacts).
When none exists the check stops with :class:`OperatorMatrixNotFound` naming the places it looked --
it never silently passes.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Optional

from uniparser_sdk.errors import UniParserError, UserInputError

__all__ = [
    "OperatorMatrix", "OpSupport", "Violation", "TrtCheckReport", "TrtCompatibilityError",
    "OperatorMatrixNotFound", "find_operator_matrix", "load_operator_matrix", "check_onnx",
    "require_trt_compatible", "MATRIX_ENV", "MAX_TOPK",
]

MATRIX_ENV = "UNIPARSER_TRT_OPERATORS"
MATRIX_NAME = "operators-10.1.md"
_REPO = Path(__file__).resolve().parent.parent
DEFAULT_MATRIX = _REPO.parent / "shared" / "third_party" / "onnx-tensorrt" / MATRIX_NAME
MAX_TOPK = 3840  # "K input must be less than 3840"

# the matrix's type names -> onnx TensorProto names ("INF64" is a typo of the 10.1 file for INT64)
_TYPE_NAMES = {"FP32": "FLOAT", "FLOAT32": "FLOAT", "FP16": "FLOAT16", "BF16": "BFLOAT16", "INT32": "INT32",
               "INT64": "INT64", "INF64": "INT64", "UINT8": "UINT8", "BOOL": "BOOL", "INT8": "INT8",
               "FP8": "FLOAT8E4M3FN", "INT4": "INT4", "DOUBLE": "DOUBLE", "FP4": "FLOAT4E2M1"}
_UINT8_PARTNERS = {"FLOAT", "FLOAT16"}
_RESIZE_COORD = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
_RESIZE_MODES = {"nearest", "linear"}
_RESIZE_NEAREST = {"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"}
#: type constraints that carry the data, where the schema's first input is not the data (Where: B, T)
_DATA_CONSTRAINTS = {"Where": ("T",), "Cast": ("T1", "T2"), "CastLike": ("T1", "T2"), "ConstantOfShape": ("T2",)}
#: ops whose ``axes`` input (index 1 unless noted) must be an initializer, per the matrix
_AXES_INPUT = {"ReduceL1": 1, "ReduceL2": 1, "ReduceLogSum": 1, "ReduceLogSumExp": 1, "ReduceMax": 1,
               "ReduceMean": 1, "ReduceMin": 1, "ReduceProd": 1, "ReduceSum": 1, "ReduceSumSquare": 1,
               "Squeeze": 1, "Unsqueeze": 1, "Slice": 3, "Pad": 3, "CumSum": 1}


class OperatorMatrixNotFound(UserInputError, FileNotFoundError):
    """The TensorRT ONNX operator matrix (operators-10.1.md) is not where the check looked."""


class TrtCompatibilityError(UniParserError, ValueError):
    """The ONNX graph breaks the TensorRT ONNX parser's documented support (every violation listed)."""

    def __init__(self, message: str, report: "TrtCheckReport | None" = None):
        super().__init__(message)
        self.report = report


# ----------------------------------------------------------------------------------------------
# the matrix


@dataclass(frozen=True)
class OpSupport:
    name: str
    supported: bool
    types: frozenset  # onnx TensorProto type names
    restrictions: str


@dataclass(frozen=True)
class OperatorMatrix:
    ops: dict
    opset_range: tuple
    source: str
    notes: tuple = ()

    def get(self, op_type: str) -> Optional[OpSupport]:
        return self.ops.get(op_type)


def find_operator_matrix(matrix=None) -> Path:
    """The matrix path (see the module doc for the search order); raises :class:`OperatorMatrixNotFound`."""
    tried = []
    for cand, why in ((matrix, "argument"), (os.environ.get(MATRIX_ENV), f"${MATRIX_ENV}"),
                      (DEFAULT_MATRIX, "repository default")):
        if not cand:
            continue
        p = Path(cand)
        if p.is_file():
            return p
        tried.append(f"{p} ({why})")
        if why != "repository default":  # an explicit path that does not exist is an error, not a fallback
            break
    raise OperatorMatrixNotFound(
        f"TensorRT's ONNX operator matrix {MATRIX_NAME} was not found (looked at: {', '.join(tried)}); it is "
        f"onnx-tensorrt's docs/{MATRIX_NAME} -- pass its path (--trt-operators PATH or ${MATRIX_ENV})")


def _parse_types(cell: str) -> frozenset:
    out = set()
    for tok in re.split(r"[,\s]+", cell.strip()):
        if not tok:
            continue
        name = _TYPE_NAMES.get(tok.upper())
        if name is None:
            raise ValueError(f"unknown data type {tok!r} in the operator matrix")
        out.add(name)
    return frozenset(out)


def parse_operator_matrix(text: str, source: str = "<text>") -> OperatorMatrix:
    """The markdown table -> :class:`OperatorMatrix` (raises ValueError when the table is not there)."""
    m = re.search(r"range of opset (\d+) to opset (\d+)", text)
    if not m:
        raise ValueError(f"{source}: no 'range of opset A to opset B' sentence; not the operator matrix?")
    ops = {}
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or cells[1] not in ("Y", "N"):
            continue  # header and separator rows
        name, sup = cells[0], cells[1] == "Y"
        types = _parse_types(cells[2]) if len(cells) > 2 else frozenset()
        ops[name] = OpSupport(name, sup, types, cells[3] if len(cells) > 3 else "")
    if len(ops) < 50:
        raise ValueError(f"{source}: only {len(ops)} operator rows parsed; not the operator matrix?")
    notes = tuple(n.strip() for n in re.findall(r"^> Note: (.*)$", text, flags=re.M))
    return OperatorMatrix(ops, (int(m.group(1)), int(m.group(2))), source, notes)


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> OperatorMatrix:
    return parse_operator_matrix(Path(path).read_text(encoding="utf-8"), path)


def load_operator_matrix(matrix=None) -> OperatorMatrix:
    if isinstance(matrix, OperatorMatrix):
        return matrix
    p = find_operator_matrix(matrix)
    return _load(str(p), p.stat().st_mtime)


# ----------------------------------------------------------------------------------------------
# the report


@dataclass(frozen=True)
class Violation:
    node: str  # node name (or "<graph>")
    op_type: str
    rule: str  # op | opset | dtype | uint8 | restriction
    message: str

    def __str__(self) -> str:
        return f"node {self.node!r} ({self.op_type}) [{self.rule}]: {self.message}"


@dataclass
class TrtCheckReport:
    path: str
    matrix: str
    num_nodes: int
    violations: list = field(default_factory=list)
    plugins: list = field(default_factory=list)  # (node name, op type) handed to the plugin registry

    @property
    def ok(self) -> bool:
        return not self.violations

    def format(self) -> str:
        head = (f"TensorRT ONNX-parser check of {self.path}: {self.num_nodes} nodes against {self.matrix}"
                + (f"; plugin nodes {[op for _, op in self.plugins]}" if self.plugins else ""))
        if self.ok:
            return head + ": PASS"
        return "\n".join([head + f": FAIL ({len(self.violations)} violation(s))"]
                         + [f"  {v}" for v in self.violations])


# ----------------------------------------------------------------------------------------------
# the check


def _dtype_name(elem_type: int) -> str:
    import onnx

    return onnx.TensorProto.DataType.Name(elem_type) if elem_type else "UNDEFINED"


def _schema(op_type: str, opset: int):
    import onnx

    try:
        return onnx.defs.get_schema(op_type, opset, "")
    except Exception:
        return None


def _data_positions(node, schema) -> tuple[list, list]:
    """Indices of the node's inputs / outputs bound to its data type constraint(s)."""
    def bound(params, constraints):
        out = []
        for i, p in enumerate(params):
            if p.type_str in constraints:
                out.append(i)
        return out

    if schema is None:
        return list(range(len(node.input))), list(range(len(node.output)))
    names = _DATA_CONSTRAINTS.get(node.op_type)
    if names is None:
        first = schema.inputs[0].type_str if schema.inputs else (schema.outputs[0].type_str if schema.outputs else "")
        names = (first,) if not first.startswith("tensor(") else ()
    ins, outs = schema.inputs, schema.outputs

    def expand(params, n):  # variadic last parameter
        if not params:
            return []
        return [params[min(i, len(params) - 1)] for i in range(n)]

    return bound(expand(ins, len(node.input)), names), bound(expand(outs, len(node.output)), names)


def check_onnx(model, matrix=None, plugins: Iterable[str] = (), path: str | None = None) -> TrtCheckReport:
    """Check ``model`` (a path, bytes or ``onnx.ModelProto``) against the operator matrix.

    ``plugins``: op types that are TensorRT plugins (besides any node outside the default ONNX domain).
    """
    import onnx

    mat = load_operator_matrix(matrix)
    if isinstance(model, (str, os.PathLike)):
        path = path or str(model)
        proto = onnx.load(str(model))
    elif isinstance(model, (bytes, bytearray)):
        proto = onnx.load_from_string(bytes(model))
    else:
        proto = model
    path = path or "<model>"
    plugins = set(plugins)
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=False)
    except Exception:  # custom-domain nodes, ... -- fall back to the declared types
        inferred = proto
    g = inferred.graph
    types: dict[str, str] = {}
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.type.HasField("tensor_type"):
            types.setdefault(vi.name, _dtype_name(vi.type.tensor_type.elem_type))
    consts = {t.name: t for t in g.initializer}
    for t in g.initializer:
        types[t.name] = _dtype_name(t.data_type)
    for node in g.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for a in node.attribute:
                if a.name == "value":
                    consts[node.output[0]] = a.t
                    types[node.output[0]] = _dtype_name(a.t.data_type)
    graph_outputs = {o.name for o in g.output}
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)

    report = TrtCheckReport(path=path, matrix=mat.source, num_nodes=len(g.node))
    bad = report.violations
    lo, hi = mat.opset_range
    if opset is None or not lo <= opset <= hi:
        bad.append(Violation("<graph>", "-", "opset", f"default-domain opset {opset} is outside TensorRT's "
                                                       f"supported range {lo}..{hi}"))

    def attr(node, name, default=None):
        for a in node.attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default

    def const_value(name):
        import onnx.numpy_helper as nh

        t = consts.get(name)
        return None if t is None else nh.to_array(t)

    for idx, node in enumerate(g.node):
        nname = node.name or f"#{idx} {node.op_type}"
        op = node.op_type

        def v(rule, msg):
            bad.append(Violation(nname, op, rule, msg))

        # ---- UINT8 rules (TensorRT: UINT8 only as network I/O, through Cast)
        for i in node.input:
            if i and types.get(i) == "UINT8" and op != "Cast" and not (op == "Identity" and node.output[0] in graph_outputs):
                v("uint8", f"consumes UINT8 tensor {i!r}: a UINT8 tensor may only feed a Cast (to FLOAT or "
                           "FLOAT16); compute in float and cast at the end")
        for o in node.output:
            if o and types.get(o) == "UINT8":
                if o not in graph_outputs:
                    v("uint8", f"produces UINT8 tensor {o!r} inside the network: UINT8 is only supported as a "
                               "network input or output")
                elif op not in ("Cast", "Identity"):
                    v("uint8", f"produces the UINT8 network output {o!r}: it must come from a Cast (or "
                               "Identity)")
        if op in ("Cast", "CastLike") and node.input and node.output:
            src, dst = types.get(node.input[0]), types.get(node.output[0])
            if "UINT8" in (src, dst) and src != dst:
                other = dst if src == "UINT8" else src
                if other not in _UINT8_PARTNERS:
                    v("uint8", f"casts {src} -> {dst}: UINT8 converts only to/from FLOAT or FLOAT16; cast "
                               f"{other} to FLOAT first")

        # ---- plugin nodes
        if node.domain not in ("", "ai.onnx") or (op in plugins):
            report.plugins.append((nname, op))
            continue

        # ---- operator supported
        sup = mat.get(op)
        if sup is None:
            v("op", f"operator {op} is not in the TensorRT ONNX parser's operator matrix")
            continue
        if not sup.supported:
            v("op", f"operator {op} is marked unsupported (N) by the TensorRT ONNX parser")
            continue

        # ---- data types
        schema = _schema(op, opset or hi)
        in_pos, out_pos = _data_positions(node, schema)
        for kind, names, pos in (("input", node.input, in_pos), ("output", node.output, out_pos)):
            for i in pos:
                name = names[i] if i < len(names) else ""
                t = types.get(name) if name else None
                if t is None or t == "UNDEFINED":
                    continue
                if t == "UINT8" and op in ("Cast", "CastLike", "Identity"):
                    continue  # the UINT8 rules above govern these
                if t not in sup.types:
                    v("dtype", f"{kind} {name!r} is {t}; TensorRT's {op} supports "
                               f"{', '.join(sorted(sup.types))}")

        # ---- restrictions
        if op == "TopK":
            if int(attr(node, "sorted", 1)) != 1:
                v("restriction", "TopK `sorted` must be 1")
            k = const_value(node.input[1]) if len(node.input) > 1 else None
            if k is None:
                v("restriction", f"TopK K ({node.input[1] if len(node.input) > 1 else '?'}) must be a build-time "
                                 f"constant below {MAX_TOPK}")
            elif int(k.reshape(-1)[0]) >= MAX_TOPK:
                v("restriction", f"TopK K = {int(k.reshape(-1)[0])} must be less than {MAX_TOPK}")
        if op in _AXES_INPUT:
            j = _AXES_INPUT[op]
            if len(node.input) > j and node.input[j] and node.input[j] not in consts:
                what = "a constant tensor" if op == "Unsqueeze" else "an initializer"
                v("restriction", f"`axes` ({node.input[j]!r}) must be {what}")
        if op == "Resize":
            coord = attr(node, "coordinate_transformation_mode", b"half_pixel")
            mode = attr(node, "mode", b"nearest")
            nearest = attr(node, "nearest_mode", b"round_prefer_floor")
            policy = attr(node, "keep_aspect_ratio_policy", b"stretch")
            dec = lambda x: x.decode() if isinstance(x, bytes) else str(x)  # noqa: E731
            if dec(coord) not in _RESIZE_COORD:
                v("restriction", f"Resize coordinate_transformation_mode {dec(coord)!r} is not one of "
                                 f"{sorted(_RESIZE_COORD)}")
            if dec(mode) not in _RESIZE_MODES:
                v("restriction", f"Resize mode {dec(mode)!r} is not one of {sorted(_RESIZE_MODES)}")
            if dec(mode) == "nearest" and dec(nearest) not in _RESIZE_NEAREST:
                v("restriction", f"Resize nearest_mode {dec(nearest)!r} is not one of {sorted(_RESIZE_NEAREST)}")
            if dec(policy) != "stretch":
                v("restriction", f"Resize keep_aspect_ratio_policy {dec(policy)!r}: only 'stretch' is supported")
            if int(attr(node, "antialias", 0)):
                v("restriction", "Resize antialias is not supported")
            axes = attr(node, "axes")
            if axes is not None and list(axes) != list(range(len(axes))):
                v("restriction", f"Resize axes {list(axes)} must be an iota vector of length rank(input)")
        if op in ("MaxPool", "AveragePool", "LpPool"):
            kernel = attr(node, "kernel_shape", [])
            if op != "LpPool" and len(kernel) not in (2, 3):
                v("restriction", f"{op} kernel {list(kernel)}: 2D or 3D pooling only")
            dil = attr(node, "dilations")
            if dil is not None and any(int(d) != 1 for d in dil):
                v("restriction", f"{op} dilations {list(dil)} must be empty or all ones")
            if op == "MaxPool" and len(node.output) > 1 and node.output[1]:
                v("restriction", f"MaxPool `Indices` output ({node.output[1]!r}) is unsupported")
        if op == "DeformConv":
            pads = attr(node, "pads")
            kernel = attr(node, "kernel_shape")
            nsp = len(kernel) if kernel else None
            if nsp is not None and nsp not in (1, 2):
                v("restriction", f"DeformConv input must have 1D or 2D spatial dimensions (got {nsp})")
            if pads is not None:
                half = len(pads) // 2
                if list(pads[:half]) != list(pads[half:]):
                    v("restriction", f"DeformConv pads {list(pads)}: begin and end along each spatial axis must "
                                     "be the same")
        if op == "Constant":
            for a in node.attribute:
                if a.name in ("sparse_value", "value_string", "value_strings"):
                    v("restriction", f"Constant attribute `{a.name}` is unsupported")
        if op == "LayerNormalization" and sum(1 for o in node.output if o) > 1:
            v("restriction", "LayerNormalization: only the first output `Y` is supported")
        if op == "Dropout" and len(node.input) > 2 and node.input[2]:
            val = const_value(node.input[2])
            if val is None or bool(val.reshape(-1)[0]):
                v("restriction", "Dropout `training_mode` must be an initializer that evaluates to False")
    return report


def require_trt_compatible(model, matrix=None, plugins: Iterable[str] = (), path: str | None = None,
                           log=None) -> TrtCheckReport:
    """:func:`check_onnx`, raising :class:`TrtCompatibilityError` listing every violation."""
    report = check_onnx(model, matrix=matrix, plugins=plugins, path=path)
    if log is not None:
        log(report.format())
    if not report.ok:
        raise TrtCompatibilityError(report.format(), report)
    return report
