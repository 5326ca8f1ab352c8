"""HyperConvolution (paper A, Alg. 1): 3x3 filters predicted per image by an MLP.

Prediction and application are separate on purpose: tiled inference predicts the
filters ONCE per image (from a global pool reduced over all tiles) and then applies
them to every tile.

    pooled (N, Ce) --predict_filters--> HyperFilters --hyper_conv2d(x)--> (N, Cout, H, W)

Functions and ``nn.Module`` wrappers live side by side (kornia style):
``global_pool``, ``normalize_filters``, ``predict_filters``, ``hyper_conv2d`` and
``HyperConv``, ``StaticConv`` (its plain-conv twin for ablations).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from hyperisp.nn.fused import Activation
from hyperisp.nn.padding import reflect_conv2d

L1_EPS = 1e-12


class FilterPrediction:
    """Marker mixin: a sub-network whose work is filter prediction.

    :func:`hyperisp.models.counting.count_flops` books the FLOPs of every module
    carrying this marker (MLPs, bias/gain heads, embedding nets) as
    ``filter_prediction`` instead of ``forward``.
    """


class FilterMLP(FilterPrediction, nn.Sequential):
    """Linear(Ce, n_hid) - act - Linear(n_hid, n_hid) - act - Linear(n_hid, n_out).

    (N, Ce) -> (N, n_out). ``activation`` is "relu" (paper A, HyperUNet) or
    "leaky_relu" (the VDN drop-in of SPEC §5).
    """

    def __init__(self, in_features: int, n_hid: int, out_features: int, activation: str = "relu") -> None:
        acts = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU}
        if activation not in acts:
            raise ValueError(f"expected activation in {sorted(acts)}, got {activation!r}")
        act = acts[activation]
        super().__init__(
            nn.Linear(in_features, n_hid), act(),
            nn.Linear(n_hid, n_hid), act(),
            nn.Linear(n_hid, out_features),
        )


class FilterPredictionLinear(FilterPrediction, nn.Linear):
    """``nn.Linear`` marked as filter prediction (per-image bias and gain heads)."""


class EmbeddingNet(FilterPrediction, nn.Sequential):
    """``nn.Sequential`` marked as filter prediction (the nets that feed the global pool)."""


class HyperFilters(NamedTuple):
    """Per-image filters predicted by a HyperConv.

    weight: (N, Cout, Cin, f, f); bias: (N, Cout) or None; gain: (N, Cout) or None.
    """

    weight: torch.Tensor
    bias: Optional[torch.Tensor] = None
    gain: Optional[torch.Tensor] = None


def global_pool(e: torch.Tensor, mode: str = "max") -> torch.Tensor:
    """Global spatial pool of embedding maps.

    Args:
        e: (N, Ce, H, W).
        mode: "max" (paper A, HyperUNet) or "avg" (VDN drop-in).
    Returns:
        (N, Ce).
    """
    if e.ndim != 4:
        raise ValueError(f"expected embedding maps of shape (N, Ce, H, W), got {tuple(e.shape)}")
    if mode == "max":
        return e.amax(dim=(2, 3))
    if mode == "avg":
        return e.mean(dim=(2, 3))
    raise ValueError(f"expected mode 'max' or 'avg', got {mode!r}")


def cell_max_pool(e: torch.Tensor, cell: int) -> torch.Tensor:
    """Mean over a grid of ``cell`` x ``cell`` cells of each cell's max: (N, Ce, H, W) -> (N, Ce).

    Why: a global max over a whole photo keeps growing with its size, while a model trained
    on crops has only seen maxima over crop-sized areas; the mean of per-cell maxima has
    the same statistics at any size. Maps no larger than one cell give the global max
    (the last row/column of cells may be partial).
    """
    if e.ndim != 4:
        raise ValueError(f"expected embedding maps of shape (N, Ce, H, W), got {tuple(e.shape)}")
    if cell < 1:
        raise ValueError(f"expected a cell size >= 1, got {cell}")
    return F.max_pool2d(e, cell, ceil_mode=True).mean(dim=(2, 3))


def group_mean(pooled: torch.Tensor, group: int) -> torch.Tensor:
    """Mean pooled embedding of each run of ``group`` consecutive samples: (N, Ce) -> (N / group, Ce).

    The samples of a run are parts of one image (patches, crops); their mean embedding is
    the image's, as :func:`cell_max_pool` averages the cells of a whole photo.
    """
    if pooled.ndim != 2:
        raise ValueError(f"expected pooled embeddings of shape (N, Ce), got {tuple(pooled.shape)}")
    if group < 1 or pooled.shape[0] % group:
        raise ValueError(f"expected a batch that is a multiple of the group {group}, got {pooled.shape[0]}")
    return pooled.reshape(-1, group, pooled.shape[1]).mean(dim=1)


def normalize_filters(raw: torch.Tensor, const: Optional[torch.Tensor] = None) -> torch.Tensor:
    """SPEC §2 step 3: scale, per-filter L1 normalisation to 1/2, plus the static filter.

    ``w <- raw / sqrt(Cin*pi/f^2)``; ``w <- w / (sum_fxf |w| + 1e-12) / 2``; ``w <- w + const``.
    (The first scale cancels in the L1 step except against the epsilon; kept as specified.)

    Args:
        raw: (N, Cout, Cin, f, f) MLP output.
        const: (1, Cout, Cin, f, f) learned static filter, or None.
    Returns:
        (N, Cout, Cin, f, f).
    """
    if raw.ndim != 5:
        raise ValueError(f"expected raw filters of shape (N, Cout, Cin, f, f), got {tuple(raw.shape)}")
    cin, f = raw.shape[2], raw.shape[-1]
    w = raw / math.sqrt(cin * math.pi / f**2)
    w = w / (w.abs().sum(dim=(-2, -1), keepdim=True) + L1_EPS) / 2
    return w if const is None else w + const


def predict_filters(
    pooled: torch.Tensor,
    mlp: nn.Module,
    const: torch.Tensor,
    bias_head: Optional[nn.Module] = None,
    gain_head: Optional[nn.Module] = None,
) -> HyperFilters:
    """SPEC §2 steps 2-4: per-image filters from a pooled embedding.

    Args:
        pooled: (N, Ce) globally pooled embedding.
        mlp: (N, Ce) -> (N, Cout*Cin*f*f).
        const: (1, Cout, Cin, f, f) static filter added after normalisation.
        bias_head: (N, Ce) -> (N, Cout), clamped to [-0.1, 0.1]; None for no bias.
        gain_head: (N, Ce) -> (N, Cout), clamped to [-0.9, 0.1] plus 1; None for no gain.
    Returns:
        HyperFilters with weight (N, Cout, Cin, f, f), bias/gain (N, Cout) or None.
    """
    if pooled.ndim != 2:
        raise ValueError(f"expected a pooled embedding of shape (N, Ce), got {tuple(pooled.shape)}")
    n = pooled.shape[0]
    raw = mlp(pooled).reshape(n, *const.shape[1:])
    weight = normalize_filters(raw, const)
    bias = bias_head(pooled).clamp(-0.1, 0.1) if bias_head is not None else None
    gain = gain_head(pooled).clamp(-0.9, 0.1) + 1 if gain_head is not None else None
    return HyperFilters(weight, bias, gain)


def hyper_conv2d(
    x: torch.Tensor | Sequence[torch.Tensor],
    filters: HyperFilters,
    path: str = "auto",
    activation: Optional[Activation] = None,
    residual: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Apply per-image filters with reflection 'same' padding: ``y = act(gain * (w * x) + bias + residual)``.

    The gain is folded into the weight (same result, no extra pass over the maps); the
    activation and residual are fused into the convolution where possible
    (:func:`~hyperisp.nn.reflect_conv2d`).

    Args:
        x: (N, Cin, H, W), or the parts of a channel concatenation, e.g. a UNet's
            [upsampled, skip]: the filters are then applied part by part, each part's
            result the residual of the next, which saves writing the concatenated copy.
        filters: weight (Nf, Cout, Cin, f, f) with Nf == N, or Nf == 1 to share one
            image's filters across a batch (e.g. the tiles of that image).
        path: "per_image" (a plain conv per sample; the inference path), "grouped"
            (one conv with groups=N; the training path) or "auto" (plain conv when
            the filters are shared or N == 1, grouped otherwise).
        activation: None or an :class:`~hyperisp.nn.fused.Activation`, applied last.
        residual: None or a map added before the activation, (N, Cout, H, W) or broadcastable to it.
    Returns:
        (N, Cout, H, W).
    """
    if not isinstance(x, torch.Tensor):
        return _hyper_conv2d_parts(list(x), filters, path, activation, residual)
    weight, bias, gain = filters
    if x.ndim != 4:
        raise ValueError(f"expected input of shape (N, Cin, H, W), got {tuple(x.shape)}")
    if weight.ndim != 5:
        raise ValueError(f"expected filters of shape (N, Cout, Cin, f, f), got {tuple(weight.shape)}")
    n, cin, h, w = x.shape
    nf, cout, wcin, f = weight.shape[:4]
    if wcin != cin:
        raise ValueError(f"filters expect {wcin} input channels, input has {cin}")
    if nf not in (1, n):
        raise ValueError(f"expected filters for 1 or {n} images, got {nf}")
    if f % 2 == 0:
        raise ValueError(f"expected an odd kernel size, got {f}")
    if path not in ("auto", "per_image", "grouped"):
        raise ValueError(f"expected path 'auto', 'per_image' or 'grouped', got {path!r}")
    if gain is not None:
        weight = weight * gain[:, :, None, None, None]
    if nf == 1 and (n == 1 or path != "grouped"):  # one filter set: a single plain conv
        return reflect_conv2d(x, weight[0], None if bias is None else bias[0], 1, activation, residual)
    if nf == 1:
        weight = weight.expand(n, -1, -1, -1, -1)
        bias = None if bias is None else bias.expand(n, -1)
    if residual is not None:
        residual = residual.expand(n, cout, h, w)
    if path == "per_image":
        return torch.cat([
            reflect_conv2d(x[i : i + 1], weight[i], None if bias is None else bias[i], 1, activation,
                           None if residual is None else residual[i : i + 1])
            for i in range(n)
        ])
    # One grouped conv: sample i's Cin channels form group i, convolved with its own Cout filters.
    y = reflect_conv2d(
        x.reshape(1, n * cin, h, w),
        weight.reshape(n * cout, cin, f, f),
        None if bias is None else bias.reshape(n * cout),
        n,
        activation,
        None if residual is None else residual.reshape(1, n * cout, h, w),
    )
    return y.view(n, cout, h, w)


