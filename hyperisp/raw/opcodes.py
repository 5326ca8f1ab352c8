"""DNG opcode lists, and the corrections in them: GainMap, FixVignetteRadial, WarpRectilinear, FixBadPixels.

A DNG can carry per-image corrections as opcodes (DNG 1.3+, chapter 6): OpcodeList1 acts on
the stored raw values, OpcodeList2 on the linear values (black subtracted, white = 1) and
OpcodeList3 after demosaicking. Phones (Android's DngCreator, Google's camera app) and Adobe's
converter for phone raws put the lens shading correction in OpcodeList2, as one GainMap per
CFA site: a small grid of gains, interpolated bilinearly over the image. Without it a phone
raw's corners are a stop or more darker and tinted. Adobe's converter turns the vignetting
data of cameras that record it into a FixVignetteRadial in OpcodeList3, a polynomial in the
distance from the optical centre, and the lens's distortion into a WarpRectilinear
(:mod:`hyperisp.raw.lens_warp`); drones write per-RGB-plane GainMaps there. rawpy's LibRaw
(built without Adobe's SDK) decodes the raw values but applies no opcode, so
:func:`~hyperisp.raw.reader.read_raw` applies OpcodeList2's corrections to the mosaic and
:func:`~hyperisp.pipeline.develop_raw` OpcodeList3's to the network's output (darktable's
rawprepare and RawTherapee apply OpcodeList2 gain maps too). The bad-pixel opcodes of
OpcodeList1 and OpcodeList2 (:mod:`hyperisp.raw.bad_pixels`) are repaired on the mosaic, before
the gain maps. Other opcodes (fisheye warps, linearization tables, ...) are left out.

Layout (DNG specification 1.4, "Opcode List Processing"; always big-endian): a uint32 count,
then per opcode a uint32 ID, a 4-byte DNG version, uint32 flags, a uint32 parameter size and
the parameters.
"""
from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from .bad_pixels import (
    OPCODE_FIX_BAD_PIXELS_CONSTANT,
    OPCODE_FIX_BAD_PIXELS_LIST,
    BadPixels,
    bad_pixels_opcode_params,
    parse_bad_pixels_constant,
    parse_bad_pixels_list,
)
from .lens_warp import OPCODE_WARP_RECTILINEAR, RectilinearWarp, apply_rectilinear_warp, parse_rectilinear_warp

TAG_OPCODE_LIST_1, TAG_OPCODE_LIST_2, TAG_OPCODE_LIST_3 = 51008, 51009, 51022
OPCODE_FIX_VIGNETTE_RADIAL, OPCODE_GAIN_MAP = 3, 9
_VIGNETTE = struct.Struct(">7d")  # k0..k4, then the optical centre: horizontal, vertical (fractions)
_GAIN_MAP_HEAD = struct.Struct(">10I4dI")  # area (4), plane, planes, pitches (2), points (2), spacing, origin, map planes


@dataclass(frozen=True)
class Opcode:
    """One opcode of a list: its ID, flags (bit 0: optional) and raw parameter bytes."""

    id: int
    flags: int
    params: bytes


@dataclass(frozen=True)
class GainMap:
    """A DNG GainMap: gains for the pixels ``rows, cols`` of ``area`` (every ``pitch``-th), of planes
    ``plane .. plane + planes - 1``.

    Attributes:
        area: (top, left, bottom, right) in pixels of the image the list acts on.
        plane, planes: the first image plane it applies to, and how many.
        pitch: (row pitch, column pitch): 2, 2 with an area offset picks one CFA site.
        spacing, origin: (vertical, horizontal) map-point spacing and first point, as fractions of
            the image height and width (0 = top/left edge, 1 = bottom/right edge).
        gains: (points V, points H, map planes) float32; a plane beyond the map's uses its last.
    """

    area: tuple[int, int, int, int]
    plane: int
    planes: int
    pitch: tuple[int, int]
    spacing: tuple[float, float]
    origin: tuple[float, float]
    gains: np.ndarray


@dataclass(frozen=True)
class RadialVignette:
    """A DNG FixVignetteRadial: gain 1 + k0 r^2 + k1 r^4 + ... + k4 r^10 at distance r from the optical
    centre, r = 1 at the image corner farthest from it.

    Attributes:
        k: (k0, .., k4).
        centre: (vertical, horizontal) position of the optical centre as fractions of the image.
    """

    k: tuple[float, float, float, float, float]
    centre: tuple[float, float]


