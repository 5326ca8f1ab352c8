"""Padding helpers shared by the layers and models.

Reflection padding is what the papers use ('same' convolutions without a dark
border). PyTorch's reflection pad needs the pad to be smaller than the map, which
fails on the 1-2 pixel maps deep inside a UNet fed a tiny image; there we fall
back to replicate padding (identical for a 1-pixel map, harmless otherwise).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def reflect_pad(x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """Reflection-pad the last two dims, replicate where the map is too small to mirror.

    Args:
        x: (N, C, H, W).
        pad: (left, right, top, bottom) as in :func:`torch.nn.functional.pad`.
    Returns:
        (N, C, H + top + bottom, W + left + right).
    """
    if x.ndim != 4:
        raise ValueError(f"expected a tensor of shape (N, C, H, W), got {tuple(x.shape)}")
    if not any(pad):
        return x
    left, right, top, bottom = pad
    h, w = x.shape[-2:]
    if max(left, right) < w and max(top, bottom) < h:
        return F.pad(x, pad, mode="reflect")
    return F.pad(x, pad, mode="replicate")


def pad_to_multiple(x: torch.Tensor, multiple: int, min_size: int = 0) -> torch.Tensor:
    """Pad (N, C, H, W) at the bottom and right to H', W' divisible by ``multiple``.

    Padding only at the bottom/right keeps pixel (0, 0) in place, so the caller
    crops the result back with ``[..., :H, :W]`` (scaled by its output stride).

    Args:
        x: (N, C, H, W).
        multiple: H' and W' become multiples of this.
        min_size: H' and W' are at least this (rounded up to ``multiple``).
    Returns:
        (N, C, H', W') with H' >= H, W' >= W.
    """
    if multiple < 1:
        raise ValueError(f"expected multiple >= 1, got {multiple}")
    h, w = x.shape[-2:]

    def target(n: int) -> int:
        n = max(n, min_size)
        return -(-n // multiple) * multiple

    return reflect_pad(x, (0, target(w) - w, 0, target(h) - h))
