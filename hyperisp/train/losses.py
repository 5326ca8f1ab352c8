"""Training losses: MSE + (1 - MS-SSIM) (paper A), L1, MSE, and VDN's variational loss.

All image losses take (N, 3, H, W) predictions and targets on a [0, 1] scale.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..metrics import gaussian_window, ms_ssim

# VDN clamps the predicted log variances / log alpha, log beta to this range.
_LOG_MIN, _LOG_MAX = math.log(1e-10), math.log(1e4)


def mse_msssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Paper A's loss: MSE + (1 - MS-SSIM), averaged over the batch. Scalar."""
    return F.mse_loss(pred, target) + (1.0 - ms_ssim(pred, target, dtype=torch.float32)).mean()


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error. Scalar."""
    return F.l1_loss(pred, target)


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error, the loss PSNR measures (a last fine-tune after L1). Scalar."""
    return F.mse_loss(pred, target)


# Image losses by the names `hyperisp train --loss` takes (VDN's variational loss is separate).
IMAGE_LOSSES = {"l1": l1_loss, "mse": mse_loss, "mse_msssim": mse_msssim_loss}


def estimate_sigma_map(noisy: torch.Tensor, clean: torch.Tensor, window: int = 7, sigma: float = 3.0) -> torch.Tensor:
    """VDN's per-pixel noise-variance estimate: Gaussian-weighted local mean of (noisy - clean)^2.

    Yue et al. 2019 use this for real (SIDD) data, window 7, spatial sigma 3; it works
    for any noise, so synthetic mixtures need no separate variance bookkeeping.

    Args:
        noisy, clean: (N, C, H, W).
    Returns:
        (N, C, H, W) variances, at least 1e-10.
    """
    residual2 = (noisy - clean).pow(2)
    c = residual2.shape[1]
    k = gaussian_window(window, sigma).to(residual2)
    pad = window // 2
    x = F.pad(residual2, (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return x.clamp(min=1e-10)


def vdn_loss(dnet_out: torch.Tensor, snet_out: torch.Tensor, noisy: torch.Tensor, clean: torch.Tensor,
             sigma_map: torch.Tensor | None = None, eps2: float = 1e-6, radius: int = 3) -> torch.Tensor:
    """Variational loss of VDN (Yue et al. 2019, their ``loss_fn``): negative ELBO per pixel.

    Args:
        dnet_out: (N, 6, H, W) from ``forward_vdn``: noise mean m (3) and log(variance / eps2) (3)
            of q(z), with z = noisy - m the clean image. VDN's D-Net outputs the log variance
            itself; ours are measured from the prior's ln(eps2) because HyperVDN's D-Net starts
            at exactly zero (``out_scale`` = 0): as a plain log variance that is variance 1 against
            a prior of 5e-5, a KL term near 1e4 that wrecked the first iterations.
        snet_out: (N, 6, H, W): log alpha (3) and log beta (3) of the inverse-gamma q(sigma^2).
        noisy, clean: (N, 3, H, W).
        sigma_map: (N, 3, H, W) prior noise variance; estimated from the pair when None.
        eps2: variance of the Gaussian prior around the clean image (VDN: 1e-6 real, 5e-5 synthetic).
        radius: window radius of the inverse-gamma prior (VDN: 3).
    Returns:
        scalar: likelihood + KL(q(z) || p(z)) + KL(q(sigma^2) || p(sigma^2)).
    """
    if sigma_map is None:
        sigma_map = estimate_sigma_map(noisy, clean, 2 * radius + 1)
    c = clean.shape[1]
    p2 = (2 * radius + 1) ** 2
    alpha0 = torch.tensor(0.5 * (p2 - 2), dtype=noisy.dtype, device=noisy.device)
    beta0 = 0.5 * p2 * sigma_map
    err_mean = dnet_out[:, :c]
    m2 = (dnet_out[:, c:] + math.log(eps2)).clamp(_LOG_MIN, _LOG_MAX).exp()
    snet_out = snet_out.clamp(_LOG_MIN, _LOG_MAX)
    log_alpha, log_beta = snet_out[:, :c], snet_out[:, c:]
    alpha = log_alpha.exp()
    alpha_div_beta = (log_alpha - log_beta).exp()
    m2_div_eps = m2 / eps2
    kl_gauss = 0.5 * torch.mean((noisy - clean - err_mean) ** 2 / eps2 + (m2_div_eps - 1 - torch.log(m2_div_eps)))
    kl_igamma = torch.mean((alpha - alpha0) * torch.digamma(alpha) + (torch.lgamma(alpha0) - torch.lgamma(alpha))
                           + alpha0 * (log_beta - torch.log(beta0)) + beta0 * alpha_div_beta - alpha)
    likelihood = 0.5 * math.log(2 * math.pi) + 0.5 * torch.mean(
        (log_beta - torch.digamma(alpha)) + (err_mean**2 + m2) * alpha_div_beta)
    return likelihood + kl_gauss + kl_igamma
