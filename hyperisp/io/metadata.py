"""Colour profile and EXIF for output images.

The metadata dict used across hyperisp has these keys, each optional:
``make`` (str), ``model`` (str), ``iso`` (int), ``exposure_time`` (seconds,
float), ``f_number`` (float), ``focal_length`` (mm, float), ``datetime``
(:class:`datetime.datetime`, the capture time), ``lens_make`` and ``lens_model`` (str), and
``artist`` and ``copyright`` (str: a photographer's name and rights notice must survive
development), and where the photo was taken: ``gps_latitude`` and ``gps_longitude`` (signed
degrees, north and east positive) and ``gps_altitude`` (metres above sea level, float).

One field table (:data:`_FIELDS`) and the GPS fields (:func:`gps_tag_values`,
:func:`gps_from_tags`) drive all three uses: EXIF bytes for JPEG/PNG (:func:`build_exif`),
tag tuples for the TIFF writer (:func:`exif_tiff_tags`) and reading EXIF back
(:func:`metadata_from_exif`).
"""
from __future__ import annotations

import functools
import math
import struct
import sys
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from importlib import metadata as importlib_metadata
from typing import Any, Callable

from PIL import Image, ImageCms
from PIL.TiffImagePlugin import IFDRational

from hyperisp.io.tiff import TAG_EXIF_IFD, TAG_GPS_IFD, TiffTag

__all__ = ["LOCATION_KEYS", "build_exif", "exif_tiff_tags", "gps_from_tags", "gps_tag_values", "metadata_from_exif",
           "software_name", "srgb_icc_profile", "without_location"]

IFD0, EXIF_IFD, GPS_IFD = "IFD0", "Exif", "GPS"
ORIENTATION_TAG = 0x0112
_EXIF_DATETIME = "%Y:%m:%d %H:%M:%S"


@functools.lru_cache(maxsize=1)
def srgb_icc_profile() -> bytes:
    """The ICC profile (bytes) embedded in every output: LittleCMS's built-in sRGB.

    LittleCMS stamps the creation time into the header (bytes 24-35); a fixed
    date keeps outputs byte-identical across runs and machines. The profile ID
    (bytes 84-99) is zeroed, which ICC defines as "not computed".
    """
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    profile[24:36] = struct.pack(">6H", 2026, 1, 1, 0, 0, 0)
    profile[84:100] = bytes(16)
    return bytes(profile)


@functools.lru_cache(maxsize=1)
def software_name() -> str:
    """``"hyperisp <version>"`` for the EXIF Software tag."""
    try:
        version = importlib_metadata.version("hyperisp")
    except importlib_metadata.PackageNotFoundError:  # running from a source checkout
        version = getattr(sys.modules.get("hyperisp"), "__version__", None) or "dev"
    return f"hyperisp {version}"


# ---- value converters: metadata value -> tag value (None = leave the tag out) ----

def _ascii(value: Any) -> str | None:
    text = (value.decode("ascii", errors="replace") if isinstance(value, bytes) else str(value)).strip("\0 ")
    return text.encode("ascii", errors="replace").decode("ascii") or None


def _rational(value: Any) -> Fraction | None:
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        return None
    # 1/250 s stays 1/250, f/2.8 becomes 14/5: exact for the values cameras report.
    return Fraction(number).limit_denominator(100_000)


def _short(value: Any) -> int | None:
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        return None
    return min(int(round(number)), 0xFFFF)  # ISO above 65535 does not fit the EXIF 2.2 SHORT


def _exif_datetime(value: Any) -> str | None:
    return value.strftime(_EXIF_DATETIME) if isinstance(value, datetime) else None


# ---- tag value -> metadata value, for reading ----

