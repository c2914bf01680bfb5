"""uniparser-bench: ms/img per stage, images/s, parameters, GFLOPs and peak memory of UniParser models
on every backend, in the form of the paper's Table 2.

    uniparser-bench --table2 --size 640x384 --iters 5 --warmup 1          # CPU, a few minutes
    uniparser-bench --configs r50,r50-light --backends torch,onnxruntime,tensorrt --size 1333x800 \\
        --iters 50 --json bench.json --plot bench.png                     # the full comparison (GPU)
    uniparser-bench model.pth other.onnx --images photos/ --iters 20      # your own model files

What is measured, per model x backend (see benchmarks/README.md for the full method):

* ``total``: wall time of one ``Parser.predict(image)`` call (time.perf_counter, batch 1, one stream),
  split into ``preprocess`` (resize / normalise / pad), ``network`` (backbone + FPN + head),
  ``decode`` (decode steps 1-4: center peaks, kernels, cosine maps, maskness -- in the exported graph
  for ONNX Runtime / TensorRT) and ``postprocess`` (step 5, per-person finishing in numpy, and the
  result objects). torch: the network is timed by hooks around the network module inside the same
  call, decode = backend stage - network. ONNX Runtime: the decode steps 1-4 are exported alone as a
  small graph and timed in the same session settings right after each call on network outputs of the
  benchmark images; network = backend stage - that. TensorRT: network and decode stay one number.
* median and p90 over ``--iters`` timed calls after ``--warmup`` untimed ones (images cycle);
  images/s = timed calls / their summed wall time.
* parameters (M) of the network; GFLOPs of the network at the padded input size (2 x MACs of the
  convolutions; DCN = its conv + offset conv + bilinear sampling; see flops.py).
* peak RSS of the process while that row ran (VmHWM, reset before each row through
  /proc/self/clear_refs) and, on a GPU, peak GPU memory (torch allocator; nvidia-smi samples for
  ONNX Runtime / TensorRT).

Random weights ("synthetic-persons" mode, the default for --configs): an untrained network finds no
person, so the decode would do no work. The benchmark therefore installs a forward hook on the head
(in PyTorch, and traced into the exported ONNX graph) that (1) keeps the computed center logits but
clamps them below the background level and writes up to ``P`` planted peaks with distinct scores,
(2) adds to the instance features one unit embedding per planted person over an ellipse of a
person's size (relative to the feature norm, x3), and (3) adds to the category features the
direction of one category kernel per body band (8 bands per person). Every call then asks the
decode for exactly ``n`` persons by setting ``ctr_score`` between the n-th and (n+1)-th planted
scores, with ``n`` following a sequence whose mean is ``--persons`` (2.6 as in the paper). The
network still computes everything (the hook only adds a few element-wise operations); the decode
does the work of ``n`` persons of realistic size with ~8 parts each. The persons actually decoded
per image are reported (``persons/img``).
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np

__all__ = ["main", "run", "build_arg_parser", "SyntheticPersons", "PAPER_TABLE2", "person_counts", "parse_size"]

BENCH_FORMAT = "uniparser-bench/1"
CACHE_VERSION = "1"
DEFAULT_CONFIGS = ("r50", "r50-light")
DEFAULT_BACKENDS = ("torch", "onnxruntime", "tensorrt")
DEFAULT_PLOT = "uniparser-bench-table2.png"
STAGES = ("preprocess", "network", "decode", "postprocess")

# ------------------------------------------------------------------------------------------------
# The paper's Table 2, quoted (MHPv2.0 val, 2.6 persons per image)

PAPER_SOURCE = "UniParser paper, Table 2: MHPv2.0 val, average 2.6 persons per image"
PAPER_HARDWARE = "NVIDIA RTX 3090, PyTorch / mmdetection 2.x (the authors' setup), test scale 1333x800"
PAPER_TABLE2 = [
    # (group, method, T_infer ms, params M -- the paper's column says "Params (MB)", the values are
    # millions of parameters: 36.73 M for UniParser R50)
    ("top-down", "SNT", 3546, None),
    ("top-down", "M-CE2P", 1023, None),
    ("top-down", "P-RCNN", 256, 54.3),
    ("top-down", "RP-RCNN", 341, 58.4),
    ("bottom-up", "MHPParser", 1224, None),
    ("bottom-up", "NAN", 997, None),
    ("bottom-up", "PGN", 524, 629.2),
    ("single-stage", "SMP", 124, 76.21),
    ("single-stage", "UniParser-light", 82, 30.54),
    ("single-stage", "UniParser", 102, 36.73),
]
PAPER_NOTES = {"UniParser-light": "down 34% vs SMP, as printed", "UniParser": "down 16% vs SMP, as printed"}
PAPER_FULL_MS, PAPER_LIGHT_MS = 102.0, 82.0
PAPER_FULL_M, PAPER_LIGHT_M = 36.73, 30.54

TABLE2_NAMES = {
    "r50": "UniParser (R50)", "r50-light": "UniParser-light (R50)",
    "r101": "UniParser (R101)", "r101-light": "UniParser-light (R101)",
    "r101-cihp-light": "UniParser-light (R101, CIHP)",
    "tiny": "tiny (test config)", "tiny-light": "tiny-light (test config)",
}


class BenchError(Exception):
    """A user mistake (bad size, unknown config, empty image folder): one line, exit code 2."""


# ------------------------------------------------------------------------------------------------
# small helpers


def parse_size(text: str) -> tuple[int, int]:
    """'1333x800' -> (width, height)."""
    try:
        w, h = (int(v) for v in str(text).lower().replace("*", "x").split("x"))
    except ValueError:
        raise BenchError(f"--size must be WIDTHxHEIGHT, e.g. 1333x800; got {text!r}") from None
    if w < 32 or h < 32:
        raise BenchError(f"--size must be at least 32x32, got {text!r}")
    return w, h


def person_counts(mean: float, n: int) -> list[int]:
    """Integer person counts for ``n`` images whose mean is ``mean`` over the cycle (e.g. 2.6 ->
    3, 2, 3, 2, 3): count_i = round((i + 1) * mean) - round(i * mean)."""
    if mean < 0:
        raise BenchError(f"--persons must be >= 0, got {mean}")
    return [int(round((i + 1) * mean) - round(i * mean)) for i in range(n)]


def stats(values) -> Optional[dict]:
    """median / p90 (nearest rank) / mean / min / max of a list of milliseconds."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    s = sorted(vals)
    p90 = s[min(len(s) - 1, int(math.ceil(0.9 * len(s))) - 1)]
    return {"median": round(statistics.median(s), 3), "p90": round(p90, 3), "mean": round(statistics.fmean(s), 3),
            "min": round(s[0], 3), "max": round(s[-1], 3), "n": len(s)}


