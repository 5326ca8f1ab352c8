"""Burst denoisers (paper B §4, SPEC §6): KPN (Mildenhall et al. 2018) and Gated-KPN.

Both take a grey burst of T frames (N, T, H, W), linear intensities, frame 0 the
reference, and return the denoised reference (N, 1, H, W).

KPN: a U-Net over the stacked frames predicts a 5x5 kernel per pixel per frame
(T*25 = 200 channels at full resolution for T = 8, the largest layer); the output is
the kernel-weighted sum over frames and taps (:func:`hyperisp.nn.gating.apply_pixel_kernels`).

Gated-KPN: the same U-Net predicts only M channels per pixel, a multiplier a, and
``Y = G * (a ⊙ (F * X))`` with fixed (input-independent, trained) 5x5 convs
F (T -> M) and G (M -> 1): a low-rank kernel prediction (Corollary 3.2) whose largest
layer is M x H x W.

Deviations from Mildenhall, for CPU use: a narrower U-Net (widths 16-32-64-64 instead
of 64-...-512, two convs per level), no noise-level input channel (the models are
blind: the product does not know the noise level of a user's burst), bilinear up-sampling.

HyperGatedKPN (optional variant): the Gated-KPN plus a HyperConv on the gated maps whose
filters are predicted per burst from the max-pooled U-Net bottleneck (SPEC §2):
``Y = G * m + s * HyperConv(m)``, m = a ⊙ (F * X), with a learned scalar s starting at 0.

Initialisation: all models start as "mean of the frames" (KPN: zero last conv with
the centre tap of every frame's kernel at 1/T; Gated: a = 1, F's channel 0 the frame
mean, G reading only channel 0), so an untrained model averages the burst rather than
returning noise.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from hyperisp.models.registry import register_arch
from hyperisp.nn.gating import GatedConvDoubleLayer, apply_pixel_kernels
from hyperisp.nn.hyperconv import HyperConv, global_pool
from hyperisp.nn.padding import pad_to_multiple


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU())


class BurstUNet(nn.Module):
    """U-Net: (N, Cin, H, W) -> (N, Cout, H, W); H, W multiples of 2^(len(widths)-1).

    Average-pool down, bilinear up, skip concatenation, 3x3 convs with ReLU, a linear
    3x3 output conv (``self.head``).
    """

    def __init__(self, in_channels: int, out_channels: int, widths: Sequence[int] = (16, 32, 64, 64)) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        self.down = nn.ModuleList()
        prev = in_channels
        for w in widths:
            self.down.append(_double_conv(prev, w))
            prev = w
        self.up = nn.ModuleList(_double_conv(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(len(widths) - 1)))
        self.head = nn.Conv2d(widths[0], out_channels, 3, padding=1)
        self.multiple = 2 ** (len(widths) - 1)

    def forward(self, x: torch.Tensor, return_bottleneck: bool = False):
        """(N, Cin, H, W) -> (N, Cout, H, W), plus the (N, widths[-1], H/m, W/m) bottleneck if asked."""
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.avg_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        bottleneck = skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return (self.head(x), bottleneck) if return_bottleneck else self.head(x)


class _BurstDenoiser(nn.Module):
    task = "burst"

    def __init__(self, frames: int) -> None:
        super().__init__()
        if frames < 1:
            raise ValueError(f"expected frames >= 1, got {frames}")
        self.frames = frames

    def _check(self, burst: torch.Tensor) -> None:
        if burst.ndim != 4 or burst.shape[1] != self.frames:
            raise ValueError(f"expected a grey burst of shape (N, {self.frames}, H, W), got {tuple(burst.shape)}")

    def predict(self, burst: torch.Tensor) -> torch.Tensor:
        """(N, T, H', W') with H', W' padded to the U-Net's multiple -> (N, K, H', W') predicted maps."""
        return self.unet(burst)

    def forward(self, burst: torch.Tensor) -> torch.Tensor:
        """(N, T, H, W) linear grey burst, frame 0 the reference -> (N, 1, H, W)."""
        self._check(burst)
        h, w = burst.shape[-2:]
        padded = pad_to_multiple(burst, self.unet.multiple)
        return self.combine(padded, self.predict(padded))[..., :h, :w]


