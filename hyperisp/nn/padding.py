"""Padding helpers shared by the layers and models.

Reflection padding is what the papers use ('same' convolutions without a dark
border). PyTorch's reflection pad needs the pad to be smaller than the map, which
fails on the 1-2 pixel maps deep inside a UNet fed a tiny image; there we fall
back to replicate padding (identical for a 1-pixel map, harmless otherwise).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from hyperisp.nn.fused import Activation, activate, conv2d_act


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


_BORDER_FIX_MIN_AREA = 128 * 128


def reflect_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    groups: int = 1,
    activation: Activation | None = None,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """'Same' convolution with reflection padding, without a padded copy of the input.

    ``activation(F.conv2d(reflect_pad(x, (p,) * 4), weight, bias, groups=groups) + residual)``
    with p = f // 2, the activation and residual fused into the convolution where possible
    (:func:`hyperisp.nn.fused.conv2d_act`). Padding a whole feature map is a full extra pass
    over memory (it cost as much as the 16-channel convolution itself), so the convolution
    runs with oneDNN's built-in zero padding and only the p-pixel border, the part that saw
    the zeros, is recomputed from thin reflection-padded strips.

    Args:
        x: (N, Cin, H, W).
        weight: (Cout, Cin / groups, f, f), f odd.
        bias: (Cout,) or None.
        groups: as in :func:`torch.nn.functional.conv2d`.
        activation: None or an :class:`~hyperisp.nn.fused.Activation`, applied last.
        residual: None or a map added before the activation, (N, Cout, H, W) or broadcastable to it.
    Returns:
        (N, Cout, H, W).
    """
    p = weight.shape[-1] // 2
    h, w = x.shape[-2:]
    if p == 0 or h < 2 * p or w < 2 * p or h * w < _BORDER_FIX_MIN_AREA or x.device.type == "meta":
        # Small maps (training crops, deep UNet levels): the copy is cheap, four extra convolutions are not.
        # Meta tensors (FLOP counting): count the convolution, not how its border is computed.
        return conv2d_act(reflect_pad(x, (p, p, p, p)), weight, bias, 0, groups, activation, residual)
    y = conv2d_act(x, weight, bias, p, groups, activation, residual)
    if residual is not None:
        residual = residual.expand_as(y)

    def border(rows: slice, cols: slice, strip: torch.Tensor, keep: tuple[slice, slice]) -> None:
        """Recompute output ``y[..., rows, cols]`` from the input ``strip`` that covers it (plus p)."""
        part = conv2d_act(F.pad(strip, (p, p, p, p), mode="reflect"), weight, bias, 0, groups)[..., keep[0], keep[1]]
        y[..., rows, cols] = activate(part if residual is None else part + residual[..., rows, cols], activation)

    # Output rows/columns within p of an edge read input rows/columns up to 2p - 1 from it.
    full, first, last = slice(None), slice(None, p), slice(-p, None)
    border(first, full, x[..., : 2 * p, :], (first, full))
    border(last, full, x[..., -2 * p :, :], (last, full))
    border(full, first, x[..., :, : 2 * p], (full, first))
    border(full, last, x[..., :, -2 * p :], (full, last))
    return y


def padded_length(length: int, multiple: int, min_size: int = 0) -> int:
    """``length`` rounded up to a multiple of ``multiple`` and at least ``min_size``: the size :func:`pad_to_multiple` pads to."""
    return max(-(-length // multiple) * multiple, -(-min_size // multiple) * multiple)


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
    return reflect_pad(x, (0, padded_length(w, multiple, min_size) - w, 0, padded_length(h, multiple, min_size) - h))
