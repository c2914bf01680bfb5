"""FPN neck (mmdet ``FPN`` with ``num_outs=5``, no extra convs): P2..P5 from C2..C5 and P6 as a
kernel-1, stride-2 max-pool of P5. Keys ``lateral_convs.{i}.conv.*`` and ``fpn_convs.{i}.conv.*``."""
from __future__ import annotations

from typing import Sequence

import torch.nn as nn
import torch.nn.functional as F


class _ConvWrap(nn.Module):
    """Holds a conv under the attribute name ``conv`` (mmcv ``ConvModule`` key layout)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        return self.conv(x)


class FPN(nn.Module):
    def __init__(self, in_channels: Sequence[int], out_channels: int = 256, num_outs: int = 5):
        super().__init__()
        self.num_outs = num_outs
        self.lateral_convs = nn.ModuleList(_ConvWrap(nn.Conv2d(c, out_channels, 1)) for c in in_channels)
        self.fpn_convs = nn.ModuleList(
            _ConvWrap(nn.Conv2d(out_channels, out_channels, 3, padding=1)) for _ in in_channels)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, feats):
        lats = [lat(f) for lat, f in zip(self.lateral_convs, feats)]
        for i in range(len(lats) - 1, 0, -1):  # top-down, nearest upsampling to the exact size
            lats[i - 1] = lats[i - 1] + F.interpolate(lats[i], size=lats[i - 1].shape[-2:], mode="nearest")
        outs = [conv(lat) for conv, lat in zip(self.fpn_convs, lats)]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return outs
