"""Planted persons: benchmark inputs for networks with random weights (see benchmarks/README.md).

An untrained network finds no person, so its decode would do no work. :class:`SyntheticPersons` is a
forward hook on the head (in PyTorch, and traced into the exported ONNX graph, so every backend runs
the same thing) that

1. keeps the computed center logits but clamps them to <= ``BG_LOGIT`` and writes ``P`` planted peaks
   with distinct scores at grid cells at least 3 cells apart;
2. adds to the instance features, over an ellipse of a person's size around each peak, a unit
   embedding per person scaled by ``STRENGTH`` x the feature norm at each pixel;
3. adds to the category features the direction of one category kernel per horizontal band of the
   person (``parts`` bands).

Every call then sets ``ctr_score`` between the n-th and (n+1)-th planted score
(:meth:`SyntheticPersons.threshold`), ``n`` following :func:`person_counts`. The images themselves are
the SDK's synthetic scenes (:func:`uniparser_sdk.data.synthetic.make_scene`) with the same person
counts, or a folder of real images (:func:`load_images`).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from uniparser_sdk.errors import UserInputError

__all__ = ["SyntheticPersons", "person_counts", "load_images", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def person_counts(mean: float, n: int) -> list[int]:
    """Integer person counts for ``n`` images whose mean is ``mean`` over the cycle (e.g. 2.6 ->
    3, 2, 3, 2, 3): count_i = round((i + 1) * mean) - round(i * mean)."""
    if mean < 0:
        raise UserInputError(f"--persons must be >= 0, got {mean}")
    return [int(round((i + 1) * mean) - round(i * mean)) for i in range(n)]


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
                raise UserInputError(f"cannot plant {self.max_persons} separate persons on a {s}x{s} center grid")
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
            raise UserInputError(f"{n} persons asked but only {self.max_persons} are planted")
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


def load_images(spec: str, size_hw, num: int, counts_mean: float, seed: int, label_set: str = "mhp"):
    """``num`` benchmark images of (H, W) ``size_hw``: synthetic scenes with :func:`person_counts`
    persons each, or the first images of a folder. -> (BGR uint8 arrays, names, description)."""
    h, w = size_hw
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
        raise UserInputError(f"--images must be a folder of images or 'synthetic', got {spec!r}")
    from uniparser_sdk.io_utils import imread

    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)[:num]
    if not files:
        raise UserInputError(f"no images (.jpg/.png/...) in {folder}")
    imgs = [imread(p) for p in files]
    return imgs, [p.name for p in files], f"{len(files)} images from {folder} (resized to fit {w}x{h})"

