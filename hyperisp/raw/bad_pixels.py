"""Bad (dead, hot, stuck) sensor pixels: the DNG's FixBadPixelsConstant / FixBadPixelsList opcodes,
the detection of hot pixels in any raw (``develop --hot-pixels``), and their repair by
interpolation from the nearest good pixels of the same colour.

Adobe's DNG Converter marks a camera's dead pixels with FixBadPixelsConstant in OpcodeList1 (every
stored value equal to the constant, usually 0, is bad); cameras and mapping tools list known
defects, points and whole rectangles such as a bad column, with FixBadPixelsList. rawpy's LibRaw
applies neither, and a network that never saw a stuck pixel turns one into a coloured cross after
demosaicking, so :func:`~hyperisp.raw.reader.read_raw` repairs them on the mosaic.

Parameters (DNG specification 1.4, "Opcode List Processing"; big-endian):
FixBadPixelsConstant is a uint32 constant and a uint32 Bayer phase; FixBadPixelsList is a uint32
Bayer phase, uint32 point and rectangle counts, then (row, column) per point and (top, left,
bottom, right) per rectangle. The Bayer phase is not needed here: the colour of each site comes
from the file's CFA pattern, which LibRaw reads.
"""
from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field

import numpy as np

OPCODE_FIX_BAD_PIXELS_CONSTANT, OPCODE_FIX_BAD_PIXELS_LIST = 4, 5
_CONSTANT = struct.Struct(">II")  # constant, Bayer phase
_LIST_HEAD = struct.Struct(">III")  # Bayer phase, point count, rectangle count
_MAX_RADIUS = 8  # farthest same-colour neighbour a repair looks for (a rectangle up to ~14 px wide)
RGGB_COLOURS = np.array([[0, 1], [3, 2]])  # LibRaw's colour indices of a canonical RGGB mosaic's sites


@dataclass(frozen=True)
class BadPixels:
    """One FixBadPixels opcode.

    Attributes:
        constant: every pixel whose value equals it is bad (FixBadPixelsConstant), else None.
        points: (N, 2) int64 (row, column) of bad pixels (FixBadPixelsList).
        rects: (M, 4) int64 (top, left, bottom, right), bottom/right exclusive, of bad areas.
        stored: True for OpcodeList1: coordinates are in the stored image (masked border
            included) and ``constant`` compares stored values; False for OpcodeList2: coordinates
            in the active area and ``constant`` compares linear values scaled to 0..65535.
    """

    constant: int | None = None
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    rects: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int64))
    stored: bool = True


def parse_bad_pixels_constant(params: bytes, stored: bool = True) -> BadPixels:
    """A FixBadPixelsConstant opcode's parameters -> :class:`BadPixels`; ValueError when malformed."""
    if len(params) != _CONSTANT.size:
        raise ValueError(f"FixBadPixelsConstant parameters are {len(params)} bytes, not {_CONSTANT.size}")
    constant, _phase = _CONSTANT.unpack(params)
    return BadPixels(constant=constant, stored=stored)


def parse_bad_pixels_list(params: bytes, stored: bool = True) -> BadPixels:
    """A FixBadPixelsList opcode's parameters -> :class:`BadPixels`; ValueError when malformed."""
    if len(params) < _LIST_HEAD.size:
        raise ValueError(f"FixBadPixelsList parameters are {len(params)} bytes, fewer than its {_LIST_HEAD.size}-byte head")
    _phase, n_points, n_rects = _LIST_HEAD.unpack_from(params)
    if len(params) != _LIST_HEAD.size + 8 * n_points + 16 * n_rects:
        raise ValueError(f"FixBadPixelsList of {n_points} points and {n_rects} rectangles does not match its "
                         f"{len(params)} parameter bytes")
    values = np.frombuffer(params, ">u4", offset=_LIST_HEAD.size).astype(np.int64)
    points, rects = values[: 2 * n_points].reshape(-1, 2), values[2 * n_points :].reshape(-1, 4)
    if np.any(rects[:, 2] < rects[:, 0]) or np.any(rects[:, 3] < rects[:, 1]):
        raise ValueError("FixBadPixelsList has a rectangle whose bottom/right is before its top/left")
    return BadPixels(points=points, rects=rects, stored=stored)


def bad_pixels_opcode_params(bad: BadPixels) -> tuple[int, bytes]:
    """(opcode ID, parameter bytes) of ``bad`` (for writing test DNGs); Bayer phase 0."""
    if bad.constant is not None:
        return OPCODE_FIX_BAD_PIXELS_CONSTANT, _CONSTANT.pack(bad.constant, 0)
    head = _LIST_HEAD.pack(0, len(bad.points), len(bad.rects))
    return OPCODE_FIX_BAD_PIXELS_LIST, head + np.concatenate([bad.points.ravel(), bad.rects.ravel()]).astype(">u4").tobytes()


