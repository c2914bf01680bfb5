"""The UniParser trainer: single process, or DDP under ``torchrun`` (any number of GPUs / nodes; gloo on CPU).

Schedule (DESIGN §4 defaults): SGD momentum 0.9, weight decay 1e-4, lr = ``lr`` per image x global
batch, linear warm-up from ``warmup_ratio`` over ``warmup_iters``, x0.1 at each step, gradient L2
clipping at 35. ``optimizer="adamw"`` is offered for small models trained from scratch.

Work directory::

    log.jsonl            one JSON object per logged iteration (losses, lr, grad norm, timings)
    train_config.json    the TrainConfig and the model config
    iter_000500.pth      checkpoints (model + optimizer + iteration + RNG), every ``ckpt_every`` iterations
    last_checkpoint      name of the newest iteration checkpoint (``resume="auto"`` reads it)
    final.pth            model-only checkpoint at the end (what uniparser-export and Parser take)

All checkpoints are :func:`uniparser_sdk.model.checkpoint.save_checkpoint` files, loadable with
``torch.load(weights_only=True)``: the optimizer state dict holds tensors and plain Python values
only, and the RNG states are stored as tensors / lists.
"""
from __future__ import annotations

import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from ..model.checkpoint import load_model, read_checkpoint, save_checkpoint
from ..model.configs import ModelConfig, get_config
from ..model.uniparser import UniParser
from .collate import Collator, StreamBatchSampler, TrainDataset, targets_to_device
from .losses import LOSS_NAMES, LossConfig, UniParserLoss
from .targets import SEMANTICS
from ..errors import UniParserError

__all__ = ["TrainConfig", "Trainer", "train", "TrainingError", "lr_at", "build_dataset"]


class TrainingError(UniParserError, RuntimeError):
    """A problem that stops training (bad data path, non-finite loss, ...); the message says why."""


@dataclass
class TrainConfig:
    model: str = "tiny"  # config name or .json file
    data: str = "synthetic"  # "synthetic" or a CIHP / MHPv2 root
    dataset: str = "auto"  # auto | cihp | mhp (for a path)
    split: str = "train"
    work_dir: str = "work_dirs/uniparser"
    iters: int | None = None  # training length in iterations ...
    epochs: int | None = None  # ... or in epochs (one of the two; default 36 epochs)
    batch_size: int = 2  # per process
    lr: float = 6.25e-4  # per image: base lr = lr x global batch
    optimizer: str = "sgd"  # sgd | adamw
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 500
    warmup_ratio: float = 0.001
    steps: tuple = ()  # lr x0.1 at these points (epochs with `epochs`, else iterations); () -> 75%, 92%
    gamma: float = 0.1
    grad_clip: float | None = 35.0
    amp: bool = True  # only on CUDA
    ckpt_every: int = 0  # iterations; 0 -> once per epoch (or at the end)
    log_every: int = 10
    resume: str | None = None  # checkpoint path or "auto"
    init: str | None = None  # fine-tune from our / an official checkpoint
    seed: int = 0
    num_workers: int = 2
    device: str | None = None  # default: cuda if available
    # augmentation
    short_sides: tuple | None = (640, 672, 704, 736, 768, 800)  # None: keep the data's size
    max_long: int = 1333
    flip: float = 0.5
    sigma: float = 0.2
    # synthetic data
    synthetic_images: int = 100000
    synthetic_size: tuple = (256, 320)
    synthetic_persons: tuple = (1, 4)
    # losses: LossConfig fields to override (the weights default by class count: MHPv2 / CIHP)
    loss: dict = field(default_factory=dict)
    # training targets: "official" (the authors' behaviour, quirks included) or "corrected" (the three
    # plainly unintended quirks fixed: centre moved onto the mask, parts paired with their owner's
    # instance map, overlapping persons' semantic labels not summed); see train/targets.py
    semantics: str = "official"
    bn_train: bool = False  # update backbone BatchNorm statistics (from-scratch training)
    # Category kernels only enter through cosines, so their norm is free. Their official init
    # (std 0.01: norm ~0.06 for 32 channels) makes every Adam step (size ~lr per element, whatever the
    # gradient) rotate them by ~20%; from scratch (no init/resume) their rows are rescaled to this norm.
    # "auto": 1.0 with adamw, untouched with sgd (whose steps scale with 1/norm, as the official recipe
    # expects). None / 0: keep the init. They never get weight decay.
    kernel_norm: float | str | None = "auto"
    threads: int | None = None  # torch intra-op threads (CPU)
    progress: bool = True

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        valid = {f.name for f in fields(cls)}
        bad = set(d) - valid
        if bad:
            raise ValueError(f"unknown training option(s) {sorted(bad)}")
        d = dict(d)
        for k in ("steps", "short_sides", "synthetic_size", "synthetic_persons"):
            if isinstance(d.get(k), list):
                d[k] = tuple(d[k])
        return cls(**d)


