"""Write a Bayer mosaic as a DNG 1.4 file (for tests, the built-in sample, and exports).

The raw image lives in IFD0 (NewSubFileType = 0, PhotometricInterpretation = CFA),
uncompressed, 16 bits per sample; exposure fields go into an EXIF sub-IFD.
LibRaw (rawpy) reads these files back exactly: see ``tests/test_raw_dng.py``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..io.metadata import LOCATION_KEYS, gps_tag_values
from ..io.tiff import TiffTag, write_tiff
from .opcodes import TAG_OPCODE_LIST_1, TAG_OPCODE_LIST_2, TAG_OPCODE_LIST_3
from .phase import BAYER_PHASES

# DNG / TIFF-EP tag codes (DNG specification 1.4, chapter 4).
TAG_NEW_SUBFILE_TYPE, TAG_MAKE, TAG_MODEL, TAG_ORIENTATION = 254, 271, 272, 274
TAG_SOFTWARE, TAG_DATETIME, TAG_ARTIST, TAG_COPYRIGHT = 305, 306, 315, 33432
TAG_LENS_MAKE, TAG_LENS_MODEL = 42035, 42036
TAG_CFA_REPEAT_PATTERN_DIM, TAG_CFA_PATTERN = 33421, 33422
TAG_EXPOSURE_TIME, TAG_F_NUMBER, TAG_ISO = 33434, 33437, 34855
TAG_DATETIME_ORIGINAL = 36867
TAG_DNG_VERSION, TAG_DNG_BACKWARD_VERSION, TAG_UNIQUE_CAMERA_MODEL = 50706, 50707, 50708
TAG_CFA_PLANE_COLOR, TAG_CFA_LAYOUT = 50710, 50711
TAG_BLACK_LEVEL_REPEAT_DIM, TAG_BLACK_LEVEL, TAG_WHITE_LEVEL = 50713, 50714, 50717
TAG_COLOR_MATRIX_1, TAG_AS_SHOT_NEUTRAL, TAG_CALIBRATION_ILLUMINANT_1 = 50721, 50728, 50778
TAG_COLOR_MATRIX_2, TAG_AS_SHOT_WHITE_XY, TAG_CALIBRATION_ILLUMINANT_2 = 50722, 50729, 50779
TAG_FORWARD_MATRIX_1, TAG_FORWARD_MATRIX_2 = 50964, 50965
TAG_BASELINE_EXPOSURE = 50730
TAG_DEFAULT_CROP_ORIGIN, TAG_DEFAULT_CROP_SIZE = 50719, 50720
PHOTOMETRIC_CFA, PHOTOMETRIC_LINEAR_RAW = 32803, 34892

ILLUMINANT_STANDARD_A, ILLUMINANT_D65, ILLUMINANT_D50 = 17, 21, 23
_CFA_COLOUR_CODE = {"R": 0, "G": 1, "B": 2}  # CFAPattern values; CFAPlaneColor is (0, 1, 2)


def _cfa_pattern(phase: str) -> list[int]:
    if phase not in BAYER_PHASES:
        raise ValueError(f"cfa_phase must be one of {BAYER_PHASES}, got {phase!r}")
    return [_CFA_COLOUR_CODE[c] for c in phase]


def _level_tag_type(values: Sequence[float]) -> str:
    """LONG for whole numbers (what cameras write), RATIONAL otherwise."""
    return "LONG" if all(float(v).is_integer() and v >= 0 for v in values) else "RATIONAL"


def write_dng(
    path: str | os.PathLike,
    mosaic: np.ndarray,
    *,
    cfa_phase: str = "RGGB",
    black_level: float | Sequence[float] = 0,
    white_level: int = 65535,
    as_shot_neutral: Sequence[float] | None = None,
    color_matrix: np.ndarray | None = None,
    calibration_illuminant: int = ILLUMINANT_D65,
    color_matrix_2: np.ndarray | None = None,
    calibration_illuminant_2: int = ILLUMINANT_D65,
    forward_matrix_1: np.ndarray | None = None,
    forward_matrix_2: np.ndarray | None = None,
    as_shot_white_xy: Sequence[float] | None = None,
    baseline_exposure: float | None = None,
    orientation: int = 1,
    make: str = "hyperisp",
    model: str = "synthetic",
    unique_camera_model: str | None = None,
    datetime: str | None = None,
    exposure_time: float | None = None,
    f_number: float | None = None,
    iso: int | None = None,
    lens_make: str | None = None,
    lens_model: str | None = None,
    artist: str | None = None,
    copyright: str | None = None,
    gps: Sequence[float] | None = None,
    default_crop: Sequence[int] | None = None,
    opcode_list_1: bytes | None = None,
    opcode_list_2: bytes | None = None,
    opcode_list_3: bytes | None = None,
) -> Path:
    """Write a Bayer mosaic as an uncompressed DNG.

    Args:
        path: output file (overwritten).
        mosaic: (H, W) uint16 sensor values, CFA laid out as ``cfa_phase``.
        cfa_phase: colours of the top-left 2x2 tile, row-major ("RGGB", "GRBG", "GBRG", "BGGR").
        black_level: one value, or 4 values for the 2x2 CFA positions (0,0), (0,1), (1,0), (1,1)
            of ``mosaic`` (DNG BlackLevel with BlackLevelRepeatDim 2x2).
        white_level: the clipping level (DNG WhiteLevel), e.g. 4095 for 12-bit data.
        as_shot_neutral: (3,) camera R, G, B of a neutral under the scene light
            (DNG AsShotNeutral); white-balance gains are its reciprocal.
        color_matrix: (3, 3) XYZ -> camera matrix for ``calibration_illuminant``
            (DNG ColorMatrix1). DNG readers expect one; LibRaw without one has no colour data.
        calibration_illuminant: EXIF LightSource code of ``color_matrix`` (21 = D65).
        color_matrix_2, calibration_illuminant_2: a second XYZ -> camera matrix and its
            illuminant (DNG ColorMatrix2 / CalibrationIlluminant2); readers interpolate
            between the two by the scene white's colour temperature.
        forward_matrix_1, forward_matrix_2: (3, 3) white-balanced camera -> XYZ D50 for
            the two illuminants (DNG ForwardMatrix1/2).
        as_shot_white_xy: (2,) scene white chromaticity (DNG AsShotWhiteXY), the
            alternative to ``as_shot_neutral`` (write at most one of them).
        baseline_exposure: EV by which readers should move the exposure zero point (DNG BaselineExposure).
        orientation: TIFF Orientation 1..8 (1 = upright, 3 = 180 deg, 6 = rotate 90 CW
            to view, 8 = rotate 90 CCW to view).
        make, model, unique_camera_model: camera names (UniqueCameraModel defaults to
            "make model").
        datetime: "YYYY:MM:DD HH:MM:SS" capture time (DateTime and DateTimeOriginal).
        exposure_time: seconds; f_number: aperture; iso: ISO speed (EXIF sub-IFD).
        lens_make, lens_model: the lens (EXIF LensMake / LensModel); artist, copyright: IFD0 text.
        gps: (latitude, longitude) or (latitude, longitude, altitude): signed degrees (north,
            east positive) and metres, written as a GPS IFD.
        default_crop: (left, top, width, height) of the area raw converters keep (DNG
            DefaultCropOrigin / DefaultCropSize); None: all of it.
        opcode_list_1, opcode_list_2, opcode_list_3: encoded DNG OpcodeList1 / 2 / 3, e.g. bad
            pixels, lens shading gain maps or a radial vignette
            (:func:`hyperisp.raw.opcodes.opcode_list_bytes`).
    Returns:
        ``Path(path)``.
    """
    mosaic = np.asarray(mosaic)
    if mosaic.ndim != 2 or mosaic.dtype != np.uint16:
        raise ValueError(f"expected a (H, W) uint16 mosaic, got {mosaic.shape} {mosaic.dtype}")
    if mosaic.shape[0] < 2 or mosaic.shape[1] < 2:
        raise ValueError(f"mosaic must be at least 2x2, got {mosaic.shape}")
    if not 1 <= int(orientation) <= 8:
        raise ValueError(f"orientation must be a TIFF orientation 1..8, got {orientation}")
    if not 0 < int(white_level) <= 65535:
        raise ValueError(f"white_level must be in 1..65535, got {white_level}")
    blacks = [float(b) for b in np.broadcast_to(np.asarray(black_level, dtype=np.float64).ravel(), (4,))] \
        if np.size(black_level) in (1, 4) else None
    if blacks is None:
        raise ValueError(f"black_level must be one value or 4 (one per CFA position), got {black_level}")
    if max(blacks) >= white_level:
        raise ValueError(f"black level {max(blacks)} must be below white level {white_level}")

    tags: list[TiffTag] = [
        (TAG_NEW_SUBFILE_TYPE, "LONG", 0),  # 0 = main image (the raw data itself)
        (TAG_MAKE, "ASCII", make),
        (TAG_MODEL, "ASCII", model),
        (TAG_ORIENTATION, "SHORT", int(orientation)),
        (TAG_SOFTWARE, "ASCII", "hyperisp"),
        (TAG_CFA_REPEAT_PATTERN_DIM, "SHORT", [2, 2]),
        (TAG_CFA_PATTERN, "BYTE", _cfa_pattern(cfa_phase)),
        (TAG_DNG_VERSION, "BYTE", [1, 4, 0, 0]),
        (TAG_DNG_BACKWARD_VERSION, "BYTE", [1, 1, 0, 0]),
        (TAG_UNIQUE_CAMERA_MODEL, "ASCII", unique_camera_model or f"{make} {model}"),
        (TAG_CFA_PLANE_COLOR, "BYTE", [0, 1, 2]),
        (TAG_CFA_LAYOUT, "SHORT", 1),  # 1 = rectangular grid
        (TAG_BLACK_LEVEL_REPEAT_DIM, "SHORT", [2, 2]),
        (TAG_BLACK_LEVEL, _level_tag_type(blacks), blacks),
        (TAG_WHITE_LEVEL, "LONG", int(white_level)),
        (TAG_CALIBRATION_ILLUMINANT_1, "SHORT", int(calibration_illuminant)),
    ]
    if color_matrix is not None:
        matrix = np.asarray(color_matrix, dtype=np.float64)
        if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)):
            raise ValueError(f"color_matrix must be a finite (3, 3) XYZ->camera matrix, got {matrix.shape}")
        tags.append((TAG_COLOR_MATRIX_1, "SRATIONAL", matrix.ravel().tolist()))
    for code, extra in ((TAG_COLOR_MATRIX_2, color_matrix_2), (TAG_FORWARD_MATRIX_1, forward_matrix_1),
                        (TAG_FORWARD_MATRIX_2, forward_matrix_2)):
        if extra is not None:
            extra = np.asarray(extra, dtype=np.float64)
            if extra.shape != (3, 3) or not np.all(np.isfinite(extra)):
                raise ValueError(f"colour matrix for tag {code} must be a finite (3, 3) matrix, got {extra.shape}")
            tags.append((code, "SRATIONAL", extra.ravel().tolist()))
    if color_matrix_2 is not None:
        tags.append((TAG_CALIBRATION_ILLUMINANT_2, "SHORT", int(calibration_illuminant_2)))
    if as_shot_white_xy is not None:
        if as_shot_neutral is not None:
            raise ValueError("give as_shot_neutral or as_shot_white_xy, not both")
        white = np.asarray(as_shot_white_xy, dtype=np.float64)
        if white.shape != (2,) or not np.all((white > 0) & (white < 1)):
            raise ValueError(f"as_shot_white_xy must be 2 chromaticities in (0, 1), got {as_shot_white_xy}")
        tags.append((TAG_AS_SHOT_WHITE_XY, "RATIONAL", white.tolist()))
    if baseline_exposure is not None:
        tags.append((TAG_BASELINE_EXPOSURE, "SRATIONAL", float(baseline_exposure)))
    if as_shot_neutral is not None:
        neutral = np.asarray(as_shot_neutral, dtype=np.float64)
        if neutral.shape != (3,) or not np.all(neutral > 0):
            raise ValueError(f"as_shot_neutral must be 3 positive values, got {as_shot_neutral}")
        tags.append((TAG_AS_SHOT_NEUTRAL, "RATIONAL", neutral.tolist()))
    if default_crop is not None:
        left, top, width, height = (int(v) for v in default_crop)
        if min(left, top) < 0 or width < 1 or height < 1 or left + width > mosaic.shape[1] \
                or top + height > mosaic.shape[0]:
            raise ValueError(f"default_crop {tuple(default_crop)} does not fit a {mosaic.shape[1]}x{mosaic.shape[0]} mosaic")
        tags += [(TAG_DEFAULT_CROP_ORIGIN, "LONG", [left, top]), (TAG_DEFAULT_CROP_SIZE, "LONG", [width, height])]
    for code, opcodes in ((TAG_OPCODE_LIST_1, opcode_list_1), (TAG_OPCODE_LIST_2, opcode_list_2),
                          (TAG_OPCODE_LIST_3, opcode_list_3)):
        if opcodes is not None:
            tags.append((code, "UNDEFINED", bytes(opcodes)))
    exif: list[TiffTag] = []
    if datetime is not None:
        tags.append((TAG_DATETIME, "ASCII", datetime))
        exif.append((TAG_DATETIME_ORIGINAL, "ASCII", datetime))
    if exposure_time is not None:
        exif.append((TAG_EXPOSURE_TIME, "RATIONAL", float(exposure_time)))
    if f_number is not None:
        exif.append((TAG_F_NUMBER, "RATIONAL", float(f_number)))
    if iso is not None:
        exif.append((TAG_ISO, "SHORT", int(iso)))
    for code, text, where in ((TAG_ARTIST, artist, tags), (TAG_COPYRIGHT, copyright, tags),
                              (TAG_LENS_MAKE, lens_make, exif), (TAG_LENS_MODEL, lens_model, exif)):
        if text:
            where.append((code, "ASCII", text))

    gps_tags = gps_tag_values(dict(zip(LOCATION_KEYS, gps))) if gps else []
    if gps and not gps_tags:
        raise ValueError(f"gps must be (latitude, longitude[, altitude]) with |latitude| <= 90, |longitude| <= 180, got {gps}")

    path = Path(path)
    with open(path, "wb") as file:
        write_tiff(file, mosaic, tags, exif, photometric=PHOTOMETRIC_CFA, gps_tags=gps_tags)
    return path
