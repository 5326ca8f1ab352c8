"""The 24-patch ColorChecker Classic reference, for colour-accuracy checks of the whole pipeline.

Values: colour-science's 'ColorChecker24 - After November 2014' (X-Rite 2015 data for
charts made since November 2014), which colour-science defines as these CIE L*a*b*
values under ICC D50 (``DATA_COLORCHECKER24_AFTER_NOV2014_CIE_LAB`` in
colour/characterisation/datasets/colour_checkers/chromaticity_coordinates.py) and
converts to xyY from them; keeping the Lab numbers avoids a rounding step.
Row by row: dark skin ... cyan, then the neutral row white 9.5 ... black 2.
"""
from __future__ import annotations

import numpy as np

from .camera_colour import D50_XYZ
from .colour_difference import lab_to_xyz

COLORCHECKER24_NAMES = (
    "dark skin", "light skin", "blue sky", "foliage", "blue flower", "bluish green",
    "orange", "purplish blue", "moderate red", "purple", "yellow green", "orange yellow",
    "blue", "green", "red", "yellow", "magenta", "cyan",
    "white 9.5", "neutral 8", "neutral 6.5", "neutral 5", "neutral 3.5", "black 2",
)
COLORCHECKER24_LAB_D50 = np.array([
    [37.54, 14.37, 14.92], [64.66, 19.27, 17.5], [49.32, -3.82, -22.54], [43.46, -12.74, 22.72],
    [54.94, 9.61, -24.79], [70.48, -32.26, -0.37], [62.73, 35.83, 56.5], [39.43, 10.75, -45.17],
    [50.57, 48.64, 16.67], [30.1, 22.54, -20.87], [71.77, -24.13, 58.19], [71.51, 18.24, 67.37],
    [28.37, 15.42, -49.8], [54.38, -39.72, 32.27], [42.43, 51.05, 28.62], [81.8, 2.67, 80.41],
    [50.63, 51.28, -14.12], [49.57, -29.71, -28.32], [95.19, -1.03, 2.93], [81.29, -0.57, 0.44],
    [66.89, -0.75, -0.06], [50.76, -0.13, 0.14], [35.63, -0.46, -0.48], [20.64, 0.07, -0.46],
])
NEUTRAL_ROW = slice(18, 24)


def colorchecker24_xyz_d50() -> np.ndarray:
    """(24, 3) CIE XYZ of the patches under D50 (white Y = 1)."""
    return lab_to_xyz(COLORCHECKER24_LAB_D50, D50_XYZ)