def lr_at(it: int, base_lr: float, warmup_iters: int, warmup_ratio: float, steps, gamma: float = 0.1) -> float:
    """Learning rate of iteration ``it`` (0-based): step decay, times the linear warm-up factor."""
    lr = base_lr * gamma ** sum(1 for s in steps if it >= s)
    if warmup_iters and it < warmup_iters:
        lr *= warmup_ratio + (1 - warmup_ratio) * it / warmup_iters
    return lr


# ----------------------------------------------------------------------------------------------
# data
def build_dataset(cfg: TrainConfig, num_classes: int):
    """(dataset, class names) for ``cfg.data``."""
    from ..data import MHPv2Dataset, SyntheticScenes
    from ..data.cihp import is_parsing_rcnn_layout, open_cihp

    if cfg.data == "synthetic":
        label_set = "cihp" if num_classes == 20 else "mhp"
        ds = SyntheticScenes(cfg.synthetic_images, seed=cfg.seed, size=tuple(cfg.synthetic_size),
                             persons=tuple(cfg.synthetic_persons), label_set=label_set)
        if ds.num_classes != num_classes:
            raise TrainingError(f"synthetic scenes have {ds.num_classes} classes, the model {num_classes}")
        return ds, ds.classes
    root = Path(cfg.data)
    if not root.exists():
        raise TrainingError(f"dataset path not found: {root}")
    kind = cfg.dataset
    if kind == "auto":
        if (root / "list").is_dir() or (root / "LV-MHP-v2" / "list").is_dir():
            kind = "mhp"
        elif is_parsing_rcnn_layout(str(root)) or any(
                (r / d).is_dir() for r in (root, root / "instance-level_human_parsing") for d in ("Training", "Validation")):
            kind = "cihp"
        else:
            raise TrainingError(f"{root}: neither a CIHP (Training/, Validation/ or CHIP_<set>.json) nor an MHPv2 (list/) layout; "
                                "pass --dataset")
    try:
        if kind == "cihp":
            ds = open_cihp(str(root), cfg.split)  # native or Parsing R-CNN (CHIP_<set>.json) layout
        elif kind == "mhp":
            ds = MHPv2Dataset(str(root), cfg.split)
        else:
            raise TrainingError(f"unknown dataset type {kind!r} (auto, cihp, mhp)")
    except (FileNotFoundError, ValueError) as exc:
        raise TrainingError(str(exc)) from exc
    classes = tuple(ds.classes)
    if len(classes) != num_classes:
        raise TrainingError(f"{kind} data has {len(classes)} classes but model config has {num_classes}; "
                            "choose a matching config (CIHP: 20, MHPv2: 59)")
    return ds, classes


