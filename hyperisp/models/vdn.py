"""VDN (Yue et al. 2019) and its HyperConv drop-in HyperVDN (paper A §5.4, SPEC §5).

D-Net: UNet (depth 4, 64 base channels, LeakyReLU 0.2, avg-pool down, 2x2 transposed
conv up, skip concatenation) -> 6 channels: mean of the noise residual (3) and its log
variance (3). S-Net: DnCNN (5 layers, 64 channels) -> 6 channels: log alpha and log beta
of the inverse-gamma posterior of the noise variance. The denoised image is
``x - dnet(x)[:, :3]``; S-Net only matters for the variational loss.

``clip_input`` (both): the network sees its input clipped to [0, 1], the range of a saved
photo. CBSD68's benchmark noise is added in float and left unclipped (:mod:`hyperisp.evaluate`);
a model trained on clipped photos has never seen those values and loses 1.3 dB to them at
sigma 50 (experiments/clipping_check.py). The clip is part of the model's function, in
training too, so it is the same function wherever it runs (forward, tiles, the filter view).

HyperVDN: every 3x3 conv with c channels becomes a HyperConvEmbed with int(c*ratio)
channels (filters predicted from the layer's own input). The 2x2 stride-2 transposed
convs of the up path stay plain (with the reduced widths): they are not 'same'
convolutions and cost little. Param counts this gives: VDN 7,816,780 (SPEC 7.8 M);
HyperVDN c/3 54.41 M (SPEC 55.0 M), c/2 120.65 M (SPEC 119.6 M). No variant we tried
(hyper transposed convs, plain S-Net, no bias heads, rounding) matches both SPEC numbers;
the paper's exact layer list is not published.

The filter view (HyperVDN). Each HyperConvEmbed predicts its filters from the global
AVERAGE of an embedding of its own input. On an image larger than ``view_size``
pixels, HyperVDN predicts all its filters from a fixed-size VIEW of the image instead:
up to ``view_grid`` x ``view_grid`` patches of ``view_size`` x ``view_size`` pixels,
spread evenly over the image (deterministic corners, multiples of 16), run through the
network as one batch in which every layer averages its pooled embedding over all the
patches of an image (= over their union), giving one set of filters per layer and
image. The image is then run with those filters fixed: purely local, like plain VDN.
Why: (1) tiled inference becomes exact and cheap (filters once, then halo tiles;
:mod:`hyperisp.tiling`), where pooling each layer's own input over a whole photo needs
one pass over the photo per layer; (2) the model trains on small crops, and an average
over a 12 MP photo is not the statistic it was trained on: the view keeps the area the
filters see at the scale of training crops, whatever the photo size. An image that
fits in one patch (both sides <= ``view_size`` after the pad to 16) is its own view:
the forward is then exactly the per-sample pooling of SPEC §5, as in training on
crops; ``view_size=0`` uses that for every size (global pooling, the previous behaviour).
"""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Optional, Sequence

import torch
import torch.nn as nn

from hyperisp.models.registry import register_arch
from hyperisp.nn import (
    Activation, HyperConvEmbed, HyperFilters, RefineBlock, avg_pool2x2, conv2d_act, fixed_filters, leaky_relu,
    pad_to_multiple, shared_filters, view_boxes,
)

# (cin, cout) -> 3x3 'same' conv module with forward(x or [parts of x's channel concatenation], activation=None)
ConvFactory = Callable[[int, int], nn.Module]


