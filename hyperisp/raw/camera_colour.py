"""A camera's colour model, the DNG way: XYZ <-> camera RGB as a function of the scene white.

Follows the DNG specification 1.4, chapter 6 "Mapping Camera Color Space to CIE XYZ
Space": ColorMatrix1/2 (XYZ -> camera) and ForwardMatrix1/2 (white-balanced camera ->
XYZ D50) are interpolated linearly in *inverse* correlated colour temperature between
the two calibration illuminants; the white's chromaticity and its temperature are found
together by iteration (the matrix depends on the temperature, which depends on the white).
Other raw formats get a one-matrix model from LibRaw's D65 ``cam_xyz``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .colour import SRGB_TO_XYZ

D50_XYZ = np.array([0.9642, 1.0, 0.8249])  # ICC PCS white
D65_XYZ = np.array([0.95047, 1.0, 1.08883])
# Bradford cone response matrix (Lam 1985), the chromatic adaptation DNG and ICC use.
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
XYZ_TO_SRGB = np.linalg.inv(SRGB_TO_XYZ)

# EXIF LightSource codes -> colour temperature (K), as in Adobe's DNG SDK (dng_camera_profile).
ILLUMINANT_TEMPERATURE = {
    1: 5500, 2: 4150, 3: 2850, 4: 5500, 9: 5500, 10: 6500, 11: 7500, 12: 6430, 13: 5000, 14: 4150,
    15: 3450, 16: 2940, 17: 2856, 18: 4874, 19: 6774, 20: 5503, 21: 6504, 22: 7504, 23: 5003, 24: 3200,
}
MIN_CCT, MAX_CCT = 1667.0, 25000.0  # range of the Planckian locus approximation below


def xy_to_xyz(xy) -> np.ndarray:
    """(2,) chromaticity -> (3,) XYZ with Y = 1."""
    x, y = float(xy[0]), float(xy[1])
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def xyz_to_xy(xyz) -> np.ndarray:
    xyz = np.asarray(xyz, dtype=np.float64)
    return xyz[:2] / xyz.sum()


def bradford(source_xyz, target_xyz) -> np.ndarray:
    """(3, 3) chromatic adaptation of XYZ from white ``source_xyz`` to white ``target_xyz``."""
    scale = (BRADFORD @ np.asarray(target_xyz, float)) / (BRADFORD @ np.asarray(source_xyz, float))
    return np.linalg.inv(BRADFORD) @ np.diag(scale) @ BRADFORD


def planckian_xy(temperature: float | np.ndarray) -> np.ndarray:
    """xy of a black body at ``temperature`` K (Kim et al. 2002 cubic fit, 1667..25000 K); (..., 2)."""
    t = np.clip(np.asarray(temperature, dtype=np.float64), MIN_CCT, MAX_CCT)
    x = np.where(t <= 4000, -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910,
                 -3.0258469e9 / t**3 + 2.1070379e6 / t**2 + 0.2226347e3 / t + 0.240390)
    y = np.where(t <= 2222, -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683,
                 np.where(t <= 4000, -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867,
                          3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483))
    return np.stack([x, y], axis=-1)


def _uv(xy: np.ndarray) -> np.ndarray:
    """CIE 1960 UCS (u, v) of xy, (..., 2)."""
    x, y = xy[..., 0], xy[..., 1]
    d = -2 * x + 12 * y + 3
    return np.stack([4 * x / d, 6 * y / d], axis=-1)


def uv_to_xy(uv: np.ndarray) -> np.ndarray:
    """CIE 1960 UCS (u, v) -> xy, (2,)."""
    u, v = uv
    d = 2 * u - 8 * v + 4
    return np.array([3 * u / d, 2 * v / d])


def locus_xy(temperature: float, duv: float = 0.0) -> np.ndarray:
    """(2,) xy of the light with CCT ``temperature`` K lying ``duv`` off the Planckian locus.

    The inverse of :func:`cct_duv`: the locus point moved ``duv`` along its normal in CIE 1960
    uv (> 0 above the locus, greenish; < 0 below, magenta), what raw editors call tint.
    """
    mired = 1e6 / float(temperature)
    tangent = _uv(planckian_xy(1e6 / (mired + 0.5))) - _uv(planckian_xy(1e6 / (mired - 0.5)))  # as cct_duv's
    normal = np.array([-tangent[1], tangent[0]]) / np.hypot(*tangent)
    return uv_to_xy(_uv(planckian_xy(float(temperature))) + duv * normal)


_LOCUS_MIREDS = np.linspace(1e6 / MAX_CCT, 1e6 / MIN_CCT, 2000)
_LOCUS_UV = _uv(planckian_xy(1e6 / _LOCUS_MIREDS))


def cct_duv(xy) -> tuple[float, float]:
    """Correlated colour temperature (K) and Duv of a chromaticity.

    The nearest point of the Planckian locus in CIE 1960 uv, the definition that
    Robertson's method approximates, found on a dense mired grid (0.1 % steps).
    Duv > 0 is above the locus (greenish), < 0 below (magenta/pinkish).
    """
    uv = _uv(np.asarray(xy, dtype=np.float64))
    dist = np.hypot(*(_LOCUS_UV - uv).T)
    i = int(np.argmin(dist))
    j = min(max(i, 1), len(_LOCUS_UV) - 2)
    tangent = _LOCUS_UV[j + 1] - _LOCUS_UV[j - 1]
    offset = uv - _LOCUS_UV[i]
    sign = 1.0 if tangent[0] * offset[1] - tangent[1] * offset[0] > 0 else -1.0  # above the curve: +
    return float(1e6 / _LOCUS_MIREDS[i]), sign * float(dist[i])


@dataclass(frozen=True)
class CameraColour:
    """XYZ <-> camera RGB of one camera, from DNG tags or LibRaw.

    Attributes:
        colour_matrices: one or two (3, 3) XYZ -> camera matrices (ColorMatrix, with
            CameraCalibration and AnalogBalance already multiplied in).
        temperatures: the calibration illuminant's temperature (K) of each matrix.
        forward_matrices: (3, 3) white-balanced camera -> XYZ D50 per matrix, or None.
        analog_balance_calibration: (3, 3) AnalogBalance @ CameraCalibration (identity if absent).
    """

    colour_matrices: tuple
    temperatures: tuple
    forward_matrices: tuple | None = None
    analog_balance_calibration: np.ndarray | None = None

    def _weight(self, cct: float) -> float:
        """Weight of matrix 1 (0..1), linear in 1 / CCT between the two calibration temperatures."""
        if len(self.temperatures) < 2 or self.temperatures[0] == self.temperatures[1]:
            return 1.0
        t1, t2 = self.temperatures
        w = (1 / cct - 1 / t2) / (1 / t1 - 1 / t2)
        return float(np.clip(w, 0.0, 1.0))

    def _interpolate(self, matrices: tuple, cct: float) -> np.ndarray:
        if len(matrices) == 1:
            return np.asarray(matrices[0], dtype=np.float64)
        w = self._weight(cct)
        return w * np.asarray(matrices[0], float) + (1 - w) * np.asarray(matrices[1], float)

    def colour_matrix(self, cct: float) -> np.ndarray:
        """(3, 3) XYZ -> camera RGB for a scene white of temperature ``cct``."""
        return self._interpolate(self.colour_matrices, cct)

    def neutral_to_xy(self, neutral) -> tuple[np.ndarray, float]:
        """Camera RGB of a neutral -> (white xy, its CCT), iterating white <-> temperature (DNG spec)."""
        neutral = np.asarray(neutral, dtype=np.float64)
        xy = xyz_to_xy(D50_XYZ)
        for _ in range(30):
            cct = cct_duv(xy)[0]
            xyz = np.linalg.solve(self.colour_matrix(cct), neutral)
            new = xyz_to_xy(xyz) if xyz.sum() > 0 and np.all(np.isfinite(xyz)) else xyz_to_xy(D50_XYZ)
            if np.abs(new - xy).max() < 1e-7:
                xy = new
                break
            xy = new
        return xy, cct_duv(xy)[0]

    def xy_to_neutral(self, xy) -> np.ndarray:
        """White chromaticity -> camera RGB of a neutral under it, G = 1 (for AsShotWhiteXY)."""
        neutral = self.colour_matrix(cct_duv(xy)[0]) @ xy_to_xyz(xy)
        return neutral / neutral[1]

    def camera_to_srgb(self, neutral) -> tuple[np.ndarray, float]:
        """(3, 3) white-balanced camera RGB -> linear sRGB (D65) for a scene white, and the white's CCT.

        Args:
            neutral: (3,) camera RGB of a neutral under the scene light (1 / the WB gains).
        Returns:
            ``(matrix, cct)``; the matrix maps camera (1, 1, 1) to sRGB (1, 1, 1), so
            the white balance alone sets the white and the clip in :func:`finish` keeps working.
        """
        neutral = np.asarray(neutral, dtype=np.float64)
        xy, cct = self.neutral_to_xy(neutral)
        if self.forward_matrices is not None:
            # ForwardMatrix path: white-balanced camera -> XYZ D50, then Bradford D50 -> D65.
            abcc = self.analog_balance_calibration if self.analog_balance_calibration is not None else np.eye(3)
            reference = np.linalg.solve(abcc, neutral)
            cam_to_xyz = self._interpolate(self.forward_matrices, cct) @ np.diag(1 / reference) \
                @ np.linalg.inv(abcc) @ np.diag(neutral)
            to_xyz_d65 = bradford(D50_XYZ, D65_XYZ) @ cam_to_xyz
        else:
            # ColorMatrix path: invert it, then adapt the scene white to D65.
            to_xyz_d65 = bradford(xy_to_xyz(xy), D65_XYZ) @ np.linalg.inv(self.colour_matrix(cct)) @ np.diag(neutral)
        matrix = XYZ_TO_SRGB @ to_xyz_d65
        white = matrix @ np.ones(3)
        return (matrix / white[:, None]).astype(np.float32), cct


# DNG tag codes of the colour model (DNG specification 1.4, chapter 4).
TAG_COLOR_MATRIX = (50721, 50722)
TAG_CAMERA_CALIBRATION = (50723, 50724)
TAG_ANALOG_BALANCE, TAG_AS_SHOT_NEUTRAL, TAG_AS_SHOT_WHITE_XY = 50727, 50728, 50729
TAG_CALIBRATION_ILLUMINANT = (50778, 50779)
TAG_FORWARD_MATRIX = (50964, 50965)
TAG_BASELINE_EXPOSURE = 50730
DNG_COLOUR_TAGS = {*TAG_COLOR_MATRIX, *TAG_CAMERA_CALIBRATION, TAG_ANALOG_BALANCE, TAG_AS_SHOT_NEUTRAL,
                   TAG_AS_SHOT_WHITE_XY, *TAG_CALIBRATION_ILLUMINANT, *TAG_FORWARD_MATRIX, TAG_BASELINE_EXPOSURE}


def _matrix(tags: dict, code: int) -> np.ndarray | None:
    value = tags.get(code)
    if not isinstance(value, tuple) or len(value) != 9:
        return None
    m = np.asarray(value, dtype=np.float64).reshape(3, 3)
    return m if np.all(np.isfinite(m)) and abs(np.linalg.det(m)) > 1e-9 else None


def camera_colour_from_dng_tags(tags: dict) -> CameraColour | None:
    """The colour model of a 3-colour DNG from its IFD0 tags; None without a usable ColorMatrix1."""
    matrices, temps, forwards, calibrations = [], [], [], []
    balance = tags.get(TAG_ANALOG_BALANCE)
    analog = np.diag(balance) if isinstance(balance, tuple) and len(balance) == 3 and min(balance) > 0 else np.eye(3)
    for k in range(2):
        cm = _matrix(tags, TAG_COLOR_MATRIX[k])
        if cm is None:
            break
        code = tags.get(TAG_CALIBRATION_ILLUMINANT[k], (21 if k else 17,))  # DNG default: unknown
        temps.append(float(ILLUMINANT_TEMPERATURE.get(int(code[0]) if isinstance(code, tuple) else 0, 5000)))
        cc = _matrix(tags, TAG_CAMERA_CALIBRATION[k])
        calibrations.append(analog @ (cc if cc is not None else np.eye(3)))
        matrices.append(calibrations[-1] @ cm)
        forwards.append(_matrix(tags, TAG_FORWARD_MATRIX[k]))
    if not matrices:
        return None
    use_forward = all(f is not None for f in forwards)
    return CameraColour(tuple(matrices), tuple(temps), tuple(forwards) if use_forward else None,
                        calibrations[0])


def as_shot_neutral_from_dng_tags(tags: dict, colour: CameraColour | None) -> np.ndarray | None:
    """(3,) camera neutral, G = 1, from AsShotNeutral or else AsShotWhiteXY; None when neither is usable."""
    value = tags.get(TAG_AS_SHOT_NEUTRAL)
    if isinstance(value, tuple) and len(value) == 3 and min(value) > 0:
        return np.asarray(value, dtype=np.float64) / value[1]
    value = tags.get(TAG_AS_SHOT_WHITE_XY)
    if colour is not None and isinstance(value, tuple) and len(value) == 2 and 0 < value[1] and 0 < value[0]:
        return colour.xy_to_neutral(np.asarray(value, dtype=np.float64))
    return None
