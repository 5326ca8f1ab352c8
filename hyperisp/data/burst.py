"""Synthetic grey bursts for burst denoising (paper B §4, SPEC §6, after Mildenhall et al. 2018).

From one clean sRGB photo: grey it, linearise it (sRGB curve), cut T crops of the same
size, frame 0 the reference and frames 1..T-1 translated by random integer shifts, and
add signal-dependent noise in linear space:

    noisy = clean + sqrt(read^2 + shot^2 * clean) * N(0, 1)
    read  = 10^r, r ~ U(-3, -1.5)     (read-noise std)
    shot  = 10^r, r ~ U(-2, -1)       (shot-noise std at intensity I is sqrt(I) * shot)

Shifts: with probability 1 - ``P_LARGE_SHIFT`` = 0.9 a frame moves by up to 2 px in each
direction (uniform integers in [-2, 2]), with probability 0.1 by up to 16 px
(uniform integers in [-16, 16]); each frame draws independently, the reference never moves.

Ambiguity, kept switchable: Mildenhall et al. (whose ranges these are) write the noise
VARIANCE as ``read^2 + shot * clean`` (shot std ``sqrt(shot * I)``), while SPEC §6 states
the shot std as ``sqrt(I) * shot``. The default follows SPEC §6; ``shot_variance=True``
gives Mildenhall's form. On CBSD68 grey crops the noisy reference scores ~29 dB (SPEC form)
vs ~18 dB (Mildenhall form); paper B's Table 1 reports 20.0 dB for a single frame, which
points to Mildenhall's form.

"Gamma-corrected setting": the models see linear frames, and results are scored after
the sRGB gamma (:func:`hyperisp.data.linear_to_srgb`) against the clean sRGB reference.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hyperisp.data.unprocess import srgb_to_linear
from hyperisp.raw.colour_spaces import LUMA_WEIGHTS

READ_LOG10_RANGE = (-3.0, -1.5)
SHOT_LOG10_RANGE = (-2.0, -1.0)
SMALL_SHIFT = 2
LARGE_SHIFT = 16
P_LARGE_SHIFT = 0.1


def _log_uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    return 10 ** (low + (high - low) * torch.rand(n, generator=generator))


def random_burst_noise_levels(n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(read (N,), shot (N,)) noise parameters, log-uniform in the SPEC §6 ranges."""
    return _log_uniform(n, *READ_LOG10_RANGE, generator), _log_uniform(n, *SHOT_LOG10_RANGE, generator)


def noise_std(clean: torch.Tensor, read: torch.Tensor, shot: torch.Tensor, shot_variance: bool = False
              ) -> torch.Tensor:
    """Per-pixel noise std ``sqrt(read^2 + shot^2 * max(clean, 0))`` (``shot`` instead of ``shot^2``
    with ``shot_variance``, Mildenhall's form); clean (N, ...), read/shot (N,)."""
    shape = (-1,) + (1,) * (clean.ndim - 1)
    shot = shot.view(shape) if shot_variance else shot.view(shape) ** 2
    return torch.sqrt(read.view(shape) ** 2 + shot * clean.clamp(min=0))


def add_burst_noise(clean: torch.Tensor, read: torch.Tensor, shot: torch.Tensor,
                    generator: torch.Generator | None = None, shot_variance: bool = False) -> torch.Tensor:
    """Read + shot noise, independent per pixel and frame; clean (N, T, H, W) linear -> same shape, not clipped."""
    return clean + noise_std(clean, read, shot, shot_variance) * torch.randn(clean.shape, generator=generator)


def random_shifts(n: int, frames: int, generator: torch.Generator | None = None,
                  p_large: float = P_LARGE_SHIFT) -> torch.Tensor:
    """(N, T, 2) integer (dy, dx) offsets; frame 0 is (0, 0), see the module docstring."""
    large = torch.rand(n, frames, 1, generator=generator) < p_large
    reach = torch.where(large, LARGE_SHIFT, SMALL_SHIFT)
    u = torch.rand(n, frames, 2, generator=generator)
    shifts = torch.floor(u * (2 * reach + 1)).long() - reach
    shifts[:, 0] = 0
    return shifts


def shifted_crops(images: torch.Tensor, shifts: torch.Tensor, size: int) -> torch.Tensor:
    """Cut T crops of ``size`` x ``size`` per image: frame t is the centre crop moved by shifts[:, t].

    Args:
        images: (N, H, W) with H, W >= size + 2*max|shift|.
        shifts: (N, T, 2) integer (dy, dx).
    Returns:
        (N, T, size, size); frame t at pixel p shows images[p + shift_t].
    """
    n, h, w = images.shape
    reach = int(shifts.abs().max()) if shifts.numel() else 0
    if h < size + 2 * reach or w < size + 2 * reach:
        raise ValueError(f"expected images of at least {size + 2 * reach} px for {size} px crops "
                         f"with shifts up to {reach} px, got {h}x{w}")
    top, left = (h - size) // 2, (w - size) // 2
    crops = [
        torch.stack([images[i, top + dy: top + dy + size, left + dx: left + dx + size] for dy, dx in shifts[i].tolist()])
        for i in range(n)
    ]
    return torch.stack(crops)


def synthesize_bursts(srgb: torch.Tensor, frames: int = 8, size: int = 64,
                      generator: torch.Generator | None = None, shot_variance: bool = False
                      ) -> dict[str, torch.Tensor]:
    """Noisy linear bursts from clean grey sRGB images (SPEC §6).

    Args:
        srgb: (N, H, W) grey sRGB in [0, 1], H, W >= size + 32 (room for 16 px shifts).
        shot_variance: Mildenhall's noise form instead of SPEC §6's (module docstring).
    Returns:
        dict with "noisy" (N, T, size, size) linear, "clean" (N, 1, size, size) linear
        (the reference frame without noise), "read" (N,), "shot" (N,), "shifts" (N, T, 2).
    """
    if srgb.ndim != 3:
        raise ValueError(f"expected grey images of shape (N, H, W), got {tuple(srgb.shape)}")
    n = srgb.shape[0]
    shifts = random_shifts(n, frames, generator)
    clean = shifted_crops(srgb_to_linear(srgb), shifts, size)
    read, shot = random_burst_noise_levels(n, generator)
    noisy = add_burst_noise(clean, read, shot, generator, shot_variance)
    return {"noisy": noisy, "clean": clean[:, :1], "read": read, "shot": shot, "shifts": shifts}


def rgb_to_grey(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W) Rec. 709 luma of the sRGB values."""
    return (rgb @ LUMA_WEIGHTS).astype(np.float32)


def load_grey(path: str | Path) -> np.ndarray:
    """A photo as (H, W) float32 grey sRGB in [0, 1]."""
    from hyperisp.io.images import read_image  # noqa: PLC0415 (PIL only when reading)

    return rgb_to_grey(read_image(path).pixels)
