"""Network FLOPs of UniParser at a given input size, counted with forward hooks.

Convention (the one of mmcv's ``get_model_complexity_info`` and most detection papers): a
multiply-accumulate (MAC) of a convolution or a linear layer is counted once; ``GFLOPs`` printed by
``uniparser-bench`` are **2 x GMACs** (a multiply and an add), and the MACs are reported as well.
Only the arithmetic that dominates is counted:

* ``nn.Conv2d``: ``N * Cout * Ho * Wo * Cin / groups * kh * kw`` (biases, BN/GN, ReLU, resizes and
  the concatenations are not counted; they are a few percent at most);
* ``nn.Linear``: ``rows * in * out``;
* DCNv2 (:class:`~uniparser_sdk.model.dcn.ModulatedDeformConv2d`) = its main 3x3 convolution
  (``N * Cout * Ho * Wo * Cin * 9``) + its ``conv_offset`` 3x3 convolution (counted by the Conv2d hook of
  that child, reported on its own line) + the sampling: every one of the ``Cin * 9`` values per output
  pixel is a bilinear interpolation of 4 neighbours (4 MACs) times the modulation scalar (1 MAC), so
  ``5 * N * Cin * 9 * Ho * Wo``.

The model runs on PyTorch's ``meta`` device: only shapes are computed, so counting a ResNet-101 at
1333x800 takes a second and no memory. :func:`decode_macs` gives the (small) arithmetic of decode
steps 1-4 for comparison. :func:`flop_counter_macs` is an independent cross-check with
``torch.utils.flop_counter.FlopCounterMode`` (which sees the convolutions and matrix products but not
the DCN sampling, a ``grid_sample``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

__all__ = ["FlopsReport", "count_flops", "decode_macs", "flop_counter_macs", "padded_input_hw"]

SAMPLING_MACS_PER_VALUE = 5  # 4 bilinear corners + 1 modulation multiply


@dataclass
class FlopsReport:
    input_hw: tuple  # padded (H, W) the network saw
    macs: int  # total multiply-accumulates
    parts: dict = field(default_factory=dict)  # part name -> MACs

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def gflops(self) -> float:
        return 2.0 * self.macs / 1e9

    def to_dict(self) -> dict:
        return {"input_hw": list(self.input_hw), "gmacs": round(self.gmacs, 3), "gflops": round(self.gflops, 3),
                "convention": "GFLOPs = 2 x GMACs (conv/linear MACs; DCN = conv + offset conv + sampling)",
                "parts_gmacs": {k: round(v / 1e9, 3) for k, v in self.parts.items()}}


def padded_input_hw(h: int, w: int, divisor: int = 32) -> tuple[int, int]:
    return -(-int(h) // divisor) * divisor, -(-int(w) // divisor) * divisor


def _part_of(name: str) -> str:
    if name.startswith("backbone"):
        return "backbone"
    if name.startswith("neck"):
        return "neck (FPN)"
    if name.startswith("mask_head"):
        return "head"
    return "other"


def _meta_model(model_or_config, input_hw):
    """A meta-device UniParser of the model's / config's shapes and the padded input (H, W)."""
    from uniparser_sdk.model.configs import ModelConfig, get_config
    from uniparser_sdk.model.uniparser import UniParser

    if isinstance(model_or_config, nn.Module):
        cfg = model_or_config.config
    elif isinstance(model_or_config, ModelConfig):
        cfg = model_or_config
    else:
        cfg = get_config(str(model_or_config))
    with torch.device("meta"):
        model = UniParser(cfg).eval()
    return model, padded_input_hw(*input_hw)


def count_flops(model_or_config, input_hw, batch: int = 1) -> FlopsReport:
    """MACs of one forward pass of a UniParser network on a ``batch`` x 3 x H x W input.

    ``model_or_config``: a :class:`~uniparser_sdk.model.uniparser.UniParser` (its shapes are used; it is
    not run on its own device -- a meta-device copy is built from its config) or a config name /
    :class:`~uniparser_sdk.model.configs.ModelConfig`. ``input_hw`` is rounded up to multiples of 32
    (the padded size the network sees)."""
    from uniparser_sdk.model.dcn import ModulatedDeformConv2d

    model, (h, w) = _meta_model(model_or_config, input_hw)

    parts: dict[str, int] = {}

    def add(key: str, n: int):
        parts[key] = parts.get(key, 0) + int(n)

    handles = []
    dcn_offset_names = set()
    for name, m in model.named_modules():
        if isinstance(m, ModulatedDeformConv2d):
            dcn_offset_names.add(f"{name}.conv_offset")

    for name, m in model.named_modules():
        part = _part_of(name)
        if isinstance(m, nn.Conv2d):
            key = "backbone DCN offset convs" if name in dcn_offset_names else part

            def conv_hook(mod, inp, out, key=key):
                n, cout, ho, wo = out.shape
                kh, kw = mod.kernel_size
                add(key, n * cout * ho * wo * (mod.in_channels // mod.groups) * kh * kw)

            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            def linear_hook(mod, inp, out, key=part):
                add(key, out.numel() * mod.in_features)

            handles.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, ModulatedDeformConv2d):
            def dcn_hook(mod, inp, out):
                n, cout, ho, wo = out.shape
                kh, kw = mod.kernel_size
                taps = mod.in_channels * kh * kw
                add("backbone DCN conv", n * cout * ho * wo * taps)
                add("backbone DCN sampling", SAMPLING_MACS_PER_VALUE * n * taps * ho * wo)

            handles.append(m.register_forward_hook(dcn_hook))
    try:
        with torch.no_grad():
            model(torch.zeros(batch, 3, h, w, device="meta"))
    finally:
        for hd in handles:
            hd.remove()
    return FlopsReport((h, w), sum(parts.values()), parts)


def decode_macs(feat_dim: int, num_cats: int, feat_hw, slots: int) -> int:
    """MACs of decode steps 1-4 as the exported graph computes them for ``slots`` instance slots:
    the instance cosine maps (slots x D x P), the category cosine maps (C x D x P), the two maskness
    products (2 x slots x P x C) and the feature normalisations (2 x D x P); P = h x w."""
    h, w = feat_hw
    p = int(h) * int(w)
    d, c, k = int(feat_dim), int(num_cats), int(slots)
    return k * d * p + c * d * p + 2 * k * p * c + 2 * d * p


def flop_counter_macs(model_or_config, input_hw) -> int:
    """MACs by ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2) on the meta device: covers the
    convolutions and the DCN main products (a matmul), not the DCN sampling (a grid_sample)."""
    from torch.utils.flop_counter import FlopCounterMode

    model, (h, w) = _meta_model(model_or_config, input_hw)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, h, w, device="meta"))
    return counter.get_total_flops() // 2
