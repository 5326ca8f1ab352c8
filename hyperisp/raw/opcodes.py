"""DNG opcode lists, and the one raw converters must apply: the GainMap, a lens-shading map.

A DNG can carry per-image corrections as opcodes (DNG 1.3+, chapter 6): OpcodeList1 acts on
the stored raw values, OpcodeList2 on the linear values (black subtracted, white = 1) and
OpcodeList3 after demosaicking. Phones (Android's DngCreator, Google's camera app) and Adobe's
converter for phone raws put the lens shading correction in OpcodeList2, as one GainMap per
CFA site: a small grid of gains, interpolated bilinearly over the image. Without it a phone
raw's corners are a stop or more darker and tinted. rawpy's LibRaw (built without Adobe's SDK)
decodes the raw values but applies no opcode, so :func:`~hyperisp.raw.reader.read_raw` applies
OpcodeList2's gain maps here (darktable's rawprepare and RawTherapee do the same). Other
opcodes are left out.

Layout (DNG specification 1.4, "Opcode List Processing"; always big-endian): a uint32 count,
then per opcode a uint32 ID, a 4-byte DNG version, uint32 flags, a uint32 parameter size and
the parameters.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from .tiff_tags import read_raw_ifd_tags

TAG_OPCODE_LIST_2 = 51009
OPCODE_GAIN_MAP = 9
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


def parse_opcode_list(data: bytes) -> list[Opcode]:
    """The opcodes of an OpcodeList tag's bytes; ValueError when the list is truncated."""
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


def apply_gain_maps(mosaic: np.ndarray, gain_maps: list[GainMap]) -> np.ndarray:
    """A (H, W) linear mosaic (white = 1) with the gain maps of its plane 0 applied, clipped at 1.

    Args:
        mosaic: (H, W) float32 sensor values in [0, 1], black subtracted (OpcodeList2's input).
        gain_maps: from :func:`read_gain_maps`, in list order.
    Returns:
        (H, W) float32, a new array; pixels no map covers are unchanged.
    """
    out = np.array(mosaic, dtype=np.float32, copy=True)
    for gain_map in gain_maps:
        if gain_map.plane != 0:  # a mosaic has one plane
            continue
        rows, cols, gains = gain_map_gains(gain_map, out.shape)
        if len(rows) and len(cols):
            block = np.ix_(rows, cols)
            out[block] = np.minimum(out[block] * gains, 1.0)  # the SDK clips at white too
    return out


def gain_maps_from_opcode_list(data: bytes) -> list[GainMap]:
    """The GainMaps of an OpcodeList2's bytes (other opcodes are skipped); ValueError if one is malformed."""
    return [parse_gain_map(op.params) for op in parse_opcode_list(data) if op.id == OPCODE_GAIN_MAP]


def correct_lens_shading(path: str, mosaic: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``mosaic`` (the file's linear (H, W) raw values) with its DNG OpcodeList2 gain maps applied.

    Returns:
        (mosaic, what was done): "DNG GainMap (N maps)"; "GainMap ignored (reason)" for a damaged
        list, whose mosaic is left as it was; None when the file has no gain map.
    """
    data = read_raw_ifd_tags(path, {TAG_OPCODE_LIST_2}).get(TAG_OPCODE_LIST_2)
    if not data:
        return mosaic, None
    try:
        gain_maps = gain_maps_from_opcode_list(bytes(data))
    except ValueError as error:  # an uncorrected photo beats no photo
        return mosaic, f"GainMap ignored ({error})"
    if not gain_maps:
        return mosaic, None
    return apply_gain_maps(mosaic, gain_maps), f"DNG GainMap ({len(gain_maps)} maps)"


def opcode_list_bytes(opcodes: list[Opcode]) -> bytes:
    """Encode opcodes as an OpcodeList tag value (DNG version 1.3.0.0, as the GainMap needs)."""
    body = b"".join(struct.pack(">I4sII", op.id, bytes([1, 3, 0, 0]), op.flags, len(op.params)) + op.params
                    for op in opcodes)
    return struct.pack(">I", len(opcodes)) + body


def gain_map_opcode(gain_map: GainMap, optional: bool = True) -> Opcode:
    """A :class:`GainMap` encoded as an opcode (for writing test DNGs)."""
    points_v, points_h, map_planes = gain_map.gains.shape
    head = _GAIN_MAP_HEAD.pack(*gain_map.area, gain_map.plane, gain_map.planes, *gain_map.pitch, points_v, points_h,
                               *gain_map.spacing, *gain_map.origin, map_planes)
    return Opcode(OPCODE_GAIN_MAP, int(optional), head + np.asarray(gain_map.gains, ">f4").tobytes())


__all__ = ["GainMap", "Opcode", "apply_gain_maps", "correct_lens_shading", "gain_map_gains", "gain_map_opcode", "gain_maps_from_opcode_list",
           "opcode_list_bytes", "parse_gain_map", "parse_opcode_list"]
