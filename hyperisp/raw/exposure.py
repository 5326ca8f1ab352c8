"""Automatic exposure that keeps highlights: brighten dark frames, never push detail into clipping."""
from __future__ import annotations

import numpy as np

from .colour_spaces import LUMA_WEIGHTS

MAX_AUTO_EV = 4.0
MID_GREY = 0.18  # target mean linear luminance (sRGB-encoded ~0.46)
HIGHLIGHT_PERCENTILE = 99.0  # this much of the image stays below white


def auto_exposure(cam_rgb: np.ndarray, gains: np.ndarray, cam_to_srgb: np.ndarray, max_samples: int = 1 << 18) -> float:
    """Exposure correction (EV, >= 0) for a developed image.

    Brightens until the mean luminance reaches mid grey, but never so far that more
    than 1 % of the (unclipped) pixels would clip: pixels already clipped at the sensor
    do not count, and the correction is never negative, because darkening cannot bring
    back what the sensor clipped (it would only turn white highlights grey).

    Args:
        cam_rgb: (H, W, 3) linear camera RGB in [0, 1].
        gains: (3,) white-balance gains; cam_to_srgb: (3, 3) white-balanced camera -> linear sRGB.
    Returns:
        EV in [0, 4].
    """
    cam_rgb = np.asarray(cam_rgb)
    if cam_rgb.ndim != 3 or cam_rgb.shape[2] != 3:
        raise ValueError(f"expected camera RGB of shape (H, W, 3), got {cam_rgb.shape}")
    step = max(1, int(np.sqrt(cam_rgb.shape[0] * cam_rgb.shape[1] / max_samples)))
    cam = cam_rgb[::step, ::step].reshape(-1, 3).astype(np.float64)
    unclipped = cam.max(axis=1) < 0.98
    linear = np.clip(np.minimum(cam * np.asarray(gains, np.float64), 1.0) @ np.asarray(cam_to_srgb, np.float64).T, 0, 1)
    luma = linear @ LUMA_WEIGHTS
    if not unclipped.any() or luma.mean() <= 0:
        return 0.0
    to_mid = np.log2(MID_GREY / max(float(luma.mean()), 1e-6))
    bright = float(np.percentile(linear[unclipped].max(axis=1), HIGHLIGHT_PERCENTILE))
    to_highlights = np.log2(1.0 / max(bright, 1e-6))
    return float(np.clip(min(to_mid, to_highlights), 0.0, MAX_AUTO_EV))