def _read_status(key: str) -> Optional[float]:
    """A /proc/self/status field in MiB (VmRSS, VmHWM), None where unavailable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> Optional[float]:
    v = _read_status("VmHWM")
    if v is None:
        try:
            import resource

            v = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        except Exception:
            return None
    return v


def _nvidia_smi(query: str) -> Optional[list[str]]:
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run([smi, f"--query-gpu={query}", "--format=csv,noheader,nounits"], capture_output=True,
                             text=True, timeout=20, check=True).stdout
    except Exception:
        return None
    lines = [ln.strip() for ln in out.strip().splitlines() if ln.strip()]
    return lines or None


def gpu_used_mib(index: int = 0) -> Optional[float]:
    lines = _nvidia_smi("memory.used")
    if not lines or index >= len(lines):
        return None
    try:
        return float(lines[index])
    except ValueError:
        return None


def _version(mod: str) -> Optional[str]:
    try:
        m = __import__(mod)
        return str(getattr(m, "__version__", "?"))
    except Exception:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_info() -> dict:
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "numpy": np.__version__,
        "opencv": _version("cv2"),
        "torch": _version("torch"),
        "onnxruntime": _version("onnxruntime"),
        "onnx": _version("onnx"),
        "onnxsim": _version("onnxsim"),
        "uniparser_sdk": _version("uniparser_sdk"),
    }
    try:
        import onnxruntime as ort

        info["onnxruntime_providers_available"] = list(ort.get_available_providers())
    except Exception:
        info["onnxruntime_providers_available"] = []
    gpus = _nvidia_smi("name,driver_version,memory.total")
    info["gpu"] = gpus[0] if gpus else None
    try:
        import torch

        info["torch_cuda"] = torch.version.cuda if torch.cuda.is_available() else None
        if torch.cuda.is_available() and not info["gpu"]:
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:
        info["torch_cuda"] = None
    try:
        import tensorrt  # noqa: F401

        info["tensorrt"] = str(tensorrt.__version__)
    except Exception:
        info["tensorrt"] = None
    return info


def default_cache_dir() -> Path:
    env = os.environ.get("UNIPARSER_CACHE_DIR")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "uniparser"
    return base / "bench"


def _source_digest() -> str:
    """Digest of the code an export depends on (model, export wrapper): cached files are rebuilt when
    it changes."""
    import uniparser_sdk

    root = Path(uniparser_sdk.__file__).resolve().parent
    files = sorted((root / "model").glob("*.py")) + sorted((root / "contract").glob("*.py"))
    try:
        import uniparser_sdk.export as ex

        ex_dir = Path(ex.__file__).resolve().parent
        files += [ex_dir / "onnx_export.py"]
    except Exception:
        pass
    files = [f for f in files if f.is_file()]
    h = hashlib.sha256(CACHE_VERSION.encode())
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def _file_sha(path, limit: int = 1 << 40) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------------
# synthetic-persons mode


class SyntheticPersons:
    """Planted persons for networks with random weights (see the module docstring).

    ``seg_kernels`` (C, D) of the model; ``num_grid`` S; ``aspect`` = H / W of the benchmark images
    (persons get a human width:height ratio). Persons are ellipses in the [-1, 1] coordinates of the
    feature map (the head's own coordinate channels), so the same hook works at any input size and
    in the exported ONNX graph (dynamic height and width)."""

    BG_LOGIT = -6.0  # sigmoid 0.0025: far below any ctr_score used
    STRENGTH = 3.0  # planted embedding = STRENGTH x the feature norm at that pixel

    def __init__(self, seg_kernels, num_grid: int, max_persons: int = 8, parts: int = 8, aspect: float = 0.6,
                 seed: int = 0):
        seg = np.asarray(seg_kernels, np.float32)
        c, d = seg.shape
        self.num_grid, self.max_persons, self.parts = int(num_grid), int(max_persons), int(parts)
        self.feat_dim, self.num_cats = d, c
        rng = np.random.default_rng([int(seed), 7919])
        s = self.num_grid
        persons, cells = [], []
        tries = 0
        while len(persons) < self.max_persons:
            tries += 1
            if tries > 20000:
                raise BenchError(f"cannot plant {self.max_persons} separate persons on a {s}x{s} center grid")
            ry = float(rng.uniform(0.3, 0.8))  # half height in [-1, 1] units = fraction of the image height
            rx = ry * float(rng.uniform(0.35, 0.5)) * float(aspect)
            gy = int(rng.integers(max(1, int((1 - ry * 0.8) / 2 * s)), max(2, s - int((1 - ry * 0.8) / 2 * s))))
            gx = int(rng.integers(max(1, int(0.07 * s)), max(2, s - int(0.07 * s))))
            gy, gx = min(gy, s - 2), min(gx, s - 2)
            if any(max(abs(gy - a), abs(gx - b)) < 3 for a, b in cells):
                continue  # peaks must survive the 5x5 local-maximum test
            cy, cx = -1 + 2 * (gy + 0.5) / s, -1 + 2 * (gx + 0.5) / s
            # each center must stay well inside its own ellipse's territory, not another person's core
            if any(((cy - p[0]) / p[2]) ** 2 + ((cx - p[1]) / p[3]) ** 2 < 0.5 for p in persons) or \
                    any(((p[0] - cy) / ry) ** 2 + ((p[1] - cx) / rx) ** 2 < 0.5 for p in persons):
                continue
            persons.append((cy, cx, ry, rx))
            cells.append((gy, gx))
        self.persons = persons
        self.cells = cells
        k = self.max_persons
        self.scores = [0.95 - 0.6 * j / max(1, k - 1) for j in range(k)]  # distinct, descending
        cats = [rng.choice(c, size=self.parts, replace=c < self.parts) for _ in range(k)]
        self.categories = [[int(v) for v in row] for row in cats]
        e = rng.standard_normal((k, d)).astype(np.float32)
        self._ins_table = np.concatenate([np.zeros((1, d), np.float32),
                                          e / np.linalg.norm(e, axis=1, keepdims=True)])
        seg_n = seg / np.maximum(np.linalg.norm(seg, axis=1, keepdims=True), 1e-12)
        self._sem_table = np.concatenate([np.zeros((1, d), np.float32),
                                          np.concatenate([seg_n[row] for row in cats])])
        self._dev_cache: dict = {}

    # -- decode thresholds -----------------------------------------------------------------------

    def threshold(self, n: int) -> float:
        """ctr_score that admits exactly the first ``n`` planted persons."""
        n = int(n)
        if n > self.max_persons:
            raise BenchError(f"{n} persons asked but only {self.max_persons} are planted")
        if n <= 0:
            return min(0.99, self.scores[0] + 0.025)
        if n >= self.max_persons:
            return max(0.01, self.scores[-1] - 0.025)
        return 0.5 * (self.scores[n - 1] + self.scores[n])

    def describe(self) -> str:
        return (f"synthetic-persons mode: random weights; a hook on the head plants {self.max_persons} persons "
                f"(center peaks with scores {self.scores[0]:.2f}..{self.scores[-1]:.2f} over background logits "
                f"clamped to <= {self.BG_LOGIT:g}, one instance embedding per person ellipse, one category "
                f"direction per body band, {self.parts} bands); each call sets ctr_score so that exactly n persons "
                f"are decoded")

    # -- the hook --------------------------------------------------------------------------------

    def _tensors(self, device, dtype):
        """The constants of the hook on ``device``: built eagerly (install() calls this before any
        forward), so that an ONNX trace sees them as constants, not as the ops that built them."""
        import torch

        key = (str(device), str(dtype))
        if key not in self._dev_cache:
            s = self.num_grid
            mask = np.zeros((1, 1, s, s), bool)
            value = np.zeros((1, 1, s, s), np.float32)
            for (gy, gx), score in zip(self.cells, self.scores):
                mask[0, 0, gy, gx] = True
                value[0, 0, gy, gx] = math.log(score / (1 - score))
            geo = np.asarray(self.persons, np.float32).reshape(-1, 4, 1, 1)  # (P, 4): cy, cx, ry, rx

            def as_t(a, dt=dtype):
                return torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=dt)

            self._dev_cache[key] = dict(
                mask=as_t(mask, torch.bool), value=as_t(value),
                cy=as_t(geo[:, 0]), cx=as_t(geo[:, 1]), ry=as_t(geo[:, 2]), rx=as_t(geo[:, 3]),
                ins=as_t(self._ins_table), sem=as_t(self._sem_table))
        return self._dev_cache[key]

    def transform(self, center, ins, sem):
        import torch
        import torch.nn.functional as F

        from uniparser_sdk.model.head import coord_channels

        t = self._tensors(ins.device, ins.dtype)
        center = torch.where(t["mask"], t["value"].to(center.dtype), torch.clamp(center, max=self.BG_LOGIT))
        coords = coord_channels(ins)[:1]  # (1, 2, h, w): x, y in [-1, 1]
        x, y = coords[:, 0], coords[:, 1]  # (1, h, w)
        dist = ((y - t["cy"]) / t["ry"]) ** 2 + ((x - t["cx"]) / t["rx"]) ** 2  # (P, h, w)
        dmin, owner = torch.min(dist, dim=0)  # nearest person (normalised distance) owns the pixel
        inside = dmin <= 1.0
        band = torch.clamp(torch.floor((y - (t["cy"] - t["ry"])) / (2 * t["ry"]) * self.parts), 0, self.parts - 1)
        band = torch.gather(band, 0, owner[None])[0].to(torch.int64)
        zero = torch.zeros_like(owner)
        pid = torch.where(inside, owner + 1, zero)
        part = torch.where(inside, owner * self.parts + band + 1, zero)
        e_ins = F.embedding(pid, t["ins"]).permute(2, 0, 1)[None]  # (1, D, h, w)
        e_sem = F.embedding(part, t["sem"]).permute(2, 0, 1)[None]
        ins = ins + self.STRENGTH * torch.norm(ins, dim=1, keepdim=True) * e_ins
        sem = sem + self.STRENGTH * torch.norm(sem, dim=1, keepdim=True) * e_sem
        return center, ins, sem

    def hook(self, module, inputs, output):
        return self.transform(*output)

    def install(self, model):
        """Register the hook on ``model.mask_head``; returns the handle (``.remove()``)."""
        p = next(model.mask_head.parameters())
        self._tensors(p.device, p.dtype if p.dtype.is_floating_point else None)
        return model.mask_head.register_forward_hook(self.hook)


# ------------------------------------------------------------------------------------------------
# inputs


def load_images(spec: str, size_wh, num: int, counts_mean: float, seed: int, label_set: str):
    """-> (list of BGR uint8 arrays, list of names, description)."""
    w, h = size_wh
    if spec == "synthetic":
        from uniparser_sdk.data.synthetic import make_scene

        counts = person_counts(counts_mean, num)
        imgs = []
        for i, n in enumerate(counts):
            rng = np.random.default_rng([int(seed), i])
            imgs.append(make_scene(rng, (h, w), max(n, 0), label_set)["image"])
        return imgs, [f"synthetic_{i:03d}" for i in range(num)], \
            f"{num} synthetic scenes (uniparser_sdk.data.synthetic, seed {seed}) of {w}x{h}"
    folder = Path(spec)
    if not folder.is_dir():
        raise BenchError(f"--images must be a folder of images or 'synthetic', got {spec!r}")
    from uniparser_sdk.io_utils import imread

    suffixes = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)[:num]
    if not files:
        raise BenchError(f"no images (.jpg/.png/...) in {folder}")
    imgs = [imread(p) for p in files]
    return imgs, [p.name for p in files], f"{len(files)} images from {folder} (resized to fit {w}x{h})"


# ------------------------------------------------------------------------------------------------
# targets (what to benchmark) and their artefacts


@dataclass
class Target:
    name: str  # row label
    kind: str  # "config" (random weights) | "pth" | "onnx" | "engine"
    path: Optional[str] = None
    config: object = None  # ModelConfig
    # filled by prepare()
    pth: Optional[str] = None
    onnx: Optional[str] = None
    decode_onnx: Optional[str] = None
    planted: Optional[SyntheticPersons] = None
    params: Optional[int] = None
    flops: Optional[dict] = None
    seg_kernels: Optional[np.ndarray] = None
    engine: Optional[str] = None
    features: Optional[tuple] = None  # numpy (center (1,S,S), ins (D,h,w), sem (D,h,w)) of image 0
    notes: list = field(default_factory=list)

    @property
    def table2_name(self) -> str:
        if self.kind == "config" and self.config is not None:
            return TABLE2_NAMES.get(self.config.name, self.config.name)
        return self.name


def resolve_targets(models, configs) -> list[Target]:
    out = []
    for m in models:
        p = Path(m)
        if not p.is_file():
            raise BenchError(f"model file not found: {m}")
        suffix = p.suffix.lower()
        kind = {".pth": "pth", ".pt": "pth", ".onnx": "onnx", ".engine": "engine", ".plan": "engine",
                ".trt": "engine"}.get(suffix)
        if kind is None:
            raise BenchError(f"{m}: unknown model file type {suffix!r} (expected .pth, .onnx, .engine/.plan)")
        out.append(Target(name=p.name, kind=kind, path=str(p)))
    if configs:
        from uniparser_sdk.model.configs import get_config

        for name in configs:
            try:
                cfg = get_config(name)
            except ValueError as exc:
                raise BenchError(str(exc)) from None
            out.append(Target(name=cfg.name, kind="config", config=cfg))
    return out


def _export_products(model, path: Path, pad_hw, scale, max_instances: int, log) -> None:
    """products-v1 ONNX of ``model`` (hooks included): the SDK exporter (onnxsim on, parity off), else a
    plain torch.onnx.export of EndToEnd (TorchScript exporter, opset 19)."""
    from uniparser_sdk.contract import LAYOUT_PRODUCTS, ModelMeta

    try:
        from uniparser_sdk.export import onnx_export as ox
    except Exception as exc:  # the exporter module is missing or broken
        ox = None
        log(f"  note: uniparser_sdk.export.onnx_export unavailable ({type(exc).__name__}); plain torch.onnx.export")
    inp = {"scale": [int(max(scale)), int(min(scale))], "size_divisor": 32, "feature_stride": 4}
    if ox is not None and hasattr(ox, "export_onnx"):
        meta = replace(ox.build_meta(model, {"format": "uniparser-bench random weights"}, layout=LAYOUT_PRODUCTS,
                                     max_instances=max_instances), input=inp)
        ox.export_onnx(model, path, meta, simplify=True, parity=False, sample_hw=tuple(pad_hw),
                       max_instances=max_instances, log=lambda s: log("  " + s))
        return
    import io

    import onnx
    import torch

    from uniparser_sdk.classes import classes_for
    from uniparser_sdk.model.end_to_end import INPUT_NAMES, OUTPUT_NAMES, EndToEnd

    cfg = model.config
    meta = ModelMeta(layout=LAYOUT_PRODUCTS, config=cfg.to_dict(), classes=list(classes_for(cfg.num_classes)),
                     decode={"ctr_score": cfg.decode.ctr_score, "mask_thr": cfg.decode.mask_thr,
                             "cate_score_thr": cfg.decode.cate_score_thr, "max_instances": max_instances},
                     input=inp, source_format="uniparser-bench random weights")
    module = EndToEnd(model, max_instances).eval()
    x = torch.zeros(1, 3, *pad_hw)
    buf = io.BytesIO()
    axes = {"images": {0: "batch", 2: "height", 3: "width"}, "scores": {0: "batch"}, "num_instances": {0: "batch"},
            "grid_index": {0: "batch"}, "instance_masks": {0: "batch", 2: "feat_height", 3: "feat_width"},
            "keep": {0: "batch"}, "cat_conf": {0: "batch", 2: "feat_height", 3: "feat_width"}}
    with torch.no_grad():
        torch.onnx.export(module, (x, torch.tensor([0.5, 0.5, 0.5])), buf, input_names=INPUT_NAMES,
                          output_names=OUTPUT_NAMES, dynamic_axes=axes, opset_version=19, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    try:
        import onnxsim

        proto, _ = onnxsim.simplify(proto)
    except Exception:
        pass
    for k, v in meta.to_props().items():
        proto.metadata_props.add(key=k, value=v)
    tmp = path.with_suffix(".tmp")
    onnx.save(proto, str(tmp))
    os.replace(tmp, path)


def _export_decode_only(seg_kernels, num_grid: int, feat_dim: int, feat_hw, max_instances: int, path: Path) -> None:
    """Decode steps 1-4 alone (the tail of EndToEnd) as an ONNX graph with inputs center_logits,
    ins_feats, sem_feats, decode_params and the products-v1 outputs: times the in-graph decode."""
    import io
    from types import SimpleNamespace

    import onnx
    import torch
    import torch.nn as nn

    from uniparser_sdk.model.end_to_end import OUTPUT_NAMES, EndToEnd

    class _Feed(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = SimpleNamespace(num_grid=num_grid)
            self.register_buffer("seg_kernels", torch.as_tensor(np.asarray(seg_kernels, np.float32)))

        def forward(self, feats):
            return feats

    class _DecodeOnly(nn.Module):
        def __init__(self):
            super().__init__()
            self.e2e = EndToEnd(_Feed(), max_instances)

        def forward(self, center, ins, sem, params):
            return self.e2e((center, ins, sem), params)

    h, w = feat_hw
    args = (torch.zeros(1, 1, num_grid, num_grid), torch.rand(1, feat_dim, h, w), torch.rand(1, feat_dim, h, w),
            torch.tensor([0.5, 0.5, 0.5]))
    names = ["center_logits", "ins_feats", "sem_feats", "decode_params"]
    axes = {"center_logits": {0: "batch"}, "ins_feats": {0: "batch", 2: "fh", 3: "fw"},
            "sem_feats": {0: "batch", 2: "fh", 3: "fw"}, "scores": {0: "batch"}, "num_instances": {0: "batch"},
            "grid_index": {0: "batch"}, "instance_masks": {0: "batch", 2: "fh", 3: "fw"}, "keep": {0: "batch"},
            "cat_conf": {0: "batch", 2: "fh", 3: "fw"}}
    buf = io.BytesIO()
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_DecodeOnly().eval(), args, buf, input_names=names, output_names=list(OUTPUT_NAMES),
                          dynamic_axes=axes, opset_version=19, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    tmp = path.with_suffix(".tmp")
    onnx.save(proto, str(tmp))
    os.replace(tmp, path)


def prepare_target(t: Target, args, pad_hw, scale, cache: Path, backends, log) -> None:
    """Weights, ONNX exports (cached) and counts of one target."""
    import torch

    from uniparser_sdk.benchmarks import flops as flops_mod

    need_onnx = any(b in backends for b in ("onnxruntime", "tensorrt"))
    model = None
    if t.kind == "config":
        cfg = t.config
        torch.manual_seed(int(args.seed))
        from uniparser_sdk.model.uniparser import UniParser

        key = hashlib.sha256(json.dumps([cfg.to_dict(), args.seed, args.max_instances, list(pad_hw), scale,
                                         _source_digest()], sort_keys=True).encode()).hexdigest()[:10]
        stem = f"{cfg.name}-{pad_hw[0]}x{pad_hw[1]}-{key}"
        pth = cache / f"{stem}.pth"
        onnx_path = cache / f"{stem}.onnx"
        dec_path = cache / f"{stem}.decode.onnx"
        model = UniParser(cfg).eval()
        aspect = pad_hw[0] / pad_hw[1]
        t.planted = SyntheticPersons(model.seg_kernels.detach().numpy(), cfg.num_grid,
                                     max_persons=max(8, int(math.ceil(args.persons)) + 2), aspect=aspect,
                                     seed=args.seed)
        if not pth.is_file():
            from uniparser_sdk.model.checkpoint import save_checkpoint

            save_checkpoint(pth, model, meta={"note": "uniparser-bench random weights", "seed": args.seed})
        t.pth = str(pth)
        if need_onnx and not onnx_path.is_file():
            log(f"[{t.name}] exporting ONNX (random weights + synthetic-persons hook) -> {onnx_path}")
            handle = t.planted.install(model)
            t0 = time.perf_counter()
            try:
                _export_products(model, onnx_path, pad_hw, scale, args.max_instances, log)
            finally:
                handle.remove()
            log(f"[{t.name}] export took {time.perf_counter() - t0:.1f} s")
        t.onnx = str(onnx_path) if onnx_path.is_file() else None
    elif t.kind == "pth":
        from uniparser_sdk.model.checkpoint import load_model

        model, info = load_model(t.path)
        t.config = info["config"]
        t.pth = t.path
        key = _file_sha(t.path)
        stem = f"{Path(t.path).stem}-{pad_hw[0]}x{pad_hw[1]}-{key}-{_source_digest()}"
        onnx_path = cache / f"{stem}.onnx"
        dec_path = cache / f"{stem}.decode.onnx"
        if need_onnx and not onnx_path.is_file():
            log(f"[{t.name}] exporting ONNX -> {onnx_path}")
            _export_products(model, onnx_path, pad_hw, scale, args.max_instances, log)
        t.onnx = str(onnx_path) if onnx_path.is_file() else None
    elif t.kind == "onnx":
        t.onnx = t.path
        dec_path = None
        try:
            from uniparser_sdk.model.configs import ModelConfig
            from uniparser_sdk.contract import read_onnx_metadata

            import onnx

            proto = onnx.load(t.path, load_external_data=False)
            meta = read_onnx_metadata(proto)
            if meta.config:
                t.config = ModelConfig.from_dict(meta.config)
            t.params = int(sum(int(np.prod(init.dims)) for init in proto.graph.initializer))
            t.notes.append("params counted from the ONNX initializers")
        except Exception as exc:
            t.notes.append(f"no config in the ONNX metadata ({type(exc).__name__})")
    else:  # engine
        dec_path = None

    if model is not None:
        from uniparser_sdk.model.uniparser import parameter_breakdown

        t.params = int(parameter_breakdown(model)["total"])
        t.seg_kernels = model.seg_kernels.detach().float().cpu().numpy()
        if dec_path is not None and "onnxruntime" in backends:
            if not dec_path.is_file():
                h, w = pad_hw[0] // 4 + (2 if t.config.light else 0), pad_hw[1] // 4 + (2 if t.config.light else 0)
                _export_decode_only(t.seg_kernels, t.config.num_grid, t.config.head_channels, (h, w),
                                    args.max_instances, dec_path)
            t.decode_onnx = str(dec_path)
    if t.config is not None:
        try:
            rep = flops_mod.count_flops(t.config, pad_hw)
            t.flops = rep.to_dict()
        except Exception as exc:
            t.notes.append(f"FLOPs not counted: {type(exc).__name__}: {exc}")
    del model
    gc.collect()


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


# ------------------------------------------------------------------------------------------------
# timing one model x backend


class _NetTimer:
    """Forward hooks around the network module of a torch backend: network ms of each call."""

    def __init__(self, model, sync: Optional[Callable] = None):
        self.sync = sync
        self.times: list[float] = []
        self.last = None
        self._t0 = 0.0
        self._handles = [model.register_forward_pre_hook(self._pre), model.register_forward_hook(self._post)]

    def _pre(self, module, inputs):
        if self.sync:
            self.sync()
        self._t0 = time.perf_counter()

    def _post(self, module, inputs, output):
        if self.sync:
            self.sync()
        self.times.append((time.perf_counter() - self._t0) * 1e3)
        self.last = output  # a reference only (no copy inside the timed call)

    def remove(self):
        for h in self._handles:
            h.remove()


def _parts_per_person(res) -> list[int]:
    return [len(p.part_ids) for p in res]


def time_backend(t: Target, backend: str, images, counts, args, scale, device: str, log) -> dict:
    """Open the model file on ``backend`` through :class:`Parser`, warm up, time, measure memory."""
    from uniparser_sdk.runtime.parser import Parser

    gc.collect()
    rss_before = _read_status("VmRSS")
    hwm_reset = reset_peak_rss()
    torch_mod = None
    if backend == "torch":
        import torch as torch_mod

        path = t.pth
        dev = device
    elif backend == "onnxruntime":
        path = t.onnx
        dev = device
    else:
        path = t.engine
        dev = "cuda"
    gpu_base = gpu_used_mib() if (dev != "cpu" and backend != "torch") else None
    cuda_torch = False
    if backend == "torch" and torch_mod is not None and torch_mod.cuda.is_available() and dev != "cpu":
        cuda_torch = True
        torch_mod.cuda.reset_peak_memory_stats()
    extra = {"max_instances": args.max_instances} if backend == "torch" else {}
    parser = Parser(path, device=dev, threads=args.threads, scale=scale, **extra)
    net_timer = None
    decode_fn = None
    handle = None
    row_notes = []
    try:
        if backend == "torch":
            model = parser.backend.model
            if t.planted is not None:
                handle = t.planted.install(model)
            sync = torch_mod.cuda.synchronize if parser.device.startswith("cuda") else None
            net_timer = _NetTimer(model, sync)
            split = "network timed by hooks around the network module inside each call; decode = backend - network"
        elif backend == "onnxruntime":
            if t.decode_onnx and t.features is not None:
                decode_fn = _ort_decode_timer(t, parser, args)
                split = ("decode steps 1-4 exported alone and timed on network outputs right after each call "
                         "(same providers/threads); network = backend - decode")
            else:
                split = "network and decode steps 1-4 not split (one graph)"
        else:
            split = "network and decode steps 1-4 not split (one engine)"
        params_dec = dict(parser.decode)
        rows = {k: [] for k in ("total", "preprocess", "backend", "network", "decode", "postprocess")}
        persons, parts = [], []
        gpu_samples = []
        n_img = len(images)
        for it in range(args.warmup + args.iters):
            i = it % n_img if it < args.warmup else (it - args.warmup) % n_img  # timed calls start at image 0
            kw = {"ctr_score": t.planted.threshold(counts[i])} if t.planted is not None else {}
            t0 = time.perf_counter()
            res = parser.predict(images[i], **kw)
            total = (time.perf_counter() - t0) * 1e3
            tm = res.timings
            net = net_timer.times.pop() if net_timer and net_timer.times else None
            if net_timer is not None and i == 0 and t.features is None and net_timer.last is not None:
                c, ins, sem = net_timer.last  # image 0: keep the network outputs for the decode timings
                t.features = (c[0].detach().float().cpu().numpy().copy(), ins[0].detach().float().cpu().numpy().copy(),
                              sem[0].detach().float().cpu().numpy().copy())
            if net_timer is not None:
                net_timer.last = None
            dec = decode_fn({**params_dec, **kw}) if decode_fn else None
            if dev != "cpu" and backend != "torch":
                gpu_samples.append(gpu_used_mib())
            if it < args.warmup:
                if it == 0 and t.planted is not None and len(res) != counts[i]:
                    row_notes.append(f"warning: {len(res)} persons decoded where {counts[i]} were planted")
                continue
            rows["total"].append(total)
            rows["preprocess"].append(tm.get("preprocess"))
            rows["backend"].append(tm.get("network"))
            rows["postprocess"].append(tm.get("postprocess"))
            if net is not None:
                rows["network"].append(net)
                rows["decode"].append(tm["network"] - net)
            elif dec is not None:
                rows["decode"].append(dec)
                rows["network"].append(tm["network"] - dec)
            else:
                rows["network"].append(tm.get("network"))
            persons.append(len(res))
            parts.extend(_parts_per_person(res))
        peak = peak_rss_mib()
        gpu_peak = None
        gpu_method = None
        if cuda_torch:
            gpu_peak = torch_mod.cuda.max_memory_reserved() / 2 ** 20
            gpu_method = "torch.cuda.max_memory_reserved"
        elif gpu_base is not None and any(v is not None for v in gpu_samples):
            gpu_peak = max(v for v in gpu_samples if v is not None) - gpu_base
            gpu_method = "nvidia-smi memory.used sampled after each call, minus before loading"
        providers = parser.providers
        threads = {"torch": torch_mod.get_num_threads()} if torch_mod is not None else {}
        if backend == "onnxruntime":
            try:
                threads["onnxruntime_intra_op"] = int(parser.backend._sess.get_session_options().intra_op_num_threads)
            except Exception:
                threads["onnxruntime_intra_op"] = args.threads
        real_device = parser.device
    finally:
        if handle is not None:
            handle.remove()
        if net_timer is not None:
            net_timer.remove()
        parser.close()
    del parser
    gc.collect()
    total_s = sum(rows["total"]) / 1e3
    ms = {k: stats(v) for k, v in rows.items()}
    row = {
        "model": t.name, "config": t.config.name if t.config is not None else None, "table2_name": t.table2_name,
        "backend": backend, "device": real_device, "providers": providers, "threads": threads,
        "weights": "random (synthetic-persons mode)" if t.planted is not None else "model file",
        "warmup": args.warmup, "iters": args.iters, "ms": ms, "split": split,
        "images_per_s": round(len(rows["total"]) / total_s, 3) if total_s > 0 else None,
        "persons_per_image": round(statistics.fmean(persons), 3) if persons else None,
        "parts_per_person": round(statistics.fmean(parts), 2) if parts else None,
        "params_m": round(t.params / 1e6, 4) if t.params else None,
        "gflops": t.flops["gflops"] if t.flops else None, "gmacs": t.flops["gmacs"] if t.flops else None,
        "peak_rss_mib": round(peak, 1) if peak else None,
        "rss_before_mib": round(rss_before, 1) if rss_before else None,
        "peak_rss_method": "VmHWM reset before the row" if hwm_reset else "ru_maxrss (process lifetime peak)",
        "gpu_peak_mib": round(gpu_peak, 1) if gpu_peak is not None else None, "gpu_memory_method": gpu_method,
        "notes": list(t.notes) + row_notes,
    }
    if persons and not any(persons):
        row["notes"].append("no person decoded in any timed call (untrained weights?): the decode did almost no work")
    return row


def _ort_decode_timer(t: Target, parser, args):
    """Callable(decode options) -> ms of decode steps 1-4 alone in ONNX Runtime, on image 0's features."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if args.threads:
        so.intra_op_num_threads = int(args.threads)
    providers = [p for p in parser.providers]
    sess = ort.InferenceSession(t.decode_onnx, so, providers=providers)
    c, ins, sem = t.features
    feed = {"center_logits": c[None].astype(np.float32), "ins_feats": ins[None].astype(np.float32),
            "sem_feats": sem[None].astype(np.float32)}

    def run(opts) -> float:
        p = np.array([opts["ctr_score"], opts["mask_thr"], opts["cate_score_thr"]], np.float32)
        t0 = time.perf_counter()
        sess.run(None, {**feed, "decode_params": p})
        return (time.perf_counter() - t0) * 1e3

    return run


# ------------------------------------------------------------------------------------------------
# fused decode vs the official per-person loop


def compare_decodes(t: Target, image_meta, counts, args, log) -> dict:
    """Complete decodes (steps 1-5) of image 0's network outputs, ``n`` persons per call following
    the same counts: the official-style per-person loop vs the faster implementations."""
    import torch

    from uniparser_sdk.classes import classes_for
    from uniparser_sdk.model.configs import DecodeConfig
    from uniparser_sdk.model.decode import decode_official_style, decode_single

    c, ins, sem = t.features
    seg = t.seg_kernels
    cfg = t.config
    base = cfg.decode
    img_shape, ori_shape = tuple(image_meta.img_shape), tuple(image_meta.ori_shape)
    classes = classes_for(cfg.num_classes)
    tc, ti, ts, tk = (torch.from_numpy(np.ascontiguousarray(a)) for a in (c, ins, sem, seg))
    k = args.max_instances

    def dcfg(i):
        thr = t.planted.threshold(counts[i]) if t.planted is not None else base.ctr_score
        return DecodeConfig(ctr_score=thr, mask_thr=base.mask_thr, cate_score_thr=base.cate_score_thr, max_instances=k)

    methods: list[tuple[str, str, Callable]] = []
    methods.append(("official-style per-person loop (torch)",
                    "each person's C x h x w stack upsampled to full size, then argmax",
                    lambda i: decode_official_style(tc, ti, ts, tk, img_shape, ori_shape, dcfg(i)).numpy()))
    methods.append(("reference decode_single (torch)",
                    "K-slot products, per-person separable finishing inside the mask box",
                    lambda i: decode_single(tc, ti, ts, tk, img_shape, ori_shape, dcfg(i)).part_maps.numpy()))
    from uniparser_sdk.runtime.finish import finish_products, finish_raw

    if t.decode_onnx:
        import onnxruntime as ort

        so = ort.SessionOptions()
        if args.threads:
            so.intra_op_num_threads = int(args.threads)
        sess = ort.InferenceSession(t.decode_onnx, so, providers=["CPUExecutionProvider"])
        feed = {"center_logits": c[None], "ins_feats": ins[None], "sem_feats": sem[None]}

        def sdk_split(i):
            d = dcfg(i)
            p = np.array([d.ctr_score, d.mask_thr, d.cate_score_thr], np.float32)
            outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {**feed, "decode_params": p})))
            res = finish_products(outs, image_meta, classes, 0, mask_thr=d.mask_thr)
            return np.stack([q.parts for q in res]) if len(res) else np.zeros((0,) + ori_shape, np.uint8)

        methods.append(("SDK products-v1 split (onnxruntime steps 1-4 + numpy finishing)",
                        "what Parser runs for .onnx models", sdk_split))

    def numpy_raw(i):
        d = dcfg(i)
        res = finish_raw({"center_logits": c[None], "ins_feats": ins[None], "sem_feats": sem[None]}, image_meta,
                         classes, {"ctr_score": d.ctr_score, "mask_thr": d.mask_thr,
                                   "cate_score_thr": d.cate_score_thr, "max_instances": k}, seg_kernels=seg)
        return np.stack([q.parts for q in res]) if len(res) else np.zeros((0,) + ori_shape, np.uint8)

    methods.append(("numpy raw-v1 path (numpy steps 1-5)", "uniparser_sdk.runtime.finish.finish_raw", numpy_raw))
    skipped = {}
    try:
        from uniparser_sdk.fused import cpu as kcpu

        kcpu.load_library()

        def twin(i):
            d = dcfg(i)
            return kcpu.decode_cpu(c, ins, sem, seg, img_shape, ori_shape, d.ctr_score, d.mask_thr,
                                   d.cate_score_thr, k)["part_maps"]

        methods.append(("fused CPU twin (C++, uniparser_sdk.fused)", "fused, count-only, box-restricted", twin))
    except Exception as exc:
        skipped["fused CPU twin (C++)"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
    if torch.cuda.is_available() and args.device != "cpu":
        try:
            from uniparser_sdk.fused import torch_op

            if torch_op.is_available():
                torch_op.load()
                dev = [x.cuda() for x in (tc, ti, ts, tk)]

                def cuda_op(i):
                    d = dcfg(i)
                    out = torch_op.decode_cuda(*dev, img_shape, ori_shape, d.ctr_score, d.mask_thr,
                                               d.cate_score_thr, k)
                    torch.cuda.synchronize()
                    return out["part_maps"].cpu().numpy()

                methods.append(("fused CUDA op (GPU)", "uniparser_sdk.fused.torch_op", cuda_op))
            else:
                skipped["fused CUDA op"] = "torch_op unavailable (needs nvcc / CUDA_HOME)"
        except Exception as exc:
            skipped["fused CUDA op"] = f"{type(exc).__name__}: {exc}"[:200]

    iters = max(1, args.decode_iters if args.decode_iters is not None else args.iters)
    warm = min(args.warmup, 1)
    n_img = len(counts)
    ref_maps = None
    results = []
    for name, how, fn in methods:
        times, persons = [], []
        maps0 = None
        try:
            for it in range(warm + iters):
                i = it % n_img if it < warm else (it - warm) % n_img
                t0 = time.perf_counter()
                maps = fn(i)
                dt = (time.perf_counter() - t0) * 1e3
                if i == 0 and maps0 is None:
                    maps0 = np.asarray(maps)
                if it >= warm:
                    times.append(dt)
                    persons.append(int(np.asarray(maps).shape[0]))
        except Exception as exc:
            skipped[name] = f"{type(exc).__name__}: {exc}"[:200]
            continue
        if ref_maps is None:
            ref_maps = maps0
        diff = None
        if maps0 is not None and ref_maps is not None:
            m = maps0[: ref_maps.shape[0]]
            diff = int((m != ref_maps[: m.shape[0]]).sum()) if m.shape[1:] == ref_maps.shape[1:] else None
        results.append({"method": name, "how": how, "ms": stats(times),
                        "persons_per_call": round(statistics.fmean(persons), 3) if persons else None,
                        "pixels_differing_from_official": diff})
    off = results[0]["ms"]["median"] if results and results[0]["method"].startswith("official") else None
    for r in results:
        r["speedup_vs_official"] = round(off / r["ms"]["median"], 2) if off and r["ms"]["median"] > 0 else None
    return {"model": t.name, "feature_shape": list(ins.shape), "num_categories": int(seg.shape[0]),
            "image": {"resized": list(img_shape), "original": list(ori_shape)}, "iters": iters, "warmup": warm,
            "threads": {"torch": torch.get_num_threads(), "onnxruntime_intra_op": args.threads},
            "methods": results, "skipped": skipped}


# ------------------------------------------------------------------------------------------------
# reports


def _pair_light(rows, key="config") -> list[tuple[dict, dict]]:
    """(full, light) row pairs of the same backend: X and X-light."""
    out = []
    for light in rows:
        name = light.get(key) or ""
        if not name.endswith("-light"):
            continue
        full_name = name[: -len("-light")]
        for full in rows:
            if full.get(key) == full_name and full["backend"] == light["backend"]:
                out.append((full, light))
    return out


def comparisons(rows) -> dict:
    out = {"onnxruntime_vs_torch": [], "light_vs_full": []}
    for r_ort in rows:
        if r_ort["backend"] != "onnxruntime":
            continue
        for r_t in rows:
            if r_t["backend"] == "torch" and r_t["model"] == r_ort["model"] and r_t["device"] == r_ort["device"]:
                entry = {"model": r_ort["model"], "device": r_ort["device"],
                         "torch_ms": r_t["ms"]["total"]["median"], "onnxruntime_ms": r_ort["ms"]["total"]["median"],
                         "speedup_total": round(r_t["ms"]["total"]["median"] / r_ort["ms"]["total"]["median"], 2)}
                if r_t["ms"].get("network") and r_ort["ms"].get("network") and r_ort["ms"]["network"]["median"] > 0:
                    entry["speedup_network"] = round(r_t["ms"]["network"]["median"] / r_ort["ms"]["network"]["median"], 2)
                out["onnxruntime_vs_torch"].append(entry)
    for full, light in _pair_light(rows):
        f_ms, l_ms = full["ms"]["total"]["median"], light["ms"]["total"]["median"]
        e = {"backend": full["backend"], "full": full["model"], "light": light["model"], "full_ms": f_ms,
             "light_ms": l_ms, "decrease_ms": round(f_ms - l_ms, 2),
             "decrease_pct": round(100 * (f_ms - l_ms) / f_ms, 1) if f_ms else None}
        if full.get("params_m") and light.get("params_m"):
            e.update(full_params_m=full["params_m"], light_params_m=light["params_m"],
                     decrease_params_m=round(full["params_m"] - light["params_m"], 3),
                     decrease_params_pct=round(100 * (full["params_m"] - light["params_m"]) / full["params_m"], 1))
        if full.get("gflops") and light.get("gflops"):
            e.update(decrease_gflops_pct=round(100 * (full["gflops"] - light["gflops"]) / full["gflops"], 1))
        out["light_vs_full"].append(e)
    out["paper_light_vs_full"] = {
        "full_ms": PAPER_FULL_MS, "light_ms": PAPER_LIGHT_MS, "decrease_ms": PAPER_FULL_MS - PAPER_LIGHT_MS,
        "decrease_pct": round(100 * (PAPER_FULL_MS - PAPER_LIGHT_MS) / PAPER_FULL_MS, 1),
        "full_params_m": PAPER_FULL_M, "light_params_m": PAPER_LIGHT_M,
        "decrease_params_m": round(PAPER_FULL_M - PAPER_LIGHT_M, 2),
        "decrease_params_pct": round(100 * (PAPER_FULL_M - PAPER_LIGHT_M) / PAPER_FULL_M, 1),
        "hardware": PAPER_HARDWARE}
    return out


def _f(v, fmt="{:.1f}", none="-"):
    return none if v is None else fmt.format(v)


def _med(row, stage):
    s = row["ms"].get(stage)
    return s["median"] if s else None


def format_rows(rows) -> str:
    mw = max([18] + [len(r["model"]) + 2 for r in rows])
    head = (f"{'model':<{mw}}{'backend':<13}{'device':<8}{'thr':>4}  {'total ms med/p90':>19}{'pre':>8}{'network':>10}"
            f"{'decode':>9}{'post':>8}{'img/s':>8}{'pers':>6}{'parts':>6}{'params M':>10}{'GFLOPs':>9}{'RSS MiB':>9}"
            f"{'GPU MiB':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        tot = r["ms"]["total"]
        thr = r["threads"].get("onnxruntime_intra_op", r["threads"].get("torch"))
        derived = {"network": "*" if r["backend"] == "onnxruntime" and r["ms"].get("decode") else "",
                   "decode": "*" if r["backend"] == "torch" else ""}
        dec = _med(r, "decode")
        lines.append(
            f"{r['model']:<{mw}}{r['backend']:<13}{r['device']:<8}{_f(thr, '{}'):>4}  "
            f"{tot['median']:>9.1f} /{tot['p90']:>8.1f}{_f(_med(r, 'preprocess')):>8}"
            f"{_f(_med(r, 'network')) + derived['network']:>10}"
            f"{(_f(dec) + derived['decode']) if dec is not None else 'in net':>9}{_f(_med(r, 'postprocess')):>8}"
            f"{_f(r['images_per_s'], '{:.2f}'):>8}{_f(r['persons_per_image'], '{:.2f}'):>6}"
            f"{_f(r['parts_per_person'], '{:.1f}'):>6}{_f(r['params_m'], '{:.2f}'):>10}{_f(r['gflops'], '{:.1f}'):>9}"
            f"{_f(r['peak_rss_mib'], '{:.0f}'):>9}{_f(r['gpu_peak_mib'], '{:.0f}'):>9}")
    lines.append("  stages are medians (ms/img); * = derived: backend stage minus the other (separately timed) part; "
                 "'in net' = not split")
    for r in rows:
        lines.append(f"  {r['model']} / {r['backend']}: providers {r['providers']}, threads {r['threads']}; "
                     f"{r['split']}")
        for n in r.get("notes", []):
            lines.append(f"    note: {n}")
    return "\n".join(lines)


def format_comparisons(comp, decode_cmp) -> str:
    lines = []
    if comp["onnxruntime_vs_torch"]:
        lines.append("ONNX Runtime vs PyTorch eager (same device, same run, same images):")
        for e in comp["onnxruntime_vs_torch"]:
            net = f", network alone {e['speedup_network']:.2f}" if e.get("speedup_network") else ""
            r = e["speedup_total"]
            verdict = f"{r:.2f}x faster" if r >= 1 else f"{1 / r:.2f}x slower"
            lines.append(f"  {e['model']:<18} torch {e['torch_ms']:9.1f} ms  onnxruntime {e['onnxruntime_ms']:9.1f} ms"
                         f"  -> onnxruntime {verdict} end to end (torch/onnxruntime {r:.2f}){net}")
    if decode_cmp:
        d = decode_cmp
        lines.append(f"Complete decode (steps 1-5) on {d['model']}'s network outputs (features {d['feature_shape']}, "
                     f"C={d['num_categories']}, image {d['image']['original'][1]}x{d['image']['original'][0]}), "
                     f"median of {d['iters']} calls, threads {d['threads']}:")
        for m in d["methods"]:
            sp = f"{m['speedup_vs_official']:.1f}x" if m.get("speedup_vs_official") else "-"
            diff = m["pixels_differing_from_official"]
            lines.append(f"  {m['method']:<66}{m['ms']['median']:>10.2f} ms  p90 {m['ms']['p90']:>9.2f}  "
                         f"vs official {sp:>7}  persons {m['persons_per_call']}  "
                         f"label px differing {diff if diff is not None else '-'}")
        for k, v in d["skipped"].items():
            lines.append(f"  {k}: skipped: {v}")
    if comp["light_vs_full"]:
        p = comp["paper_light_vs_full"]
        lines.append("Light vs full (relative decrease, as the paper reports it):")
        for e in comp["light_vs_full"]:
            par = (f"; params {e['full_params_m']:.2f} -> {e['light_params_m']:.2f} M "
                   f"(-{e['decrease_params_m']:.2f} M, -{e['decrease_params_pct']:.1f}%)") if "full_params_m" in e else ""
            gf = f"; GFLOPs -{e['decrease_gflops_pct']:.1f}%" if "decrease_gflops_pct" in e else ""
            lines.append(f"  {e['backend']:<12} {e['full']} {e['full_ms']:.1f} ms -> {e['light']} {e['light_ms']:.1f} ms "
                         f"(-{e['decrease_ms']:.1f} ms, -{e['decrease_pct']:.1f}%){par}{gf}")
        lines.append(f"  paper (quoted) UniParser {p['full_ms']:.0f} ms -> light {p['light_ms']:.0f} ms "
                     f"(-{p['decrease_ms']:.0f} ms, -{p['decrease_pct']:.1f}%); params {p['full_params_m']} -> "
                     f"{p['light_params_m']} M (-{p['decrease_params_m']} M, -{p['decrease_params_pct']:.1f}%) "
                     f"[{p['hardware']}]")
    return "\n".join(lines)


def format_table2(rows, comp, setting: str) -> str:
    lines = ["Table 2 form. T_infer = end-to-end ms per image (median), Params = millions of parameters "
             "(the paper's column says 'Params (MB)').",
             f"  measured here : {setting}",
             f"  quoted        : {PAPER_SOURCE}; {PAPER_HARDWARE} -- not comparable with CPU figures"]
    head = f"  {'source':<16}{'group':<14}{'Methods':<32}{'backend':<13}{'T_infer (ms)':>26}{'Params (M)':>12}"
    lines += [head, "  " + "-" * (len(head) - 2)]
    light_dec = {(e["backend"], e["light"]): e for e in comp["light_vs_full"]}
    for r in sorted(rows, key=lambda r: (r["backend"], r["table2_name"])):
        e = light_dec.get((r["backend"], r["model"]))
        note = f" (-{e['decrease_pct']:.0f}% vs full)" if e else ""
        med = r["ms"]["total"]["median"]
        lines.append(f"  {'measured':<16}{'single-stage':<14}{r['table2_name']:<32}{r['backend']:<13}"
                     f"{f'{med:.1f}{note}':>26}{_f(r['params_m'], '{:.2f}'):>12}")
    for group, method, ms, params in PAPER_TABLE2:
        note = PAPER_NOTES.get(method, "")
        txt = f"{ms}" + (f" ({note})" if note else "")
        lines.append(f"  {'paper (quoted)':<16}{group:<14}{method:<32}{'-':<13}{txt:>26}{_f(params, '{}'):>12}")
    p = comp["paper_light_vs_full"]
    lines.append(f"  paper: light vs full -{p['decrease_ms']:.0f} ms (-{p['decrease_pct']:.1f}%), "
                 f"-{p['decrease_params_m']} M params (-{p['decrease_params_pct']:.1f}%)")
    for e in comp["light_vs_full"]:
        par = f", -{e['decrease_params_m']:.2f} M params (-{e['decrease_params_pct']:.1f}%)" if "decrease_params_m" in e else ""
        lines.append(f"  ours ({e['backend']}): light vs full -{e['decrease_ms']:.1f} ms (-{e['decrease_pct']:.1f}%){par}")
    return "\n".join(lines)


def table2_rows(rows, comp) -> list[dict]:
    """Our rows and the paper's in one list (the JSON form of --table2)."""
    light_dec = {(e["backend"], e["light"]): e for e in comp["light_vs_full"]}
    out = []
    for r in sorted(rows, key=lambda r: (r["backend"], r["table2_name"])):
        e = light_dec.get((r["backend"], r["model"]))
        out.append({"source": "measured", "method": r["table2_name"], "model": r["model"], "backend": r["backend"],
                    "device": r["device"], "t_infer_ms": r["ms"]["total"]["median"],
                    "t_infer_p90_ms": r["ms"]["total"]["p90"], "params_m": r["params_m"],
                    "decrease_vs_full_pct": e["decrease_pct"] if e else None})
    for group, method, ms, params in PAPER_TABLE2:
        out.append({"source": "paper (quoted)", "group": group, "method": method, "t_infer_ms": ms, "params_m": params,
                    "hardware": PAPER_HARDWARE, "note": PAPER_NOTES.get(method)})
    return out


def table2_chart(path, rows, setting: str) -> Path:
    from uniparser_sdk.benchmarks.plot import bar_chart

    measured = [{"label": f"{r['table2_name']} - {r['backend']}", "value": r["ms"]["total"]["median"],
                 "group": "measured"} for r in sorted(rows, key=lambda r: (r["backend"], r["table2_name"]))]
    paper = [{"label": m, "value": ms, "group": "paper" if m.startswith("UniParser") else "paper-other",
              "note": PAPER_NOTES.get(m, "")} for _, m, ms, _ in PAPER_TABLE2]
    params = [{"label": f"{r['table2_name']} (counted)", "value": r["params_m"], "group": "measured"}
              for r in rows if r.get("params_m")]
    seen = set()
    params = [p for p in params if not (p["label"] in seen or seen.add(p["label"]))]
    params += [{"label": m, "value": pm, "group": "paper" if m.startswith("UniParser") else "paper-other"}
               for _, m, _, pm in PAPER_TABLE2 if pm is not None and pm < 200]
    panels = [
        {"title": f"T_infer measured here (ms/img, median): {setting}", "unit": "ms", "bars": measured},
        {"title": "T_infer quoted from the paper (ms/img): RTX 3090, PyTorch/mmdetection, 1333x800", "unit": "ms",
         "bars": paper},
        {"title": "Parameters (millions)", "unit": "M", "bars": params},
    ]
    legend = {"measured": "measured here", "paper": "UniParser, paper (quoted)", "paper-other": "other methods, paper (quoted)"}
    return bar_chart(path, panels, title="UniParser - Table 2 form (MHPv2.0, 2.6 persons/img)", legend=legend,
                     footnote=[f"Quoted: {PAPER_SOURCE}; {PAPER_HARDWARE}.",
                               "Measured and quoted times come from different hardware: compare ratios, not values. "
                               "PGN (629.2 M params) left off the params panel."])


# ------------------------------------------------------------------------------------------------
# main


def build_arg_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="uniparser-bench", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Benchmark UniParser models on the torch / onnxruntime / tensorrt backends (Table 2 form).",
        epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("models", nargs="*", metavar="MODEL",
                    help="model files: .pth (torch; exported to ONNX for onnxruntime), .onnx, .engine/.plan")
    ap.add_argument("--configs", default=None,
                    help="comma-separated configs with random weights (default r50,r50-light when no MODEL is given): "
                         "r50, r50-light, r101, r101-light, tiny, tiny-light, ...")
    ap.add_argument("--backends", default=",".join(DEFAULT_BACKENDS),
                    help="comma-separated subset of torch,onnxruntime,tensorrt (default: all; unavailable ones print "
                         "'skipped: <reason>')")
    ap.add_argument("--size", default="1333x800", help="test scale WIDTHxHEIGHT (default 1333x800, the official one); "
                                                       "synthetic scenes are drawn at this size")
    ap.add_argument("--images", default="synthetic", help="a folder of images, or 'synthetic' (default)")
    ap.add_argument("--num-images", type=int, default=5, help="images used, cycled (default 5)")
    ap.add_argument("--persons", type=float, default=2.6,
                    help="mean persons per image for random weights (default 2.6, as the paper's MHPv2 val)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed calls first (default 2)")
    ap.add_argument("--iters", type=int, default=10, help="timed calls per model x backend (default 10)")
    ap.add_argument("--decode-iters", type=int, default=None, help="timed calls per decode method (default --iters)")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for torch and onnxruntime (default: all CPUs available to this process)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="where torch / onnxruntime run (auto: the GPU when there is one)")
    ap.add_argument("--max-instances", type=int, default=100, help="K instance slots (default 100)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights, scenes and planted persons")
    ap.add_argument("--no-decode-compare", dest="decode_compare", action="store_false",
                    help="skip the fused-vs-official decode comparison")
    ap.add_argument("--table2", action="store_true",
                    help=f"also print the paper's Table 2 form beside the quoted figures and draw it "
                         f"(--plot, default ./{DEFAULT_PLOT})")
    ap.add_argument("--json", default=None, metavar="OUT", help="write every number to this JSON file")
    ap.add_argument("--plot", default=None, metavar="OUT.png", help="bar chart (ms/img and parameters) as PNG")
    ap.add_argument("--cache-dir", default=None,
                    help="where exported files are cached (default ~/.cache/uniparser/bench or $UNIPARSER_CACHE_DIR)")
    ap.add_argument("--trt-fp16", action="store_true", help="build the TensorRT engines in FP16")
    return ap


def _tensorrt_unavailable() -> Optional[str]:
    try:
        from uniparser_sdk.backends.tensorrt import build as tb
    except Exception as exc:
        return f"export.tensorrt_build unavailable ({type(exc).__name__})"
    try:
        tb.check_environment()
    except Exception as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def _build_engine(t: Target, pad_hw, cache: Path, args, log) -> str:
    from uniparser_sdk.backends.tensorrt import build as tb
    from uniparser_sdk.contract import read_onnx_metadata as read_metadata

    env = tb.check_environment()
    stem = Path(t.onnx).stem + ("-fp16" if args.trt_fp16 else "") + f"-trt{env['tensorrt_version']}-sm{env['compute_capability']}"
    engine = cache / f"{stem}.engine"
    if engine.is_file() and tb.sidecar_path(engine).is_file():
        return str(engine)
    profile = tb.profile_shapes(min(320, *pad_hw), opt=tuple(pad_hw), max_side=max(1344, *pad_hw))
    log(f"[{t.name}] building TensorRT engine -> {engine}")
    built = tb.build_engine(t.onnx, engine, fp16=args.trt_fp16, profile=profile,
                            timing_cache=cache / "trt-timing.cache", log=log)
    sidecar = tb.make_sidecar(read_metadata(t.onnx), tensorrt_version=built["tensorrt_version"],
                              compute_capability=env["compute_capability"], profile=profile,
                              precision=built["precision"], gpu_name=env["gpu_name"], onnx_sha256=_file_sha(t.onnx))
    tb.write_sidecar(engine, sidecar)
    return str(engine)


def run(args, log=print) -> dict:
    """Run the benchmark described by parsed ``args``; print the tables; return the JSON document."""
    wall0 = time.perf_counter()
    size_wh = parse_size(args.size)
    w, h = size_wh
    scale = (max(w, h), min(w, h))
    from uniparser_sdk.runtime.preprocess import pad_size, preprocess

    pad_hw = pad_size(h, w)
    if args.iters < 1 or args.warmup < 0 or args.num_images < 1:
        raise BenchError("--iters and --num-images must be >= 1 and --warmup >= 0")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    bad = [b for b in backends if b not in DEFAULT_BACKENDS]
    if bad or not backends:
        raise BenchError(f"unknown backend(s) {bad or backends}; choose from {','.join(DEFAULT_BACKENDS)}")
    configs = [c.strip() for c in args.configs.split(",") if c.strip()] if args.configs else []
    if not configs and not args.models:
        configs = list(DEFAULT_CONFIGS)
    targets = resolve_targets(args.models, configs)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if args.threads is None:
        args.threads = cpus
    if args.threads < 1:
        raise BenchError("--threads must be >= 1")
    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)

    import torch

    torch.set_num_threads(int(args.threads))
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        log("note: --device cuda but torch sees no GPU; onnxruntime decides by its own providers")
    host = host_info()
    load1 = host["load_average"][0] if host.get("load_average") else 0.0
    if load1 >= 1.0 and args.threads >= cpus:
        log(f"  warning: load average {load1:.2f} on {cpus} CPUs before starting: other processes compete for the "
            f"CPUs; with {args.threads} threads OpenMP-based torch can slow down many-fold when a core is taken "
            f"-- timings are noisy (on a busy machine compare with --threads 1)")
    log(f"uniparser-bench  host: {host['cpu']}, {host['cpus_available']}/{host['logical_cpus']} CPUs available, "
        f"load {host['load_average']}; GPU: {host['gpu'] or 'none'}")
    log(f"  python {host['python']}, numpy {host['numpy']}, opencv {host['opencv']}, torch {host['torch']} "
        f"({torch.get_num_threads()} threads), onnxruntime {host['onnxruntime']} "
        f"(providers available {host['onnxruntime_providers_available']}), onnx {host['onnx']}, "
        f"tensorrt {host['tensorrt'] or 'not installed'}")

    label_set = "mhp"
    imgs, names, img_desc = load_images(args.images, size_wh, args.num_images, args.persons, args.seed, label_set)
    counts = person_counts(args.persons, len(imgs))
    log(f"  inputs: {img_desc}; test scale {scale[0]}x{scale[1]} -> padded network input {pad_hw[1]}x{pad_hw[0]}")
    log(f"  timing: {args.warmup} warm-up + {args.iters} timed calls per row, time.perf_counter, batch 1, one stream; "
        f"threads {args.threads}; cache {cache}")

    skipped = []
    trt_reason = _tensorrt_unavailable() if "tensorrt" in backends else None
    if trt_reason:
        log(f"  tensorrt: skipped: {trt_reason}")
        skipped.append({"backend": "tensorrt", "reason": trt_reason})
    rows, decode_cmp = [], None
    for t in targets:
        t0 = time.perf_counter()
        prepare_target(t, args, pad_hw, scale, cache, backends, log)
        if t.planted is not None:
            log(f"[{t.name}] {t.planted.describe()}; persons per image cycle {counts} (mean "
                f"{statistics.fmean(counts):.2f})")
        log(f"[{t.name}] prepared in {time.perf_counter() - t0:.1f} s: params {t.params / 1e6 if t.params else 0:.2f} M, "
            f"GFLOPs {t.flops['gflops'] if t.flops else '-'} at {pad_hw[1]}x{pad_hw[0]}")
        for b in backends:
            reason = None
            if b == "torch" and t.pth is None:
                reason = f"no PyTorch weights for a .{t.kind} file"
            elif b == "onnxruntime" and t.onnx is None:
                reason = "no ONNX model (a TensorRT engine runs on tensorrt only)" if t.kind == "engine" else \
                    "ONNX export failed"
            elif b == "tensorrt":
                if trt_reason:
                    continue
                if t.kind == "engine":
                    t.engine = t.path
                elif t.onnx is None:
                    reason = "no ONNX model to build an engine from"
                else:
                    try:
                        t.engine = _build_engine(t, pad_hw, cache, args, log)
                    except Exception as exc:
                        reason = f"engine build failed: {type(exc).__name__}: {exc}"
            if reason:
                log(f"[{t.name}] {b}: skipped: {reason}")
                skipped.append({"model": t.name, "backend": b, "reason": reason})
                continue
            if b == "onnxruntime" and t.features is None and t.decode_onnx:
                t.features = compute_features(t, imgs[0], scale)
            log(f"[{t.name}] {b}: {args.warmup} warm-up + {args.iters} timed calls ...")
            try:
                row = time_backend(t, b, imgs, counts, args, scale, device, log)
            except Exception as exc:
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                log(f"[{t.name}] {b}: skipped: {reason}")
                skipped.append({"model": t.name, "backend": b, "reason": reason})
                continue
            tot = row["ms"]["total"]
            log(f"[{t.name}] {b}: {tot['median']:.1f} ms/img median, p90 {tot['p90']:.1f}; persons/img "
                f"{row['persons_per_image']}; peak RSS {row['peak_rss_mib']} MiB")
            rows.append(row)
        if args.decode_compare and decode_cmp is None and t.seg_kernels is not None:
            if t.features is None:
                t.features = compute_features(t, imgs[0], scale)
            _, meta0 = preprocess(imgs[0], scale)
            log(f"[{t.name}] decode comparison (complete decode, steps 1-5) ...")
            decode_cmp = compare_decodes(t, meta0, counts, args, log)
        t.features = None
        gc.collect()

    comp = comparisons(rows)
    dev_desc = rows[0]["device"] if rows else "cpu"
    where = host["gpu"] if dev_desc.startswith("cuda") and host["gpu"] else host["cpu"]
    setting = (f"{where}, {args.threads} CPU threads, {w}x{h}, "
               f"{'synthetic scenes' if args.images == 'synthetic' else 'images from ' + args.images}, "
               f"{'random weights, synthetic-persons mode, ' + str(args.persons) + ' persons/img' if any(t.planted for t in targets) else 'model files'}, "
               f"{args.iters} timed calls after {args.warmup} warm-up")
    log("")
    log(f"Results ({setting}):")
    log(format_rows(rows) if rows else "  (no rows)")
    for s in skipped:
        log(f"  skipped: {s.get('model', '*')} / {s['backend']}: {s['reason']}")
    text = format_comparisons(comp, decode_cmp)
    if text:
        log("")
        log(text)
    plot_path = args.plot or (DEFAULT_PLOT if args.table2 else None)
    if args.table2:
        log("")
        log(format_table2(rows, comp, setting))
    if plot_path and rows:
        p = table2_chart(plot_path, rows, setting)
        log(f"chart: {p}")
    log("")
    log("Method: warm-up calls excluded; time.perf_counter (monotonic); medians and p90 (nearest rank); one image "
        "per call; threads and providers as printed per row; versions above.")
    if any(t.planted for t in targets):
        log("Random weights (" + next(t.planted for t in targets if t.planted).describe() + "): the network "
            "computes everything as usual (the hook adds a few element-wise ops); the decode does the work of n "
            "persons of realistic size with ~8 parts each (persons/img and parts columns are what was decoded).")
    log(f"Full 1333x800 comparison: see benchmarks/README.md (e.g. uniparser-bench --table2 --size 1333x800 "
        f"--iters 50 on a GPU machine). Took {time.perf_counter() - wall0:.0f} s.")
    doc = {
        "format": BENCH_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": host,
        "settings": {"size": [w, h], "scale": list(scale), "padded_input_hw": list(pad_hw), "images": args.images,
                     "image_names": names, "num_images": len(imgs), "persons_mean": args.persons,
                     "person_counts": counts, "warmup": args.warmup, "iters": args.iters, "threads": args.threads,
                     "device": args.device, "backends": backends, "max_instances": args.max_instances,
                     "seed": args.seed, "cache_dir": str(cache)},
        "method": {
            "clock": "time.perf_counter (monotonic)", "statistics": "median and p90 (nearest rank) of timed calls; "
            "warm-up excluded", "images_per_s": "timed calls / summed wall time (batch 1, one stream)",
            "stages": {"preprocess": "Parser resize/normalise/pad", "network": "backbone + FPN + head",
                       "decode": "decode steps 1-4 (peaks, kernels, cosine maps, maskness)",
                       "postprocess": "step 5 per-person finishing (numpy) + result objects"},
            "gflops": "2 x MACs of conv/linear; DCN = conv + offset conv + bilinear sampling (benchmarks/flops.py)",
            "synthetic_persons": next((t.planted.describe() for t in targets if t.planted), None)},
        "results": rows,
        "comparisons": comp,
        "decode_comparison": decode_cmp,
        "table2": table2_rows(rows, comp),
        "paper_table2": {"source": PAPER_SOURCE, "hardware": PAPER_HARDWARE,
                         "rows": [{"group": g, "method": m, "ms": ms, "params_m": p} for g, m, ms, p in PAPER_TABLE2]},
        "skipped": skipped,
        "plot": str(plot_path) if plot_path and rows else None,
        "seconds": round(time.perf_counter() - wall0, 1),
    }
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        log(f"json: {out}")
    return doc


def main(argv=None) -> int:
    from uniparser_sdk.cli.common import run_cli

    args = build_arg_parser().parse_args(argv)
    return run_cli("uniparser-bench", lambda: (run(args), 0)[1], user_errors=(BenchError,))


if __name__ == "__main__":
    sys.exit(main())
