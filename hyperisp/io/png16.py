"""A tiny 16-bit PNG encoder (Pillow cannot write 16-bit RGB PNG).

Chunks, in order: IHDR, iCCP, eXIf, IDAT..., IEND. Every row uses the PNG
"Up" filter (difference to the row above), which numpy computes in one step
and which compresses photos far better than no filter.
"""
from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np

__all__ = ["write_png16", "PNG_SIGNATURE"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type (grey, RGB, RGBA)
_ROWS_PER_BAND = 64  # rows filtered + compressed at a time: bounded extra memory
_IDAT_MAX = 1 << 20  # split IDAT data into chunks of at most 1 MiB


def _chunk(kind: bytes, data: bytes) -> bytes:
    """length | type | data | CRC-32 of type + data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png16(
    file: BinaryIO,
    image: np.ndarray,
    *,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    compress_level: int = 6,
) -> None:
    """Write a 16-bit, non-interlaced PNG.

    Args:
        file: binary file object opened for writing.
        image: (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, uint16.
        icc_profile: ICC profile bytes, stored in an iCCP chunk named "sRGB".
        exif: EXIF in TIFF layout; a leading ``b"Exif\\0\\0"`` (JPEG APP1 style,
            as :func:`hyperisp.io.metadata.build_exif` returns) is stripped.
        compress_level: zlib level 0-9.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.dtype != np.uint16 or image.ndim != 3 or image.shape[2] not in _COLOUR_TYPES:
        raise ValueError(f"expected uint16 (H, W), (H, W, 3) or (H, W, 4), got {image.dtype} {image.shape}")
    height, width, channels = image.shape
    if not (0 < height < 2**31 and 0 < width < 2**31):
        raise ValueError(f"PNG size must be 1..2^31-1 per side, got {width}x{height}")

    file.write(PNG_SIGNATURE)
    ihdr = struct.pack(">IIBBBBB", width, height, 16, _COLOUR_TYPES[channels], 0, 0, 0)
    file.write(_chunk(b"IHDR", ihdr))
    if icc_profile:
        # name, NUL, compression method 0 (zlib), compressed profile
        file.write(_chunk(b"iCCP", b"sRGB\0\0" + zlib.compress(icc_profile)))
    if exif:
        file.write(_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif))

    # Rows as big-endian bytes; each gets a filter-type byte (2 = Up) in front.
    rows = image.astype(">u2").reshape(height, width * channels).view(np.uint8)
    compressor = zlib.compressobj(compress_level)
    pending = b""
    for top in range(0, height, _ROWS_PER_BAND):
        band = rows[top : top + _ROWS_PER_BAND]
        above = rows[top - 1 : top + len(band) - 1] if top else np.vstack([np.zeros_like(band[:1]), band[:-1]])
        filtered = np.empty((len(band), 1 + band.shape[1]), dtype=np.uint8)
        filtered[:, 0] = 2
        np.subtract(band, above, out=filtered[:, 1:])  # uint8 arithmetic wraps mod 256, as PNG wants
        pending += compressor.compress(filtered.tobytes())
        while len(pending) >= _IDAT_MAX:
            file.write(_chunk(b"IDAT", pending[:_IDAT_MAX]))
            pending = pending[_IDAT_MAX:]
    pending += compressor.flush()
    for start in range(0, len(pending), _IDAT_MAX):
        file.write(_chunk(b"IDAT", pending[start : start + _IDAT_MAX]))
    file.write(_chunk(b"IEND", b""))
