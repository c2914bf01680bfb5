"""Data plumbing of the trainer: a deterministic sample stream, the per-sample augmentation and the
batch collation that builds the targets.

Determinism (needed for resume and for DDP): the *global* batch of iteration ``t`` is fixed by
``(seed, t)`` alone. Epoch ``e`` visits ``permutation_e(len(dataset))`` (seeded by ``(seed, e)``),
``iters_per_epoch = len // total_batch`` (the remainder is dropped); iteration ``t`` takes the
``total_batch`` indices at offset ``(t % iters_per_epoch) * total_batch`` of epoch ``t //
iters_per_epoch``, and rank ``r`` of ``W`` takes slice ``[r * B, (r + 1) * B)`` of them. Each sample's
augmentation (random resize, flip) is seeded by ``(seed, epoch, index)``, so a resumed run sees exactly
the batches an uninterrupted run would, whatever the number of data-loader workers.

Targets are built in :class:`Collator` (in the loader's worker processes) because the center grid
depends on the padded size of the whole batch.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..data.transforms import Compose, Normalize, RandomHFlip, RandomResize
from .targets import DEFAULT_SIGMA, FEATURE_STRIDE, ImageTargets, build_targets, check_semantics

__all__ = ["StreamBatchSampler", "TrainDataset", "Collator", "targets_to_device", "TARGET_KEYS"]


class StreamBatchSampler:
    """Batch sampler yielding, for iterations ``start .. stop-1``, this rank's list of
    ``(index, epoch)`` keys (see the module docstring)."""

    def __init__(self, dataset_len: int, batch_size: int, start: int, stop: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        self.n, self.batch_size = int(dataset_len), int(batch_size)
        self.total = self.batch_size * int(world_size)
        if self.n < self.total:
            raise ValueError(f"dataset has {self.n} samples, fewer than one global batch of {self.total}")
        self.iters_per_epoch = self.n // self.total
        self.start, self.stop, self.seed = int(start), int(stop), int(seed)
        self.rank = int(rank)
        self._perm_epoch, self._perm = None, None

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._perm_epoch != epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._perm_epoch = epoch
        return self._perm

    def batch(self, it: int) -> list[tuple[int, int]]:
        epoch, k = divmod(int(it), self.iters_per_epoch)
        perm = self._permutation(epoch)
        lo = k * self.total + self.rank * self.batch_size
        return [(int(i), epoch) for i in perm[lo:lo + self.batch_size]]

    def __iter__(self):
        for it in range(self.start, self.stop):
            yield self.batch(it)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


class TrainDataset(torch.utils.data.Dataset):
    """Wraps a dataset of ``{"id", "image", "persons"}`` samples with the training augmentation:
    keep-ratio random resize (short side from ``short_sides``, long side <= ``max_long``), horizontal
    flip with left/right label swap, normalisation. Padding happens in :class:`Collator`.
    ``short_sides=None`` keeps the original size. Keys are ``(index, epoch)``."""

    def __init__(self, base, classes, short_sides: Sequence[int] | None = None, max_long: int = 1333,
                 flip_p: float = 0.5, seed: int = 0):
        self.base, self.classes = base, tuple(classes)
        self.short_sides = None if short_sides is None else [int(s) for s in short_sides]
        self.max_long, self.flip_p, self.seed = int(max_long), float(flip_p), int(seed)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key) -> dict:
        idx, epoch = key if isinstance(key, tuple) else (key, 0)
        sample = self.base[int(idx)]
        s = int(np.random.SeedSequence([self.seed, int(epoch), int(idx)]).generate_state(1)[0])
        steps = []
        if self.short_sides:
            steps.append(RandomResize(self.short_sides, self.max_long, seed=s))
        if self.flip_p > 0:
            steps.append(RandomHFlip(self.flip_p, self.classes, seed=s + 1))
        steps.append(Normalize())
        out = Compose(steps)(sample)
        return {"id": out["id"], "image": out["image"], "persons": out["persons"]}


class Collator:
    """List of augmented samples -> batch dict. Images are zero-padded to the largest size of the
    batch rounded up to ``divisor``; targets are built for that padded size and for the model's
    instance-feature size (``light=True``: one cell larger on each side), with ``semantics``
    "official" or "corrected" (see :mod:`uniparser_sdk.train.targets`).

    Returns ``images`` (N, 3, Hp, Wp) float32, ``center`` (N, 1, S, S), and per image (lists of
    tensors) the :data:`TARGET_KEYS` of :class:`~uniparser_sdk.train.targets.ImageTargets`, plus
    ``ids`` and ``num_persons``."""

    def __init__(self, num_grid: int, num_classes: int, sigma: float = DEFAULT_SIGMA, divisor: int = 32,
                 light: bool = False, semantics: str = "official"):
        self.num_grid, self.num_classes = int(num_grid), int(num_classes)
        self.sigma, self.divisor = float(sigma), int(divisor)
        self.light, self.semantics = bool(light), check_semantics(semantics)

    def __call__(self, samples: list[dict]) -> dict:
        hs = [s["image"].shape[0] for s in samples]
        ws = [s["image"].shape[1] for s in samples]
        d = max(self.divisor, FEATURE_STRIDE)
        Hp, Wp = -(-max(hs) // d) * d, -(-max(ws) // d) * d
        images = np.zeros((len(samples), 3, Hp, Wp), np.float32)
        tgts: list[ImageTargets] = []
        for i, s in enumerate(samples):
            img = np.asarray(s["image"], np.float32)
            images[i, :, :img.shape[0], :img.shape[1]] = img.transpose(2, 0, 1)
            tgts.append(build_targets(s["persons"], (Hp, Wp), self.num_grid, self.num_classes, self.sigma,
                                      light=self.light, semantics=self.semantics))
        out = {
            "images": torch.from_numpy(images),
            "center": torch.from_numpy(np.stack([t.center for t in tgts]))[:, None],
            "ids": [s["id"] for s in samples],
            "num_persons": [t.num_persons for t in tgts],
        }
        for k in TARGET_KEYS:
            out[k] = [torch.from_numpy(np.ascontiguousarray(getattr(t, k))) for t in tgts]
        return out


#: per-image target tensors a batch carries (besides ``center``); the loss reads these
TARGET_KEYS = ("pair_cell", "pair_person", "instances", "semantic", "part_masks", "part_category",
               "part_instance", "part_cell", "person_cell")


def targets_to_device(batch: dict, device) -> dict:
    out = {"center": batch["center"].to(device, non_blocking=True)}
    for k in TARGET_KEYS:
        out[k] = [t.to(device, non_blocking=True) for t in batch[k]]
    return out