def _from_ascii(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    text = str(value).strip("\0 ")
    return text or None


def _from_rational(value: Any) -> float | None:
    try:
        number = float(value[0] if isinstance(value, tuple) else value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _from_short(value: Any) -> int | None:
    number = _from_rational(value)
    return None if number is None else int(number)


def _from_datetime(value: Any) -> datetime | None:
    text = _from_ascii(value)
    try:
        return datetime.strptime(text[:19], _EXIF_DATETIME) if text else None
    except ValueError:  # "0000:00:00 00:00:00" and other junk
        return None


@dataclass(frozen=True)
class _Field:
    key: str  # metadata dict key
    tag: int
    ifd: str  # IFD0 or EXIF_IFD
    tiff_type: str
    to_tag: Callable[[Any], Any]
    from_tag: Callable[[Any], Any]


_FIELDS: tuple[_Field, ...] = (
    _Field("make", 0x010F, IFD0, "ASCII", _ascii, _from_ascii),
    _Field("model", 0x0110, IFD0, "ASCII", _ascii, _from_ascii),
    _Field("datetime", 0x0132, IFD0, "ASCII", _exif_datetime, _from_datetime),  # DateTime
    _Field("artist", 0x013B, IFD0, "ASCII", _ascii, _from_ascii),
    _Field("copyright", 0x8298, IFD0, "ASCII", _ascii, _from_ascii),
    _Field("exposure_time", 0x829A, EXIF_IFD, "RATIONAL", _rational, _from_rational),
    _Field("f_number", 0x829D, EXIF_IFD, "RATIONAL", _rational, _from_rational),
    _Field("iso", 0x8827, EXIF_IFD, "SHORT", _short, _from_short),  # ISOSpeedRatings
    _Field("datetime", 0x9003, EXIF_IFD, "ASCII", _exif_datetime, _from_datetime),  # DateTimeOriginal
    _Field("datetime", 0x9004, EXIF_IFD, "ASCII", _exif_datetime, _from_datetime),  # DateTimeDigitized
    _Field("focal_length", 0x920A, EXIF_IFD, "RATIONAL", _rational, _from_rational),
    _Field("lens_make", 0xA433, EXIF_IFD, "ASCII", _ascii, _from_ascii),
    _Field("lens_model", 0xA434, EXIF_IFD, "ASCII", _ascii, _from_ascii),
)


# GPS IFD tags (EXIF 2.32, section 4.6.6)
_GPS_VERSION, _GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON, _GPS_ALT_REF, _GPS_ALT = range(7)
_GPS_STATUS = 9


def _degrees_minutes_seconds(degrees: float) -> tuple[Fraction, Fraction, Fraction]:
    """|degrees| as whole degrees, whole minutes and seconds to 1/1000 s (3 cm on the ground)."""
    thousandths = round(abs(degrees) * 3_600_000)
    whole_degrees, rest = divmod(thousandths, 3_600_000)
    minutes, seconds = divmod(rest, 60_000)
    return Fraction(whole_degrees), Fraction(minutes), Fraction(seconds, 1000)


def gps_tag_values(metadata: dict) -> list[tuple[int, str, Any]]:
    """The GPS IFD's ``(tag, TIFF type, value)`` for ``metadata``'s position; [] without a valid one."""
    try:
        latitude, longitude = float(metadata["gps_latitude"]), float(metadata["gps_longitude"])
    except (KeyError, TypeError, ValueError):
        return []
    if not (math.isfinite(latitude) and math.isfinite(longitude) and abs(latitude) <= 90 and abs(longitude) <= 180):
        return []
    tags: list[tuple[int, str, Any]] = [
        (_GPS_VERSION, "BYTE", bytes([2, 3, 0, 0])),
        (_GPS_LAT_REF, "ASCII", "N" if latitude >= 0 else "S"),
        (_GPS_LAT, "RATIONAL", _degrees_minutes_seconds(latitude)),
        (_GPS_LON_REF, "ASCII", "E" if longitude >= 0 else "W"),
        (_GPS_LON, "RATIONAL", _degrees_minutes_seconds(longitude)),
    ]
    try:
        altitude = float(metadata["gps_altitude"])
    except (KeyError, TypeError, ValueError):
        return tags
    if math.isfinite(altitude):
        tags += [(_GPS_ALT_REF, "BYTE", bytes([int(altitude < 0)])),  # 1: below sea level
                 (_GPS_ALT, "RATIONAL", Fraction(abs(altitude)).limit_denominator(1000))]
    return tags


def _numbers(value: Any) -> list[float]:
    """A tag value (a number, IFDRational, bytes, or a tuple of them) as floats."""
    if isinstance(value, (bytes, bytearray)):
        return [float(b) for b in value]
    return [float(v) for v in (value if isinstance(value, (tuple, list)) else (value,))]


def gps_from_tags(tags: dict) -> dict:
    """``gps_latitude``, ``gps_longitude`` (and ``gps_altitude``) from a GPS IFD's ``{tag: value}``,
    as Pillow or :mod:`hyperisp.raw.tiff_tags` read it; {} without a usable position.

    A receiver without a fix often writes a status of void ("V") or 0, 0: neither is a place."""
    if (_from_ascii(tags.get(_GPS_STATUS, "")) or "").upper().startswith("V"):
        return {}
    position = []
    for value_tag, ref_tag, negative in ((_GPS_LAT, _GPS_LAT_REF, "S"), (_GPS_LON, _GPS_LON_REF, "W")):
        try:
            parts = _numbers(tags[value_tag])
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return {}
        if len(parts) != 3 or not all(math.isfinite(p) and p >= 0 for p in parts):
            return {}
        degrees = parts[0] + parts[1] / 60 + parts[2] / 3600
        ref = (_from_ascii(tags.get(ref_tag, "")) or "").upper()
        position.append(-degrees if ref.startswith(negative) else degrees)
    if abs(position[0]) > 90 or abs(position[1]) > 180 or position == [0.0, 0.0]:
        return {}
    found = {"gps_latitude": position[0], "gps_longitude": position[1]}
    try:
        altitude = _numbers(tags[_GPS_ALT])[0]
        below = _numbers(tags.get(_GPS_ALT_REF, 0))[0] == 1
    except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError):
        return found
    if math.isfinite(altitude):
        found["gps_altitude"] = -altitude if below else altitude
    return found


LOCATION_KEYS = ("gps_latitude", "gps_longitude", "gps_altitude")


def without_location(metadata: dict) -> dict:
    """``metadata`` less where the photo was taken (``--strip-location``, for photos to share)."""
    return {key: value for key, value in metadata.items() if key not in LOCATION_KEYS}


def _tag_values(metadata: dict | None) -> list[tuple[str, int, str, Any]]:
    """-> [(ifd, tag, tiff type, value)] for everything written to an output."""
    metadata = metadata or {}
    tags: list[tuple[str, int, str, Any]] = [
        (IFD0, 0x0131, "ASCII", software_name()),  # Software
        # The developer already rotated the pixels; a copied camera orientation
        # would make viewers rotate them a second time.
        (IFD0, ORIENTATION_TAG, "SHORT", 1),
        (EXIF_IFD, 0x9000, "UNDEFINED", b"0232"),  # ExifVersion 2.32
    ]
    for field in _FIELDS:
        raw = metadata.get(field.key)
        if raw is None:
            continue
        try:
            value = field.to_tag(raw)
        except (TypeError, ValueError, OverflowError):  # a bad value drops its tag, not the image
            value = None
        if value is not None:
            tags.append((field.ifd, field.tag, field.tiff_type, value))
    return tags + [(GPS_IFD, tag, tiff_type, value) for tag, tiff_type, value in gps_tag_values(metadata)]


def build_exif(metadata: dict | None) -> bytes:
    """EXIF as a JPEG APP1 payload (``b"Exif\\0\\0"`` + TIFF structure).

    IFD0: Make, Model, Software, Orientation = 1, DateTime, Artist, Copyright; Exif sub-IFD
    (0x8769): ExifVersion, ExposureTime, FNumber, ISOSpeedRatings, DateTimeOriginal,
    DateTimeDigitized, FocalLength, LensMake, LensModel; GPS sub-IFD (0x8825): GPSVersionID,
    latitude, longitude, altitude. Missing metadata keys are left out.
    Pillow accepts these bytes as ``exif=`` for JPEG and PNG; a PNG eXIf chunk
    takes them without the 6-byte ``Exif\\0\\0`` header.
    """
    exif = Image.Exif()
    ifds = {IFD0: exif, EXIF_IFD: exif.get_ifd(TAG_EXIF_IFD), GPS_IFD: exif.get_ifd(TAG_GPS_IFD)}
    for ifd, tag, _, value in _tag_values(metadata):
        if isinstance(value, Fraction):
            value = IFDRational(value.numerator, value.denominator)
        elif isinstance(value, tuple):
            value = tuple(IFDRational(v.numerator, v.denominator) for v in value)
        ifds[ifd][tag] = value
    return exif.tobytes()


def exif_tiff_tags(metadata: dict | None) -> tuple[list[TiffTag], list[TiffTag], list[TiffTag]]:
    """The same fields as :func:`build_exif`, as ``(IFD0 tags, Exif sub-IFD tags, GPS sub-IFD tags)``
    for :func:`hyperisp.io.tiff.write_tiff`."""
    by_ifd: dict[str, list[TiffTag]] = {IFD0: [], EXIF_IFD: [], GPS_IFD: []}
    for ifd, tag, tiff_type, value in _tag_values(metadata):
        by_ifd[ifd].append((tag, tiff_type, value))
    return by_ifd[IFD0], by_ifd[EXIF_IFD], by_ifd[GPS_IFD]


def metadata_from_exif(exif: Image.Exif) -> dict:
    """Read the metadata dict back from a Pillow Exif (from ``image.getexif()``).

    ``datetime`` prefers DateTimeOriginal over DateTimeDigitized over DateTime.
    Unreadable or zero values are skipped.
    """
    metadata: dict = {}
    try:
        sub_ifd = exif.get_ifd(TAG_EXIF_IFD)
    except Exception:  # a broken sub-IFD pointer: keep what IFD0 has
        sub_ifd = {}
    # First found wins: DateTimeOriginal, then DateTimeDigitized, then DateTime.
    priority = {0x9003: 0, 0x9004: 1, 0x0132: 2}
    for field in sorted(_FIELDS, key=lambda f: priority.get(f.tag, 0)):
        if field.key in metadata:
            continue
        value = (exif if field.ifd == IFD0 else sub_ifd).get(field.tag)
        if value is None:
            continue
        parsed = field.from_tag(value)
        if parsed is not None:
            metadata[field.key] = parsed
    try:
        metadata.update(gps_from_tags(dict(exif.get_ifd(TAG_GPS_IFD))))
    except Exception:  # a broken GPS pointer: the rest stands
        pass
    return metadata
