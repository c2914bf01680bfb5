"""PyTorch backend (``.pth`` / ``.pt`` checkpoints: ours or the official mmdetection ones).

Loads the checkpoint with :func:`uniparser_sdk.model.checkpoint.load_model` and runs the same
:class:`~uniparser_sdk.model.end_to_end.EndToEnd` module that is exported to ONNX, so its outputs
follow the products-v1 contract and go through the very same numpy finishing as the ONNX and TensorRT
backends: identical results objects from all three.

On CUDA the same module runs on the GPU (decode steps 1-4 as batched torch operations; the per-person
finishing stays the shared numpy step). The fused CUDA decode op (:mod:`uniparser_sdk.fused.torch_op`)
is not wired in yet: its Python entry point did not exist when this backend was written. torch is
imported lazily, only when this backend is constructed.

``precision="bf16"`` (CPU): the network runs under ``torch.autocast("cpu", dtype=torch.bfloat16)`` with
weights and input in channels_last; the DCNv2 layers get their input in float32 (their sampling
coordinates are computed in the input's dtype, and bf16 cannot address a pixel beyond 256 exactly; their
matrix product still runs in bf16 under autocast); the decode (steps 1-4: cosine products,
thresholds) runs in float32 on the float32 copies of the network outputs, outside autocast.
"""
from __future__ import annotations

import logging
from typing import Optional

import numpy as np

from ..._lazy import require
from ...devices import parse_device
from ...contract import LAYOUT_PRODUCTS, build_model_meta
from ...errors import UserInputError
from ..base import Backend, decode_params_feed, validate_batch

log = logging.getLogger(__name__)

__all__ = ["TorchBackend", "TORCH_PRECISIONS"]

#: precisions the torch backend runs (``TorchBackend(precision=...)``, ``Parser("m.pth", precision=...)``)
TORCH_PRECISIONS = ("fp32", "bf16")


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
                 config=None, threads: Optional[int] = None, precision: str = "fp32", **_ignored):
        torch = require("torch", "running .pth checkpoints")
        precision = str(precision or "fp32").lower()
        if precision not in TORCH_PRECISIONS:
            raise UserInputError(f"the torch backend runs precision {' or '.join(TORCH_PRECISIONS)}, not {precision!r} "
                                 "(fp16 / int8: export the model, uniparser-export --precision ...)")
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
                                checkpoint_meta=info.get("meta"), precision=precision)
        super().__init__(path, meta)
        self.info = info
        self.model = model
        self.end_to_end = EndToEnd(model, k).to(dev).eval()
        self.device = dev
        self.precision = precision
        self._hooks = []
        where = "cuda" if dev.startswith("cuda") else "cpu"
        extra = ""
        if precision == "bf16":
            if dev != "cpu":
                raise UserInputError("precision='bf16' is the CPU autocast path; use device='cpu'")
            self._to_bf16_cpu(model)
            extra = ", network bf16 autocast + channels_last, decode f32"
        self.providers = [f"torch {torch.__version__} ({where}{extra})"]

    def _to_bf16_cpu(self, model) -> None:
        torch = self._torch
        from ...model.dcn import ModulatedDeformConv2d

        model.to(memory_format=torch.channels_last)

        def dcn_input_f32(module, args):
            return (args[0].float(),) + tuple(args[1:])

        for m in model.modules():
            if isinstance(m, ModulatedDeformConv2d):
                self._hooks.append(m.register_forward_pre_hook(dcn_input_f32))
        # the decode reads the network outputs in float32 (EndToEnd calls .float() on each), outside autocast
        self.end_to_end.model = _autocast_network(torch, model)

    def _infer(self, batch: np.ndarray, decode_params: np.ndarray) -> dict[str, np.ndarray]:
        self._check_open()
        torch = self._torch
        x = torch.from_numpy(validate_batch(batch)).to(self.device, non_blocking=True)
        if self.precision == "bf16":
            x = x.contiguous(memory_format=torch.channels_last)
        p = torch.from_numpy(decode_params_feed(self.meta.layout, decode_params, x.shape[0])).to(self.device)
        with torch.inference_mode():
            outs = self.end_to_end(x, p)
        return {n: o.detach().cpu().numpy() for n, o in zip(self.meta.contract.output_names, outs)}

    def _release(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
        dev = self.device
        self.model = None
        self.end_to_end = None
        if dev.startswith("cuda"):
            self._torch.cuda.empty_cache()



def _autocast_network(torch, model):
    """A module standing in for the network inside :class:`EndToEnd` (its ``.model``): runs it under
    bf16 autocast and hands float32 outputs to the decode; ``config`` / ``seg_kernels`` are the network's."""

    class AutocastNetwork(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net
            self.config = net.config

        @property
        def seg_kernels(self):
            return self.net.seg_kernels

        def forward(self, images):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                outs = self.net(images)
            return tuple(o.float() for o in outs)

    return AutocastNetwork(model)