def _hyper_conv2d_parts(
    parts: list[torch.Tensor], filters: HyperFilters, path: str, activation: Optional[Activation],
    residual: Optional[torch.Tensor],
) -> torch.Tensor:
    """:func:`hyper_conv2d` of ``torch.cat(parts, 1)``, as a sum of one convolution per part."""
    weight, bias, gain = filters
    sizes = [part.shape[1] for part in parts]
    if sum(sizes) != weight.shape[2]:
        raise ValueError(f"filters expect {weight.shape[2]} input channels, the parts have {sizes}")
    y = residual
    for i, (part, w) in enumerate(zip(parts, weight.split(sizes, dim=2))):
        last = i == len(parts) - 1
        y = hyper_conv2d(part, HyperFilters(w, bias if i == 0 else None, gain), path, activation if last else None, y)
    return y


class HyperConv(nn.Module):
    """HyperConvolution with filters predicted from a pooled embedding (SPEC §2).

    ``forward(x (N, Cin, H, W), pooled (N, Ce), activation=None, residual=None) -> (N, Cout, H, W)``.
    The model pools its embedding maps once and shares the pooled vector across several
    HyperConvs. ``mlp_activation`` is the filter MLP's ("relu" or "leaky_relu"); the
    forward's ``activation`` is applied to the output.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        embed_channels: int,
        n_hid: int,
        kernel_size: int = 3,
        bias: bool = True,
        gain: bool = False,
        mlp_activation: str = "relu",
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"expected an odd kernel_size, got {kernel_size}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        f = kernel_size
        self.mlp = FilterMLP(embed_channels, n_hid, out_channels * in_channels * f * f, mlp_activation)
        self.const = nn.Parameter(
            torch.randn(1, out_channels, in_channels, f, f) / math.sqrt(in_channels * f * f / 2) / 2
        )
        self.bias_head = FilterPredictionLinear(embed_channels, out_channels) if bias else None
        self.gain_head = FilterPredictionLinear(embed_channels, out_channels) if gain else None
        for head in (self.bias_head, self.gain_head):
            # Start inside the clamp range (bias 0, gain 1): a head whose output starts
            # beyond the clamp gets no gradient and would never train.
            if head is not None:
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)

    def predict(self, pooled: torch.Tensor) -> HyperFilters:
        """(N, Ce) -> HyperFilters (weight (N, Cout, Cin, f, f), bias/gain (N, Cout) or None)."""
        return predict_filters(pooled, self.mlp, self.const, self.bias_head, self.gain_head)

    def forward(
        self,
        x: torch.Tensor,
        pooled: torch.Tensor,
        path: str = "auto",
        activation: Optional[Activation] = None,
        residual: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """``activation(conv(x) + residual)`` (both optional; see :func:`hyper_conv2d`)."""
        return hyper_conv2d(x, self.predict(pooled), path, activation, residual)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"


class StaticConv(nn.Module):
    """Plain-conv twin of :class:`HyperConv` with the same call signature.

    ``forward(x (N, Cin, H, W), pooled=None, activation=None, residual=None) -> (N, Cout, H, W)``;
    ``pooled`` is ignored.
    Reflection 'same' padding like the HyperConv.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"expected an odd kernel_size, got {kernel_size}")
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias)

    def predict(self, pooled: Optional[torch.Tensor] = None) -> HyperFilters:
        """The static filters as :class:`HyperFilters` shared by the batch (weight (1, Cout, Cin, f, f),
        bias (1, Cout) or None), so code written for :meth:`HyperConv.predict` runs on the twin too."""
        bias = None if self.conv.bias is None else self.conv.bias[None]
        return HyperFilters(self.conv.weight[None], bias, None)

    def forward(
        self,
        x: torch.Tensor,
        pooled: Optional[torch.Tensor] = None,
        activation: Optional[Activation] = None,
        residual: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"expected input of shape (N, Cin, H, W), got {tuple(x.shape)}")
        return reflect_conv2d(x, self.conv.weight, self.conv.bias, 1, activation, residual)
