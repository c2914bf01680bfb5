"""The UniParser network: ResNet(+DCNv2) -> FPN -> UniParser head."""
from __future__ import annotations

import torch
import torch.nn as nn

from .configs import ModelConfig, get_config
from .fpn import FPN
from .head import UniParserHead
from .resnet import ResNet


class UniParser(nn.Module):
    """``forward(images)`` takes normalised NCHW images (sides multiples of 32) and returns the raw
    head outputs ``(center_logits (N,1,S,S), ins_feats (N,C,h,w), sem_feats (N,C,h,w))``; the category
    kernels are ``self.seg_kernels``. Decoding lives in :mod:`uniparser_sdk.model.decode`."""

    def __init__(self, config: ModelConfig | str = "r50"):
        super().__init__()
        cfg = get_config(config) if isinstance(config, str) else config
        self.config = cfg
        self.backbone = ResNet(cfg.blocks, cfg.base_width, cfg.dcn_stages, cfg.frozen_stages)
        self.neck = FPN(self.backbone.out_channels, cfg.fpn_channels, num_outs=5)
        self.mask_head = UniParserHead(cfg.num_classes, cfg.fpn_channels, cfg.head_channels, cfg.stacked_convs,
                                       cfg.num_grid, cfg.light, 5, cfg.gn_groups)

    @property
    def seg_kernels(self) -> torch.Tensor:
        return self.mask_head.seg_kernels

    def forward(self, images: torch.Tensor):
        return self.mask_head(self.neck(self.backbone(images)))


def parameter_breakdown(model: UniParser) -> dict[str, int]:
    """Parameter counts per part (millions are the paper's unit); ``unused`` is ins_coord_conv."""
    def count(m):
        return sum(p.numel() for p in m.parameters())

    head = model.mask_head
    dcn_offsets = sum(count(m.conv_offset) for m in model.backbone.modules() if hasattr(m, "conv_offset"))
    unused = count(head.ins_coord_conv)
    converters = count(head.dekr_convs) + count(head.segment_converts)
    return {
        "backbone (ResNet)": count(model.backbone) - dcn_offsets,
        "backbone DCN offset convs": dcn_offsets,
        "neck (FPN)": count(model.neck),
        "head converters": converters,
        "head towers (center/instance/semantic)": count(head.center_convs) + count(head.instance_convs)
        + count(head.semantic_convs),
        "head outputs (center_heatmap, seg_kernels)": count(head.center_heatmap) + head.seg_kernels.numel(),
        "head unused (ins_coord_conv)": unused,
        "total": count(model),
    }
