"""The UniParser head (``mask_head.*`` in the official checkpoints).

Three branches share converted FPN features:

* center locator: ``dekr_convs`` output + coordinates, resized to S x S, 4 conv-GN-ReLU
  (``center_convs``), ``center_heatmap`` (1 channel logits);
* instance features (IFSB): the same ``dekr_convs`` output + coordinates, 4 conv-GN-ReLU
  (``instance_convs``) at stride 4;
* category features: ``segment_converts`` output + coordinates, 4 conv-GN-ReLU (``semantic_convs``)
  at stride 4; the category kernels are the parameter ``seg_kernels`` (num_classes - 1, C).

Full variant: P3..P6 are resized (bilinear, align_corners=True) to P2's size and concatenated with
P2 (5 x 256 channels); converters are 3x3 convs. Light variant: only P2 enters, converters are 1x1
convs **with padding 1** -- a quirk of the official code kept for weight compatibility: the feature
maps grow by one cell on each side (h+2, w+2) and the decode crops after upsampling, so the
predictions are shifted by one stride-4 cell relative to the image.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvGNReLU(nn.Module):
    """3x3 conv (no bias) + GroupNorm + ReLU with mmcv ``ConvModule`` key names (``conv``, ``gn``)."""

    def __init__(self, cin: int, cout: int, groups: int = 32):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.gn = nn.GroupNorm(groups, cout)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.activate(self.gn(self.conv(x)))


def coord_channels(feat: torch.Tensor) -> torch.Tensor:
    """(N, 2, h, w): x then y, each linspace(-1, 1) over the map."""
    n, _, h, w = feat.shape
    # built in float32 and cast explicitly, so a half-precision export keeps the towers in half
    xs = torch.linspace(-1, 1, w, device=feat.device, dtype=torch.float32)
    ys = torch.linspace(-1, 1, h, device=feat.device, dtype=torch.float32)
    coords = torch.stack((xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w))).to(feat.dtype)
    return coords.unsqueeze(0).expand(n, 2, h, w)


def with_coords(feat: torch.Tensor) -> torch.Tensor:
    return torch.cat((feat, coord_channels(feat)), dim=1)


class UniParserHead(nn.Module):
    def __init__(self, num_classes: int = 59, in_channels: int = 256, feat_channels: int = 128,
                 stacked_convs: int = 4, num_grid: int = 40, light: bool = False, num_levels: int = 5,
                 gn_groups: int = 32, prior_prob: float = 0.01):
        super().__init__()
        self.num_classes, self.num_grid, self.light = num_classes, num_grid, light
        self.in_channels, self.feat_channels = in_channels, feat_channels
        conv_in = in_channels if light else in_channels * num_levels
        k = 1 if light else 3
        self.dekr_convs = nn.Conv2d(conv_in, in_channels, k, padding=1)
        self.segment_converts = nn.Conv2d(conv_in, in_channels, k, padding=1)

        def tower():
            return nn.ModuleList(ConvGNReLU(in_channels + 2 if i == 0 else feat_channels, feat_channels, gn_groups)
                                 for i in range(stacked_convs))

        self.center_convs = tower()
        self.instance_convs = tower()
        self.semantic_convs = tower()
        self.center_heatmap = nn.Conv2d(feat_channels, 1, 3, padding=1)
        self.seg_kernels = nn.Parameter(torch.empty(num_classes - 1, feat_channels))
        # Present in the official checkpoints, never used at inference or in the losses.
        self.ins_coord_conv = nn.Conv2d(feat_channels, 2, 3, padding=1)
        self.ins_coord_conv.requires_grad_(False)
        self._init_weights(prior_prob)

    def _init_weights(self, prior_prob: float):
        prior_bias = -math.log((1 - prior_prob) / prior_prob)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.constant_(self.center_heatmap.bias, prior_bias)
        nn.init.constant_(self.segment_converts.bias, prior_bias)
        nn.init.normal_(self.seg_kernels, std=0.01)

    def merge_levels(self, feats):
        if self.light:
            return feats[0]
        size = feats[0].shape[-2:]
        ups = [F.interpolate(f, size=size, mode="bilinear", align_corners=True) for f in feats[1:]]
        return torch.cat([feats[0]] + ups, dim=1)

    def forward(self, feats):
        """feats: P2..P6. Returns (center logits (N,1,S,S), F_ins (N,C,h,w), F_sem (N,C,h,w))."""
        x = self.merge_levels(feats)
        converted = with_coords(self.dekr_convs(x))
        ctr = F.interpolate(converted, size=(self.num_grid, self.num_grid), mode="bilinear", align_corners=True)
        for layer in self.center_convs:
            ctr = layer(ctr)
        center = self.center_heatmap(ctr)
        ins = converted
        for layer in self.instance_convs:
            ins = layer(ins)
        sem = with_coords(self.segment_converts(x))
        for layer in self.semantic_convs:
            sem = layer(sem)
        return center, ins, sem
