"""Output sharpening: an unsharp mask on luma, as a raw converter's export sharpening.

    >>> crisp = unsharp_mask(rgb, amount=0.5)        # after any resize, just before writing

Only luma is sharpened (the same correction added to R, G and B), so edges gain contrast
without colour fringes, and the mask is a Gaussian of ``radius`` pixels (sigma): 1 suits a
photo seen at 100 % or scaled down for the screen.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .errors import HyperispError
from .raw.colour_spaces import LUMA_WEIGHTS

MAX_AMOUNT = 2.0


def gaussian_blur(plane: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W) float32 blurred by a Gaussian of ``sigma`` pixels (separable; edge pixels repeated outwards)."""
    half = max(1, int(np.ceil(3 * sigma)))
    taps = torch.exp(-0.5 * (torch.arange(-half, half + 1, dtype=torch.float32) / sigma) ** 2)
    taps /= taps.sum()
    x = torch.from_numpy(np.ascontiguousarray(plane, dtype=np.float32))[None, None]
    x = F.conv2d(F.pad(x, (half, half, half, half), mode="replicate"), taps.view(1, 1, 1, -1))
    return F.conv2d(x, taps.view(1, 1, -1, 1))[0, 0].numpy()


def check_sharpen(amount: float, radius: float = 1.0) -> None:
    """Raise :class:`HyperispError` unless 0 <= amount <= :data:`MAX_AMOUNT` and 0 < radius <= 10."""
    if not 0 <= amount <= MAX_AMOUNT:
        raise HyperispError(None, f"sharpen amount {amount}: expected a value from 0 (none) to {MAX_AMOUNT:g}")
    if not 0 < radius <= 10:
        raise HyperispError(None, f"sharpen radius {radius}: expected a Gaussian sigma in pixels, above 0 and up to 10")


def unsharp_mask(pixels: np.ndarray, amount: float, radius: float = 1.0) -> np.ndarray:
    """``pixels + amount * (Y - blur(Y))`` on every channel, clipped to [0, 1].

    Args:
        pixels: (H, W, 3) or (H, W) float32 in [0, 1] (encoded values).
        amount: 0 leaves the pixels as they are (the same array comes back); 0.5 is moderate.
        radius: the Gaussian blur's sigma in pixels.
    Returns:
        a new float32 array of the same shape (or ``pixels`` itself for amount 0).
    """
    check_sharpen(amount, radius)
    if amount == 0:
        return pixels
    luma = pixels if pixels.ndim == 2 else pixels @ LUMA_WEIGHTS
    luma = np.ascontiguousarray(luma, dtype=np.float32)
    detail = (luma - gaussian_blur(luma, radius)) * np.float32(amount)
    out = pixels + (detail if pixels.ndim == 2 else detail[..., None])
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)
