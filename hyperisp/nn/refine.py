"""Residual refinement block that starts as the identity, for growing trained networks."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from hyperisp.nn.fused import Activation
from hyperisp.nn.hyperconv import HyperConv, HyperFilters, StaticConv, hyper_conv2d


class RefineBlock(nn.Module):
    """``y + scale * B(act(A(y)))``: (N, C, H, W) -> (N, C, H, W).

    A: C -> width and B: width -> C are 3x3 'same' conv modules called as
    ``conv(x, *context, activation=...)`` (HyperConv / StaticConv with the pooled
    embedding as context, or HyperConvEmbed / ZeroPadConv with none).
    ``scale`` starts at 0, so the block starts as the identity and a trained network can
    be grown by inserting blocks without changing its output (ReZero). Zero-initialised
    filters are not an option: HyperConvs normalise every predicted filter to an L1 norm
    of 1/2. For HyperConv / StaticConv, ``scale`` is folded into B's filters and ``y`` is
    added inside B's convolution (one pass); otherwise the scaled sum is a second pass.
    """

    def __init__(self, conv_a: nn.Module, conv_b: nn.Module, activation: Activation) -> None:
        super().__init__()
        self.conv_a, self.conv_b, self.activation = conv_a, conv_b, activation
        self.scale = nn.Parameter(torch.zeros(()))

    def forward(self, y: torch.Tensor, *context: Any) -> torch.Tensor:
        t = self.conv_a(y, *context, activation=self.activation)
        if isinstance(self.conv_b, (HyperConv, StaticConv)):
            weight, bias, gain = self.conv_b.predict(*context)
            scaled = HyperFilters(weight * self.scale, None if bias is None else bias * self.scale, gain)
            return hyper_conv2d(t, scaled, residual=y)
        return torch.addcmul(y, self.scale, self.conv_b(t))
