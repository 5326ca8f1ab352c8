"""Tensor operations on canonical RGGB Bayer mosaics.

Every mosaic inside hyperisp is canonical RGGB (``raw/phase.py`` flips other
phases into it), so these functions never need a phase argument:

    row 0: R  G   R  G ...      packed channel order: (R, Gr, Gb, B)
    row 1: G  B   G  B ...      Gr shares rows with R, Gb with B
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from ..nn.shuffle import pixel_shuffle

PACKED_CHANNELS = ("R", "Gr", "Gb", "B")


def _check_mosaic(mosaic: torch.Tensor) -> None:
    if mosaic.ndim != 4 or mosaic.shape[1] != 1:
        raise ValueError(f"expected a mosaic of shape (N, 1, H, W), got {tuple(mosaic.shape)}")
    if mosaic.shape[-2] % 2 or mosaic.shape[-1] % 2:
        raise ValueError(f"expected even mosaic height and width, got {tuple(mosaic.shape[-2:])}")


def _check_packed(packed: torch.Tensor) -> None:
    if packed.ndim != 4 or packed.shape[1] != 4:
        raise ValueError(f"expected packed Bayer of shape (N, 4, H/2, W/2), got {tuple(packed.shape)}")


def pack_bayer(mosaic: torch.Tensor) -> torch.Tensor:
    """Pack an RGGB mosaic into 4 half-resolution planes.

    Args:
        mosaic: (N, 1, H, W), H and W even.
    Returns:
        (N, 4, H/2, W/2) in channel order (R, Gr, Gb, B).
    """
    _check_mosaic(mosaic)
    # pixel_unshuffle orders the 2x2 offsets (0,0), (0,1), (1,0), (1,1): exactly R, Gr, Gb, B.
    return F.pixel_unshuffle(mosaic, 2)


def unpack_bayer(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_bayer`: (N, 4, h, w) -> (N, 1, 2h, 2w)."""
    _check_packed(packed)
    return F.pixel_shuffle(packed, 2)


def mosaic_rgb(rgb: torch.Tensor) -> torch.Tensor:
    """Sample a full RGB image through an RGGB colour filter array.

    Args:
        rgb: (N, 3, H, W), H and W even.
    Returns:
        (N, 1, H, W) mosaic.
    """
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ValueError(f"expected RGB of shape (N, 3, H, W), got {tuple(rgb.shape)}")
    if rgb.shape[-2] % 2 or rgb.shape[-1] % 2:
        raise ValueError(f"expected even height and width, got {tuple(rgb.shape[-2:])}")
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    packed = torch.cat(
        [r[..., 0::2, 0::2], g[..., 0::2, 1::2], g[..., 1::2, 0::2], b[..., 1::2, 1::2]], dim=1
    )
    return unpack_bayer(packed)


def _bilinear_kernels() -> torch.Tensor:
    """(12, 4, 3, 3) kernels of bilinear demosaicking on the packed planes (see below)."""
    k = torch.zeros(12, 4, 3, 3)
    r, gr, gb, b = 0, 1, 2, 3

    def put(out: int, taps: list[tuple[int, int, int]]) -> None:
        for plane, dy, dx in taps:  # plane shifted by (dy, dx) packed pixels
            k[out, plane, 1 + dy, 1 + dx] += 1 / len(taps)

    # Output channel = colour * 4 + site, sites in pixel_shuffle order (R, Gr, Gb, B sites).
    put(0, [(r, 0, 0)])
    put(1, [(r, 0, 0), (r, 0, 1)])
    put(2, [(r, 0, 0), (r, 1, 0)])
    put(3, [(r, 0, 0), (r, 0, 1), (r, 1, 0), (r, 1, 1)])
    put(4, [(gb, 0, 0), (gb, -1, 0), (gr, 0, 0), (gr, 0, -1)])
    put(5, [(gr, 0, 0)])
    put(6, [(gb, 0, 0)])
    put(7, [(gr, 0, 0), (gr, 1, 0), (gb, 0, 0), (gb, 0, 1)])
    put(8, [(b, 0, 0), (b, -1, 0), (b, 0, -1), (b, -1, -1)])
    put(9, [(b, 0, 0), (b, -1, 0)])
    put(10, [(b, 0, 0), (b, 0, -1)])
    put(11, [(b, 0, 0)])
    return k


_BILINEAR_KERNELS = _bilinear_kernels()


@functools.lru_cache(maxsize=8)
def _bilinear_kernels_on(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # once per device: a host-to-GPU copy per call would make the CPU wait for the GPU every tile
    return _BILINEAR_KERNELS.to(device, dtype)


def demosaic_bilinear_planes(packed: torch.Tensor) -> torch.Tensor:
    """Bilinear demosaicking before the sub-pixel shuffle: (N, 4, h, w) -> (N, 12, h, w).

    ``pixel_shuffle(demosaic_bilinear_planes(p), 2) == demosaic_bilinear(p)``; channel
    ``colour * 4 + site`` holds that colour at one site of each 2x2 cell. Models with a
    sub-pixel head add their residual here, so the output is shuffled once.

    One fixed 3x3 convolution on the packed planes (about 5x faster than the same sums as
    separate elementwise ops). Reflecting the MOSAIC at its border (row -1 mirrors row 1,
    which has the same parity) is replicating the packed planes. The output keeps the
    input's memory format.

    Args:
        packed: (N, 4, h, w) as from :func:`pack_bayer`.
    Returns:
        (N, 12, h, w).
    """
    _check_packed(packed)
    n, _, h, w = packed.shape
    if packed.device.type == "meta":
        # FLOP counting: a fixed average of neighbours is the classical base, not model work.
        return packed.new_empty(n, 12, h, w)
    weight = _bilinear_kernels_on(packed.device, packed.dtype)
    if packed.is_contiguous(memory_format=torch.channels_last) and not packed.is_contiguous():
        weight = weight.contiguous(memory_format=torch.channels_last)
    return F.conv2d(F.pad(packed, (1, 1, 1, 1), mode="replicate"), weight)


def demosaic_bilinear(packed: torch.Tensor) -> torch.Tensor:
    """Classical bilinear demosaicking of a packed RGGB mosaic.

    Every output pixel depends only on its 3x3 neighbourhood, so the result is
    exact under tiling with a 1-pixel overlap. Reflection padding keeps the CFA
    pattern at the borders (row -1 mirrors row 1, which has the same parity).

    Args:
        packed: (N, 4, h, w) as from :func:`pack_bayer`.
    Returns:
        (N, 3, 2h, 2w) RGB.
    """
    # channels_last: oneDNN's fast path for the convolution, and our one-copy shuffle.
    return pixel_shuffle(demosaic_bilinear_planes(packed.contiguous(memory_format=torch.channels_last)), 2)