def bad_pixel_mask(stored: np.ndarray, linear: np.ndarray, fixes: list[BadPixels],
                   margins: tuple[int, int] = (0, 0)) -> np.ndarray:
    """(H, W) bool mask of the pixels ``fixes`` mark bad in the visible (active) image.

    Args:
        stored: (H, W) the visible image's stored values (what OpcodeList1's constant compares).
        linear: (H, W) float32 the same pixels, black subtracted, white = 1 (OpcodeList2's).
        fixes: the opcodes, from OpcodeList1 and OpcodeList2.
        margins: (top, left) of the visible image in the stored one (LibRaw's ``top_margin``,
            ``left_margin``): OpcodeList1's coordinates include the masked border.
    """
    height, width = stored.shape
    mask = np.zeros((height, width), dtype=bool)
    for fix in fixes:
        top, left = margins if fix.stored else (0, 0)
        if fix.constant is not None:
            values = stored if fix.stored else np.round(linear * 65535.0)
            mask |= values == fix.constant
        rows, cols = fix.points[:, 0] - top, fix.points[:, 1] - left
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        mask[rows[inside], cols[inside]] = True
        for r0, c0, r1, c1 in fix.rects:
            mask[max(r0 - top, 0) : max(r1 - top, 0), max(c0 - left, 0) : max(c1 - left, 0)] = True
    return mask


@functools.lru_cache(maxsize=1)
def _rings(radius: int) -> list[np.ndarray]:
    """Offsets (dy, dx) within ``radius``, grouped by distance, nearest first, as (K, 2) arrays."""
    offsets = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1) if dy or dx]
    by_distance: dict[int, list] = {}
    for dy, dx in offsets:
        by_distance.setdefault(dy * dy + dx * dx, []).append((dy, dx))
    return [np.array(by_distance[d]) for d in sorted(by_distance)]


def interpolate_bad_pixels(mosaic: np.ndarray, mask: np.ndarray, cfa: np.ndarray) -> np.ndarray:
    """``mosaic`` with each masked pixel replaced by the mean of its nearest good pixels of the same colour.

    The nearest ring that holds any good same-colour pixel is used: the four diagonal neighbours
    for a green site, two pixels away in a row or column for red and blue, farther for a cluster
    or a bad column. A pixel with none within 8 pixels keeps its value.

    Args:
        mosaic: (H, W) float32 Bayer mosaic in the sensor's own phase.
        mask: (H, W) bool, True where a pixel is bad.
        cfa: (2, 2) colour index of each CFA site (LibRaw's ``raw_colors``: 0 R, 1 G, 2 B, 3 G2).
    Returns:
        (H, W) float32, a new array.
    """
    if mosaic.shape != mask.shape or mosaic.ndim != 2:
        raise ValueError(f"expected a (H, W) mosaic and a mask of its shape, got {mosaic.shape} and {mask.shape}")
    colour = np.where(np.asarray(cfa) == 3, 1, np.asarray(cfa))  # both greens are one colour
    out = np.array(mosaic, dtype=np.float32, copy=True)
    rows, cols = np.nonzero(mask)
    height, width = mask.shape
    for ring in _rings(_MAX_RADIUS):
        if not len(rows):
            break
        total = np.zeros(len(rows), np.float64)
        count = np.zeros(len(rows), np.int64)
        own = colour[rows % 2, cols % 2]
        for dy, dx in ring:
            r, c = rows + dy, cols + dx
            ok = (r >= 0) & (r < height) & (c >= 0) & (c < width) & (colour[r % 2, c % 2] == own)
            ok[ok] &= ~mask[r[ok], c[ok]]
            total[ok] += mosaic[r[ok], c[ok]]
            count[ok] += 1
        found = count > 0
        out[rows[found], cols[found]] = total[found] / count[found]
        rows, cols = rows[~found], cols[~found]
    return out


def hot_pixel_mask(mosaic: np.ndarray, threshold: float = 0.05, strength: float = 0.25,
                   min_neighbours: int = 4) -> np.ndarray:
    """(H, W) bool mask of the hot pixels of a Bayer mosaic: darktable's "hot pixels" rule, plus an
    isolation test that keeps stars.

    A pixel is hot when it is above ``threshold``, at least ``min_neighbours`` of its four nearest
    same-colour neighbours in its row and column (two pixels away, the same sites in any Bayer
    phase) are below ``strength / 2`` times it (with the defaults, it is 8x brighter than all
    four), and its eight adjacent pixels are below ``strength`` times it. A warm pixel of a long
    exposure is one site alone; any real point of light, even a star, is spread by the lens over
    the sites next to it, whatever its colour, and a thin bright line runs through two of them.
    (darktable's rule alone takes the centre of a star three pixels wide for a hot pixel, and
    pixels of a thin diagonal line.)

    Args:
        mosaic: (H, W) float32 Bayer mosaic, white = 1, in any CFA phase.
    """
    if mosaic.ndim != 2:
        raise ValueError(f"expected a (H, W) mosaic, got shape {mosaic.shape}")
    padded = np.pad(mosaic, 2, mode="reflect")  # reflecting by 2 keeps each site's colour

    def shifted(dy: int, dx: int) -> np.ndarray:
        return padded[2 + dy : padded.shape[0] - 2 + dy, 2 + dx : padded.shape[1] - 2 + dx]

    dimmer = mosaic * np.float32(strength / 2)
    same_colour = sum((shifted(dy, dx) < dimmer).astype(np.int8) for dy, dx in ((-2, 0), (2, 0), (0, -2), (0, 2)))
    adjacent = np.maximum.reduce([shifted(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx])
    return (mosaic > threshold) & (same_colour >= min_neighbours) & (adjacent < mosaic * np.float32(strength))


__all__ = ["RGGB_COLOURS", "BadPixels", "bad_pixel_mask", "bad_pixels_opcode_params", "hot_pixel_mask", "interpolate_bad_pixels",
           "parse_bad_pixels_constant", "parse_bad_pixels_list"]