class ZeroPadConv(nn.Conv2d):
    """``nn.Conv2d(Cin, Cout, 3, padding=1)`` (VDN's zero padding) whose forward takes an activation to fuse.

    ``forward(x (N, Cin, H, W), activation=None) -> (N, Cout, H, W)``; same parameters and state_dict keys.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor], activation: Optional[Activation] = None) -> torch.Tensor:
        """x: (N, Cin, H, W) or the parts of its channel concatenation (convolved part by part, no copy)."""
        parts = [x] if isinstance(x, torch.Tensor) else list(x)
        y = None
        for i, (part, w) in enumerate(zip(parts, self.weight.split([p.shape[1] for p in parts], dim=1))):
            last = i == len(parts) - 1
            y = conv2d_act(part, w, self.bias if i == 0 else None, 1, 1, activation if last else None, y)
        return y

    def forward_head(self, x: torch.Tensor, channels: int, scale: torch.Tensor | float,
                     residual: torch.Tensor) -> torch.Tensor:
        """``residual + scale * self(x)[:, :channels]`` as one convolution that computes only those outputs."""
        return conv2d_act(x, self.weight[:channels] * scale, self.bias[:channels] * scale, 1, residual=residual)


class DNet(nn.Module):
    """VDN's UNet: (N, 3, H, W), H and W divisible by 2^(depth-1) -> (N, 6, H, W).

    ``n_refine`` (ours): :class:`~hyperisp.nn.RefineBlock` s (c -> 2c -> c) at full
    resolution before the last conv; they start as the identity (a trained D-Net grows into them).
    ``n_bottom`` (ours): the same blocks at the deepest level, after its convs, made of plain
    convolutions whatever ``conv`` is: a HyperConvEmbed of 64 -> 128 channels would hold 4.7 M
    parameters, a plain one 74 k, and at 1/8 scale they cost little time per output pixel.
    They start as the identity by a zero last convolution (scale 1), not a zero scale.
    """

    def __init__(self, conv: ConvFactory, widths: Sequence[int], slope: float, out_channels: int = 6,
                 n_refine: int = 0, n_bottom: int = 0) -> None:
        super().__init__()
        self.slope, self.act = slope, leaky_relu(slope)
        self.down = nn.ModuleList()
        prev = 3
        for c in widths:
            self.down.append(nn.ModuleList([conv(prev, c), conv(c, c)]))
            prev = c
        self.bottom = nn.ModuleList(RefineBlock(ZeroPadConv(prev, 2 * prev), ZeroPadConv(2 * prev, prev), self.act)
                                    for _ in range(n_bottom))
        for block in self.bottom:  # the identity by a zero last conv (plain convs allow it): a zero scale in
            nn.init.zeros_(block.conv_b.weight)  # front of a random conv barely moves, as neither gets a gradient
            nn.init.zeros_(block.conv_b.bias)
            nn.init.ones_(block.scale)
        self.up = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for c in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(prev, c, 2, stride=2))
            self.up_blocks.append(nn.ModuleList([conv(2 * c, c), conv(c, c)]))
            prev = c
        self.refine = nn.ModuleList(RefineBlock(conv(prev, 2 * prev), conv(2 * prev, prev), self.act)
                                    for _ in range(n_refine))
        self.last = conv(prev, out_channels)

    def _block(self, convs: nn.ModuleList, x: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        for conv in convs:
            x = conv(x, activation=self.act)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> the maps the last conv reads, (N, widths[0], H, W)."""
        skips = []
        for i, convs in enumerate(self.down):
            x = self._block(convs, x)
            if i < len(self.down) - 1:
                skips.append(x)
                x = avg_pool2x2(x)
        for block in self.bottom:
            x = block(x)
        for upconv, convs in zip(self.up, self.up_blocks):
            x = self._block(convs, [upconv(x), skips.pop()])  # concatenated, or convolved part by part
        for block in self.refine:
            x = block(x)
        return x


