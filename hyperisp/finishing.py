"""The last steps before a result is written, in a raw converter's export order: scale it down
to fit (:mod:`hyperisp.resize`), then sharpen it for that size (:mod:`hyperisp.sharpen`).

    >>> out = finish_output(rgb, max_size=2048, sharpen=0.5)
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .resize import check_max_size, resize_to_fit
from .sharpen import check_sharpen, unsharp_mask


def check_finishing(max_size: Optional[int] = None, sharpen: float = 0.0) -> None:
    """Raise :class:`~hyperisp.errors.HyperispError` for a bad size or amount (before any slow work)."""
    check_max_size(max_size)
    check_sharpen(sharpen)


def finish_output(pixels: np.ndarray, max_size: Optional[int] = None, sharpen: float = 0.0) -> np.ndarray:
    """(H, W, 3) or (H, W) float32 in [0, 1] -> scaled to fit ``max_size`` (None: as is), then
    unsharp-masked by ``sharpen`` (0: not at all)."""
    return unsharp_mask(resize_to_fit(pixels, max_size), sharpen)