def parse_opcode_list(data: bytes) -> list[Opcode]:
    """The opcodes of an OpcodeList tag's bytes (none for no bytes); ValueError when the list is truncated."""
    if not data:
        return []
    try:
        (count,) = struct.unpack_from(">I", data, 0)
        opcodes, at = [], 4
        for _ in range(count):
            opcode_id, _version, flags, size = struct.unpack_from(">I4sII", data, at)
            at += 16
            if at + size > len(data):
                raise ValueError(f"opcode {opcode_id} needs {size} parameter bytes, {len(data) - at} are left")
            opcodes.append(Opcode(opcode_id, flags, bytes(data[at : at + size])))
            at += size
    except struct.error:
        raise ValueError("opcode list is truncated") from None
    return opcodes


def parse_gain_map(params: bytes) -> GainMap:
    """A GainMap opcode's parameters -> :class:`GainMap`; ValueError when they do not fit together."""
    if len(params) < _GAIN_MAP_HEAD.size:
        raise ValueError(f"GainMap parameters are {len(params)} bytes, fewer than its {_GAIN_MAP_HEAD.size}-byte head")
    (top, left, bottom, right, plane, planes, row_pitch, col_pitch, points_v, points_h,
     spacing_v, spacing_h, origin_v, origin_h, map_planes) = _GAIN_MAP_HEAD.unpack_from(params)
    count = points_v * points_h * map_planes
    if count == 0 or len(params) != _GAIN_MAP_HEAD.size + 4 * count:
        raise ValueError(f"GainMap of {points_v}x{points_h}x{map_planes} points does not match its "
                         f"{len(params)} parameter bytes")
    if bottom <= top or right <= left or min(row_pitch, col_pitch, planes) < 1:
        raise ValueError(f"GainMap area {(top, left, bottom, right)} or pitch {(row_pitch, col_pitch)} is empty")
    if (points_v > 1 and not spacing_v > 0) or (points_h > 1 and not spacing_h > 0):
        raise ValueError(f"GainMap spacing {(spacing_v, spacing_h)} must be positive")
    gains = np.frombuffer(params, ">f4", count, _GAIN_MAP_HEAD.size).astype(np.float32)
    if not np.all(np.isfinite(gains)) or np.any(gains < 0):
        raise ValueError("GainMap has negative or non-finite gains")
    return GainMap((top, left, bottom, right), plane, planes, (row_pitch, col_pitch), (spacing_v, spacing_h),
                   (origin_v, origin_h), gains.reshape(points_v, points_h, map_planes))


def parse_radial_vignette(params: bytes) -> RadialVignette:
    """A FixVignetteRadial opcode's parameters -> :class:`RadialVignette`; ValueError when malformed."""
    if len(params) != _VIGNETTE.size:
        raise ValueError(f"FixVignetteRadial parameters are {len(params)} bytes, not {_VIGNETTE.size}")
    *k, centre_h, centre_v = _VIGNETTE.unpack(params)
    if not all(np.isfinite([*k, centre_h, centre_v])) or not (0 <= centre_h <= 1 and 0 <= centre_v <= 1):
        raise ValueError(f"FixVignetteRadial centre {(centre_v, centre_h)} lies outside the image")
    return RadialVignette(tuple(k), (centre_v, centre_h))