class SNet(nn.Module):
    """VDN's DnCNN sigma net: (N, 3, H, W) -> (N, 6, H, W)."""

    def __init__(self, conv: ConvFactory, channels: int, layers: int, slope: float, out_channels: int = 6) -> None:
        super().__init__()
        if layers < 2:
            raise ValueError(f"expected snet_layers >= 2, got {layers}")
        self.act = leaky_relu(slope)
        self.convs = nn.ModuleList(
            [conv(3, channels)] + [conv(channels, channels) for _ in range(layers - 2)] + [conv(channels, out_channels)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs[:-1]:
            x = conv(x, activation=self.act)
        return self.convs[-1](x)


class _VariationalDenoiser(nn.Module):
    """Shared forward of VDN and HyperVDN; subclasses build ``dnet`` and ``snet``."""

    task = "denoise"
    dnet: DNet
    snet: SNet
    _multiple = 16
    clip_input = False

    def _set_clip_input(self, clip_input: bool) -> None:
        self.clip_input = bool(clip_input)
        if self.clip_input:  # only then: older cards keep their configs
            self.config["clip_input"] = True

    @staticmethod
    def _check(x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an RGB batch of shape (N, 3, H, W), got {tuple(x.shape)}")

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.clip_input:
            x = x.clamp(0.0, 1.0)
        # channels_last: oneDNN's NHWC convolutions make CPU inference ~2x faster.
        return pad_to_multiple(x, self._multiple).contiguous(memory_format=torch.channels_last)

    def _filters_for(self, xp: torch.Tensor, height: int, width: int, net: str) -> ContextManager:
        """Where ``net``'s filters come from for ``xp``, an image of ``height`` x ``width`` padded: VDN has none."""
        return contextlib.nullcontext()

    def _dnet(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        xp = self._prepare(x)
        with self._filters_for(xp, h, w, "dnet"):
            out = self.dnet(xp)[..., :h, :w].contiguous()
        scale = self.out_scale  # None for VDN (its last conv starts at zero instead)
        return out if scale is None else scale * out

    def forward_vdn(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) -> (dnet_out (N, 6, H, W), snet_out (N, 6, H, W)) for the VDN loss.

        dnet_out: noise-residual mean (3) and its log variance (3); snet_out: log alpha
        (3) and log beta (3) of the inverse-gamma noise-variance posterior.
        """
        self._check(x)
        h, w = x.shape[-2:]
        xp = self._prepare(x)
        with self._filters_for(xp, h, w, "snet"):
            snet_out = self.snet(xp)[..., :h, :w].contiguous()
        return self._dnet(x), snet_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) noisy sRGB in [0, 1] -> (N, 3, H, W) denoised (not clamped; channels_last strides).

        Any H, W (reflect-padded to a multiple of 16 inside, cropped back). S-Net is not run.
        """
        self._check(x)
        h, w = x.shape[-2:]
        xp = self._prepare(x)
        with self._filters_for(xp, h, w, "dnet"):
            return self._denoise_prepared(xp)[..., :h, :w]

    def _denoise_prepared(self, xp: torch.Tensor) -> torch.Tensor:
        """``xp - scale * dnet(xp)[:, :3]`` for an input as :meth:`_prepare` gives it: (N, 3, H, W) -> same.

        The subtraction runs inside D-Net's last convolution, which computes only the 3
        residual-mean channels (inference needs no log variance): no pass over the maps after it.
        """
        scale = -1.0 if self.out_scale is None else -self.out_scale
        return self.dnet.last.forward_head(self.dnet.features(xp), 3, scale, xp)


@register_arch("vdn")
class VDN(_VariationalDenoiser):
    """Plain VDN. D-Net's last conv starts at zero, so an untrained model returns its input.

    ``clip_input``: the input is clipped to [0, 1] first (module doc).
    """

    def __init__(
        self, base_channels: int = 64, depth: int = 4, snet_channels: int = 64, snet_layers: int = 5, slope: float = 0.2,
        clip_input: bool = False,
    ) -> None:
        super().__init__()
        self.config = {
            "arch": "vdn", "base_channels": base_channels, "depth": depth,
            "snet_channels": snet_channels, "snet_layers": snet_layers, "slope": slope,
        }
        self._set_clip_input(clip_input)
        self.dnet = DNet(ZeroPadConv, [base_channels * 2**i for i in range(depth)], slope)
        self.snet = SNet(ZeroPadConv, snet_channels, snet_layers, slope)
        nn.init.zeros_(self.dnet.last.weight)
        nn.init.zeros_(self.dnet.last.bias)
        self.register_parameter("out_scale", None)


@register_arch("hypervdn")
class HyperVDN(_VariationalDenoiser):
    """VDN with every 3x3 conv of c channels replaced by HyperConvEmbed with int(c*ratio).

    Zeroing a HyperConv's MLP would put the L1 normalisation at 0/0 (gradients ~1e12),
    so instead D-Net's output is multiplied by a learnable scalar ``out_scale``
    initialised to 0: an untrained model returns its input.

    ``view_size`` (a multiple of 16, or 0 for none) and ``view_grid``: the filter view
    (module doc). Configs without them (older model cards) get the defaults.
    ``n_refine``: refinement blocks at full resolution before D-Net's last conv (:class:`DNet`).
    ``n_bottom``: plain refinement blocks at D-Net's deepest level (:class:`DNet`).
    ``widths``: D-Net's channels per level, instead of ``base_channels * 2**level * ratio``
    (a model widened from a trained one, :mod:`hyperisp.train.widen`).
    ``clip_input``: the input is clipped to [0, 1] first (module doc).
    """

    def __init__(
        self,
        ratio: float = 1 / 3,
        n_hid: int = 64,
        base_channels: int = 64,
        depth: int = 4,
        snet_channels: int = 64,
        snet_layers: int = 5,
        slope: float = 0.2,
        embed_channels: Sequence[int] = (32, 64, 128),
        view_size: int = 128,
        view_grid: int = 3,
        n_refine: int = 0,
        n_bottom: int = 0,
        widths: Optional[Sequence[int]] = None,
        clip_input: bool = False,
    ) -> None:
        super().__init__()
        if not 0 < ratio <= 1:
            raise ValueError(f"expected 0 < ratio <= 1, got {ratio}")
        if view_size < 0 or view_size % self._multiple or view_grid < 1:
            raise ValueError(
                f"expected view_size a multiple of {self._multiple} (0: no view) and view_grid >= 1, "
                f"got {view_size} and {view_grid}"
            )
        embed_channels = [int(c) for c in embed_channels]
        self.config = {
            "arch": "hypervdn", "ratio": ratio, "n_hid": n_hid, "base_channels": base_channels, "depth": depth,
            "snet_channels": snet_channels, "snet_layers": snet_layers, "slope": slope,
            "embed_channels": embed_channels, "view_size": int(view_size), "view_grid": int(view_grid),
        }
        for key, value in (("n_refine", n_refine), ("n_bottom", n_bottom)):
            if value < 0:
                raise ValueError(f"expected {key} >= 0, got {value}")
            if value:  # only then: older cards keep their configs
                self.config[key] = value
        if widths is not None:
            if len(widths) != depth or min(widths) < 1:
                raise ValueError(f"expected {depth} positive D-Net widths, got {list(widths)}")
            self.config["widths"] = [int(c) for c in widths]
        self._set_clip_input(clip_input)

        def conv(cin: int, cout: int) -> nn.Module:
            return HyperConvEmbed(cin, cout, n_hid, embed_channels)

        widths = self.config.get("widths") or [int(base_channels * 2**i * ratio) for i in range(depth)]
        if min(widths) < 1:
            raise ValueError(f"ratio {ratio} leaves no channels at base_channels={base_channels}")
        self.dnet = DNet(conv, widths, slope, n_refine=n_refine, n_bottom=n_bottom)
        self.snet = SNet(conv, int(snet_channels * ratio), snet_layers, slope)
        self.out_scale = nn.Parameter(torch.zeros(()))

    def view_patches(self, height: int, width: int) -> Optional[list[tuple[int, int, int, int]]]:
        """The filter view of an (unpadded) ``height`` x ``width`` image: (top, left, h, w) boxes.

        Boxes are in the image padded to 16 (as the network sees it); None when the image
        fits in one patch (it is then its own view: per-sample pooling).
        """
        return view_boxes(height, width, self.config["view_size"], self.config["view_grid"], self._multiple)

    def view_filters(self, x: torch.Tensor, nets: Sequence[str] = ("dnet",)) -> dict[str, HyperFilters]:
        """The filters of every HyperConvEmbed of ``nets``, predicted from the filter view of x.

        x: (N, 3, H, W). Returns {module name, e.g. "dnet.down.0.0": HyperFilters for N
        images}; usable with :func:`hyperisp.nn.fixed_filters` on this model. For an image
        that fits in one patch, these are the filters the plain forward predicts.
        """
        self._check(x)
        return self._view_filters(self._prepare(x), *x.shape[-2:], nets)

    def _view_filters(self, xp: torch.Tensor, height: int, width: int, nets: Sequence[str]) -> dict:
        boxes = self.view_patches(height, width) or [(0, 0, *xp.shape[-2:])]
        patches = torch.stack([xp[..., t : t + h, l : l + w] for t, l, h, w in boxes], dim=1)
        patches = patches.flatten(0, 1).contiguous(memory_format=torch.channels_last)  # image-major
        filters: dict[str, HyperFilters] = {}
        for name in nets:
            with shared_filters(self, len(boxes)) as found:
                getattr(self, name)(patches)
            filters.update(found)
        return filters

    def _filters_for(self, xp: torch.Tensor, height: int, width: int, net: str) -> ContextManager:
        if self.view_patches(height, width) is None:
            return contextlib.nullcontext()  # its own view: per-sample pooling, as in training
        return fixed_filters(self, self._view_filters(xp, height, width, (net,)))
