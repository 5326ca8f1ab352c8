"""Output RGB colour spaces for developed photos: sRGB, Display P3, Adobe RGB (1998), ProPhoto RGB.

A wide-gamut space keeps the saturated colours that sRGB clips (flowers, neon, sunsets), for
editing a 16-bit file further, as a raw editor's export colour space does. Each space is its
primaries and white (CIE xy) and its transfer curve; :func:`linear_srgb_to` converts linear
sRGB into it (Bradford-adapted when the whites differ), :func:`encode` applies its curve, and
:func:`hyperisp.io.icc.rgb_icc_profile` writes the ICC profile that says so.

    >>> space = get_space("adobe-rgb")
    >>> encoded = encode(np.clip(linear_srgb @ linear_srgb_to(space).T, 0, 1), space)
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

# Rec. 709 / sRGB luma coefficients: the Y row of its RGB -> XYZ matrix. On linear values they
# give luminance; on encoded ones luma Y' (as video and JPEG's YCbCr use).
LUMA_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
D65 = (0.3127, 0.3290)
D50 = (0.3457, 0.3585)
# Bradford cone response (Lam 1985), the adaptation ICC profiles use between whites
_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


@dataclass(frozen=True)
class RGBSpace:
    """An RGB colour space: primaries and white as CIE 1931 xy, and its transfer curve."""

    name: str  # as the CLI takes it: "srgb", "display-p3", "adobe-rgb", "prophoto"
    description: str  # as colour-managed software shows it
    primaries: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]  # R, G, B
    white: tuple[float, float]
    gamma: Optional[float]  # encoded = linear ** (1 / gamma); None: the sRGB curve

    def linear(self) -> "RGBSpace":
        """The same primaries and white with no transfer curve (scene-linear output)."""
        return self if self.gamma == 1.0 else replace(self, description=f"Linear {self.description}", gamma=1.0)


SPACES: dict[str, RGBSpace] = {
    space.name: space
    for space in (
        RGBSpace("srgb", "sRGB", ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06)), D65, None),
        RGBSpace("display-p3", "Display P3", ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060)), D65, None),
        RGBSpace("adobe-rgb", "Adobe RGB (1998)", ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06)), D65, 563 / 256),
        # ROMM RGB (ISO 22028-2); pure 1.8 gamma as in the common "ProPhoto RGB" ICC profiles
        RGBSpace("prophoto", "ProPhoto RGB", ((0.7347, 0.2653), (0.1596, 0.8404), (0.0366, 0.0001)), D50, 1.8),
    )
}


def get_space(name: str | RGBSpace) -> RGBSpace:
    """A space of :data:`SPACES` by name (an :class:`RGBSpace` passes through)."""
    if isinstance(name, RGBSpace):
        return name
    try:
        return SPACES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown colour space {name!r}; expected one of {', '.join(SPACES)}") from None


def xy_to_xyz(xy: tuple[float, float]) -> np.ndarray:
    """(3,) XYZ with Y = 1 of a chromaticity."""
    x, y = xy
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def rgb_to_xyz(space: RGBSpace) -> np.ndarray:
    """(3, 3) linear RGB -> XYZ in the space's own white: (1, 1, 1) maps to the white with Y = 1."""
    primaries = np.stack([xy_to_xyz(xy) for xy in space.primaries], axis=1)  # columns: R, G, B at Y = 1
    scale = np.linalg.solve(primaries, xy_to_xyz(space.white))
    return primaries * scale


def bradford(source_white: tuple[float, float], target_white: tuple[float, float]) -> np.ndarray:
    """(3, 3) XYZ under ``source_white`` -> XYZ under ``target_white`` (Bradford von Kries)."""
    source, target = _BRADFORD @ xy_to_xyz(source_white), _BRADFORD @ xy_to_xyz(target_white)
    return np.linalg.inv(_BRADFORD) @ np.diag(target / source) @ _BRADFORD


def linear_srgb_to(space: RGBSpace | str) -> np.ndarray:
    """(3, 3) float32 linear sRGB -> the space's linear RGB; white stays (1, 1, 1) exactly."""
    space = get_space(space)
    srgb = SPACES["srgb"]
    matrix = np.linalg.inv(rgb_to_xyz(space)) @ bradford(srgb.white, space.white) @ rgb_to_xyz(srgb)
    matrix /= matrix.sum(axis=1, keepdims=True)  # round-off in the whites must not tint greys
    return matrix.astype(np.float32)


def encode(linear: np.ndarray, space: RGBSpace | str) -> np.ndarray:
    """Apply the space's transfer curve to linear values in [0, 1] (float32 numpy)."""
    from .colour import linear_to_srgb  # here: colour.py imports this module

    space = get_space(space)
    if space.gamma is None:
        return linear_to_srgb(linear)
    if space.gamma == 1.0:
        return linear
    return np.power(np.maximum(linear, np.float32(0.0)), np.float32(1.0 / space.gamma))
