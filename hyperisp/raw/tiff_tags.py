"""Read tags of a TIFF-based file (DNG, NEF, CR2, ARW, ...): a small, defensive reader.

LibRaw (rawpy) exposes the decoded image but not every tag hyperisp needs: Make /
Model, and the DNG colour tags (ColorMatrix2, ForwardMatrix1/2, CalibrationIlluminant1/2,
AsShotWhiteXY, AnalogBalance, CameraCalibration) from IFD0, the raw image IFD's opcode
lists and the GPS IFD, all in one pass (:func:`read_file_tags`). It never raises on bad input:
a file that is not a TIFF, or a damaged tag, just gives fewer tags.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Iterable

from ..io.tiff import TAG_GPS_IFD

# TIFF type code -> (struct format of one element, element size in bytes)
_FORMATS = {
    1: ("B", 1), 2: ("B", 1), 3: ("H", 2), 4: ("I", 4), 5: ("II", 8), 6: ("b", 1), 7: ("B", 1),
    8: ("h", 2), 9: ("i", 4), 10: ("ii", 8), 11: ("f", 4), 12: ("d", 8), 13: ("I", 4),  # 13: IFD offset
}
_MAX_ENTRIES = 1000  # bound against damaged files


def _decode(order: str, kind: int, count: int, data: bytes) -> str | tuple:
    fmt, _ = _FORMATS[kind]
    if kind == 2:  # ASCII: up to the first NUL
        return data[:count].split(b"\0")[0].decode("ascii", "replace").strip()
    values = struct.unpack(order + fmt * count, data)
    if kind in (5, 10):  # rationals: numerator / denominator pairs
        return tuple(n / d if d else 0.0 for n, d in zip(values[0::2], values[1::2]))
    return tuple(values)


def _read_ifd(file, order: str, offset: int, codes: set[int] | None, max_bytes: int) -> dict[int, str | tuple]:
    """The tags of the IFD at ``offset`` (only ``codes`` when given); damaged entries are skipped."""
    found: dict[int, str | tuple] = {}
    try:
        file.seek(offset)
        (count,) = struct.unpack(order + "H", file.read(2))
        entries = file.read(12 * min(count, _MAX_ENTRIES))
        for i in range(len(entries) // 12):
            code, kind, n, value = struct.unpack(order + "HHI4s", entries[12 * i : 12 * i + 12])
            if (codes is not None and code not in codes) or kind not in _FORMATS or n == 0:
                continue
            size = _FORMATS[kind][1] * n
            if size > max_bytes:
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
        pass  # a damaged IFD: the tags read so far
    return found


def _open_tiff(file) -> tuple[str, int] | None:
    """(byte order, IFD0 offset) of an open TIFF-based file, or None if it is not one."""
    head = file.read(8)
    if len(head) < 8 or head[:4] not in (b"II*\0", b"MM\0*"):
        return None
    order = "<" if head[:2] == b"II" else ">"
    return order, struct.unpack(order + "I", head[4:8])[0]


TAG_NEW_SUBFILE_TYPE, TAG_SUB_IFDS = 254, 330


@dataclass(frozen=True)
class FileTags:
    """Tags of one TIFF-based raw file, each ``{code: value}``: ASCII tags as ``str``, all others
    as a tuple of numbers (rationals as floats).

    Attributes:
        ifd0: IFD0's tags (Make, Model, the DNG colour tags, ...).
        raw_ifd: the raw image IFD's tags: IFD0's when it holds the raw (NewSubFileType 0), else
            those of the first of its SubIFDs that does (Adobe's converter puts a preview in IFD0
            and the raw in a SubIFD); ``{}`` when there is no raw IFD.
        gps: the GPS IFD's tags, which phones and cameras with a GPS write; ``{}`` when there is none.
    """

    ifd0: dict = field(default_factory=dict)
    raw_ifd: dict = field(default_factory=dict)
    gps: dict = field(default_factory=dict)


def read_file_tags(path: str | os.PathLike, ifd0_codes: Iterable[int] | None = (), raw_codes: Iterable[int] = (),
                   gps: bool = False, max_bytes: int = 1 << 24) -> FileTags:
    """The tags hyperisp wants of a raw file, in one pass over it.

    Args:
        path: the file.
        ifd0_codes: tag codes to read from IFD0; None: all of them.
        raw_codes: tag codes to read from the raw image IFD (e.g. a DNG's opcode lists).
        gps: also read the GPS IFD (all its tags).
        max_bytes: the largest value read (opcode lists with gain maps run to tens of KB).
    Returns:
        A :class:`FileTags`, empty for files that are not TIFF-based or unreadable.
    """
    ifd0_codes, raw_codes = None if ifd0_codes is None else set(ifd0_codes), set(raw_codes)
    links = {TAG_NEW_SUBFILE_TYPE, TAG_SUB_IFDS} | ({TAG_GPS_IFD} if gps else set())  # where the other IFDs are
    wanted = None if ifd0_codes is None else ifd0_codes | raw_codes | links
    try:
        with open(path, "rb") as file:
            tiff = _open_tiff(file)
            if tiff is None:
                return FileTags()
            order, offset = tiff
            ifd0 = _read_ifd(file, order, offset, wanted, max_bytes)
            raw_ifd = {}
            if raw_codes:
                subs = (_read_ifd(file, order, sub, raw_codes | {TAG_NEW_SUBFILE_TYPE}, max_bytes)
                        for sub in ifd0.get(TAG_SUB_IFDS, ())[:8])
                raw_ifd = next((ifd for ifd in (ifd0, *subs) if ifd.get(TAG_NEW_SUBFILE_TYPE, (0,)) == (0,)), {})
            pointer = ifd0.get(TAG_GPS_IFD, ())
            gps_tags = _read_ifd(file, order, pointer[0], None, 1 << 10) if gps and len(pointer) == 1 else {}
    except (OSError, struct.error, ValueError):
        return FileTags()
    return FileTags(ifd0 if ifd0_codes is None else {code: value for code, value in ifd0.items() if code in ifd0_codes},
                    {code: value for code, value in raw_ifd.items() if code in raw_codes}, gps_tags)
