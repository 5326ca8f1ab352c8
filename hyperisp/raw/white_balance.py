"""White balance that survives real files: plausibility of the as-shot neutral, robust auto estimate.

Files from some firmwares and converters store no as-shot neutral, store it as a
white chromaticity (DNG AsShotWhiteXY, handled by the reader), or store a wrong one.
:func:`choose_white_balance` therefore checks the as-shot white against the camera's
colour model (its colour temperature and distance from the Planckian locus) or, without
one, against the camera's daylight white, and falls back to :func:`estimate_white_balance`.

The automatic estimate works in the camera's linear RGB on the raw mosaic, before the
network: grey-edge (:func:`grey_edge_white_balance`) as a start, then a few rounds of a
grey-pixel search (the mean of the unclipped, not-too-dark pixels that the current
estimate makes near-neutral, with a shrinking tolerance), each time pulled onto the
camera's Planckian locus when its colour model is known (real lights are near it).
On the real raws in ../shared (a white muzzle, chart greys, a white wall under warm
lamps) this start and the plain mean beat shades-of-grey and brightness weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence, Union

import numpy as np

from .camera_colour import MAX_CCT, MIN_CCT, CameraColour, _uv, cct_duv, locus_xy, planckian_xy, uv_to_xy
from .colour import _MAX_GAIN, _MIN_GAIN, _camera_planes

if TYPE_CHECKING:
    from .reader import RawImage

WhiteBalanceMode = Union[str, Sequence[float]]
PLAUSIBLE_CCT = (2000.0, 15000.0)  # K: candle-ish tungsten to deep shade
PLAUSIBLE_DUV = 0.025  # fluorescent and LED lights reach ~0.01 off the locus
AUTO_CCT = (2000.0, 12000.0)
D55_XY = np.array([0.33242, 0.34743])  # CIE D55, 2 degree observer
AUTO_DUV = 0.008
_DAYLIGHT_RATIO = 3.0  # without a colour model: as-shot gains within 3x of the daylight gains
MAX_TINT_DUV = 0.05  # a user's white off the locus: beyond any real light, well inside the gamut


@dataclass(frozen=True)
class WhiteBalance:
    """The chosen white balance.

    Attributes:
        gains: (3,) float32 R, G, B gains with G = 1.
        reason: why, e.g. "as-shot" or "auto (as-shot white 25000 K, Duv +0.080 is implausible)".
        cct: the white's correlated colour temperature in K, when the camera's colour model is known.
    """

    gains: np.ndarray
    reason: str
    cct: float | None = None


def project_to_locus(neutral: np.ndarray, colour: CameraColour, cct_range=AUTO_CCT, max_duv=AUTO_DUV) -> np.ndarray:
    """(3,) camera neutral moved to within ``max_duv`` of the Planckian locus and into ``cct_range``; G = 1."""
    xy, _ = colour.neutral_to_xy(neutral)
    cct, duv = cct_duv(xy)
    if cct_range[0] <= cct <= cct_range[1] and abs(duv) <= max_duv:
        return neutral / neutral[1]
    on_locus = _uv(planckian_xy(float(np.clip(cct, *cct_range))))
    offset = _uv(xy) - _uv(planckian_xy(cct))
    length = float(np.hypot(*offset))
    if length > max_duv:
        offset *= max_duv / length
    return colour.xy_to_neutral(uv_to_xy(on_locus + offset))


def grey_edge_white_balance(image: np.ndarray, p: float = 2.0, max_samples: int = 1 << 18) -> np.ndarray:
    """Grey-edge white balance (van de Weijer, Gevers & Gijsenij 2007): the mean edge is grey.

    Args:
        image: (H, W) canonical RGGB mosaic or (H, W, 3) camera RGB, in [0, 1].
        p: Minkowski norm of the gradient magnitudes (2 is their recommended 1st-order setting).
        max_samples: 2x2 blocks (or pixels) used at most, a regular subsample: 0.26 M give the
            gains of all 3 M blocks of a 12 MP raw to 1e-4, 18x faster (1.2 s -> 0.07 s).
    Returns:
        (3,) float64 gains with G = 1 (ones when the image has no unclipped edges).

    Unlike grey world it ignores large flat coloured areas (grass, sky, walls), and
    unlike a bright-pixel method it is not pulled by bright self-luminous objects (lamps).
    """
    image = np.asarray(image)
    blocks = (image.shape[0] // 2, image.shape[1] // 2) if image.ndim == 2 else image.shape[:2]
    step = max(1, int(np.sqrt(blocks[0] * blocks[1] / max_samples)))
    if image.ndim == 2:  # subsample the 2x2 blocks first: a 12 MP mosaic is never copied whole
        image = image[: blocks[0] * 2, : blocks[1] * 2]
        s = 2 * step
        planes = np.stack([image[0::s, 0::s], 0.5 * (image[0::s, 1::s] + image[1::s, 0::s]), image[1::s, 1::s]], -1)
    else:
        planes = image[::step, ::step]
    planes = planes.astype(np.float32)
    if min(planes.shape[:2]) < 2:
        return np.ones(3)
    unclipped = planes.max(axis=-1) < 0.98
    mask = unclipped[:-1, :-1] & unclipped[1:, :-1] & unclipped[:-1, 1:]  # both ends of each difference
    dy, dx = np.diff(planes, axis=0)[:, :-1], np.diff(planes, axis=1)[:-1]
    magnitude = np.sqrt(dy * dy + dx * dx)[mask].astype(np.float64)
    if len(magnitude) < 16:
        return np.ones(3)
    norms = np.mean(magnitude**p, axis=0) ** (1 / p)
    return norms[1] / norms if np.all(norms > 0) else np.ones(3)


def estimate_white_balance(image: np.ndarray, colour: CameraColour | None = None, rounds: int = 4,
                           max_samples: int = 1 << 18) -> np.ndarray:
    """Automatic white-balance gains from linear camera RGB.

    Args:
        image: (H, W) canonical RGGB mosaic or (H, W, 3) camera RGB, in [0, 1] (1 = clipped).
        colour: the camera's colour model; with it the estimate stays near the Planckian locus.
        rounds: grey-pixel refinement rounds.
        max_samples: 2x2 blocks used at most (a regular subsample; ~0.25 M is plenty for 3 numbers).
    Returns:
        (3,) float32 gains with G = 1, within [0.2, 8].
    """
    gains = np.clip(grey_edge_white_balance(image), _MIN_GAIN, _MAX_GAIN)
    if colour is not None:
        gains = 1 / project_to_locus(1 / gains, colour)
    rgb = _camera_planes(image, max_samples)
    peak = rgb.max(axis=1)
    keep = (peak <= 0.98) & (peak >= 0.05 * max(float(np.percentile(peak, 99)), 1e-6)) & np.all(rgb > 0, axis=1)
    rgb = rgb[keep]
    if len(rgb) < 64:
        return np.clip(gains, _MIN_GAIN, _MAX_GAIN).astype(np.float32)
    log_rgb = np.log(rgb)
    for tolerance in np.linspace(0.3, 0.08, rounds):
        balanced = log_rgb + np.log(gains)
        chroma = balanced - balanced[:, 1:2]
        grey = np.abs(chroma[:, [0, 2]]).max(axis=1) < tolerance
        if grey.sum() < max(32, 0.002 * len(rgb)):
            break  # too few near-grey pixels to trust: keep the current estimate
        # Plain mean: weighting by brightness would let bright lamps and their glow decide.
        neutral = rgb[grey].mean(axis=0)
        if colour is not None:
            neutral = project_to_locus(neutral, colour)
        gains = neutral[1] / neutral
    return np.clip(gains, _MIN_GAIN, _MAX_GAIN).astype(np.float32)


def implausible_as_shot(gains: np.ndarray, colour: CameraColour | None, daylight: np.ndarray | None) -> str | None:
    """Why the as-shot white balance ``gains`` cannot be right, or None when it is plausible."""
    if colour is not None:
        xy, _ = colour.neutral_to_xy(1 / np.asarray(gains, dtype=np.float64))
        cct, duv = cct_duv(xy)
        if not PLAUSIBLE_CCT[0] <= cct <= PLAUSIBLE_CCT[1] or abs(duv) > PLAUSIBLE_DUV:
            return f"as-shot white {cct:.0f} K, Duv {duv:+.3f} is implausible"
        return None
    if daylight is not None:
        ratio = np.asarray(gains, dtype=np.float64) / np.asarray(daylight, dtype=np.float64)
        if np.any(ratio > _DAYLIGHT_RATIO) or np.any(ratio < 1 / _DAYLIGHT_RATIO):
            return "as-shot white is far from the camera's daylight white"
    return None


def parse_temperature(mode: str) -> tuple[float, float] | None:
    """A white balance given as a colour temperature: "5600K" or "5600K,+0.003" (with a Duv).

    Returns:
        (temperature in K, Duv), or None when ``mode`` is not a temperature (no trailing K).
    Raises:
        ValueError: a temperature outside the locus' 1667-25000 K or a Duv beyond +-0.05.
    """
    head, _, tail = mode.strip().lower().partition(",")
    if not head.endswith("k"):
        return None
    try:
        kelvin, duv = float(head[:-1]), float(tail) if tail else 0.0
    except ValueError:
        kelvin = duv = float("nan")
    if not (MIN_CCT <= kelvin <= MAX_CCT and abs(duv) <= MAX_TINT_DUV):
        raise ValueError(f"white balance {mode!r}: expected a temperature from {MIN_CCT:.0f}K to {MAX_CCT:.0f}K, "
                         f"optionally with a Duv (tint) within +-{MAX_TINT_DUV}, e.g. 3200K or 5600K,-0.003")
    return kelvin, duv


def _with_cct(gains: np.ndarray, reason: str, colour: CameraColour | None) -> WhiteBalance:
    gains = np.asarray(gains, dtype=np.float32)
    cct = colour.neutral_to_xy(1 / gains.astype(np.float64))[1] if colour is not None else None
    return WhiteBalance(gains, reason, cct)


def choose_white_balance(raw: "RawImage", mode: WhiteBalanceMode = "camera") -> WhiteBalance:
    """Pick white-balance gains for a raw image.

    Args:
        raw: a :class:`~hyperisp.raw.reader.RawImage`.
        mode: "camera" (as shot; auto when the file has none or an implausible one),
            "auto", "daylight" (the camera's daylight gains; auto when unknown), a colour
            temperature "5600K" or "5600K,+0.003" with a Duv (:func:`parse_temperature`;
            needs the camera's colour matrix), or 3 R, G, B gains.
    Returns:
        a :class:`WhiteBalance` (gains, reason, CCT).
    """
    colour = getattr(raw, "colour", None)
    auto = lambda why: _with_cct(estimate_white_balance(raw.mosaic, colour), why, colour)  # noqa: E731
    if isinstance(mode, str):
        given, mode = mode, mode.lower()
        if mode == "camera":
            if raw.as_shot_wb is None:
                return auto("auto (file has no as-shot white balance)")
            problem = implausible_as_shot(raw.as_shot_wb, colour, raw.daylight_wb)
            if problem:
                return auto(f"auto ({problem})")
            return _with_cct(raw.as_shot_wb, "as-shot", colour)
        if mode == "daylight":
            if raw.daylight_wb is not None:
                return _with_cct(raw.daylight_wb, "daylight", colour)
            if colour is not None:  # D55, the usual "daylight" preset
                neutral = colour.xy_to_neutral(D55_XY)
                return _with_cct(neutral[1] / neutral, "daylight (D55 through the colour matrix)", colour)
            return auto("auto (file has no daylight white balance)")
        if mode == "auto":
            return auto("auto")
        temperature = parse_temperature(mode)
        if temperature is None:
            raise ValueError(f"white balance must be 'camera', 'auto', 'daylight', a temperature such as 5600K "
                             f"or 3 gains, got {given!r}")
        if colour is None:
            raise ValueError(f"white balance {given}: the file has no colour matrix to place that light in camera RGB")
        neutral = colour.xy_to_neutral(locus_xy(*temperature))
        duv = temperature[1]
        return _with_cct(neutral[1] / neutral, "user temperature" + (f", Duv {duv:+.4f}" if duv else ""), colour)
    gains = np.asarray(mode, dtype=np.float64).ravel()
    if gains.shape != (3,) or not np.all(np.isfinite(gains)) or not np.all(gains > 0):
        raise ValueError(f"white balance gains must be 3 positive numbers (R, G, B), got {list(mode)}")
    return _with_cct(gains / gains[1], "user", colour)


__all__ = ["WhiteBalance", "choose_white_balance", "estimate_white_balance", "grey_edge_white_balance",
           "implausible_as_shot", "parse_temperature", "project_to_locus"]