def radial_vignette_gains(vignette: RadialVignette, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 gains of ``vignette`` over an image of ``shape``, at pixel centres as Adobe's SDK."""
    height, width = shape
    centre_v, centre_h = vignette.centre[0] * height, vignette.centre[1] * width
    radius = np.hypot(max(centre_v, height - centre_v), max(centre_h, width - centre_h))
    dv = (((np.arange(height) + 0.5 - centre_v) / radius) ** 2).astype(np.float32)
    dh = (((np.arange(width) + 0.5 - centre_h) / radius) ** 2).astype(np.float32)
    r2 = dv[:, None] + dh[None, :]  # float32: a 24 MP image's map is 96 MB, not 192
    gains = np.zeros_like(r2)
    for k in reversed(vignette.k):  # Horner in r^2: 1 + r^2 (k0 + r^2 (k1 + ...))
        gains += np.float32(k)
        gains *= r2
    return gains + np.float32(1.0)


def _weights(positions: np.ndarray, size: int, origin: float, spacing: float, points: int):
    """Map-point indices and fractions of pixel ``positions`` along one axis (clamped at the ends)."""
    if points == 1:
        zeros = np.zeros(len(positions), np.int64)
        return zeros, zeros, np.zeros(len(positions), np.float32)
    index = np.clip(((positions + 0.5) / size - origin) / spacing, 0.0, points - 1)  # pixel centres
    low = np.floor(index).astype(np.int64)
    high = np.minimum(low + 1, points - 1)
    return low, high, (index - low).astype(np.float32)


def gain_map_gains(gain_map: GainMap, shape: tuple[int, int], map_plane: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, columns and (rows, columns) gains that ``gain_map`` applies to an image of ``shape``.

    The gain at a pixel is the bilinear interpolation of the map at the pixel centre's position
    relative to the whole image, as Adobe's DNG SDK evaluates it.
    """
    height, width = shape
    top, left, bottom, right = gain_map.area
    rows = np.arange(top, min(bottom, height), gain_map.pitch[0])
    cols = np.arange(left, min(right, width), gain_map.pitch[1])
    grid = gain_map.gains[..., min(map_plane, gain_map.gains.shape[2] - 1)]
    r0, r1, rf = _weights(rows, height, gain_map.origin[0], gain_map.spacing[0], grid.shape[0])
    c0, c1, cf = _weights(cols, width, gain_map.origin[1], gain_map.spacing[1], grid.shape[1])
    by_row = grid[r0] * (1 - rf[:, None]) + grid[r1] * rf[:, None]  # (rows, points H)
    gains = by_row[:, c0] * (1 - cf) + by_row[:, c1] * cf
    return rows, cols, gains.astype(np.float32)


def apply_lens_corrections(mosaic: np.ndarray, corrections: list[GainMap | RadialVignette]) -> np.ndarray:
    """A (H, W) linear mosaic (white = 1) with OpcodeList2's corrections applied in order, clipped at 1.

    Args:
        mosaic: (H, W) float32 sensor values in [0, 1], black subtracted (OpcodeList2's input).
        corrections: :attr:`DngCorrections.mosaic`; a gain map acts only if it starts at plane 0
            (a mosaic has one plane).
    Returns:
        (H, W) float32, a new array; pixels no map covers are unchanged.
    """
    return apply_rgb_corrections(mosaic[..., None], corrections)[..., 0]


Correction = Union[GainMap, RadialVignette, RectilinearWarp]
_NAMES = {GainMap: "GainMap", RadialVignette: "FixVignetteRadial", RectilinearWarp: "WarpRectilinear"}


def corrections_from_opcodes(opcodes: list[Opcode]) -> list[Correction]:
    """The GainMaps, FixVignetteRadials and WarpRectilinears of an opcode list (:func:`parse_opcode_list`),
    in order; other opcodes are skipped. ValueError if one of these is malformed."""
    parsers = {OPCODE_FIX_VIGNETTE_RADIAL: parse_radial_vignette, OPCODE_GAIN_MAP: parse_gain_map,
               OPCODE_WARP_RECTILINEAR: parse_rectilinear_warp}
    return [parsers[op.id](op.params) for op in opcodes if op.id in parsers]


def _describe(corrections: list[Correction]) -> str:
    counts = Counter(_NAMES[type(c)] for c in corrections)
    return ", ".join(f"{name} x{n}" if n > 1 else name for name, n in counts.items())


def bad_pixels_from_opcodes(opcodes: list[Opcode], stored: bool) -> list[BadPixels]:
    """The FixBadPixelsConstant and FixBadPixelsList opcodes of an opcode list (:func:`parse_opcode_list`),
    in order; ``stored``: True for OpcodeList1 (see :class:`BadPixels`). ValueError if one is malformed."""
    parsers = {OPCODE_FIX_BAD_PIXELS_CONSTANT: parse_bad_pixels_constant, OPCODE_FIX_BAD_PIXELS_LIST: parse_bad_pixels_list}
    return [parsers[op.id](op.params, stored) for op in opcodes if op.id in parsers]


@dataclass(frozen=True)
class DngCorrections:
    """A DNG's opcode corrections, split by where hyperisp applies them.

    Attributes:
        bad_pixels: OpcodeList1's and OpcodeList2's FixBadPixels opcodes, repaired on the mosaic
            first (:func:`~hyperisp.raw.bad_pixels.bad_pixel_mask`).
        mosaic: OpcodeList2's GainMaps and FixVignetteRadials, for :func:`apply_lens_corrections`
            on the linear mosaic.
        rgb: OpcodeList3's GainMaps (per RGB plane, as drones write them), FixVignetteRadials and
            WarpRectilinears, in list order, for :func:`apply_rgb_corrections` on the demosaicked
            camera RGB (the network's output), as the DNG spec stages them.
        note: the lens corrections found, e.g. "DNG GainMap x4" or "DNG after demosaicking
            WarpRectilinear, FixVignetteRadial"; "opcodes ignored (reason)" for a damaged list
            (then nothing is applied); None for none.
    """

    bad_pixels: list = field(default_factory=list)
    mosaic: list = field(default_factory=list)
    rgb: list = field(default_factory=list)
    note: str | None = None


OPCODE_LIST_TAGS = (TAG_OPCODE_LIST_1, TAG_OPCODE_LIST_2, TAG_OPCODE_LIST_3)


def dng_corrections(raw_ifd_tags: dict) -> DngCorrections:
    """The opcode corrections of a DNG's raw image, from its raw IFD's tags
    (:attr:`~hyperisp.raw.tiff_tags.FileTags.raw_ifd`; none for other files)."""
    try:
        list_1, list_2, list_3 = (parse_opcode_list(bytes(raw_ifd_tags.get(code, b""))) for code in OPCODE_LIST_TAGS)
        bad_pixels = bad_pixels_from_opcodes(list_1, stored=True) + bad_pixels_from_opcodes(list_2, stored=False)
        mosaic_and_warps = corrections_from_opcodes(list_2)
        rgb = corrections_from_opcodes(list_3)
    except ValueError as error:  # an uncorrected photo beats no photo
        return DngCorrections(note=f"opcodes ignored ({error})")
    mosaic = [c for c in mosaic_and_warps if not isinstance(c, RectilinearWarp)]  # a warp needs all colours at a pixel
    parts = ([_describe(mosaic)] if mosaic else []) + ([f"after demosaicking {_describe(rgb)}"] if rgb else [])
    return DngCorrections(bad_pixels, mosaic, rgb, "DNG " + "; ".join(parts) if parts else None)


def apply_rgb_corrections(rgb: np.ndarray, corrections: list[Correction]) -> np.ndarray:
    """(H, W, C) image (white = 1), e.g. demosaicked camera RGB, with corrections applied in order.

    Gained values are clipped at 1, as Adobe's SDK does; plane p of a gain map's planes uses the
    map's plane p (its last one when it has fewer). Returns a new float32 array.
    """
    out = np.array(rgb, dtype=np.float32, copy=True)
    for correction in corrections:
        if isinstance(correction, RectilinearWarp):
            out = apply_rectilinear_warp(out, correction)
        elif isinstance(correction, RadialVignette):
            out = np.minimum(out * radial_vignette_gains(correction, out.shape[:2])[..., None], 1.0)
        else:
            for plane in range(correction.plane, min(correction.plane + correction.planes, out.shape[2])):
                rows, cols, gains = gain_map_gains(correction, out.shape[:2], map_plane=plane)
                if len(rows) and len(cols):
                    block = np.ix_(rows, cols, [plane])
                    out[block] = np.minimum(out[block] * gains[..., None], 1.0)  # the SDK clips at white
    return out


def opcode_list_bytes(opcodes: list[Opcode]) -> bytes:
    """Encode opcodes as an OpcodeList tag value (DNG version 1.3.0.0, as the GainMap needs)."""
    body = b"".join(struct.pack(">I4sII", op.id, bytes([1, 3, 0, 0]), op.flags, len(op.params)) + op.params
                    for op in opcodes)
    return struct.pack(">I", len(opcodes)) + body


def radial_vignette_opcode(vignette: RadialVignette, optional: bool = True) -> Opcode:
    """A :class:`RadialVignette` encoded as an opcode (for writing test DNGs)."""
    return Opcode(OPCODE_FIX_VIGNETTE_RADIAL, int(optional),
                  _VIGNETTE.pack(*vignette.k, vignette.centre[1], vignette.centre[0]))


def gain_map_opcode(gain_map: GainMap, optional: bool = True) -> Opcode:
    """A :class:`GainMap` encoded as an opcode (for writing test DNGs)."""
    points_v, points_h, map_planes = gain_map.gains.shape
    head = _GAIN_MAP_HEAD.pack(*gain_map.area, gain_map.plane, gain_map.planes, *gain_map.pitch, points_v, points_h,
                               *gain_map.spacing, *gain_map.origin, map_planes)
    return Opcode(OPCODE_GAIN_MAP, int(optional), head + np.asarray(gain_map.gains, ">f4").tobytes())


def bad_pixels_opcode(bad: BadPixels, optional: bool = True) -> Opcode:
    """A :class:`~hyperisp.raw.bad_pixels.BadPixels` encoded as an opcode (for writing test DNGs)."""
    opcode_id, params = bad_pixels_opcode_params(bad)
    return Opcode(opcode_id, int(optional), params)


__all__ = [
    "DngCorrections", "GainMap", "OPCODE_LIST_TAGS", "Opcode", "RadialVignette", "apply_lens_corrections",
    "apply_rgb_corrections", "bad_pixels_from_opcodes", "bad_pixels_opcode", "corrections_from_opcodes",
    "dng_corrections", "gain_map_gains", "gain_map_opcode", "opcode_list_bytes", "parse_gain_map",
    "parse_opcode_list", "parse_radial_vignette", "radial_vignette_gains", "radial_vignette_opcode",
]
