"""DNG WarpRectilinear: lens distortion and lateral chromatic aberration, corrected after demosaicking.

Adobe's converter writes it to OpcodeList3 for cameras whose raws record their lens's
distortion (Micro Four Thirds, many mirrorless and compact cameras, drones): without it a
raw develops with the barrel distortion the camera's own JPEG has removed. Each output pixel
takes the value at its source position (DNG specification 1.4, and Adobe's SDK,
``dng_filter_warp::GetSrcPixelPosition``): with the optical centre c, the largest distance
R from c to a corner of the image, d = (p - c) / R and r^2 = min(|d|^2, 1),

    source = c + R * (d * (kr0 + kr1 r^2 + kr2 r^4 + kr3 r^6) + tangential(d)),

one set of coefficients per colour plane, so the red and blue planes can be scaled against
green to remove lateral colour fringes. Samples are bicubic, and positions past the edge
take the edge's value, as the SDK does.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import torch

_HEAD, _PLANE, _CENTRE = struct.Struct(">I"), struct.Struct(">6d"), struct.Struct(">2d")
OPCODE_WARP_RECTILINEAR = 1
_ROWS_PER_CHUNK = 256  # bounds the sampling grid's memory on large images


@dataclass(frozen=True)
class RectilinearWarp:
    """A DNG WarpRectilinear.

    Attributes:
        radial: per plane (kr0, kr1, kr2, kr3); one entry applies to every plane.
        tangential: per plane (kt0, kt1).
        centre: (vertical, horizontal) optical centre as fractions of the image.
    """

    radial: tuple[tuple[float, float, float, float], ...]
    tangential: tuple[tuple[float, float], ...]
    centre: tuple[float, float]


def parse_rectilinear_warp(params: bytes) -> RectilinearWarp:
    """A WarpRectilinear opcode's parameters -> :class:`RectilinearWarp`; ValueError when malformed."""
    if len(params) < _HEAD.size:
        raise ValueError("WarpRectilinear parameters are truncated")
    (planes,) = _HEAD.unpack_from(params)
    if not 1 <= planes <= 4 or len(params) != _HEAD.size + planes * _PLANE.size + _CENTRE.size:
        raise ValueError(f"WarpRectilinear of {planes} planes does not match its {len(params)} parameter bytes")
    values = [_PLANE.unpack_from(params, _HEAD.size + i * _PLANE.size) for i in range(planes)]
    centre_h, centre_v = _CENTRE.unpack_from(params, _HEAD.size + planes * _PLANE.size)
    if not np.all(np.isfinite(values)) or not (0 <= centre_h <= 1 and 0 <= centre_v <= 1):
        raise ValueError(f"WarpRectilinear has non-finite coefficients or a centre {(centre_v, centre_h)} outside the image")
    return RectilinearWarp(tuple(v[:4] for v in values), tuple(v[4:] for v in values), (centre_v, centre_h))


def rectilinear_warp_params(warp: RectilinearWarp) -> bytes:
    """Encode a :class:`RectilinearWarp` as opcode parameters (for writing test DNGs)."""
    planes = b"".join(_PLANE.pack(*radial, *tangential) for radial, tangential in zip(warp.radial, warp.tangential))
    return _HEAD.pack(len(warp.radial)) + planes + _CENTRE.pack(warp.centre[1], warp.centre[0])


def source_positions(warp: RectilinearWarp, plane: int, rows: np.ndarray,
                     shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Source (row, column) positions, in pixels, of the output pixels in ``rows`` (all columns) of ``plane``.

    Args:
        warp: the warp; a plane beyond its planes uses its first (the SDK copies plane 0 to the rest).
        rows: (R,) output row indices.
        shape: (H, W) of the image.
    Returns:
        two (R, W) float64 arrays.
    """
    height, width = shape
    k = warp.radial[plane] if plane < len(warp.radial) else warp.radial[0]
    kt0, kt1 = warp.tangential[plane] if plane < len(warp.tangential) else warp.tangential[0]
    centre_v, centre_h = warp.centre[0] * height, warp.centre[1] * width
    radius = np.hypot(max(centre_v, height - centre_v), max(centre_h, width - centre_h))
    dv = ((np.asarray(rows, np.float64) - centre_v) / radius)[:, None]
    dh = ((np.arange(width, dtype=np.float64) - centre_h) / radius)[None, :]
    r2 = np.minimum(dv * dv + dh * dh, 1.0)
    ratio = k[0] + r2 * (k[1] + r2 * (k[2] + r2 * k[3]))
    tan_v = kt0 * (r2 + 2 * dv * dv) + 2 * kt1 * dh * dv
    tan_h = kt1 * (r2 + 2 * dh * dh) + 2 * kt0 * dh * dv
    return centre_v + radius * (dv * ratio + tan_v), centre_h + radius * (dh * ratio + tan_h)


def apply_rectilinear_warp(rgb: np.ndarray, warp: RectilinearWarp) -> np.ndarray:
    """(H, W, C) float32 image -> the same size, each plane resampled at its source positions.

    Bicubic (Keys, a = -0.75) with the edge value repeated beyond the image, computed in blocks
    of rows so a 24 MP photo's sampling grid stays small.
    """
    height, width, planes = rgb.shape
    out = np.empty_like(rgb, dtype=np.float32)
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], dtype=torch.float64)
    for plane in range(planes):
        source = torch.from_numpy(np.ascontiguousarray(rgb[..., plane], dtype=np.float32))[None, None]
        for top in range(0, height, _ROWS_PER_CHUNK):
            rows = np.arange(top, min(top + _ROWS_PER_CHUNK, height))
            v, h = source_positions(warp, plane, rows, (height, width))
            # grid_sample's (x, y) in [-1, 1] with align_corners: -1 and 1 are the first and last pixel centres
            grid = (torch.from_numpy(np.stack([h, v], -1)) * scale - 1.0).to(torch.float32)[None]
            sampled = torch.nn.functional.grid_sample(source, grid, mode="bicubic", padding_mode="border",
                                                      align_corners=True)
            out[rows[0]: rows[-1] + 1, :, plane] = sampled[0, 0].numpy()
    return out


__all__ = ["OPCODE_WARP_RECTILINEAR", "RectilinearWarp", "apply_rectilinear_warp", "parse_rectilinear_warp",
           "rectilinear_warp_params", "source_positions"]
