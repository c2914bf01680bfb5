"""Parity of an exported ONNX model with the PyTorch model it came from -- the export gate.

ONNX Runtime runs the serialized model (exactly the bytes that will be written) on structured
synthetic images -- a gradient background, person-like ellipses and noise, so no region is flat and
no two grid cells tie -- at sizes other than the export sample size, batch 2.

float32 exports are judged against a float64 reference
-------------------------------------------------------

Two float32 runs of a deep network are both noisy: rounding in each layer is amplified by the layers
after it (about x1.4 per block in the 23 blocks of a ResNet-101 stage 3 with random weights), so a
fixed tolerance between ONNX Runtime and PyTorch float32 refuses correct R101 exports. The gate
therefore runs the same PyTorch model in float64 on the same images (the reference) and, per output:

* ``noise`` = deviation of float32 PyTorch from the reference (how much float32 itself costs),
* ``err``   = deviation of the exported model from the reference,
* pass when ``err <= max(floor, 4 x noise)``; floors: 1e-3 relative for the raw network tensors, 1e-3
  absolute for ``cat_conf``, 1e-4 for the instance scores.

Decode agreement (instances, masks, keep) is measured against the decode of the float64 network's
outputs (the decode itself runs in float32, as in every backend; its thresholds are float32 by
contract) and bounded the same way: the fraction that disagrees may be at most ``max(floor,
4 x the fraction float32 PyTorch gets wrong)`` (floors 0.02 of the instances, 1e-3 of the mask
pixels, 0.01 of the keep entries). A model whose float32 noise exceeds 1e-2 on a raw output is
reported as numerically ill-conditioned (a warning in the report: the bounds grow with the noise,
so such a gate is weak).

Per-node DeformConv check (float32 exports): a copy of the graph exposes the input and the output of
every ``DeformConv`` node; for each node our DCNv2 layer (its ``conv_offset``, the sigmoid
modulation and the deformable convolution, :mod:`uniparser_sdk.model.dcn`) runs in float64 on ONNX
Runtime's own input to that node, and must match ONNX Runtime's output of the node to 1e-4 relative.
Each layer alone agrees to about 1e-6, so an offset-layout, modulation or sampling bug is caught far
below what the end outputs could resolve.

Compared outputs
----------------

* raw network tensors (``center_logits``, ``ins_feats``, ``sem_feats``): max abs difference relative to
  the reference's largest magnitude. A products-v1 graph keeps these tensors named in ``value_info``;
  they are exposed as extra outputs for the check.
* ``cat_conf`` (dense category cosine maps): max abs difference.
* the decode, twice: with the model's thresholds and with a probe ``ctr_score`` of 0 (every local
  maximum becomes an instance, up to K). A random-init model finds no persons at the real threshold;
  the probe pass makes sure instance masks and category filtering are compared anyway. Instances are
  matched by their center cell (``grid_index``): ``instances`` is matched / union of both sets (1.0
  means equal counts and equal peaks), ``scores`` the max abs difference over matched instances,
  ``masks`` / ``keep`` the fraction of equal entries over matched instances.

raw-v1 graphs (the plugin variant's network) are decoded by the same PyTorch decode from ONNX
Runtime's raw outputs, so the report has the same rows.

Low-precision exports (fp16; any bf16 / int8 later) are compared with the float32 PyTorch model as
before: the report is their drift from float32, checked against fixed, looser tolerances.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from uniparser_sdk.contract import LAYOUT_PRODUCTS, LAYOUT_RAW, ModelMeta
from uniparser_sdk.contract.layouts import PRODUCTS_V1, RAW_V1

RAW_NAMES = RAW_V1.output_names  # the contract's names (uniparser_sdk.contract.layouts)
PRODUCT_NAMES = PRODUCTS_V1.output_names
SIZE_DIVISOR = 32

NOISE_FACTOR = 4.0  # err may be this many times the float32 noise
ILL_CONDITIONED = 1e-2  # float32 noise (relative) above which the model is reported ill-conditioned
DEFORM_CONV_REL = 1e-4  # per-node DeformConv bound (relative to the node output's largest magnitude)


@dataclass(frozen=True)
class Tolerances:
    """Bounds of the gate. With ``noise_factor > 0`` (float32 exports, float64 reference) the values
    are floors: bound = max(floor, noise_factor x noise), where the agreement minima
    (``instances``, ``masks``, ``keep``) bound the disagreeing fraction by ``1 - value``. With
    ``noise_factor == 0`` they are fixed bounds."""

    raw_rel: float  # max |exported - ref| / max |ref| per raw output
    cat_conf: float  # max abs difference of the category cosine maps (values in [-1, 1])
    scores: float  # max abs difference of matched instance scores
    instances: float  # matched / union of instance sets (by center cell), minimum
    masks: float  # fraction of equal instance-mask pixels, minimum
    keep: float  # fraction of equal keep entries, minimum
    noise_factor: float = 0.0
    deform_conv: float | None = None  # per-node DeformConv relative bound; None: not checked
    ill_conditioned: float = ILL_CONDITIONED


TOLERANCES = {
    "fp32": Tolerances(raw_rel=1e-3, cat_conf=1e-3, scores=1e-4, instances=0.98, masks=0.999, keep=0.99,
                       noise_factor=NOISE_FACTOR, deform_conv=DEFORM_CONV_REL),
    # half-precision network vs the float32 model: a deviation report with loose bounds that still
    # catch a broken graph (wrong layout, overflow, NaN)
    "fp16": Tolerances(raw_rel=5e-2, cat_conf=5e-2, scores=2e-2, instances=0.8, masks=0.97, keep=0.9),
}


@dataclass
class PassStats:
    """Decode agreement of one run (exported, or float32 PyTorch) with the reference decode."""

    name: str
    ctr_score: float
    counts_ort: list = field(default_factory=list)  # counts of the run being compared
    counts_ref: list = field(default_factory=list)  # counts of the reference
    matched: int = 0
    union: int = 0
    score_diff: float = 0.0
    mask_equal: int = 0
    mask_total: int = 0
    keep_equal: int = 0
    keep_total: int = 0
    keep_ref_on: int = 0  # kept categories in the reference over matched instances

    @property
    def instances(self) -> float:
        return self.matched / self.union if self.union else 1.0

    @property
    def masks(self) -> float:
        return self.mask_equal / self.mask_total if self.mask_total else 1.0

    @property
    def keep(self) -> float:
        return self.keep_equal / self.keep_total if self.keep_total else 1.0

    def merge(self, other: "PassStats") -> None:
        self.counts_ort += other.counts_ort
        self.counts_ref += other.counts_ref
        self.matched += other.matched
        self.union += other.union
        self.score_diff = max(self.score_diff, other.score_diff)
        self.mask_equal += other.mask_equal
        self.mask_total += other.mask_total
        self.keep_equal += other.keep_equal
        self.keep_total += other.keep_total
        self.keep_ref_on += other.keep_ref_on


@dataclass
class Row:
    """One line of the gate: ``err`` (exported vs reference), ``noise`` (float32 PyTorch vs reference,
    None when the reference is float32 PyTorch itself) and the ``bound`` err must not exceed."""

    name: str
    measure: str  # "rel", "abs", "mismatch" (fraction of instances), "disagree" (fraction of entries)
    err: float
    noise: float | None
    bound: float
    floor: float

    @property
    def ok(self) -> bool:
        return bool(self.err <= self.bound)  # NaN fails


@dataclass
class ParityReport:
    precision: str
    layout: str
    sizes: list
    batch: int
    tolerances: Tolerances
    reference: str = "fp64"  # "fp64" (float32 exports) or "fp32" (low-precision exports)
    raw_abs: dict = field(default_factory=dict)  # name -> max abs diff, exported vs reference
    raw_rel: dict = field(default_factory=dict)  # name -> max abs diff / max |reference|
    raw_noise: dict = field(default_factory=dict)  # name -> same for float32 PyTorch vs reference
    cat_conf: float | None = None
    cat_conf_noise: float | None = None
    passes: list = field(default_factory=list)  # PassStats, exported vs reference
    noise_passes: list = field(default_factory=list)  # PassStats, float32 PyTorch vs reference
    deform_conv: list = field(default_factory=list)  # (node output name, relative diff) per DeformConv node
    deform_conv_error: str | None = None  # why the per-node check could not pair nodes with layers
    rows: list = field(default_factory=list)  # Row, filled by evaluate()
    failures: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def _row(self, name, measure, err, noise, floor) -> Row:
        if self.reference != "fp64":
            noise = None
        bound = floor
        if noise is not None and self.tolerances.noise_factor > 0:
            bound = max(floor, self.tolerances.noise_factor * noise)
        return Row(name, measure, float(err), None if noise is None else float(noise), float(bound), float(floor))

    def evaluate(self) -> None:
        tol = self.tolerances
        self.rows, self.failures, self.warnings = [], [], []
        for name, rel in self.raw_rel.items():
            self.rows.append(self._row(name, "rel", rel, self.raw_noise.get(name), tol.raw_rel))
        if self.cat_conf is not None:
            self.rows.append(self._row("cat_conf", "abs", self.cat_conf, self.cat_conf_noise, tol.cat_conf))
        noise_by_pass = {p.name: p for p in self.noise_passes}
        for p in self.passes:
            q = noise_by_pass.get(p.name)
            label = f"[{p.name}] "
            self.rows.append(self._row(label + "scores", "abs", p.score_diff, q and q.score_diff, tol.scores))
            self.rows.append(self._row(label + "instances", "mismatch", 1 - p.instances, q and 1 - q.instances,
                                       1 - tol.instances))
            self.rows.append(self._row(label + "masks", "disagree", 1 - p.masks, q and 1 - q.masks, 1 - tol.masks))
            self.rows.append(self._row(label + "keep", "disagree", 1 - p.keep, q and 1 - q.keep, 1 - tol.keep))
        for r in self.rows:
            if not r.ok:
                what = {"rel": "relative max diff", "abs": "max abs diff", "mismatch": "instances mismatched",
                        "disagree": "fraction disagreeing"}[r.measure]
                noise = "" if r.noise is None else f" (float32 noise {r.noise:.3g})"
                self.failures.append(f"{r.name}: {what} {r.err:.3g} > bound {r.bound:.3g}{noise}")
        if tol.deform_conv is not None:
            if self.deform_conv_error:
                self.failures.append(f"DeformConv check: {self.deform_conv_error}")
            bad = [(n, rel) for n, rel in self.deform_conv if not rel <= tol.deform_conv]
            if bad:
                worst = max(bad, key=lambda t: t[1] if t[1] == t[1] else math.inf)
                self.failures.append(f"DeformConv: {len(bad)}/{len(self.deform_conv)} node(s) differ from DCNv2 in "
                                     f"float64 on the node's own input by more than {tol.deform_conv:g} relative "
                                     f"(worst {worst[1]:.3g} at {worst[0]})")
        if self.reference == "fp64":
            noisy = {n: v for n, v in self.raw_noise.items() if not v <= tol.ill_conditioned}
            if noisy:
                worst = ", ".join(f"{n} {v:.3g}" for n, v in noisy.items())
                self.warnings.append(
                    f"numerically ill-conditioned model: float32 PyTorch itself deviates from float64 by "
                    f"{worst} (relative, > {tol.ill_conditioned:g}); the bounds scale with that noise, so this "
                    "gate can only catch gross errors; check the weights (exploding activations?)")

    def format(self) -> str:
        sizes = ", ".join(f"{w}x{h}" for h, w in self.sizes)
        fp64 = self.reference == "fp64"
        if fp64:
            head = f"{self.precision} ONNX Runtime and fp32 PyTorch vs fp64 PyTorch reference"
            rule_doc = f"bound = max(floor, {self.tolerances.noise_factor:g} x noise)"
        else:
            head = f"{self.precision} ONNX Runtime vs fp32 PyTorch"
            rule_doc = "fixed bounds"
        lines = [f"parity report ({head}, layout {self.layout}, batch {self.batch} at {sizes}; {rule_doc})",
                 f"  {'output':<17} {'measure':<9} {'err (ORT)':>10} {'noise (fp32)':>13} {'bound':>9}"]
        measure = {"rel": "rel max", "abs": "abs max", "mismatch": "mismatch", "disagree": "disagree"}

        def row_line(r, name, indent="  "):
            noise = f"{r.noise:>13.3g}" if r.noise is not None else f"{'-':>13}"
            rule = ("fixed" if r.noise is None else
                    f"{self.tolerances.noise_factor:g} x noise" if r.bound > r.floor else "floor")
            return (f"{indent}{name:<{19 - len(indent)}} {measure[r.measure]:<9} {r.err:>10.3g} {noise} "
                    f"{r.bound:>9.3g}  {rule:<11} {'ok' if r.ok else 'FAIL'}")

        for r in self.rows:
            if not r.name.startswith("["):
                lines.append(row_line(r, r.name))
        noise_by_pass = {p.name: p for p in self.noise_passes}
        for p in self.passes:
            same = sum(a == b for a, b in zip(p.counts_ort, p.counts_ref))
            q = noise_by_pass.get(p.name)
            fp32 = f" / fp32 PyTorch {q.counts_ort}" if q is not None else ""
            ref = "fp64 reference" if fp64 else "fp32 PyTorch"
            lines.append(f"  decode [{p.name}, ctr_score {p.ctr_score:g}]: counts ORT {p.counts_ort} / {ref} "
                         f"{p.counts_ref}{fp32} ({same}/{len(p.counts_ort)} ORT equal); instances matched "
                         f"{p.matched}/{p.union}; masks agree {p.masks:.5f}; keep agree {p.keep:.5f}")
            prefix = f"[{p.name}] "
            for r in self.rows:
                if r.name.startswith(prefix):
                    lines.append(row_line(r, r.name[len(prefix):], indent="    "))
        if self.tolerances.deform_conv is not None:
            if self.deform_conv:
                worst = max(self.deform_conv, key=lambda t: t[1] if t[1] == t[1] else math.inf)
                n_bad = sum(not rel <= self.tolerances.deform_conv for _, rel in self.deform_conv)
                lines.append(f"  DeformConv nodes: {len(self.deform_conv)} checked against DCNv2 in float64 on each "
                             f"node's own input; worst rel max {worst[1]:.3g} ({worst[0]}); bound "
                             f"{self.tolerances.deform_conv:g}; {'ok' if not n_bad else f'{n_bad} FAIL'}")
            elif not self.deform_conv_error:
                lines.append("  DeformConv nodes: none in the graph")
        lines.extend(f"  warning: {w}" for w in self.warnings)
        lines.extend(f"  note: {n}" for n in self.notes)
        lines.append("  result: PASS" if self.ok else "  result: FAIL - " + "; ".join(self.failures))
        return "\n".join(lines)


def parity_sizes(sample_hw, requested=None) -> list:
    """Parity sizes: ``requested`` (one (h, w) or a list) or a default that differs from the sample
    size in both sides; every side a multiple of 32."""
    if requested:
        sizes = [tuple(requested)] if isinstance(requested[0], int) else [tuple(s) for s in requested]
    else:
        h, w = sample_hw
        sizes = [(h + 64, max(SIZE_DIVISOR, w - 32) if w - 32 != h + 64 else w + 32)]
    for h, w in sizes:
        if h <= 0 or w <= 0 or h % SIZE_DIVISOR or w % SIZE_DIVISOR:
            raise ValueError(f"parity size {w}x{h} (WIDTHxHEIGHT) must be positive multiples of {SIZE_DIVISOR}")
    return sizes


def structured_images(batch: int, h: int, w: int, seed: int = 0, normalization: dict | None = None) -> np.ndarray:
    """(batch, 3, h, w) float32 normalised RGB images: gradient background, 2-4 person-like shapes
    (body ellipse + head disc) in random colours, Gaussian noise (sigma 12). Deterministic by seed."""
    norm = normalization or {"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]}
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((batch, 3, h, w), np.float32)
    for b in range(batch):
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        t = (yy / max(h - 1, 1))[None]
        img = c0[:, None, None] * (1 - t) + c1[:, None, None] * t
        for _ in range(rng.integers(2, 5)):
            cx, cy = rng.uniform(0.15, 0.85) * w, rng.uniform(0.35, 0.75) * h
            ry, rx = rng.uniform(0.15, 0.3) * h, rng.uniform(0.05, 0.12) * w
            body = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
            img[:, body] = rng.uniform(0, 255, 3)[:, None]
            hr = 0.6 * rx
            head = (xx - cx) ** 2 + (yy - (cy - ry - hr)) ** 2 <= hr ** 2
            img[:, head] = rng.uniform(0, 255, 3)[:, None]
        img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255)
        mean = np.asarray(norm["mean"], np.float32)[:, None, None]
        std = np.asarray(norm["std"], np.float32)[:, None, None]
        out[b] = (img - mean) / std
    return out


def _with_outputs(onnx_model: bytes, names) -> bytes:
    """A copy of the model in which the tensors ``names`` are graph outputs too (typed from
    ``value_info`` where known; ONNX Runtime accepts untyped extra outputs)."""
    import onnx

    proto = onnx.load_from_string(onnx_model)
    infos = {vi.name: vi for vi in proto.graph.value_info}
    present = {o.name for o in proto.graph.output}
    for name in names:
        if name in present:
            continue
        proto.graph.output.append(infos[name] if name in infos else onnx.ValueInfoProto(name=name))
        present.add(name)
    return proto.SerializeToString()


def _session(onnx_model, extra_outputs=()):
    """ORT session on the model bytes; ``extra_outputs`` (intermediate tensor names) become graph outputs."""
    import onnxruntime as ort

    from uniparser_sdk.backends.onnxruntime.runner import check_onnxruntime_version

    check_onnxruntime_version(ort)  # DeformConv needs onnxruntime >= 1.25
    data = _with_outputs(onnx_model, extra_outputs) if extra_outputs else onnx_model
    from uniparser_sdk.runtime.cpus import available_cpus

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = available_cpus()  # the CPUs this process may use, not the host's
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def _raw_in_value_info(onnx_model) -> bool:
    import onnx

    proto = onnx.load_from_string(onnx_model)
    names = {vi.name for vi in proto.graph.value_info}
    return all(n in names for n in RAW_NAMES)


def _match(stats: PassStats, ort_out: dict, ref_out: dict) -> None:
    """Compare one batch of decode outputs, instances matched by center cell."""
    for b in range(ref_out["scores"].shape[0]):
        n_o, n_t = int(ort_out["num_instances"][b]), int(ref_out["num_instances"][b])
        stats.counts_ort.append(n_o)
        stats.counts_ref.append(n_t)
        go = {int(g): i for i, g in enumerate(ort_out["grid_index"][b, :n_o])}
        gt = {int(g): i for i, g in enumerate(ref_out["grid_index"][b, :n_t])}
        common = sorted(set(go) & set(gt))
        stats.matched += len(common)
        stats.union += len(set(go) | set(gt))
        if not common:
            continue
        io = np.array([go[g] for g in common])
        it = np.array([gt[g] for g in common])
        stats.score_diff = max(stats.score_diff, float(np.max(np.abs(
            ort_out["scores"][b, io].astype(np.float64) - ref_out["scores"][b, it]))))
        mo, mt = ort_out["instance_masks"][b, io], ref_out["instance_masks"][b, it]
        stats.mask_equal += int((mo == mt).sum())
        stats.mask_total += mo.size
        ko, kt = ort_out["keep"][b, io], ref_out["keep"][b, it]
        stats.keep_equal += int((ko == kt).sum())
        stats.keep_total += ko.size
        stats.keep_ref_on += int(kt.sum())


def _torch_decode(model, k: int, images, params, raw):
    """The products-v1 decode (EndToEnd, float32) of given raw network outputs."""
    import torch

    from uniparser_sdk.model.end_to_end import EndToEnd

    given = tuple(torch.from_numpy(np.ascontiguousarray(r)) for r in raw)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = model.config

        @property
        def seg_kernels(self):
            return model.seg_kernels

        def forward(self, _):
            return given

    with torch.no_grad():
        outs = EndToEnd(Net(), k).eval()(torch.from_numpy(images), torch.from_numpy(params))
    return {name: o.numpy() for name, o in zip(PRODUCT_NAMES, outs)}


def _torch_raw(model, images, dtype=np.float32):
    """Raw outputs of ``model`` (float32 or float64) on ``images``, as numpy arrays of ``dtype``."""
    import torch

    with torch.no_grad():
        return [o.numpy().astype(dtype, copy=False) for o in model(torch.from_numpy(images.astype(dtype)))]


def _diff(a: np.ndarray, ref: np.ndarray) -> tuple:
    """(max abs diff, max abs diff / max |ref|); inf for a shape mismatch, NaN propagates."""
    if a.shape != ref.shape:
        return math.inf, math.inf
    d = float(np.max(np.abs(a.astype(np.float64) - ref))) if a.size else 0.0
    scale = max(float(np.max(np.abs(ref))) if ref.size else 0.0, 1e-6)
    return d, d / scale


def _dcn_layers(model):
    from uniparser_sdk.model.dcn import ModulatedDeformConv2d

    return [m for m in model.modules() if isinstance(m, ModulatedDeformConv2d)]


def _attr(node, name, default):
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def check_deform_conv_nodes(onnx_model: bytes, model64, feeds: dict) -> tuple:
    """Run a copy of the graph exposing every ``DeformConv`` node's input X and output Y; compare Y
    with our DCNv2 layer (float64, paired with the nodes in graph order) applied to X.

    Returns ``(rows, error)``: rows = [(node output name, relative max diff)], error = a message when
    nodes and layers cannot be paired (then no rows)."""
    import onnx
    import torch

    proto = onnx.load_from_string(onnx_model)
    nodes = [n for n in proto.graph.node if n.op_type == "DeformConv"]
    layers = _dcn_layers(model64)
    if len(nodes) != len(layers):
        return [], (f"the graph has {len(nodes)} DeformConv node(s), the model {len(layers)} DCNv2 layer(s)")
    if not nodes:
        return [], None
    inits = {t.name: t for t in proto.graph.initializer}
    problems = []
    for n, layer in zip(nodes, layers):
        w = inits.get(n.input[1])
        want = {"strides": list(layer.stride), "dilations": list(layer.dilation),
                "pads": [layer.padding[0], layer.padding[1]] * 2, "group": 1, "offset_group": 1}
        got = {"strides": list(_attr(n, "strides", [1, 1])), "dilations": list(_attr(n, "dilations", [1, 1])),
               "pads": list(_attr(n, "pads", [0, 0, 0, 0])), "group": _attr(n, "group", 1),
               "offset_group": _attr(n, "offset_group", 1)}
        if w is not None and tuple(w.dims) != tuple(layer.weight.shape):
            problems.append(f"{n.output[0]}: weight {tuple(w.dims)} vs layer {tuple(layer.weight.shape)}")
        elif got != want:
            bad = {k: got[k] for k in want if got[k] != want[k]}
            problems.append(f"{n.output[0]}: attributes {bad} vs the layer's {({k: want[k] for k in bad})}")
    if problems:
        return [], "node/layer mismatch: " + "; ".join(problems[:3])
    names = [t for n in nodes for t in (n.input[0], n.output[0])]
    sess = _session(onnx_model, names)
    feed = {i.name: feeds[i.name] for i in sess.get_inputs()}
    values = dict(zip(names, sess.run(names, feed)))
    rows = []
    with torch.no_grad():
        for n, layer in zip(nodes, layers):
            x = torch.from_numpy(values[n.input[0]].astype(np.float64))
            ref = layer(x).numpy()
            rows.append((n.output[0], _diff(values[n.output[0]], ref)[1]))
    return rows, None


def check_parity(onnx_model, model, meta: ModelMeta, *, sizes=((320, 416),), batch: int = 2, seed: int = 0,
                 tolerances: Tolerances | None = None, probe: bool = True) -> ParityReport:
    """Run ``onnx_model`` (bytes, a path or a ModelProto; layout products-v1 or raw-v1 per ``meta``)
    in ONNX Runtime against ``model`` (the float32 PyTorch UniParser) and return the report
    (``report.ok`` tells whether it is within ``tolerances``; default by ``meta.precision``).

    float32 exports are judged against ``model`` run in float64 (see the module doc); low-precision
    exports against ``model`` in float32."""
    from pathlib import Path

    if not isinstance(onnx_model, (bytes, bytearray)):
        if isinstance(onnx_model, (str, Path)):
            onnx_model = Path(onnx_model).read_bytes()
        else:
            onnx_model = onnx_model.SerializeToString()
    onnx_model = bytes(onnx_model)
    model = model.eval()
    precision = meta.precision or "fp32"
    tol = tolerances or TOLERANCES.get(precision, TOLERANCES["fp16"] if precision != "fp32" else TOLERANCES["fp32"])
    layout = meta.layout
    if layout not in (LAYOUT_PRODUCTS, LAYOUT_RAW):
        raise ValueError(f"parity runs on products-v1 or raw-v1 graphs, not {layout!r}")
    fp64 = precision == "fp32"
    k = int(meta.decode.get("max_instances", model.config.decode.max_instances))
    dec = meta.decode
    report = ParityReport(precision=precision, layout=layout, sizes=[tuple(s) for s in sizes], batch=batch,
                          tolerances=tol, reference="fp64" if fp64 else "fp32")
    passes = [("model thresholds", float(dec["ctr_score"]))] + ([("probe", 0.0)] if probe else [])
    totals = {name: PassStats(name, ctr) for name, ctr in passes}
    noise_totals = {name: PassStats(name, ctr) for name, ctr in passes}
    model64 = copy.deepcopy(model).double().eval() if fp64 else None

    has_raw = layout == LAYOUT_RAW or _raw_in_value_info(onnx_model)
    if not has_raw:
        report.notes.append("raw network tensors not found in the graph; compared decode outputs only")
    sess = _session(onnx_model, RAW_NAMES if layout == LAYOUT_PRODUCTS and has_raw else ())
    out_names = [o.name for o in sess.get_outputs()]

    first_feeds = None
    for i, (h, w) in enumerate(report.sizes):
        images = structured_images(batch, h, w, seed=seed + i, normalization=meta.normalization)
        raw32 = _torch_raw(model, images)
        ref_raw = _torch_raw(model64, images, np.float64) if fp64 else raw32
        for pi, (name, ctr) in enumerate(passes):
            params = np.array([ctr, dec["mask_thr"], dec["cate_score_thr"]], np.float32)
            if first_feeds is None:
                first_feeds = {"images": images, "decode_params": params}
            if layout == LAYOUT_PRODUCTS:
                res = dict(zip(out_names, sess.run(None, {"images": images, "decode_params": params})))
            else:
                if pi == 0:
                    raw_res = dict(zip(out_names, sess.run(None, {"images": images})))
                res = dict(raw_res)
                res.update(_torch_decode(model, k, images, params,
                                         raw=[raw_res[n].astype(np.float32) for n in RAW_NAMES]))
            ref = _torch_decode(model, k, images, params, raw=ref_raw)
            t32 = _torch_decode(model, k, images, params, raw=raw32) if fp64 else None
            if pi == 0:
                if has_raw:
                    for n, r, r32 in zip(RAW_NAMES, ref_raw, raw32):
                        diff, rel = _diff(res[n], r)
                        report.raw_abs[n] = max(report.raw_abs.get(n, 0.0), diff)
                        report.raw_rel[n] = max(report.raw_rel.get(n, 0.0), rel)
                        if fp64:
                            report.raw_noise[n] = max(report.raw_noise.get(n, 0.0), _diff(r32, r)[1])
                diff = _diff(res["cat_conf"], ref["cat_conf"])[0]
                report.cat_conf = diff if report.cat_conf is None else max(report.cat_conf, diff)
                if fp64:
                    noise = _diff(t32["cat_conf"], ref["cat_conf"])[0]
                    report.cat_conf_noise = max(report.cat_conf_noise or 0.0, noise)
            stats = PassStats(name, ctr)
            _match(stats, res, ref)
            totals[name].merge(stats)
            if fp64:
                stats = PassStats(name, ctr)
                _match(stats, t32, ref)
                noise_totals[name].merge(stats)
    report.passes = list(totals.values())
    if all(p.keep_ref_on == 0 for p in report.passes) and any(p.keep_total for p in report.passes):
        report.notes.append("no category survives the maskness test in any matched instance of the reference: "
                            "the keep agreement is vacuous on these images (expected for random weights)")
    report.noise_passes = list(noise_totals.values()) if fp64 else []
    if tol.deform_conv is not None and fp64:
        report.deform_conv, report.deform_conv_error = check_deform_conv_nodes(onnx_model, model64, first_feeds)
    elif tol.deform_conv is not None:
        report.notes.append("per-node DeformConv check: float32 exports only")
    first = report.passes[0]
    if first.union == 0:
        report.notes.append("no persons at the model's ctr_score on these synthetic images (expected for an "
                            "untrained model); the probe pass compares instances")
    report.evaluate()
    return report
