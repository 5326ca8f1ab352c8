"""Read the tags of IFD0 of a TIFF-based file (DNG, NEF, CR2, ARW, ...): a small, defensive reader.

LibRaw (rawpy) exposes the decoded image but not every tag hyperisp needs: Make /
Model, and the DNG colour tags (ColorMatrix2, ForwardMatrix1/2, CalibrationIlluminant1/2,
AsShotWhiteXY, AnalogBalance, CameraCalibration). This reads IFD0 only and never
raises on bad input: a file that is not a TIFF, or a damaged tag, just gives fewer tags.
"""
from __future__ import annotations

import os
import struct

# TIFF type code -> (struct format of one element, element size in bytes)
_FORMATS = {
    1: ("B", 1), 2: ("B", 1), 3: ("H", 2), 4: ("I", 4), 5: ("II", 8), 6: ("b", 1), 7: ("B", 1),
    8: ("h", 2), 9: ("i", 4), 10: ("ii", 8), 11: ("f", 4), 12: ("d", 8),
}
_MAX_ENTRIES, _MAX_VALUE_BYTES = 1000, 1 << 16  # bounds against damaged files


def _decode(order: str, kind: int, count: int, data: bytes) -> str | tuple:
    fmt, _ = _FORMATS[kind]
    if kind == 2:  # ASCII: up to the first NUL
        return data[:count].split(b"\0")[0].decode("ascii", "replace").strip()
    values = struct.unpack(order + fmt * count, data)
    if kind in (5, 10):  # rationals: numerator / denominator pairs
        return tuple(n / d if d else 0.0 for n, d in zip(values[0::2], values[1::2]))
    return tuple(values)


def read_ifd0_tags(path: str | os.PathLike, codes: set[int] | None = None) -> dict[int, str | tuple]:
    """Tags of IFD0 of a TIFF-based file.

    Args:
        path: the file.
        codes: tag codes to read (default: all).
    Returns:
        ``{code: value}``: ASCII tags as ``str``, all others as a tuple of numbers
        (rationals as floats). ``{}`` for files that are not TIFF-based or unreadable.
    """
    found: dict[int, str | tuple] = {}
    try:
        with open(path, "rb") as file:
            head = file.read(8)
            if head[:4] not in (b"II*\0", b"MM\0*"):
                return {}
            order = "<" if head[:2] == b"II" else ">"
            file.seek(struct.unpack(order + "I", head[4:8])[0])
            (count,) = struct.unpack(order + "H", file.read(2))
            entries = file.read(12 * min(count, _MAX_ENTRIES))
            for i in range(len(entries) // 12):
                code, kind, n, value = struct.unpack(order + "HHI4s", entries[12 * i : 12 * i + 12])
                if (codes is not None and code not in codes) or kind not in _FORMATS or n == 0:
                    continue
                size = _FORMATS[kind][1] * n
                if size > _MAX_VALUE_BYTES:
                    continue
                if size > 4:  # longer values live at an offset
                    file.seek(struct.unpack(order + "I", value)[0])
                    value = file.read(size)
                    if len(value) != size:
                        continue
                try:
                    found[code] = _decode(order, kind, n, value[:size])
                except struct.error:
                    continue
    except (OSError, struct.error, ValueError):
        return found
    return found
