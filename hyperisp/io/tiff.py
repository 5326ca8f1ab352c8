"""A minimal baseline-TIFF writer: little-endian, one image IFD, uncompressed strips.

Pure standard library + numpy. It serves two users:

* ``raw/dng.py`` writes DNG files (a DNG is a TIFF with extra tags and a CFA
  image, ``photometric=32803``);
* ``io/images.py`` writes 16-bit RGB TIFF output with an ICC profile (tag 34675)
  and EXIF and GPS sub-IFDs.

File layout::

    header (8 bytes) | IFD0 | IFD0 values > 4 bytes | EXIF IFD | its values | GPS IFD | its values | pixel strips

Every IFD and out-of-line value starts on an even offset (word alignment, as
TIFF 6.0 requires) and the entries of each IFD are sorted by tag code.
"""
from __future__ import annotations

import math
import struct
from fractions import Fraction
from typing import BinaryIO, Iterable

import numpy as np

TiffTag = tuple[int, str, object]
"""``(code, type name, value)``.

* type name: one of ``BYTE, ASCII, SHORT, LONG, RATIONAL, SRATIONAL, UNDEFINED,
  FLOAT, DOUBLE`` (also ``SBYTE, SSHORT, SLONG``);
* value: a single number or a sequence of numbers. ``ASCII`` takes a ``str``
  (the NUL terminator is added); ``BYTE``/``UNDEFINED`` also take ``bytes``.
  ``RATIONAL``/``SRATIONAL`` take ints, floats or ``fractions.Fraction``
  (floats are turned into the closest fraction that fits 32 bits).
"""

# type name -> (TIFF type code, struct format of one element, element size in bytes)
_TYPES: dict[str, tuple[int, str, int]] = {
    "BYTE": (1, "B", 1),
    "ASCII": (2, "B", 1),
    "SHORT": (3, "H", 2),
    "LONG": (4, "I", 4),
    "RATIONAL": (5, "II", 8),
    "SBYTE": (6, "b", 1),
    "UNDEFINED": (7, "B", 1),
    "SSHORT": (8, "h", 2),
    "SLONG": (9, "i", 4),
    "SRATIONAL": (10, "ii", 8),
    "FLOAT": (11, "f", 4),
    "DOUBLE": (12, "d", 8),
}
_INT_RANGES = {
    "BYTE": (0, 0xFF), "UNDEFINED": (0, 0xFF), "SBYTE": (-0x80, 0x7F),
    "SHORT": (0, 0xFFFF), "SSHORT": (-0x8000, 0x7FFF),
    "LONG": (0, 0xFFFFFFFF), "SLONG": (-0x80000000, 0x7FFFFFFF),
}

# Tags the writer derives from the image itself; callers must not pass them.
TAG_IMAGE_WIDTH, TAG_IMAGE_LENGTH, TAG_BITS_PER_SAMPLE, TAG_COMPRESSION = 256, 257, 258, 259
TAG_PHOTOMETRIC, TAG_STRIP_OFFSETS, TAG_SAMPLES_PER_PIXEL = 262, 273, 277
TAG_ROWS_PER_STRIP, TAG_STRIP_BYTE_COUNTS, TAG_PLANAR_CONFIG = 278, 279, 284
TAG_EXTRA_SAMPLES, TAG_EXIF_IFD, TAG_GPS_IFD = 338, 34665, 34853
_STRUCTURAL = {
    TAG_IMAGE_WIDTH, TAG_IMAGE_LENGTH, TAG_BITS_PER_SAMPLE, TAG_COMPRESSION, TAG_PHOTOMETRIC,
    TAG_STRIP_OFFSETS, TAG_SAMPLES_PER_PIXEL, TAG_ROWS_PER_STRIP, TAG_STRIP_BYTE_COUNTS,
    TAG_PLANAR_CONFIG, TAG_EXTRA_SAMPLES, TAG_EXIF_IFD, TAG_GPS_IFD,
}
_STRIP_TARGET_BYTES = 1 << 18  # ~256 KiB strips: few entries, yet readers can stream


