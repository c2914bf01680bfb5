"""Modulated deformable convolution (DCNv2) in plain PyTorch.

No torchvision / mmcv dependency. Semantics are those of mmcv's ``ModulatedDeformConv2dPack``
(the layer in the official UniParser checkpoints):

* ``conv_offset`` (3x3, bias) predicts ``3 * kh * kw`` channels per output pixel: the first ``kh*kw``
  and the next ``kh*kw`` form the offsets (concatenated, then read as interleaved ``(dy, dx)`` pairs
  per kernel tap in row-major tap order), the last ``kh*kw`` are modulation logits (sigmoid);
* a sample falling outside the input contributes zero (per bilinear corner);
* the main weight has no bias.

Under ONNX export (``torch.onnx.export(..., dynamo=False)``) the op is emitted as the standard
``DeformConv`` operator (opset >= 19), which ONNX Runtime runs and TensorRT (10.1+) parses.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.utils import _pair


def deform_conv2d_torch(x, offset, mask, weight, bias=None, stride=1, padding=0, dilation=1):
    """Modulated deformable convolution, one offset group, groups=1.

    x: (N, C, H, W); offset: (N, 2*kh*kw, Ho, Wo) interleaved (dy, dx) per tap;
    mask: (N, kh*kw, Ho, Wo) already in [0, 1]; weight: (Cout, C, kh, kw).
    """
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    n, c, h, w = x.shape
    cout, cin, kh, kw = (int(s) for s in weight.shape)
    if cin != c:
        raise ValueError(f"weight expects {cin} input channels, input has {c}")
    ho, wo = offset.shape[-2:]
    dtype = x.dtype
    ys = (torch.arange(ho, device=x.device, dtype=dtype) * sh - ph).view(1, ho, 1)
    xs = (torch.arange(wo, device=x.device, dtype=dtype) * sw - pw).view(1, 1, wo)
    off = offset.view(n, kh * kw, 2, ho, wo)
    cols = []
    for k in range(kh * kw):
        ky, kx = divmod(k, kw)
        py = ys + ky * dh + off[:, k, 0]  # (N, Ho, Wo) absolute sample row
        px = xs + kx * dw + off[:, k, 1]
        # grid_sample with align_corners=False: pixel p -> (2p + 1) / size - 1
        grid = torch.stack(((2 * px + 1) / w - 1, (2 * py + 1) / h - 1), dim=-1)
        sampled = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        cols.append(sampled * mask[:, k : k + 1])
    col = torch.stack(cols, dim=2).reshape(n, c * kh * kw, ho * wo)  # channel-major, tap-minor
    out = torch.matmul(weight.reshape(cout, -1), col).view(n, cout, ho, wo)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


class _DeformConvFunction(torch.autograd.Function):
    """Autograd wrapper whose only purpose is the ONNX symbolic (standard ``DeformConv``)."""

    @staticmethod
    def forward(ctx, x, offset, mask, weight, stride, padding, dilation):
        # Only reached while exporting: the symbolic below replaces this node, so the traced body is
        # thrown away; a shape-correct placeholder keeps the tracer's graph small.
        return x.new_zeros((x.shape[0], weight.shape[0]) + tuple(offset.shape[-2:]))

    @staticmethod
    def symbolic(g, x, offset, mask, weight, stride, padding, dilation):
        cout, _, kh, kw = weight.type().sizes()
        dtype = torch.float16 if weight.type().scalarType() == "Half" else torch.float32
        bias = g.op("Constant", value_t=torch.zeros(cout, dtype=dtype))  # ONNX B: same type as the weight
        return g.op(
            "DeformConv", x, weight, offset, bias, mask,
            dilations_i=list(_pair(dilation)), group_i=1, kernel_shape_i=[kh, kw],
            offset_group_i=1, pads_i=[padding[0], padding[1], padding[0], padding[1]],
            strides_i=list(_pair(stride)),
        )


def modulated_deform_conv2d(x, offset, mask, weight, stride=1, padding=0, dilation=1):
    if torch.onnx.is_in_onnx_export():
        return _DeformConvFunction.apply(x, offset, mask, weight, _pair(stride), _pair(padding), _pair(dilation))
    return deform_conv2d_torch(x, offset, mask, weight, None, stride, padding, dilation)


class ModulatedDeformConv2d(nn.Module):
    """DCNv2 layer with its own offset/mask predictor (state-dict compatible with mmcv's
    ``ModulatedDeformConv2dPack``: keys ``weight``, ``conv_offset.weight``, ``conv_offset.bias``)."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=1, dilation=1):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride, self.padding, self.dilation = _pair(stride), _pair(padding), _pair(dilation)
        kh, kw = self.kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kh, kw))
        self.conv_offset = nn.Conv2d(in_channels, 3 * kh * kw, self.kernel_size, self.stride,
                                     self.padding, self.dilation, bias=True)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        # zero offsets and mask logits: starts as a plain conv scaled by sigmoid(0) = 0.5 (as mmcv)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def offsets_and_mask(self, x):
        out = self.conv_offset(x)
        taps = self.kernel_size[0] * self.kernel_size[1]
        offset = out[:, : 2 * taps]
        mask = torch.sigmoid(out[:, 2 * taps :])
        return offset, mask

    def forward(self, x):
        offset, mask = self.offsets_and_mask(x)
        return modulated_deform_conv2d(x, offset, mask, self.weight, self.stride, self.padding, self.dilation)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")
