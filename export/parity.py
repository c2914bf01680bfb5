"""Parity of an exported ONNX model with the PyTorch model it came from.

ONNX Runtime runs the serialized model (exactly the bytes that will be written) on structured
synthetic images -- a gradient background, person-like ellipses and noise, so no region is flat and
no two grid cells tie -- at sizes other than the export sample size, batch 2; PyTorch runs
:class:`~uniparser_sdk.model.end_to_end.EndToEnd` on the float32 model with the same inputs.

Compared:

* raw network outputs (``center_logits``, ``ins_feats``, ``sem_feats``): max abs difference and the same
  relative to the output's largest magnitude. A products-v1 graph keeps these tensors named in
  ``value_info``; they are exposed as extra outputs for the check.
* ``cat_conf`` (dense category cosine maps): max abs difference.
* the decode, twice: with the model's thresholds and with a probe ``ctr_score`` of 0 (every local
  maximum becomes an instance, up to K). A random-init model finds no persons at the real threshold;
  the probe pass makes sure instance masks and category filtering are compared anyway. Instances are
  matched by their center cell (``grid_index``): ``instances`` is matched / union of both sets (1.0
  means equal counts and equal peaks), ``scores`` the max abs difference over matched instances,
  ``masks`` / ``keep`` the fraction of equal entries over matched instances.

raw-v1 graphs (the plugin variant's network) are decoded by the same PyTorch decode from ONNX
Runtime's raw outputs, so the report has the same rows.

fp16 exports are compared with the float32 PyTorch model: the report is their deviation, checked
against looser tolerances.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from uniparser_sdk.contract import LAYOUT_PRODUCTS, LAYOUT_RAW, ModelMeta

RAW_NAMES = ("center_logits", "ins_feats", "sem_feats")
PRODUCT_NAMES = ("scores", "num_instances", "grid_index", "instance_masks", "keep", "cat_conf")
SIZE_DIVISOR = 32


@dataclass(frozen=True)
class Tolerances:
    raw_rel: float  # max |ort - torch| / max |torch| per raw output
    cat_conf: float  # max abs difference of the category cosine maps (values in [-1, 1])
    scores: float  # max abs difference of matched instance scores
    instances: float  # matched / union of instance sets (by center cell), minimum
    masks: float  # fraction of equal instance-mask pixels, minimum
    keep: float  # fraction of equal keep entries, minimum


TOLERANCES = {
    "fp32": Tolerances(raw_rel=1e-3, cat_conf=1e-3, scores=1e-4, instances=0.98, masks=0.999, keep=0.99),
    # half-precision network vs the float32 model: a deviation report with loose bounds that still
    # catch a broken graph (wrong layout, overflow, NaN)
    "fp16": Tolerances(raw_rel=5e-2, cat_conf=5e-2, scores=2e-2, instances=0.8, masks=0.97, keep=0.9),
}


@dataclass
class PassStats:
    name: str
    ctr_score: float
    counts_ort: list = field(default_factory=list)
    counts_torch: list = field(default_factory=list)
    matched: int = 0
    union: int = 0
    score_diff: float = 0.0
    mask_equal: int = 0
    mask_total: int = 0
    keep_equal: int = 0
    keep_total: int = 0

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
        self.counts_torch += other.counts_torch
        self.matched += other.matched
        self.union += other.union
        self.score_diff = max(self.score_diff, other.score_diff)
        self.mask_equal += other.mask_equal
        self.mask_total += other.mask_total
        self.keep_equal += other.keep_equal
        self.keep_total += other.keep_total


@dataclass
class ParityReport:
    precision: str
    layout: str
    sizes: list
    batch: int
    tolerances: Tolerances
    raw_abs: dict = field(default_factory=dict)  # name -> max abs diff
    raw_rel: dict = field(default_factory=dict)  # name -> max abs diff / max |torch|
    cat_conf: float | None = None
    passes: list = field(default_factory=list)  # PassStats
    failures: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def evaluate(self) -> None:
        tol, self.failures = self.tolerances, []
        for name, rel in self.raw_rel.items():
            if not rel <= tol.raw_rel:  # also catches NaN
                self.failures.append(f"{name}: relative max diff {rel:.3g} > {tol.raw_rel:g}")
        if self.cat_conf is not None and not self.cat_conf <= tol.cat_conf:
            self.failures.append(f"cat_conf: max abs diff {self.cat_conf:.3g} > {tol.cat_conf:g}")
        for p in self.passes:
            if p.instances < tol.instances:
                self.failures.append(f"{p.name} pass: instances matched {p.matched}/{p.union} "
                                     f"({p.instances:.3f} < {tol.instances:g})")
            if not p.score_diff <= tol.scores:
                self.failures.append(f"{p.name} pass: scores max diff {p.score_diff:.3g} > {tol.scores:g}")
            if p.masks < tol.masks:
                self.failures.append(f"{p.name} pass: instance-mask agreement {p.masks:.5f} < {tol.masks:g}")
            if p.keep < tol.keep:
                self.failures.append(f"{p.name} pass: keep agreement {p.keep:.5f} < {tol.keep:g}")

    def format(self) -> str:
        tol = self.tolerances
        sizes = ", ".join(f"{h}x{w}" for h, w in self.sizes)
        lines = [f"parity report ({self.precision} ONNX Runtime vs fp32 PyTorch, layout {self.layout}, "
                 f"batch {self.batch} at {sizes})"]
        for name in self.raw_abs:
            lines.append(f"  {name:<15} max abs diff {self.raw_abs[name]:.3g}   relative {self.raw_rel[name]:.3g}"
                         f"   (tol {tol.raw_rel:g})")
        if self.cat_conf is not None:
            lines.append(f"  {'cat_conf':<15} max abs diff {self.cat_conf:.3g}   (tol {tol.cat_conf:g})")
        for p in self.passes:
            same = sum(a == b for a, b in zip(p.counts_ort, p.counts_torch))
            lines.append(
                f"  decode [{p.name}, ctr_score {p.ctr_score:g}]: counts ORT {p.counts_ort} / torch "
                f"{p.counts_torch} ({same}/{len(p.counts_ort)} equal); instances matched "
                f"{p.matched}/{p.union}; scores max diff {p.score_diff:.3g}; masks agree {p.masks:.5f}; "
                f"keep agree {p.keep:.5f}")
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
            raise ValueError(f"parity size {h}x{w} must be positive multiples of {SIZE_DIVISOR}")
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


def _session(onnx_model, extra_outputs=()):
    """ORT session on the model bytes; ``extra_outputs`` (names in value_info) become graph outputs."""
    import onnxruntime as ort

    data = onnx_model
    if extra_outputs:
        import onnx

        proto = onnx.load_from_string(onnx_model)
        infos = {vi.name: vi for vi in proto.graph.value_info}
        for name in extra_outputs:
            proto.graph.output.append(infos[name])
        data = proto.SerializeToString()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
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
        stats.counts_torch.append(n_t)
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


def _torch_decode(model, k: int, images, params, raw=None):
    import torch

    from uniparser_sdk.model.end_to_end import EndToEnd

    with torch.no_grad():
        if raw is None:
            outs = EndToEnd(model, k).eval()(torch.from_numpy(images), torch.from_numpy(params))
        else:
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

            outs = EndToEnd(Net(), k).eval()(torch.from_numpy(images), torch.from_numpy(params))
    return {name: o.numpy() for name, o in zip(PRODUCT_NAMES, outs)}


def _torch_raw(model, images):
    import torch

    with torch.no_grad():
        return [o.float().numpy() for o in model(torch.from_numpy(images))]


def check_parity(onnx_model, model, meta: ModelMeta, *, sizes=((320, 416),), batch: int = 2, seed: int = 0,
                 tolerances: Tolerances | None = None, probe: bool = True) -> ParityReport:
    """Run ``onnx_model`` (bytes, a path or a ModelProto; layout products-v1 or raw-v1 per ``meta``)
    in ONNX Runtime against ``model`` (the float32 PyTorch UniParser) and return the report
    (``report.ok`` tells whether it is within ``tolerances``; default by ``meta.precision``)."""
    from pathlib import Path

    if not isinstance(onnx_model, (bytes, bytearray)):
        if isinstance(onnx_model, (str, Path)):
            onnx_model = Path(onnx_model).read_bytes()
        else:
            onnx_model = onnx_model.SerializeToString()
    model = model.eval()
    precision = meta.precision or "fp32"
    tol = tolerances or TOLERANCES.get(precision, TOLERANCES["fp32"])
    layout = meta.layout
    if layout not in (LAYOUT_PRODUCTS, LAYOUT_RAW):
        raise ValueError(f"parity runs on products-v1 or raw-v1 graphs, not {layout!r}")
    k = int(meta.decode.get("max_instances", model.config.decode.max_instances))
    dec = meta.decode
    report = ParityReport(precision=precision, layout=layout, sizes=[tuple(s) for s in sizes], batch=batch,
                          tolerances=tol)
    passes = [("model thresholds", float(dec["ctr_score"]))] + ([("probe", 0.0)] if probe else [])
    totals = {name: PassStats(name, ctr) for name, ctr in passes}

    has_raw = layout == LAYOUT_RAW or _raw_in_value_info(onnx_model)
    if not has_raw:
        report.notes.append("raw network tensors not found in the graph; compared decode outputs only")
    sess = _session(onnx_model, RAW_NAMES if layout == LAYOUT_PRODUCTS and has_raw else ())
    out_names = [o.name for o in sess.get_outputs()]

    for i, (h, w) in enumerate(report.sizes):
        images = structured_images(batch, h, w, seed=seed + i, normalization=meta.normalization)
        ref_raw = _torch_raw(model, images)
        for pi, (name, ctr) in enumerate(passes):
            params = np.array([ctr, dec["mask_thr"], dec["cate_score_thr"]], np.float32)
            if layout == LAYOUT_PRODUCTS:
                res = dict(zip(out_names, sess.run(None, {"images": images, "decode_params": params})))
            else:
                if pi == 0:
                    raw_res = dict(zip(out_names, sess.run(None, {"images": images})))
                res = dict(raw_res)
                res.update(_torch_decode(model, k, images, params,
                                         raw=[raw_res[n].astype(np.float32) for n in RAW_NAMES]))
            ref = _torch_decode(model, k, images, params, raw=ref_raw)
            if pi == 0:
                if has_raw:
                    for n, r in zip(RAW_NAMES, ref_raw):
                        a = res[n].astype(np.float64)
                        diff = float(np.max(np.abs(a - r))) if a.shape == r.shape else float("inf")
                        scale = max(float(np.max(np.abs(r))), 1e-6)
                        report.raw_abs[n] = max(report.raw_abs.get(n, 0.0), diff)
                        report.raw_rel[n] = max(report.raw_rel.get(n, 0.0), diff / scale)
                cc = res["cat_conf"].astype(np.float64)
                same = cc.shape == ref["cat_conf"].shape
                diff = float(np.max(np.abs(cc - ref["cat_conf"]))) if same else float("inf")
                report.cat_conf = diff if report.cat_conf is None else max(report.cat_conf, diff)
            stats = PassStats(name, ctr)
            _match(stats, res, ref)
            totals[name].merge(stats)
    report.passes = list(totals.values())
    first = report.passes[0]
    if first.union == 0:
        report.notes.append("no persons at the model's ctr_score on these synthetic images (expected for an "
                            "untrained model); the probe pass compares instances")
    report.evaluate()
    return report
