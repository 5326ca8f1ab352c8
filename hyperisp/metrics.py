"""Image quality metrics in torch: PSNR, SSIM and MS-SSIM (with border exclusion).

SSIM follows Wang et al. 2004 (11x11 Gaussian window, sigma 1.5, K1 = 0.01,
K2 = 0.03, "valid" filtering, mean over channels); MS-SSIM follows Wang et al.
2003 (5 scales, weights 0.0448, 0.2856, 0.3001, 0.2363, 0.1333, 2x2 average
pooling between scales). Images too small for 5 scales use fewer scales with the
weights renormalised, and the window shrinks to the image when it is smaller than
11 pixels, so every metric is defined for any image of at least 1x1 pixel.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_K1, _K2 = 0.01, 0.03


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"expected two (N, C, H, W) tensors of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def crop_border(x: torch.Tensor, border: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H - 2b, W - 2b); ``border`` pixels cut from each side."""
    if border < 0 or 2 * border >= min(x.shape[-2:]):
        raise ValueError(f"border {border} leaves nothing of an image of size {tuple(x.shape[-2:])}")
    return x[..., border:x.shape[-2] - border, border:x.shape[-1] - border] if border else x


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, border: int = 0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in dB.

    Args:
        x, y: (N, C, H, W) images on the same scale.
        data_range: peak value (1.0 for [0, 1] images).
        border: pixels excluded at each side.
    Returns:
        (N,) PSNR; +inf for identical images.
    """
    _check_pair(x, y)
    x, y = crop_border(x.double(), border), crop_border(y.double(), border)
    mse = (x - y).pow(2).mean(dim=(1, 2, 3))
    return (10 * torch.log10(data_range**2 / mse)).float()


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """(size,) normalised 1-D Gaussian."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _filter(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filtering of every channel of (N, C, H, W)."""
    c = x.shape[1]
    k = window.to(x)
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, data_range: float, win_size: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) mean SSIM and (N,) mean contrast-structure term cs."""
    win_size = min(win_size, *x.shape[-2:])
    window = gaussian_window(win_size, 1.5)
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    mu_x, mu_y = _filter(x, window), _filter(y, window)
    sxx = _filter(x * x, window) - mu_x**2
    syy = _filter(y * y, window) - mu_y**2
    sxy = _filter(x * y, window) - mu_x * mu_y
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (luminance * cs).mean(dim=(1, 2, 3)), cs.mean(dim=(1, 2, 3))


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, border: int = 0,
         win_size: int = 11, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004), (N, C, H, W) pair -> (N,), at most 1.

    Computed in float64 by default so that identical images give exactly 1 (a
    training loss may pass ``dtype=torch.float32``: twice as fast). Differentiable.
    """
    _check_pair(x, y)
    x, y = crop_border(x.to(dtype), border), crop_border(y.to(dtype), border)
    return _ssim_terms(x, y, data_range, win_size)[0].to(torch.float32)


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, border: int = 0,
            win_size: int = 11, weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
            dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Multi-scale SSIM (Wang et al. 2003), (N, C, H, W) pair -> (N,).

    The number of scales is the largest k <= len(weights) for which the coarsest
    scale is still at least ``win_size`` pixels (at least 1 scale); the weights
    of the scales used are renormalised to sum 1. Negative cs values are clamped
    to 0 before the power (as in the pytorch_msssim reference), which keeps the
    gradient finite for a loss. Differentiable; ``dtype`` as in :func:`ssim`.
    """
    _check_pair(x, y)
    x, y = crop_border(x.to(dtype), border), crop_border(y.to(dtype), border)
    size, scales = min(x.shape[-2:]), 1
    while scales < len(weights) and size // 2 ** scales >= win_size:
        scales += 1
    w = torch.tensor(weights[:scales], dtype=dtype, device=x.device)
    w = w / w.sum()
    factors = []
    for level in range(scales):
        s, cs = _ssim_terms(x, y, data_range, win_size)
        if level == scales - 1:
            factors.append(s.clamp(min=0))
        else:
            factors.append(cs.clamp(min=0))
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    stacked = torch.stack(factors, dim=-1)  # (N, scales)
    return torch.prod(stacked ** w, dim=-1).to(torch.float32)
