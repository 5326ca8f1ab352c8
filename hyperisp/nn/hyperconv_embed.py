"""HyperConv drop-in replacement for a plain conv (paper A §5.4, SPEC §5).

The filters are predicted from the layer's OWN input: three 3x3 stride-2 convs
(32, 64, 128 channels, ReLU) -> global average pool -> MLP (LeakyReLU) -> filters,
applied with reflection 'same' padding. Prediction and application reuse
:mod:`hyperisp.nn.hyperconv`, so the normalisation lives in one place.

Two context managers change where the filters come from, without any parameter or
buffer (the state_dict is the same): :func:`shared_filters` pools each layer's
embedding over runs of consecutive samples (the patches of one image's filter view,
see :mod:`hyperisp.models.vdn`) and records the filters it predicts;
:func:`fixed_filters` makes each layer apply given filters instead of predicting
(whole-image inference and the tiles of :func:`hyperisp.tiling.run_tiled`).
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Mapping, Optional, Sequence

import torch
import torch.nn as nn

from hyperisp.nn.fused import Activation
from hyperisp.nn.hyperconv import EmbeddingNet, HyperConv, HyperFilters, global_pool, group_mean, hyper_conv2d


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
            in_channels, out_channels, embed_channels[-1], n_hid, kernel_size, bias, gain, mlp_activation="leaky_relu"
        )
        # Plain attributes (not in the state_dict), set only inside shared_filters() / fixed_filters().
        self.fixed: Optional[HyperFilters] = None
        self.share: Optional[tuple[int, dict, str]] = None  # (group, sink for the filters, name in the sink)

    def predict(self, x: torch.Tensor, group: int = 1) -> HyperFilters:
        """(N*group, Cin, H, W) -> filters for N, from the average-pooled embedding of x.

        With ``group`` > 1, the pooled embeddings of each run of ``group`` consecutive
        samples (equal-size patches of one image) are averaged: the average over their union.
        """
        if x.ndim != 4:
            raise ValueError(f"expected input of shape (N, Cin, H, W), got {tuple(x.shape)}")
        pooled = global_pool(self.embed(x), "avg")
        return self.hyper.predict(group_mean(pooled, group) if group > 1 else pooled)

    def forward(
        self,
        x: torch.Tensor | Sequence[torch.Tensor],
        activation: Optional[Activation] = None,
        residual: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """``activation(conv(x) + residual)`` (both optional; see :func:`~hyperisp.nn.hyper_conv2d`).

        x: (N, Cin, H, W), or the parts of its channel concatenation (a UNet's [upsampled, skip]):
        with fixed filters they are applied part by part; otherwise concatenated, as the
        embedding that predicts the filters reads the whole input.
        """
        if self.fixed is None and not isinstance(x, torch.Tensor):
            x = torch.cat(list(x), 1)  # the embedding that predicts the filters reads the whole input
        return hyper_conv2d(x, self.filters_for(x), "auto", activation, residual)

    def forward_head(self, x: torch.Tensor, channels: int, scale: torch.Tensor | float,
                     residual: torch.Tensor) -> torch.Tensor:
        """``residual + scale * self(x)[:, :channels]`` as one convolution that computes only those outputs.

        x: (N, Cin, H, W); residual: (N, channels, H, W). Returns (N, channels, H, W).
        """
        weight, bias, gain = self.filters_for(x)
        head = HyperFilters(weight[:, :channels] * scale, None if bias is None else bias[:, :channels] * scale,
                            None if gain is None else gain[:, :channels])
        return hyper_conv2d(x, head, "auto", residual=residual)

    def filters_for(self, x: torch.Tensor | Sequence[torch.Tensor]) -> HyperFilters:
        """The filters this layer applies to x: given (:func:`fixed_filters`), shared over a view's
        patches (:func:`shared_filters`, recorded), or predicted from x itself (the ordinary path)."""
        if self.fixed is not None:
            return repeat_filters(self.fixed, x.shape[0] if isinstance(x, torch.Tensor) else x[0].shape[0])
        if self.share is None:
            return self.predict(x)
        group, sink, name = self.share
        sink[name] = self.predict(x, group)
        return repeat_filters(sink[name], x.shape[0])


def repeat_filters(filters: HyperFilters, n: int) -> HyperFilters:
    """Filters for Nf images -> for n = Nf*k samples (k consecutive samples per image); Nf == 1 stays shared."""
    nf = filters.weight.shape[0]
    if nf == 1 or nf == n:
        return filters
    if n % nf:
        raise ValueError(f"expected a batch that is a multiple of {nf} images, got {n}")
    return HyperFilters(*(None if t is None else t.repeat_interleave(n // nf, dim=0) for t in filters))


def _layers(model: nn.Module) -> list[tuple[str, HyperConvEmbed]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, HyperConvEmbed)]


@contextlib.contextmanager
def shared_filters(model: nn.Module, group: int) -> Iterator[dict[str, HyperFilters]]:
    """Inside: every HyperConvEmbed of ``model`` pools over runs of ``group`` consecutive samples.

    Yields a dict that fills up, as layers run, with {module name in ``model``: the
    HyperFilters it predicted (one set per run of ``group`` samples)}. Each layer applies
    its run's filters to all the samples of the run, so later layers see the same
    network as with fixed filters.
    """
    if group < 1:
        raise ValueError(f"expected a group of at least 1 sample, got {group}")
    sink: dict[str, HyperFilters] = {}
    layers = _layers(model)
    for name, layer in layers:
        layer.share = (group, sink, name)
    try:
        yield sink
    finally:
        for _, layer in layers:
            layer.share = None


@contextlib.contextmanager
def fixed_filters(model: nn.Module, filters: Mapping[str, HyperFilters]) -> Iterator[None]:
    """Inside: the HyperConvEmbeds of ``model`` named in ``filters`` apply those filters.

    ``filters`` as yielded by :func:`shared_filters` (names relative to ``model``); the
    layers not named keep predicting their own filters.
    """
    layers = dict(_layers(model))
    unknown = sorted(set(filters) - set(layers))
    if unknown:
        raise ValueError(f"no HyperConvEmbed named {unknown[:3]} in {type(model).__name__}")
    try:
        for name, given in filters.items():
            layers[name].fixed = given
        yield
    finally:
        for name in filters:
            layers[name].fixed = None
