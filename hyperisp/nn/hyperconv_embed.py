"""HyperConv drop-in replacement for a plain conv (paper A §5.4, SPEC §5).

The filters are predicted from the layer's OWN input: three 3x3 stride-2 convs
(32, 64, 128 channels, ReLU) -> global average pool -> MLP (LeakyReLU) -> filters,
applied with reflection 'same' padding. Prediction and application reuse
:mod:`hyperisp.nn.hyperconv`, so the normalisation lives in one place.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from hyperisp.nn.hyperconv import EmbeddingNet, HyperConv, HyperFilters, global_pool, hyper_conv2d


def conv_embedding(in_channels: int, channels: Sequence[int] = (32, 64, 128)) -> EmbeddingNet:
    """3x3 stride-2 convs with ReLU: (N, Cin, H, W) -> (N, channels[-1], ~H/2^k, ~W/2^k)."""
    layers: list[nn.Module] = []
    prev = in_channels
    for c in channels:
        layers += [nn.Conv2d(prev, c, 3, stride=2, padding=1), nn.ReLU()]
        prev = c
    return EmbeddingNet(*layers)


class HyperConvEmbed(nn.Module):
    """Drop-in for ``nn.Conv2d(Cin, Cout, 3, padding=1)``: (N, Cin, H, W) -> (N, Cout, H, W)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_hid: int = 64,
        embed_channels: Sequence[int] = (32, 64, 128),
        kernel_size: int = 3,
        bias: bool = True,
        gain: bool = False,
    ) -> None:
        super().__init__()
        self.embed = conv_embedding(in_channels, embed_channels)
        self.hyper = HyperConv(
            in_channels, out_channels, embed_channels[-1], n_hid, kernel_size, bias, gain, activation="leaky_relu"
        )

    def predict(self, x: torch.Tensor) -> HyperFilters:
        """(N, Cin, H, W) -> filters predicted from the average-pooled embedding of x."""
        if x.ndim != 4:
            raise ValueError(f"expected input of shape (N, Cin, H, W), got {tuple(x.shape)}")
        return self.hyper.predict(global_pool(self.embed(x), "avg"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return hyper_conv2d(x, self.predict(x))
