"""A synthetic ColorChecker DNG through a known camera, and its colour score after developing.

The 24 reference patches (see :mod:`hyperisp.raw.colorchecker`) are lit by a scene
illuminant, seen through a camera whose XYZ -> camera matrix differs between standard
illuminant A and D65 (so the DNG's ColorMatrix1/2 interpolation by colour temperature
matters), mosaicked, noised and written as a 12-bit DNG with a correct, missing or wrong
as-shot white. Developing it and comparing the patch centres with the reference in
CIEDE2000 (after an exposure match on the neutral row) scores the whole pipeline: white
balance, colour matrices, and any colour bias the demosaicking network adds, which white
balance gains amplify. Used by the colour tests and by ``hyperisp eval isp``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .camera_colour import D50_XYZ, bradford, xy_to_xyz
from .colorchecker import COLORCHECKER24_LAB_D50, NEUTRAL_ROW, colorchecker24_xyz_d50
from .colour_difference import ciede2000, lab_to_xyz, linear_srgb_to_lab_d50
from .dng import ILLUMINANT_D65, ILLUMINANT_STANDARD_A, write_dng

# XYZ -> camera under D65: Canon EOS 5D Mark II (Adobe DNG ColorMatrix2, as in dcraw's adobe_coeff).
CAMERA_D65 = np.array([[0.4716, 0.0603, -0.0830], [-0.7798, 1.5474, 0.2480], [-0.1496, 0.1937, 0.6651]])
# The same camera under illuminant A: a made-up but camera-like change (red more sensitive to
# long wavelengths, less cross-talk into blue), so using the D65 matrix under A is measurably wrong.
CAMERA_A = CAMERA_D65 @ np.array([[1.12, -0.06, 0.0], [0.02, 0.97, 0.03], [0.0, 0.08, 0.86]])
ILLUMINANT_XY = {"D65": (0.31271, 0.32902), "A": (0.44757, 0.40745)}
PATCH, GAP, ROWS, COLS = 28, 8, 4, 6
BLACK, WHITE = 128, 4095
AS_SHOT_CHOICES = ("correct", "white_xy", "forward", "missing", "wrong")


def camera_matrix(illuminant: str) -> np.ndarray:
    """(3, 3) XYZ -> camera RGB of the test camera under "D65" or "A"."""
    if illuminant not in ILLUMINANT_XY:
        raise ValueError(f"expected illuminant 'D65' or 'A', got {illuminant!r}")
    return CAMERA_D65 if illuminant == "D65" else CAMERA_A


def render_chart(illuminant: str, seed: int = 0, exposure: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(mosaic (H, W) uint16 RGGB, true camera neutral (3,) with G = 1) of the chart on a black-2 frame.

    ``exposure`` scales the light: 1 puts the white patch at ~80 % of full scale; 1/8 is
    3 stops under, where the darks are a few ADC steps above black and noise dominates.
    """
    white = xy_to_xyz(ILLUMINANT_XY[illuminant])
    matrix = camera_matrix(illuminant)
    xyz = colorchecker24_xyz_d50() @ bradford(D50_XYZ, white).T  # the patches under the scene light
    frame_xyz = lab_to_xyz(COLORCHECKER24_LAB_D50[23]) @ bradford(D50_XYZ, white).T
    cam = xyz @ matrix.T
    neutral = matrix @ white
    scale = exposure * 0.8 / max(cam.max(), neutral.max() * 0.9)  # nothing clips at exposure <= 1
    h, w = ROWS * (PATCH + GAP) + GAP, COLS * (PATCH + GAP) + GAP
    image = np.broadcast_to(matrix @ frame_xyz * scale, (h, w, 3)).copy()
    for i in range(24):
        y, x = GAP + (i // COLS) * (PATCH + GAP), GAP + (i % COLS) * (PATCH + GAP)
        image[y : y + PATCH, x : x + PATCH] = cam[i] * scale
    mosaic = np.empty((h, w))
    for (dy, dx), c in zip([(0, 0), (0, 1), (1, 0), (1, 1)], [0, 1, 1, 2]):
        mosaic[dy::2, dx::2] = image[dy::2, dx::2, c]
    rng = np.random.default_rng(seed)
    signal = mosaic * (WHITE - BLACK)
    noisy = signal + rng.standard_normal(signal.shape) * np.sqrt(0.1 * signal + 1.0)
    return np.clip(np.round(noisy + BLACK), 0, WHITE).astype(np.uint16), neutral / neutral[1]


def forward_matrix(illuminant: str) -> np.ndarray:
    """DNG ForwardMatrix of the test camera: white-balanced camera RGB -> XYZ D50 under ``illuminant``."""
    white = xy_to_xyz(ILLUMINANT_XY[illuminant])
    matrix = camera_matrix(illuminant)
    return bradford(white, D50_XYZ) @ np.linalg.inv(matrix) @ np.diag(matrix @ white)


def write_chart_dng(path: str | Path, illuminant: str, as_shot: str = "correct", exposure: float = 1.0,
                    seed: int = 0) -> Path:
    """Write the chart as a DNG with both colour matrices and the given as-shot white.

    ``as_shot``: "correct" (AsShotNeutral), "white_xy" (AsShotWhiteXY), "forward" (correct
    neutral plus ForwardMatrix1/2), "missing", or "wrong" (far too green for any real light).
    """
    if as_shot not in AS_SHOT_CHOICES:
        raise ValueError(f"expected as_shot in {AS_SHOT_CHOICES}, got {as_shot!r}")
    mosaic, neutral = render_chart(illuminant, seed, exposure)
    extra = {}
    if as_shot == "forward":  # the DNG spec's preferred path
        extra = {"forward_matrix_1": forward_matrix("A"), "forward_matrix_2": forward_matrix("D65")}
        as_shot = "correct"
    if as_shot == "correct":
        extra["as_shot_neutral"] = neutral
    elif as_shot == "white_xy":
        extra["as_shot_white_xy"] = ILLUMINANT_XY[illuminant]
    elif as_shot == "wrong":  # its gains would cast magenta: the reader must catch it
        extra["as_shot_neutral"] = neutral * np.array([0.6, 1.0, 0.55])
    return write_dng(path, mosaic, cfa_phase="RGGB", black_level=BLACK, white_level=WHITE,
                     color_matrix=CAMERA_A, calibration_illuminant=ILLUMINANT_STANDARD_A,
                     color_matrix_2=CAMERA_D65, calibration_illuminant_2=ILLUMINANT_D65, **extra)


def patch_lab(linear_rgb: np.ndarray) -> np.ndarray:
    """(24, 3) L*a*b* (D50) of the patch centres of a linear sRGB rendering (H, W, 3),
    exposure-matched on the neutral row."""
    inner = PATCH // 4
    means = []
    for i in range(24):
        y, x = GAP + (i // COLS) * (PATCH + GAP) + inner, GAP + (i % COLS) * (PATCH + GAP) + inner
        means.append(linear_rgb[y : y + PATCH - 2 * inner, x : x + PATCH - 2 * inner].reshape(-1, 3).mean(axis=0))
    means = np.array(means)
    reference_y = colorchecker24_xyz_d50()[NEUTRAL_ROW, 1]
    measured_y = lab_to_xyz(linear_srgb_to_lab_d50(means))[NEUTRAL_ROW, 1]
    return linear_srgb_to_lab_d50(means * (reference_y.sum() / measured_y.sum()))


def chart_errors(linear_rgb: np.ndarray) -> tuple[float, float]:
    """(mean CIEDE2000 over the 24 patches, mean chroma error of the neutral row) of a linear
    sRGB rendering (H, W, 3) of the chart. The second is the colour cast on greys, darks included."""
    lab = patch_lab(linear_rgb)
    delta_e = ciede2000(lab, COLORCHECKER24_LAB_D50)
    neutral_chroma = np.hypot(*(lab[NEUTRAL_ROW, 1:] - COLORCHECKER24_LAB_D50[NEUTRAL_ROW, 1:]).T)
    return float(delta_e.mean()), float(neutral_chroma.mean())
