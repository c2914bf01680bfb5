"""PyTorch backend (``.pth`` / ``.pt`` checkpoints: ours or the official mmdetection ones).

Loads the checkpoint with :func:`uniparser_sdk.model.checkpoint.load_model` and runs the same
:class:`~uniparser_sdk.model.end_to_end.EndToEnd` module that is exported to ONNX, so its outputs
follow the products-v1 contract and go through the very same numpy finishing as the ONNX and TensorRT
backends: identical results objects from all three.

On CUDA the same module runs on the GPU (decode steps 1-4 as batched torch operations; the per-person
finishing stays the shared numpy step). The fused CUDA decode op (:mod:`uniparser_sdk.fused.torch_op`)
is not wired in yet: its Python entry point did not exist when this backend was written. torch is
imported lazily, only when this backend is constructed.
"""
from __future__ import annotations

import logging
from typing import Optional

import numpy as np

from ..._lazy import require
from ...devices import parse_device
from ...contract import LAYOUT_PRODUCTS, build_model_meta
from ..base import Backend, decode_params_feed, validate_batch

log = logging.getLogger(__name__)

__all__ = ["TorchBackend"]


def _resolve_device(torch, device: str) -> str:
    dev = parse_device(device)
    if dev.kind == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if dev.kind == "cpu":
        return "cpu"
    if not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} asked but torch sees no CUDA GPU "
                           f"(torch {torch.__version__}); use device='cpu'")
    return str(dev)


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, path, device: str = "auto", providers=None, max_instances: Optional[int] = None,
                 config=None, threads: Optional[int] = None, **_ignored):
        torch = require("torch", "running .pth checkpoints")
        if threads is not None:  # torch's intra-op pool is process-wide: set only when asked
            torch.set_num_threads(int(threads))
        from ...model.end_to_end import EndToEnd
        from ...model.checkpoint import load_model

        self._torch = torch
        dev = _resolve_device(torch, device)
        model, info = load_model(path, config=config, device=dev)
        cfg = info["config"]
        k = int(max_instances) if max_instances else int(cfg.decode.max_instances)
        meta = build_model_meta(cfg, layout=LAYOUT_PRODUCTS, source_sha256=info["sha256"],
                                source_format=info["format"], decode={"max_instances": k},
                                checkpoint_meta=info.get("meta"))
        super().__init__(path, meta)
        self.info = info
        self.model = model
        self.end_to_end = EndToEnd(model, k).to(dev).eval()
        self.device = dev
        where = "cuda" if dev.startswith("cuda") else "cpu"
        self.providers = [f"torch {torch.__version__} ({where})"]

    def _infer(self, batch: np.ndarray, decode_params: np.ndarray) -> dict[str, np.ndarray]:
        self._check_open()
        torch = self._torch
        x = torch.from_numpy(validate_batch(batch)).to(self.device, non_blocking=True)
        p = torch.from_numpy(decode_params_feed(self.meta.layout, decode_params, x.shape[0])).to(self.device)
        with torch.inference_mode():
            outs = self.end_to_end(x, p)
        return {n: o.detach().cpu().numpy() for n, o in zip(self.meta.contract.output_names, outs)}

    def _release(self) -> None:
        dev = self.device
        self.model = None
        self.end_to_end = None
        if dev.startswith("cuda"):
            self._torch.cuda.empty_cache()