@register_arch("kpn")
class KPN(_BurstDenoiser):
    """Kernel prediction network: T*k*k kernels per pixel, output = kernel-weighted sum over frames."""

    def __init__(self, frames: int = 8, kernel_size: int = 5, widths: Sequence[int] = (16, 32, 64, 64)) -> None:
        super().__init__(frames)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"expected an odd kernel_size, got {kernel_size}")
        widths = [int(w) for w in widths]
        self.config = {"arch": "kpn", "frames": frames, "kernel_size": kernel_size, "widths": widths}
        self.kernel_size = kernel_size
        taps = kernel_size * kernel_size
        self.unet = BurstUNet(frames, frames * taps, widths)
        nn.init.zeros_(self.unet.head.weight)
        with torch.no_grad():  # every frame's kernel starts as a centred 1/T delta: the frame mean
            self.unet.head.bias.zero_()
            self.unet.head.bias.view(frames, taps)[:, taps // 2] = 1.0 / frames

    def combine(self, burst: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        n, t, h, w = burst.shape
        kernels = kernels.view(n, 1, t, self.kernel_size**2, h, w)
        return apply_pixel_kernels(burst, kernels)


@register_arch("gated_kpn")
class GatedKPN(_BurstDenoiser):
    """Gated KPN: the U-Net predicts an M-channel multiplier a; ``Y = G * (a ⊙ (F * X))``."""

    def __init__(self, frames: int = 8, hidden: int = 128, kernel_size: int = 5,
                 widths: Sequence[int] = (16, 32, 64, 64)) -> None:
        super().__init__(frames)
        widths = [int(w) for w in widths]
        self.config = {"arch": "gated_kpn", "frames": frames, "hidden": hidden, "kernel_size": kernel_size,
                       "widths": widths}
        self.unet = BurstUNet(frames, hidden, widths)
        self.gate = GatedConvDoubleLayer(frames, hidden, 1, kernel_size, kernel_size)
        nn.init.zeros_(self.unet.head.weight)
        c = kernel_size // 2
        with torch.no_grad():  # start as the frame mean: a = 1, F channel 0 = mean, G reads channel 0 only
            self.unet.head.bias.fill_(1.0)
            self.gate.F.weight[0].zero_()
            self.gate.F.weight[0, :, c, c] = 1.0 / frames
            self.gate.G.weight.zero_()
            self.gate.G.weight[0, 0, c, c] = 1.0

    def combine(self, burst: torch.Tensor, multiplier: torch.Tensor) -> torch.Tensor:
        return self.gate(burst, multiplier)


@register_arch("hyper_gated_kpn")
class HyperGatedKPN(GatedKPN):
    """Gated-KPN whose output conv is conditioned on the whole burst through a HyperConv.

    ``Y = G * m + s * HyperConv(m, pooled)``, m = a ⊙ (F * X), pooled = max-pool of the
    U-Net bottleneck (N, widths[-1]); s (scalar) starts at 0, so an untrained model is the
    frame mean like :class:`GatedKPN`.
    """

    def __init__(self, frames: int = 8, hidden: int = 64, kernel_size: int = 5,
                 widths: Sequence[int] = (16, 32, 64, 64), n_hid: int = 64) -> None:
        super().__init__(frames, hidden, kernel_size, widths)
        self.config = {**self.config, "arch": "hyper_gated_kpn", "n_hid": n_hid}
        self.hyper = HyperConv(hidden, 1, int(widths[-1]), n_hid, kernel_size)
        self.hyper_scale = nn.Parameter(torch.zeros(()))

    def forward(self, burst: torch.Tensor) -> torch.Tensor:
        self._check(burst)
        h, w = burst.shape[-2:]
        padded = pad_to_multiple(burst, self.unet.multiple)
        multiplier, bottleneck = self.unet(padded, return_bottleneck=True)
        gated = multiplier * self.gate._same_conv(padded, self.gate.F)
        y = self.gate._same_conv(gated, self.gate.G) + self.hyper_scale * self.hyper(gated, global_pool(bottleneck))
        return y[..., :h, :w]
