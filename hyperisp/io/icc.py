"""ICC v4 matrix/TRC profiles for RGB output spaces (Display P3, Adobe RGB, ProPhoto, linear ones).

Pillow's ImageCms builds only the standard sRGB profile (``metadata.srgb_icc_profile``, what
plain sRGB output carries), so the others are written here, as LittleCMS's
``cmsCreateRGBProfile`` writes them: the three colourants adapted to the D50 connection
space (Bradford, with the adaptation in ``chad``), D50 media white, one parametric tone curve
shared by the three channels, and the MD5 profile ID.
"""
from __future__ import annotations

import functools
import hashlib
import struct

from ..raw.colour_spaces import D50, RGBSpace, bradford, get_space, rgb_to_xyz

ICC_D50 = (0.9642, 1.0, 0.8249)  # the ICC connection space's illuminant as the spec writes it
_CREATED = (2026, 1, 1, 0, 0, 0)  # fixed, so the same space always gives the same bytes


def _s15(values) -> bytes:
    return b"".join(struct.pack(">i", int(round(float(v) * 65536))) for v in values)


def _mluc(text: str) -> bytes:
    encoded = text.encode("utf-16-be")
    return b"mluc" + bytes(4) + struct.pack(">II", 1, 12) + b"enUS" + struct.pack(">II", len(encoded), 28) + encoded


def _xyz(values) -> bytes:
    return b"XYZ " + bytes(4) + _s15(values)


def _curve(space: RGBSpace) -> bytes:
    if space.gamma is None:  # IEC 61966-2-1: Y = ((aX + b)^g for X >= d, else cX)
        params, kind = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045), 3
    else:
        params, kind = (space.gamma,), 0
    return b"para" + bytes(4) + struct.pack(">HH", kind, 0) + _s15(params)


@functools.lru_cache(maxsize=None)
def rgb_icc_profile(space: RGBSpace | str, linear: bool = False) -> bytes:
    """ICC v4 display profile bytes for ``space`` (a name of :data:`~hyperisp.raw.colour_spaces.SPACES`),
    or for its scene-linear variant when ``linear``."""
    space = get_space(space)
    if linear:
        space = space.linear()
    adapt = bradford(space.white, D50)
    colourants = adapt @ rgb_to_xyz(space)  # columns: R, G, B in the D50 connection space
    curve = _curve(space)
    tags = [(b"desc", _mluc(space.description)), (b"cprt", _mluc("No copyright, use freely")),
            (b"wtpt", _xyz(ICC_D50)), (b"chad", b"sf32" + bytes(4) + _s15(adapt.ravel())),
            (b"rXYZ", _xyz(colourants[:, 0])), (b"gXYZ", _xyz(colourants[:, 1])), (b"bXYZ", _xyz(colourants[:, 2])),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    table, data, offset, placed = [], b"", 128 + 4 + 12 * len(tags), {}
    for signature, body in tags:
        if body not in placed:  # the three channels share one curve
            placed[body] = offset + len(data)
            data += body + bytes(-len(body) % 4)
        table.append(struct.pack(">4sII", signature, placed[body], len(body)))
    size = offset + len(data)
    header = (struct.pack(">I", size) + bytes(4) + struct.pack(">I", 0x04400000) + b"mntrRGB XYZ "
              + struct.pack(">6H", *_CREATED) + b"acsp" + bytes(4 + 4 + 4 + 4 + 8 + 4)
              + _s15(ICC_D50) + bytes(4 + 16 + 28))
    profile = bytearray(header + struct.pack(">I", len(tags)) + b"".join(table) + data)
    profile[84:100] = hashlib.md5(bytes(profile)).digest()  # flags, intent and ID are zero while hashing
    return bytes(profile)


def linear_srgb_icc_profile() -> bytes:
    """Linear sRGB (sRGB primaries, D65 white, gamma 1), the profile of ``develop --linear``."""
    return rgb_icc_profile("srgb", linear=True)