# ----------------------------------------------------------------------------------------------
# distributed helpers
def _dist_env() -> tuple[int, int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def setup_distributed(device: str | None) -> tuple[int, int, torch.device, bool]:
    """Initialise torch.distributed from the torchrun environment when WORLD_SIZE > 1.
    Returns (rank, world_size, device, initialised_here)."""
    rank, world, local = _dist_env()
    use_cuda = torch.cuda.is_available() if device is None else str(device).startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise TrainingError("--device cuda requested but no CUDA GPU is available")
    dev = torch.device(f"cuda:{local}" if use_cuda and (device in (None, "cuda")) else (device or "cpu"))
    if use_cuda:
        torch.cuda.set_device(dev)
    here = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
        here = True
    return rank, world, dev, here


class _TrainModule(nn.Module):
    """Model + loss in one module so that DDP sees every parameter (``seg_kernels`` is used only by
    the loss) inside ``forward``."""

    def __init__(self, model: UniParser, criterion: UniParserLoss):
        super().__init__()
        self.model, self.criterion = model, criterion

    def forward(self, images, targets, amp: bool = False):
        with torch.autocast(device_type=images.device.type, enabled=amp):
            center, ins, sem = self.model(images)
        return self.criterion(center, ins, sem, self.model.seg_kernels, targets)


# ----------------------------------------------------------------------------------------------
# RNG state in weights-only-safe form
def _rng_state() -> dict:
    np_state = np.random.get_state()
    py_state = random.getstate()
    out = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": int(py_state[0]), "state": list(py_state[1]), "gauss": py_state[2]},
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"])[:torch.cuda.device_count()])


def copy_matching_weights(model: nn.Module, source: dict) -> tuple[list[str], list[str]]:
    """Copy tensors of ``source`` whose name and shape match; returns (loaded, skipped) names."""
    own = model.state_dict()
    loaded, skipped = [], []
    with torch.no_grad():
        for k, v in source.items():
            if k in own and tuple(own[k].shape) == tuple(v.shape):
                own[k].copy_(v)
                loaded.append(k)
            else:
                skipped.append(k)
    return loaded, skipped


# ----------------------------------------------------------------------------------------------
class Trainer:
    def __init__(self, cfg: TrainConfig, log=None):
        self.cfg = cfg
        self._log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))

    # -- setup -------------------------------------------------------------------------------
    def _setup(self):
        cfg = self.cfg
        if cfg.iters is not None and cfg.epochs is not None:
            raise TrainingError("give either iters or epochs, not both")
        if cfg.optimizer not in ("sgd", "adamw"):
            raise TrainingError(f"optimizer must be 'sgd' or 'adamw', got {cfg.optimizer!r}")
        if cfg.batch_size < 1 or cfg.lr <= 0:
            raise TrainingError("batch size must be >= 1 and lr > 0")
        if cfg.semantics not in SEMANTICS:
            raise TrainingError(f"semantics must be one of {', '.join(SEMANTICS)}, got {cfg.semantics!r}")
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        self.rank, self.world, self.device, self._dist_here = setup_distributed(cfg.device)
        self.is_main = self.rank == 0
        torch.manual_seed(cfg.seed + self.rank)
        np.random.seed((cfg.seed + self.rank) % 2 ** 32)
        random.seed(cfg.seed + self.rank)

        try:
            mcfg = get_config(cfg.model) if isinstance(cfg.model, str) else cfg.model
        except ValueError as exc:
            raise TrainingError(str(exc)) from exc
        self.model_config: ModelConfig = mcfg
        model = UniParser(mcfg)
        if cfg.bn_train:
            model.backbone.norm_eval = False
        if cfg.init:
            self._init_from(model, cfg.init)
        elif not cfg.resume:
            norm = (1.0 if cfg.optimizer == "adamw" else None) if cfg.kernel_norm == "auto" else cfg.kernel_norm
            if norm:
                with torch.no_grad():
                    k = model.mask_head.seg_kernels
                    k.mul_(float(norm) / k.norm(dim=1, keepdim=True).clamp_min(1e-12))
        self.model = model.to(self.device)
        try:
            self.loss_config = LossConfig.for_classes(mcfg.num_classes, **dict(cfg.loss))
        except (ValueError, TypeError) as exc:
            raise TrainingError(str(exc)) from exc
        self.criterion = UniParserLoss(mcfg.num_classes, self.loss_config)

        dataset, classes = build_dataset(cfg, mcfg.num_classes)
        self.classes = classes
        self.total_batch = cfg.batch_size * self.world
        if len(dataset) < self.total_batch:
            raise TrainingError(f"dataset has {len(dataset)} images, fewer than one global batch ({self.total_batch})")
        self.iters_per_epoch = len(dataset) // self.total_batch
        if cfg.iters is not None:
            self.max_iters = int(cfg.iters)
            steps = [int(s) for s in cfg.steps] if cfg.steps else [int(self.max_iters * 0.75), int(self.max_iters * 0.92)]
        else:
            epochs = int(cfg.epochs if cfg.epochs is not None else 36)
            self.max_iters = epochs * self.iters_per_epoch
            steps = ([int(round(s * self.iters_per_epoch)) for s in cfg.steps] if cfg.steps
                     else [int(self.max_iters * 0.75), int(self.max_iters * 0.92)])
        if self.max_iters <= 0:
            raise TrainingError("nothing to train: iterations/epochs must be positive")
        self.steps = steps
        self.base_lr = cfg.lr * self.total_batch
        self.dataset = TrainDataset(dataset, classes, cfg.short_sides, cfg.max_long, cfg.flip, cfg.seed)
        self.collator = Collator(mcfg.num_grid, mcfg.num_classes, cfg.sigma, light=mcfg.light,
                                 semantics=cfg.semantics)

        kernels = self.model.mask_head.seg_kernels
        params = [p for p in self.model.parameters() if p.requires_grad and p is not kernels]
        groups = [{"params": params}, {"params": [kernels], "weight_decay": 0.0}]
        if cfg.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(groups, lr=self.base_lr, momentum=cfg.momentum,
                                             weight_decay=cfg.weight_decay)
        else:
            self.optimizer = torch.optim.AdamW(groups, lr=self.base_lr, weight_decay=cfg.weight_decay)
        self.amp = bool(cfg.amp and self.device.type == "cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.module = _TrainModule(self.model, self.criterion)
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.module = nn.parallel.DistributedDataParallel(self.module, device_ids=ids)
        self.work_dir = Path(cfg.work_dir)
        self.start_iter = 0
        if cfg.resume:
            self._resume(cfg.resume)

    def _init_from(self, model: UniParser, path: str):
        try:
            src, info = load_model(path)
        except Exception as exc:  # CheckpointError and friends
            raise TrainingError(f"--init: {exc}") from exc
        loaded, skipped = copy_matching_weights(model, src.state_dict())
        self._log(f"init from {path} ({info['format']}): {len(loaded)} tensors loaded, "
                  f"{len(skipped)} skipped{(' e.g. ' + ', '.join(skipped[:3])) if skipped else ''}")

    def _checkpoint_path(self, it: int) -> Path:
        return self.work_dir / f"iter_{it:06d}.pth"

    def _resume(self, spec: str):
        if spec == "auto":
            marker = self.work_dir / "last_checkpoint"
            if not marker.is_file():
                self._log(f"resume=auto: no checkpoint in {self.work_dir}, starting from scratch")
                return
            path = self.work_dir / marker.read_text().strip()
        else:
            path = Path(spec)
        try:
            obj = read_checkpoint(path, training_state=True)
        except Exception as exc:
            raise TrainingError(f"cannot resume: {exc}") from exc
        if "optimizer" not in obj or "iteration" not in obj:
            raise TrainingError(f"{path} is not a training checkpoint (no optimizer state / iteration); "
                                "use --init to fine-tune from it")
        model = self.model
        missing = model.load_state_dict(obj["state_dict"], strict=False)
        if missing.missing_keys:
            raise TrainingError(f"{path}: checkpoint does not fit the model: missing {missing.missing_keys[:3]}")
        self.optimizer.load_state_dict(obj["optimizer"])
        if obj.get("scaler") and self.amp:
            self.scaler.load_state_dict(obj["scaler"])
        self.start_iter = int(obj["iteration"])
        rng = obj.get("rng", {})
        if isinstance(rng, dict) and str(self.rank) in rng:
            _set_rng_state(rng[str(self.rank)])
        self._log(f"resumed from {path} at iteration {self.start_iter}")

    # -- checkpoints -------------------------------------------------------------------------------
    def _meta(self, it: int) -> dict:
        ss = self.cfg.short_sides
        meta = {
            "trained_by": "uniparser-train",
            "iteration": it,
            "classes": list(self.classes),
            "dataset": self.cfg.data,
            "train": self.cfg.to_dict(),
            "loss": self.loss_config.to_dict(),
            "semantics": self.cfg.semantics,
            "world_size": self.world,
        }
        if ss:
            meta["input_scale"] = [int(self.cfg.max_long), int(max(ss))]
        elif self.cfg.data == "synthetic":
            h, w = self.cfg.synthetic_size
            meta["input_scale"] = [int(max(h, w)), int(min(h, w))]
        return meta

    def _gather_rng(self) -> dict:
        state = _rng_state()
        if self.world > 1:
            states = [None] * self.world
            dist.all_gather_object(states, state)
        else:
            states = [state]
        return {str(r): s for r, s in enumerate(states)}

    def save(self, it: int) -> Path | None:
        rng = self._gather_rng()  # collective: every rank calls save()
        if not self.is_main:
            return None
        path = save_checkpoint(self._checkpoint_path(it), self.model, self._meta(it),
                               optimizer=self.optimizer.state_dict(), iteration=it, rng=rng,
                               scaler=self.scaler.state_dict() if self.amp else {})
        (self.work_dir / "last_checkpoint").write_text(path.name + "\n")
        return path

    # -- loop --------------------------------------------------------------------------------------
    def _loader(self, start: int):
        sampler = StreamBatchSampler(len(self.dataset), self.cfg.batch_size, start, self.max_iters, self.cfg.seed,
                                     self.rank, self.world)
        nw = int(self.cfg.num_workers)
        return torch.utils.data.DataLoader(self.dataset, batch_sampler=sampler, collate_fn=self.collator,
                                           num_workers=nw, pin_memory=self.device.type == "cuda",
                                           persistent_workers=False, prefetch_factor=4 if nw else None)

    def _reduce(self, values: dict) -> dict:
        if self.world == 1:
            return values
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return {k: float(v) / self.world for k, v in zip(keys, t.tolist())}

    def step(self, batch) -> dict:
        """One optimisation step on a collated batch; returns the (local) loss values."""
        images = batch["images"].to(self.device, non_blocking=True)
        targets = targets_to_device(batch, self.device)
        losses = self.module(images, targets, self.amp)
        loss = losses["loss"]
        if not torch.isfinite(loss):
            raise TrainingError(f"loss is {float(loss)} at iteration {self.iteration}: "
                                + ", ".join(f"{k}={float(losses[k]):.4g}" for k in LOSS_NAMES)
                                + "; lower --lr or check the data")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        grad_norm = float("nan")
        if self.cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)
            params = [p for p in self.model.parameters() if p.grad is not None]
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        out = {k: float(losses[k].detach()) for k in LOSS_NAMES + ("loss",)}
        out["grad_norm"] = grad_norm
        return out

    def run(self) -> dict:
        self._setup()
        try:
            return self._run()
        finally:
            if self._dist_here and dist.is_initialized():
                dist.destroy_process_group()

    def _run(self) -> dict:
        cfg = self.cfg
        if self.is_main:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            (self.work_dir / "train_config.json").write_text(json.dumps(
                {"train": cfg.to_dict(), "model": self.model_config.to_dict(), "world_size": self.world,
                 "base_lr": self.base_lr, "max_iters": self.max_iters, "steps": self.steps,
                 "iters_per_epoch": self.iters_per_epoch}, indent=2))
            self._log(f"training {self.model_config.name} on {cfg.data}: {self.max_iters} iterations "
                      f"({self.iters_per_epoch}/epoch), global batch {self.total_batch}, base lr {self.base_lr:.3g} "
                      f"({cfg.optimizer}), lr steps at {self.steps}, device {self.device}"
                      f"{', AMP' if self.amp else ''}{f', {self.world} processes' if self.world > 1 else ''}")
        ckpt_every = cfg.ckpt_every or self.iters_per_epoch
        self.model.train()
        self.iteration = self.start_iter
        history = []
        bar = None
        if self.is_main and cfg.progress:
            from tqdm import tqdm
            bar = tqdm(total=self.max_iters, initial=self.start_iter, desc="train", dynamic_ncols=True,
                       file=sys.stderr, mininterval=1.0)
        log_f = open(self.work_dir / "log.jsonl", "a") if self.is_main else None
        t_start = time.time()
        t_data = time.time()
        acc, acc_n, data_time = {}, 0, 0.0
        try:
            for batch in self._loader(self.start_iter):
                data_time += time.time() - t_data
                lr = lr_at(self.iteration, self.base_lr, cfg.warmup_iters, cfg.warmup_ratio, self.steps, cfg.gamma)
                for g in self.optimizer.param_groups:
                    g["lr"] = lr
                vals = self.step(batch)
                self.iteration += 1
                for k, v in vals.items():
                    acc[k] = acc.get(k, 0.0) + v
                acc_n += 1
                if self.iteration % cfg.log_every == 0 or self.iteration == self.max_iters:
                    avg = self._reduce({k: v / acc_n for k, v in acc.items()})
                    rec = {"iter": self.iteration, "epoch": self.iteration / self.iters_per_epoch, "lr": lr,
                           **{k: round(v, 6) for k, v in avg.items()},
                           "data_time": round(data_time / acc_n, 4), "time": round(time.time() - t_start, 2)}
                    history.append(rec)
                    if log_f:
                        log_f.write(json.dumps(rec) + "\n")
                        log_f.flush()
                    if bar is not None:
                        bar.set_postfix({k: f"{avg[k]:.3f}" for k in ("loss",) + LOSS_NAMES}, refresh=False)
                    acc, acc_n, data_time = {}, 0, 0.0
                if bar is not None:
                    bar.update(1)
                if self.iteration % ckpt_every == 0 and self.iteration < self.max_iters:
                    self.save(self.iteration)
                t_data = time.time()
        finally:
            if bar is not None:
                bar.close()
            if log_f:
                log_f.close()
        final = None
        if self.start_iter < self.max_iters:
            self.save(self.iteration)
        if self.is_main:
            final = save_checkpoint(self.work_dir / "final.pth", self.model, self._meta(self.iteration))
        elapsed = time.time() - t_start
        if self.is_main:
            self._log(f"done: {self.iteration} iterations in {elapsed:.0f} s; final checkpoint {final}")
        return {"iterations": self.iteration, "history": history, "final": str(final) if final else None,
                "work_dir": str(self.work_dir), "time_s": elapsed}


def train(cfg: TrainConfig | None = None, **overrides) -> dict:
    """Run training; ``train(iters=100, data="synthetic", ...)``. Returns a summary dict."""
    cfg = replace(cfg or TrainConfig(), **overrides) if overrides else (cfg or TrainConfig())
    return Trainer(cfg).run()
