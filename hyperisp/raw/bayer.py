"""Tensor operations on canonical RGGB Bayer mosaics.

Every mosaic inside hyperisp is canonical RGGB (``raw/phase.py`` flips other
phases into it), so these functions never need a phase argument:

    row 0: R  G   R  G ...      packed channel order: (R, Gr, Gb, B)
    row 1: G  B   G  B ...      Gr shares rows with R, Gb with B
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

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
    _check_packed(packed)
    # Computed on the packed planes (5x faster than a masked 3x3 grouped conv on the mosaic,
    # same values up to float rounding). Reflecting the MOSAIC (row -1 = row 1, same parity)
    # is replicating the packed planes. at(c, dy, dx): plane c shifted by (dy, dx) packed pixels.
    h, w = packed.shape[-2:]
    padded = F.pad(packed, (1, 1, 1, 1), mode="replicate")

    def at(c: int, dy: int = 0, dx: int = 0) -> torch.Tensor:
        return padded[:, c : c + 1, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    r, gr, gb, b = at(0), at(1), at(2), at(3)
    # Each colour at the four sites of a 2x2 cell, in pixel_shuffle order: R, Gr, Gb, B sites.
    red = [r, (r + at(0, 0, 1)) / 2, (r + at(0, 1, 0)) / 2, (r + at(0, 0, 1) + at(0, 1, 0) + at(0, 1, 1)) / 4]
    green = [(gb + at(2, -1, 0) + gr + at(1, 0, -1)) / 4, gr, gb, (gr + at(1, 1, 0) + gb + at(2, 0, 1)) / 4]
    blue = [(b + at(3, -1, 0) + at(3, 0, -1) + at(3, -1, -1)) / 4, (b + at(3, -1, 0)) / 2, (b + at(3, 0, -1)) / 2, b]
    return F.pixel_shuffle(torch.cat(red + green + blue, 1), 2)
