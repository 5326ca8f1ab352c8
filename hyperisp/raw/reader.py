"""Read camera raw files (any Bayer format LibRaw knows) into canonical, normalised mosaics."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..errors import HyperispError
from ..io.metadata import gps_from_tags
from .camera_colour import (
    DNG_COLOUR_TAGS,
    TAG_BASELINE_EXPOSURE,
    TAG_COLOR_MATRIX,
    CameraColour,
    as_shot_neutral_from_dng_tags,
    camera_colour_from_dng_tags,
)
from .colour import camera_to_srgb_matrix, normalise_gains
from .bad_pixels import bad_pixel_mask, interpolate_bad_pixels
from .opcodes import OPCODE_LIST_TAGS, apply_lens_corrections, dng_corrections
from .phase import SensorFrame, phase_from_rawpy, to_canonical
from .tiff_tags import FileTags, read_file_tags

DNG_COLOR_MATRIX_1 = TAG_COLOR_MATRIX[0]


@dataclass
class RawImage:
    """A Bayer raw image ready for the network.

    Attributes:
        path: the file it came from (None for arrays).
        mosaic: (H', W') float32 canonical RGGB mosaic (see ``raw/phase.py``), black
            subtracted per CFA position, divided by (white - black), clipped to [0, 1].
        frame: how to get back to the sensor's own phase and size (``from_canonical``).
        phase: the sensor's CFA phase, e.g. "GRBG".
        flip: LibRaw orientation code (``apply_orientation``), applied last.
        as_shot_wb: (3,) R, G, B gains with G = 1, or None when the file has none usable.
        daylight_wb: (3,) the camera's daylight gains with G = 1, or None.
        cam_to_srgb: (3, 3) white-balanced camera RGB -> linear sRGB (identity if unknown).
        metadata: make, model, iso, exposure_time (s), f_number, focal_length (mm), lens_make,
            lens_model, artist, copyright, gps_latitude, gps_longitude, gps_altitude,
            datetime (``datetime.datetime``) -- whichever are known.
        colour: the camera's colour model (DNG ColorMatrix1/2, ForwardMatrix1/2 by
            illuminant, or LibRaw's D65 matrix), or None when unknown (arrays).
        default_crop: (top, left, height, width) of the camera's default crop in the visible
            sensor image (DNG DefaultCrop, or a maker note's), or None when there is none.
        rgb_corrections: a DNG's OpcodeList3 lens corrections (gain maps, vignetting, distortion),
            for the demosaicked camera RGB in the visible sensor frame
            (:func:`~hyperisp.raw.opcodes.apply_rgb_corrections`).
    """

    path: str | None
    mosaic: np.ndarray
    frame: SensorFrame
    phase: str
    flip: int
    as_shot_wb: np.ndarray | None
    daylight_wb: np.ndarray | None
    cam_to_srgb: np.ndarray
    metadata: dict = field(default_factory=dict)
    colour: CameraColour | None = None
    default_crop: tuple[int, int, int, int] | None = None
    rgb_corrections: list = field(default_factory=list)


def _normalise(values: np.ndarray, black: np.ndarray, white: float) -> np.ndarray:
    """(H, W) sensor values -> float32 in [0, 1], with a 2x2 per-CFA-position ``black``.

    Clipped to [0, 1]: below-black values are read noise around zero, and the
    network is trained on mosaics in [0, 1] (synthetic data is clipped the way a
    sensor clips), so values outside that range would be out of distribution.
    The small upward bias this gives the deepest shadows is under the noise the
    denoiser removes anyway.
    """
    out = np.array(values, dtype=np.float32)  # always a fresh copy: LibRaw's buffer dies with the file
    for dy in range(2):
        for dx in range(2):
            scale = float(white) - float(black[dy, dx])
            if not scale > 0:
                raise ValueError(f"white level {white} must be above black level {black[dy, dx]}")
            plane = out[dy::2, dx::2]
            plane -= np.float32(black[dy, dx])
            plane *= np.float32(1.0 / scale)
    return np.clip(out, 0.0, 1.0, out=out)


_IFD0_TEXT = (("make", 271), ("model", 272), ("artist", 315), ("copyright", 33432))


def _read_file_tags(path: str) -> FileTags:
    """The tags LibRaw does not give of a TIFF-based raw (DNG, NEF, CR2, ARW, ...), in one pass."""
    return read_file_tags(path, ifd0_codes=DNG_COLOUR_TAGS | {code for _, code in _IFD0_TEXT},
                          raw_codes=OPCODE_LIST_TAGS, gps=True)


def _metadata(raw, tags: FileTags) -> dict:
    meta = {key: tags.ifd0[code].strip() for key, code in _IFD0_TEXT  # Make, Model, Artist, Copyright
            if isinstance(tags.ifd0.get(code), str) and tags.ifd0[code].strip()}
    lens = getattr(raw, "lens", None)  # rawpy >= 0.25; LibRaw finds it in maker notes too
    for key, value in (("lens_make", getattr(lens, "make", "")), ("lens_model", getattr(lens, "model", "")),
                       ("artist", getattr(raw.other, "artist", ""))):
        if isinstance(value, str) and value.strip() and key not in meta:
            meta[key] = value.strip()
    other = raw.other
    for key, value in (
        ("iso", other.iso_speed),
        ("exposure_time", other.shutter_speed),
        ("f_number", other.aperture),
        ("focal_length", other.focal_length),
    ):
        if np.isfinite(value) and value > 0:
            meta[key] = float(value)
    stamp = other.timestamp
    if isinstance(stamp, datetime) and stamp.timestamp() > 0:  # 0 = unknown (rawpy gives the epoch)
        meta["datetime"] = stamp
    meta.update(gps_from_tags(tags.gps))  # rawpy does not expose LibRaw's GPS data
    return meta


def _default_crop(sizes) -> tuple[int, int, int, int] | None:
    """(top, left, height, width) of LibRaw's first inset crop, moved into the visible image.

    LibRaw gives it relative to the full raw frame (a DNG's DefaultCropOrigin plus its
    ActiveArea offset), 0xFFFF for an unknown origin. A crop that does not lie inside the
    visible image, or covers all of it, is None.
    """
    left, top = getattr(sizes, "crop_left_margin", 0), getattr(sizes, "crop_top_margin", 0)
    width, height = getattr(sizes, "crop_width", 0), getattr(sizes, "crop_height", 0)
    if width <= 0 or height <= 0 or 0xFFFF in (left, top):
        return None
    top, left = top - sizes.top_margin, left - sizes.left_margin
    if top < 0 or left < 0 or top + height > sizes.height or left + width > sizes.width:
        return None
    return None if (height, width) == (sizes.height, sizes.width) else (top, left, height, width)


def _white_balances(raw) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(as_shot, daylight) gains with G = 1; None where the file has nothing plausible."""
    daylight_raw = np.asarray(raw.daylight_whitebalance, dtype=np.float64)[:3]
    # LibRaw reports (1, 1, 1) when it knows nothing about the camera's daylight balance.
    daylight = None if np.allclose(daylight_raw, 1.0) else normalise_gains(daylight_raw)
    camera_raw = np.asarray(raw.camera_whitebalance, dtype=np.float64)[:3]
    # All ones is LibRaw's "not recorded" (e.g. old Kodak files) unless the camera is otherwise known.
    if np.allclose(camera_raw, 1.0) and daylight is None:
        return None, None
    return normalise_gains(camera_raw), daylight


def _camera_colour(raw, tags: dict) -> tuple[CameraColour | None, np.ndarray | None]:
    """(colour model, as-shot neutral with G = 1) from the DNG colour tags, else LibRaw's D65 matrix.

    The neutral is only returned from DNG tags (AsShotNeutral, or AsShotWhiteXY which
    LibRaw ignores); None means "use LibRaw's as-shot white balance".
    """
    colour = camera_colour_from_dng_tags(tags)
    if colour is not None:
        return colour, as_shot_neutral_from_dng_tags(tags, colour)
    cam_xyz = np.asarray(raw.rgb_xyz_matrix, dtype=np.float64)[:3, :3]
    if np.all(np.isfinite(cam_xyz)) and abs(np.linalg.det(cam_xyz)) > 1e-9:
        return CameraColour((cam_xyz,), (6504.0,)), None  # LibRaw's matrices are for D65
    return None, None


def _colour_matrix(raw) -> np.ndarray:
    """LibRaw's rgb_cam, else one built from its XYZ -> camera matrix, else identity."""
    rgb_cam = np.asarray(raw.color_matrix, dtype=np.float64)[:3, :3]
    if np.all(np.isfinite(rgb_cam)) and np.any(rgb_cam != 0):
        return rgb_cam.astype(np.float32)
    cam_xyz = np.asarray(raw.rgb_xyz_matrix, dtype=np.float64)[:3, :3]
    if np.all(np.isfinite(cam_xyz)) and abs(np.linalg.det(cam_xyz)) > 1e-9:
        return camera_to_srgb_matrix(cam_xyz)
    return np.eye(3, dtype=np.float32)


@contextmanager
def _libraw_stderr_silenced() -> Iterator[None]:
    """LibRaw prints data errors ("Unexpected end of file") to C stderr; we report them as HyperispError."""
    try:
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except OSError:  # no usable fd 2 (embedded interpreters): nothing to silence
        yield
        return
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _libraw_reason(err: Exception) -> str:
    import rawpy

    if isinstance(err, rawpy.LibRawFileUnsupportedError):
        return "not a raw file LibRaw can read"
    if isinstance(err, (rawpy.LibRawIOError, rawpy.LibRawDataError)):
        return "truncated or corrupt raw data"
    if isinstance(err, (rawpy.LibRawTooBigError, rawpy.LibRawUnsufficientMemoryError, MemoryError)):
        return "image too large to decode"
    return f"LibRaw cannot read this file ({type(err).__name__})"


def read_raw(path: str | os.PathLike) -> RawImage:
    """Read a Bayer raw file (DNG, CR2, NEF, ARW, ...) with LibRaw.

    Returns:
        A :class:`RawImage` whose ``mosaic`` is (H', W') float32 canonical RGGB in [0, 1].
    Raises:
        HyperispError: missing, empty, unreadable, truncated or non-Bayer files
            (X-Trans, Foveon, linear DNG, monochrome, CMYG), with a one-line reason.
    """
    import rawpy  # imported here: `hyperisp --help` should not pay for LibRaw

    name = str(path)
    file = Path(path)
    if not file.exists():
        raise HyperispError(name, "file not found")
    if file.is_dir():
        raise HyperispError(name, "is a directory, not a raw file")
    try:
        open(file, "rb").close()  # permission problems get their own message
        if file.stat().st_size == 0:
            raise HyperispError(name, "empty file")
        with _libraw_stderr_silenced(), rawpy.imread(name) as raw:
            phase = phase_from_rawpy(raw)
            colours = np.asarray(raw.raw_colors_visible[:2, :2])
            visible = raw.raw_image_visible  # LibRaw unpacks (decodes) the data here
            if visible is None or visible.ndim != 2 or min(visible.shape) < 2:
                raise HyperispError(None, "no Bayer image data in the file")
            black = np.asarray(raw.black_level_per_channel, dtype=np.float64)[colours]
            white = float(raw.white_level)
            if not white > black.max():
                raise HyperispError(None, f"white level {white:g} is not above black level {black.max():g}")
            mosaic = _normalise(visible, black, white)
            tags = _read_file_tags(name)
            dng = dng_corrections(tags.raw_ifd)
            bad = bad_pixel_mask(visible, mosaic, dng.bad_pixels, (raw.sizes.top_margin, raw.sizes.left_margin)) \
                if dng.bad_pixels else None
            if bad is not None and bad.any():
                mosaic = interpolate_bad_pixels(mosaic, bad, colours)
            if dng.mosaic:
                mosaic = apply_lens_corrections(mosaic, dng.mosaic)
            as_shot, daylight = _white_balances(raw)
            cam_to_srgb = _colour_matrix(raw)
            colour, dng_neutral = _camera_colour(raw, tags.ifd0)
            if DNG_COLOR_MATRIX_1 in tags.ifd0:  # a DNG: its own tags say what was shot, or that nothing was
                as_shot = normalise_gains(1.0 / dng_neutral) if dng_neutral is not None else None
            flip = int(raw.sizes.flip)
            default_crop = _default_crop(raw.sizes)
            metadata = _metadata(raw, tags)
            if dng.note:
                metadata["lens_corrections"] = dng.note
            if bad is not None:
                metadata["bad_pixels"] = int(bad.sum())  # repaired, from the DNG's FixBadPixels opcodes
            baseline = tags.ifd0.get(TAG_BASELINE_EXPOSURE)
            if isinstance(baseline, tuple) and len(baseline) == 1 and abs(baseline[0]) <= 8:
                metadata["baseline_exposure"] = float(baseline[0])  # DNG: the file's own exposure zero point
    except HyperispError as err:
        raise HyperispError(name, err.reason) from None
    except rawpy.LibRawError as err:
        raise HyperispError(name, _libraw_reason(err)) from None
    except PermissionError:
        raise HyperispError(name, "permission denied") from None
    except MemoryError:
        raise HyperispError(name, "image too large to decode") from None
    except (OSError, RuntimeError, ValueError, rawpy.NotSupportedError) as err:
        raise HyperispError(name, f"cannot read raw data ({type(err).__name__})") from None
    canonical, frame = to_canonical(mosaic, phase)
    return RawImage(name, np.ascontiguousarray(canonical), frame, phase, flip, as_shot, daylight, cam_to_srgb,
                    metadata, colour, default_crop, dng.rgb)


def raw_from_array(
    mosaic: np.ndarray,
    *,
    cfa_phase: str = "RGGB",
    black_level: float | Sequence[float] = 0.0,
    white_level: float | None = None,
    wb: Sequence[float] | None = None,
    cam_to_srgb: np.ndarray | None = None,
) -> RawImage:
    """Wrap a Bayer mosaic array as a :class:`RawImage` (Python API, no file).

    Args:
        mosaic: (H, W) integer or float sensor values, CFA laid out as ``cfa_phase``.
        cfa_phase: "RGGB", "GRBG", "GBRG" or "BGGR".
        black_level: one value, or 4 for the 2x2 CFA positions (0,0), (0,1), (1,0), (1,1).
        white_level: clipping level; default the dtype maximum for integers, 1.0 for
            floats (which must then lie in [0, 1]).
        wb: (3,) as-shot R, G, B gains (normalised to G = 1), or None (auto).
        cam_to_srgb: (3, 3) white-balanced camera RGB -> linear sRGB; default identity
            (the array is taken to be in linear sRGB primaries already).
    """
    values = np.asarray(mosaic)
    if values.ndim != 2 or min(values.shape) < 2 or not np.issubdtype(values.dtype, np.number):
        raise ValueError(f"expected a numeric (H, W) Bayer mosaic with H, W >= 2, got {values.shape} {values.dtype}")
    if not np.issubdtype(values.dtype, np.integer) and not np.all(np.isfinite(values)):
        raise ValueError("mosaic has NaN or infinite values")
    if white_level is None:
        if np.issubdtype(values.dtype, np.integer):
            white_level = float(np.iinfo(values.dtype).max)
        elif float(np.nanmax(values)) <= 1.0:
            white_level = 1.0
        else:
            raise ValueError("float mosaic has values above 1: pass white_level")
    if np.size(black_level) not in (1, 4):
        raise ValueError(f"black_level must be one value or 4 (one per CFA position), got {black_level}")
    black = np.broadcast_to(np.asarray(black_level, dtype=np.float64).ravel(), (4,)).reshape(2, 2)
    gains = None
    if wb is not None:
        gains = normalise_gains(wb)
        if gains is None:
            raise ValueError(f"wb must be 3 finite positive gains within 0.2..8 of green, got {wb}")
    if cam_to_srgb is None:
        matrix = np.eye(3, dtype=np.float32)
    else:
        matrix = np.asarray(cam_to_srgb, dtype=np.float32)
        if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)):
            raise ValueError(f"cam_to_srgb must be a finite (3, 3) matrix, got {matrix.shape}")
    canonical, frame = to_canonical(_normalise(values, black, float(white_level)), cfa_phase)
    return RawImage(None, np.ascontiguousarray(canonical), frame, cfa_phase, 0, gains, None, matrix, {})
