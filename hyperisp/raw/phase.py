"""CFA phases and sensor geometry: from the sensor's own layout to canonical RGGB and back.

Everything inside hyperisp works on canonical RGGB mosaics with even sides
(``raw/bayer.py``). :func:`to_canonical` gets there by cropping an odd trailing
row/column and then *flipping* (never cropping) the mosaic; :func:`from_canonical`
undoes both, so the developed image has exactly the sensor's visible size.
:func:`apply_orientation` finally turns it upright with LibRaw's flip code.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import HyperispError

BAYER_PHASES = ("RGGB", "GRBG", "GBRG", "BGGR")

# Flipping the columns of an even-width mosaic swaps the two columns of every 2x2 tile,
# flipping the rows swaps its two rows: GRBG -(cols)-> RGGB, GBRG -(rows)-> RGGB, BGGR -(both)-> RGGB.
_FLIPS_TO_RGGB = {"RGGB": (False, False), "GRBG": (False, True), "GBRG": (True, False), "BGGR": (True, True)}


@dataclass(frozen=True)
class SensorFrame:
    """How a canonical RGGB mosaic relates to the sensor's visible area.

    Attributes:
        phase: the sensor's CFA phase ("RGGB", "GRBG", "GBRG" or "BGGR").
        height, width: visible sensor size (before the odd row/column was cropped).
        flip_rows, flip_cols: whether :func:`to_canonical` flipped rows / columns.
    """

    phase: str
    height: int
    width: int
    flip_rows: bool
    flip_cols: bool


def _check_phase(phase: str) -> str:
    if phase not in BAYER_PHASES:
        raise ValueError(f"CFA phase must be one of {BAYER_PHASES}, got {phase!r}")
    return phase


def phase_from_rawpy(raw) -> str:
    """The Bayer phase of an open ``rawpy.RawPy``, e.g. "GRBG".

    Raises:
        HyperispError (no path; the caller adds it) for anything that is not a
        2x2 R/G/B Bayer sensor: X-Trans, Foveon / linear DNG, monochrome, CMYG.
    """
    pattern = raw.raw_pattern
    desc = raw.color_desc.decode("ascii", "replace") if isinstance(raw.color_desc, bytes) else str(raw.color_desc)
    if pattern is None or getattr(raw.raw_type, "name", "Flat") != "Flat":
        raise HyperispError(None, "linear (demosaicked) DNG or sRAW is not a Bayer raw")
    pattern = np.asarray(pattern)
    if pattern.shape == (6, 6):
        raise HyperispError(None, "X-Trans sensors are not supported (Bayer only)")
    if raw.num_colors == 1 or len(set(pattern.ravel().tolist())) == 1:
        raise HyperispError(None, "monochrome sensors are not supported (Bayer only)")
    if pattern.shape != (2, 2):
        raise HyperispError(None, f"unsupported {pattern.shape[0]}x{pattern.shape[1]} colour filter array")
    colours = np.asarray(raw.raw_colors_visible[:2, :2])
    try:
        phase = "".join(desc[int(c)] for c in colours.ravel())
    except IndexError:
        raise HyperispError(None, f"unsupported colour filter description {desc!r}") from None
    if set(phase) & set("CMY"):
        raise HyperispError(None, f"CMYG colour filter arrays ({phase}) are not supported (RGB Bayer only)")
    if phase not in BAYER_PHASES:
        raise HyperispError(None, f"unsupported colour filter array {phase} (RGB Bayer only)")
    return phase


def to_canonical(mosaic: np.ndarray, phase: str) -> tuple[np.ndarray, SensorFrame]:
    """Crop to even sides and flip a Bayer mosaic into canonical RGGB.

    Args:
        mosaic: (H, W) mosaic with CFA phase ``phase``; H, W >= 2.
        phase: one of :data:`BAYER_PHASES`.
    Returns:
        ``(canonical, frame)``: (H', W') RGGB mosaic, H' = H - H % 2, W' = W - W % 2
        (a view where possible), and the :class:`SensorFrame` that undoes it.
    """
    _check_phase(phase)
    if mosaic.ndim != 2 or mosaic.shape[0] < 2 or mosaic.shape[1] < 2:
        raise ValueError(f"expected a (H, W) mosaic with H, W >= 2, got {mosaic.shape}")
    height, width = mosaic.shape
    flip_rows, flip_cols = _FLIPS_TO_RGGB[phase]
    # The odd row/column goes at the *end*: the 2x2 phase at the origin stays as declared.
    canonical = mosaic[: height - height % 2, : width - width % 2]
    canonical = canonical[::-1 if flip_rows else 1, ::-1 if flip_cols else 1]
    return canonical, SensorFrame(phase, height, width, flip_rows, flip_cols)


def from_canonical(image: np.ndarray, frame: SensorFrame) -> np.ndarray:
    """Undo :func:`to_canonical` on a developed image.

    Args:
        image: (H', W', C) image aligned with the canonical mosaic.
        frame: the :class:`SensorFrame` from :func:`to_canonical`.
    Returns:
        (H, W, C) image in sensor orientation with the visible sensor size; a
        cropped trailing row/column is restored by repeating its neighbour.
    """
    even_h, even_w = frame.height - frame.height % 2, frame.width - frame.width % 2
    if image.ndim != 3 or image.shape[:2] != (even_h, even_w):
        raise ValueError(f"expected an image of shape ({even_h}, {even_w}, C), got {image.shape}")
    image = image[::-1 if frame.flip_rows else 1, ::-1 if frame.flip_cols else 1]
    pad = ((0, frame.height - even_h), (0, frame.width - even_w), (0, 0))
    return np.pad(image, pad, mode="edge") if any(p[1] for p in pad) else np.ascontiguousarray(image)


def apply_orientation(image: np.ndarray, flip: int) -> np.ndarray:
    """Turn a sensor-oriented image upright with a LibRaw flip code (``raw.sizes.flip``).

    Bits as in dcraw/LibRaw: 1 = flip columns, 2 = flip rows, 4 = transpose,
    with flips applied before the transpose (dcraw's ``flip_index``). So 3 =
    rotate 180 deg, 5 = rotate 90 deg counter-clockwise, 6 = rotate 90 deg clockwise.
    LibRaw maps TIFF Orientation o to ``int("50132467"[o & 7])``.

    Args:
        image: (H, W) or (H, W, C).
        flip: 0..7.
    Returns:
        The upright image, (W, H, ...) when ``flip & 4``.
    """
    if not 0 <= int(flip) <= 7:
        raise ValueError(f"flip must be a LibRaw flip code 0..7, got {flip}")
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an image of shape (H, W) or (H, W, C), got {image.shape}")
    if flip & 2:
        image = image[::-1]
    if flip & 1:
        image = image[:, ::-1]
    if flip & 4:
        image = image.swapaxes(0, 1)
    return np.ascontiguousarray(image)
