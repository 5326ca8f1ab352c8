"""A linear-light sRGB ICC profile (sRGB primaries and D65 white, gamma 1.0) for ``--linear`` output.

Pillow's ImageCms can only build the standard sRGB profile, so this edits LittleCMS's
built-in one (``metadata.srgb_icc_profile``): its three tone curves (one shared 'para'
curve) become the identity (parametric curve type 0 with gamma 1), and its description
becomes "Linear sRGB". Colourant, white point and adaptation tags are left as they are.
"""
from __future__ import annotations

import functools
import struct

from .metadata import srgb_icc_profile

DESCRIPTION = "Linear sRGB"


def _tag_table(profile: bytes) -> list[tuple[bytes, int, int]]:
    (count,) = struct.unpack(">I", profile[128:132])
    return [struct.unpack(">4sII", profile[132 + 12 * i : 144 + 12 * i]) for i in range(count)]


@functools.lru_cache(maxsize=1)
def linear_srgb_icc_profile() -> bytes:
    """ICC v4 profile bytes: sRGB primaries, D65 white, linear transfer (for scene-linear 16-bit output)."""
    profile = bytearray(srgb_icc_profile())
    identity = b"para" + bytes(4) + struct.pack(">HH", 0, 0) + struct.pack(">i", 1 << 16)  # y = x^1.0
    text = DESCRIPTION.encode("utf-16-be")
    description = b"mluc" + bytes(4) + struct.pack(">II", 1, 12) + b"enUS" + struct.pack(">II", len(text), 28) + text
    for i, (signature, offset, size) in enumerate(_tag_table(bytes(profile))):
        if signature in (b"rTRC", b"gTRC", b"bTRC"):
            new = identity
        elif signature == b"desc" and len(description) <= size:
            new = description
        else:
            continue
        profile[offset : offset + size] = new + bytes(size - len(new))
        profile[132 + 12 * i : 144 + 12 * i] = struct.pack(">4sII", signature, offset, len(new))
    return bytes(profile)
