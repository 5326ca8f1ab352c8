"""Scale an output down to fit a size, as a raw converter's export does (darktable-cli --width/--height).

    >>> small = resize_to_fit(rgb, 2048)   # longer side at most 2048 px; never enlarged

Lanczos (Pillow's, on float32 planes, so 16-bit outputs keep their precision) on the encoded
values, as most editors resize: it works the same whatever the pixels' ICC profile.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from PIL import Image

from .errors import HyperispError


def check_max_size(max_size: Optional[int]) -> None:
    """Raise :class:`HyperispError` unless ``max_size`` is None or a positive whole number of pixels."""
    if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer))
                                 or max_size < 1):
        raise HyperispError(None, f"max size {max_size!r}: expected a positive whole number of pixels")


def fit_size(height: int, width: int, max_size: int) -> tuple[int, int]:
    """(height, width) scaled so the longer side is at most ``max_size``, aspect kept, never enlarged."""
    check_max_size(max_size)
    scale = min(1.0, max_size / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_to_fit(pixels: np.ndarray, max_size: Optional[int]) -> np.ndarray:
    """Scale (H, W, 3) or (H, W) float32 pixels in [0, 1] so the longer side is at most ``max_size``.

    None, or an image that already fits, comes back unchanged (the same array). Lanczos
    overshoots at hard edges; the result is clipped to [0, 1].
    """
    if max_size is None:
        return pixels
    height, width = pixels.shape[:2]
    size = fit_size(height, width, max_size)
    if size == (height, width):
        return pixels
    planes = pixels[..., None] if pixels.ndim == 2 else pixels
    out = np.empty((*size, planes.shape[2]), dtype=np.float32)
    for c in range(planes.shape[2]):
        plane = Image.fromarray(np.ascontiguousarray(planes[..., c], dtype=np.float32))  # mode F
        out[..., c] = np.asarray(plane.resize(size[::-1], Image.Resampling.LANCZOS))
    np.clip(out, 0.0, 1.0, out=out)
    return out[..., 0] if pixels.ndim == 2 else out