def _to_fraction(value: object, signed: bool) -> tuple[int, int]:
    """A number -> (numerator, denominator) that fits in 32 bits."""
    top = 0x7FFFFFFF if signed else 0xFFFFFFFF
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"rational value must be finite, got {value}")
    frac = Fraction(value) if not isinstance(value, Fraction) else value  # type: ignore[arg-type]
    if frac < 0 and not signed:
        raise ValueError(f"RATIONAL must be >= 0, got {value}")
    if abs(frac) > top:
        raise ValueError(f"rational {value} does not fit in 32 bits")
    # Largest denominator that keeps the numerator in range; 10^6 is plenty of precision.
    max_den = max(1, min(1_000_000, int(top // max(abs(frac), 1))))
    frac = frac.limit_denominator(max_den)
    return frac.numerator, frac.denominator


def _encode_value(code: int, type_name: str, value: object) -> tuple[int, int, bytes]:
    """-> (type code, count, little-endian payload) for one tag."""
    if type_name not in _TYPES:
        raise ValueError(f"tag {code}: unknown TIFF type {type_name!r}, expected one of {sorted(_TYPES)}")
    type_code, fmt, _ = _TYPES[type_name]
    if type_name == "ASCII":
        if not isinstance(value, str):
            raise ValueError(f"tag {code}: ASCII value must be a str, got {type(value).__name__}")
        data = value.encode("ascii", errors="replace") + b"\0"
        return type_code, len(data), data
    if isinstance(value, (bytes, bytearray)):
        if type_name not in ("BYTE", "UNDEFINED"):
            raise ValueError(f"tag {code}: bytes are only valid for BYTE/UNDEFINED, not {type_name}")
        return type_code, len(value), bytes(value)
    values = list(np.ravel(np.asarray(value, dtype=object))) if not np.isscalar(value) else [value]
    if not values:
        raise ValueError(f"tag {code}: empty value")
    if type_name in ("RATIONAL", "SRATIONAL"):
        pairs = [_to_fraction(v, type_name == "SRATIONAL") for v in values]
        data = b"".join(struct.pack("<" + fmt, n, d) for n, d in pairs)
    elif type_name in _INT_RANGES:
        low, high = _INT_RANGES[type_name]
        ints = [int(v) for v in values]
        if any(v != float(orig) for v, orig in zip(ints, values)) or not all(low <= v <= high for v in ints):
            raise ValueError(f"tag {code}: {type_name} values must be integers in [{low}, {high}], got {values}")
        data = struct.pack(f"<{len(ints)}{fmt}", *ints)
    else:  # FLOAT, DOUBLE
        data = struct.pack(f"<{len(values)}{fmt}", *(float(v) for v in values))
    return type_code, len(values), data


def _ifd_size(entries: list[tuple[int, int, int, bytes]]) -> int:
    """Bytes of an IFD plus its out-of-line values (each padded to even length)."""
    size = 2 + 12 * len(entries) + 4
    return size + sum(len(d) + len(d) % 2 for *_, d in entries if len(d) > 4)


def _pack_ifd(entries: list[tuple[int, int, int, bytes]], offset: int) -> bytes:
    """Serialise an IFD that starts at file ``offset``; its long values follow it."""
    entries = sorted(entries, key=lambda e: e[0])
    data_offset = offset + 2 + 12 * len(entries) + 4
    head, tail = [struct.pack("<H", len(entries))], []
    for code, type_code, count, data in entries:
        if len(data) <= 4:
            head.append(struct.pack("<HHI", code, type_code, count) + data.ljust(4, b"\0"))
        else:
            head.append(struct.pack("<HHII", code, type_code, count, data_offset))
            padded = data + b"\0" * (len(data) % 2)
            tail.append(padded)
            data_offset += len(padded)
    head.append(struct.pack("<I", 0))  # no next IFD: one image per file
    return b"".join(head + tail)


def _encode_tags(tags: Iterable[TiffTag], where: str) -> list[tuple[int, int, int, bytes]]:
    entries, seen = [], set()
    for tag in tags:
        if len(tag) != 3:
            raise ValueError(f"{where}: a tag must be (code, type name, value), got {tag!r}")
        code, type_name, value = tag
        if not 0 <= int(code) < 65536:  # 0 is GPSVersionID, in a GPS IFD
            raise ValueError(f"{where}: tag code must be in 0..65535, got {code}")
        if code in seen:
            raise ValueError(f"{where}: tag {code} given twice")
        seen.add(code)
        entries.append((int(code), *_encode_value(int(code), type_name, value)))
    return entries


def write_tiff(
    file: BinaryIO,
    image: np.ndarray,
    tags: Iterable[TiffTag] = (),
    exif_tags: Iterable[TiffTag] = (),
    photometric: int | None = None,
    gps_tags: Iterable[TiffTag] = (),
) -> None:
    """Write ``image`` as a little-endian, uncompressed, single-image TIFF.

    Args:
        file: a binary file object opened for writing (position 0 is the file start;
            the writer uses absolute offsets from where it starts writing).
        image: (H, W) or (H, W, C) uint8 or uint16, C in 1..4 (C = 2 or 4: the last
            channel is written as unassociated alpha).
        tags: extra IFD0 tags as :data:`TiffTag` tuples, e.g. ``(34675, "UNDEFINED",
            icc_bytes)`` for an ICC profile, ``(274, "SHORT", 6)`` for Orientation.
        exif_tags: tags for an EXIF sub-IFD (e.g. ``(33434, "RATIONAL", 1 / 250)``,
            ExposureTime). When given, the writer adds the ExifIFD pointer (34665).
        gps_tags: tags for a GPS sub-IFD (e.g. ``(2, "RATIONAL", [48, 51, 23.64])``,
            GPSLatitude). When given, the writer adds the GPSInfo pointer (34853).
        photometric: PhotometricInterpretation; default 1 (BlackIsZero) for 1-2
            channels and 2 (RGB) for 3-4. DNG uses 32803 (CFA) or 34892 (LinearRaw).

    The writer sets the structural tags itself (ImageWidth, ImageLength,
    BitsPerSample, Compression = 1, PhotometricInterpretation, StripOffsets,
    SamplesPerPixel, RowsPerStrip, StripByteCounts, PlanarConfiguration = 1,
    ExtraSamples, ExifIFD, GPSInfo); passing one of them in ``tags`` is an error.
    """
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected a uint8 or uint16 image, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or not 1 <= image.shape[2] <= 4 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"expected an image of shape (H, W) or (H, W, C) with C in 1..4, got {image.shape}")
    height, width, channels = image.shape
    if photometric is None:
        photometric = 1 if channels <= 2 else 2
    user = _encode_tags(tags, "tags")
    exif = _encode_tags(exif_tags, "exif_tags")
    gps = _encode_tags(gps_tags, "gps_tags")
    clash = sorted({e[0] for e in user} & _STRUCTURAL)
    if clash:
        raise ValueError(f"tags {clash} are written by write_tiff itself; do not pass them")

    bits = image.dtype.itemsize * 8
    row_bytes = width * channels * image.dtype.itemsize
    rows_per_strip = max(1, min(height, _STRIP_TARGET_BYTES // row_bytes))
    n_strips = -(-height // rows_per_strip)
    strip_counts = [row_bytes * min(rows_per_strip, height - i * rows_per_strip) for i in range(n_strips)]
    # Offsets are unknown until the IFDs are sized; encode placeholders of the final length.
    structural: list[TiffTag] = [
        (TAG_IMAGE_WIDTH, "LONG", width),
        (TAG_IMAGE_LENGTH, "LONG", height),
        (TAG_BITS_PER_SAMPLE, "SHORT", [bits] * channels),
        (TAG_COMPRESSION, "SHORT", 1),
        (TAG_PHOTOMETRIC, "SHORT", photometric),
        (TAG_STRIP_OFFSETS, "LONG", [0] * n_strips),
        (TAG_SAMPLES_PER_PIXEL, "SHORT", channels),
        (TAG_ROWS_PER_STRIP, "LONG", rows_per_strip),
        (TAG_STRIP_BYTE_COUNTS, "LONG", strip_counts),
        (TAG_PLANAR_CONFIG, "SHORT", 1),
    ]
    if channels in (2, 4):
        structural.append((TAG_EXTRA_SAMPLES, "SHORT", 2))  # 2 = unassociated alpha
    if exif:
        structural.append((TAG_EXIF_IFD, "LONG", 0))
    if gps:
        structural.append((TAG_GPS_IFD, "LONG", 0))
    ifd0 = _encode_tags(structural, "structural") + user

    ifd0_offset = 8
    exif_offset = ifd0_offset + _ifd_size(ifd0)
    gps_offset = exif_offset + (_ifd_size(exif) if exif else 0)
    pixels_offset = gps_offset + (_ifd_size(gps) if gps else 0)
    if pixels_offset + sum(strip_counts) > 0xFFFFFFFF:
        raise ValueError("image too large for a classic (32-bit offset) TIFF")
    strip_offsets = [pixels_offset + sum(strip_counts[:i]) for i in range(n_strips)]
    fixed = {TAG_STRIP_OFFSETS: ("LONG", strip_offsets), TAG_EXIF_IFD: ("LONG", exif_offset),
             TAG_GPS_IFD: ("LONG", gps_offset)}
    ifd0 = [(c, *_encode_value(c, *fixed[c])) if c in fixed else (c, t, n, d) for c, t, n, d in ifd0]

    file.write(b"II*\0" + struct.pack("<I", ifd0_offset))
    file.write(_pack_ifd(ifd0, ifd0_offset))
    if exif:
        file.write(_pack_ifd(exif, exif_offset))
    if gps:
        file.write(_pack_ifd(gps, gps_offset))
    # Strips are contiguous, so the whole little-endian array goes out in one write.
    file.write(np.ascontiguousarray(image, dtype=image.dtype.newbyteorder("<")).tobytes())
