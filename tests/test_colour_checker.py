"""Colour accuracy end to end: a ColorChecker rendered through a known camera into a DNG, then `develop`.

The 24 reference patches (colour-science 'ColorChecker24 - After November 2014', D50)
are lit by a scene illuminant, seen through a camera whose XYZ -> camera matrix differs
between standard illuminant A and D65 (so the DNG's ColorMatrix1/2 interpolation by
colour temperature matters), mosaicked, noised and written as a 12-bit DNG with a
correct, missing or wrong as-shot white. The real pipeline (shipped `isp` model, white
balance choice, colour matrices, tone) develops it; patch centres are compared with the
reference in CIEDE2000 after an exposure match on the neutral row. Run with -s for the numbers.
"""
from __future__ import annotations

import numpy as np
import pytest

import hyperisp
from hyperisp.raw import srgb_to_linear
from hyperisp.raw.camera_colour import D50_XYZ, D65_XYZ, bradford, xy_to_xyz
from hyperisp.raw.colorchecker import COLORCHECKER24_LAB_D50, NEUTRAL_ROW, colorchecker24_xyz_d50
from hyperisp.raw.colour_difference import ciede2000, lab_to_xyz, linear_srgb_to_lab_d50, xyz_to_lab
from hyperisp.raw.dng import ILLUMINANT_D65, ILLUMINANT_STANDARD_A, write_dng

# XYZ -> camera under D65: Canon EOS 5D Mark II (Adobe DNG ColorMatrix2, as in dcraw's adobe_coeff).
CAMERA_D65 = np.array([[0.4716, 0.0603, -0.0830], [-0.7798, 1.5474, 0.2480], [-0.1496, 0.1937, 0.6651]])
# The same camera under illuminant A: a made-up but camera-like change (red more sensitive to
# long wavelengths, less cross-talk into blue), so using the D65 matrix under A is measurably wrong.
CAMERA_A = CAMERA_D65 @ np.array([[1.12, -0.06, 0.0], [0.02, 0.97, 0.03], [0.0, 0.08, 0.86]])
XY = {"D65": (0.31271, 0.32902), "A": (0.44757, 0.40745)}
PATCH, GAP, ROWS, COLS = 28, 8, 4, 6
BLACK, WHITE = 128, 4095


def render_chart(illuminant: str, seed: int = 0):
    """(mosaic uint16, true camera neutral) of the chart on a black-2 frame under ``illuminant``."""
    white = xy_to_xyz(XY[illuminant])
    cam_matrix = CAMERA_D65 if illuminant == "D65" else CAMERA_A
    xyz = colorchecker24_xyz_d50() @ bradford(D50_XYZ, white).T  # the patches under the scene light
    frame_xyz = lab_to_xyz(COLORCHECKER24_LAB_D50[23]) @ bradford(D50_XYZ, white).T
    cam = xyz @ cam_matrix.T
    neutral = cam_matrix @ white
    scale = 0.8 / max(cam.max(), neutral.max() * 0.9)  # white patch ~80 % of full scale, nothing clips
    h, w = ROWS * (PATCH + GAP) + GAP, COLS * (PATCH + GAP) + GAP
    image = np.broadcast_to(cam_matrix @ frame_xyz * scale, (h, w, 3)).copy()
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
    white = xy_to_xyz(XY[illuminant])
    matrix = CAMERA_D65 if illuminant == "D65" else CAMERA_A
    return bradford(white, D50_XYZ) @ np.linalg.inv(matrix) @ np.diag(matrix @ white)


def write_chart_dng(path, illuminant: str, as_shot: str):
    mosaic, neutral = render_chart(illuminant)
    extra = {}
    if as_shot == "forward":  # correct neutral, and ForwardMatrix1/2 too (the DNG spec's preferred path)
        extra = {"forward_matrix_1": forward_matrix("A"), "forward_matrix_2": forward_matrix("D65")}
        as_shot = "correct"
    if as_shot == "correct":
        extra["as_shot_neutral"] = neutral
    elif as_shot == "white_xy":
        extra["as_shot_white_xy"] = XY[illuminant]
    elif as_shot == "wrong":  # far too green for any real light (its gains would cast magenta): must be caught
        extra["as_shot_neutral"] = neutral * np.array([0.6, 1.0, 0.55])
    return write_dng(path, mosaic, cfa_phase="RGGB", black_level=BLACK, white_level=WHITE,
                     color_matrix=CAMERA_A, calibration_illuminant=ILLUMINANT_STANDARD_A,
                     color_matrix_2=CAMERA_D65, calibration_illuminant_2=ILLUMINANT_D65, **extra)


def patch_lab(linear_rgb: np.ndarray) -> np.ndarray:
    """(24, 3) L*a*b* (D50) of the patch centres of a linear sRGB rendering, exposure-matched on the neutral row."""
    inner = PATCH // 4
    means = np.array([
        linear_rgb[GAP + (i // COLS) * (PATCH + GAP) + inner : GAP + (i // COLS) * (PATCH + GAP) + PATCH - inner,
                   GAP + (i % COLS) * (PATCH + GAP) + inner : GAP + (i % COLS) * (PATCH + GAP) + PATCH - inner]
        .reshape(-1, 3).mean(axis=0) for i in range(24)])
    lab = linear_srgb_to_lab_d50(means)
    reference_y = colorchecker24_xyz_d50()[NEUTRAL_ROW, 1]
    measured_y = lab_to_xyz(lab)[NEUTRAL_ROW, 1]
    return linear_srgb_to_lab_d50(means * (reference_y.sum() / measured_y.sum()))


def chart_errors(rgb: np.ndarray, linear: bool) -> tuple[float, float]:
    lab = patch_lab(rgb if linear else srgb_to_linear(rgb))
    delta_e = ciede2000(lab, COLORCHECKER24_LAB_D50)
    neutral_chroma = np.hypot(*(lab[NEUTRAL_ROW, 1:] - COLORCHECKER24_LAB_D50[NEUTRAL_ROW, 1:]).T)
    return float(delta_e.mean()), float(neutral_chroma.mean())


CASES = [  # (illuminant, as-shot metadata, wb mode, expected reason prefix, mean dE2000 bar)
    ("D65", "correct", "camera", "as-shot", 3.0),
    ("A", "correct", "camera", "as-shot", 3.0),
    ("D65", "white_xy", "camera", "as-shot", 3.0),
    ("A", "forward", "camera", "as-shot", 3.0),
    ("D65", "missing", "camera", "auto (file has no", 4.0),
    ("D65", "wrong", "camera", "auto (as-shot white", 4.0),
    ("D65", "wrong", "auto", "auto", 4.0),
    ("A", "missing", "camera", "auto (file has no", 4.0),
]


@pytest.mark.parametrize("illuminant, as_shot, wb, reason, bar", CASES)
def test_colorchecker_delta_e_after_develop(tmp_path, illuminant, as_shot, wb, reason, bar):
    path = write_chart_dng(tmp_path / "chart.dng", illuminant, as_shot)
    raw = hyperisp.read_raw(path)
    for linear in (True, False):
        developed = hyperisp.develop_raw(raw, device="cpu", wb=wb, linear=linear)
        mean_de, neutral_chroma = chart_errors(developed.rgb, linear)
        print(f"\n{illuminant:>3} as-shot {as_shot:8} wb {wb:6} {'linear' if linear else 'default'}: "
              f"mean dE2000 {mean_de:.2f}, neutral-row chroma error {neutral_chroma:.2f}, "
              f"{developed.white_balance_source}, {developed.white_balance_cct:.0f} K")
        assert developed.white_balance_source.startswith(reason)
        assert mean_de <= bar
        assert neutral_chroma <= 2.0


def test_wrong_colour_matrix_fails_the_bar(tmp_path):
    """The check can fail: developing the illuminant-A chart with only the D65 matrix misses the bar."""
    mosaic, neutral = render_chart("A")
    path = write_dng(tmp_path / "d65_only.dng", mosaic, black_level=BLACK, white_level=WHITE,
                     color_matrix=CAMERA_D65, calibration_illuminant=ILLUMINANT_D65, as_shot_neutral=neutral)
    developed = hyperisp.develop_raw(hyperisp.read_raw(path), device="cpu", linear=True)
    assert chart_errors(developed.rgb, True)[0] > 3.0


SHARMA_PAIRS = [  # Sharma, Wu & Dalal (2005), table 1: pairs 1, 7, 9 (hue wrap), 13, 17, 25, 34
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.49, -0.001), (50.0, -2.49, 0.0009), 7.1792),
    ((50.0, -0.001, 2.49), (50.0, 0.0009, -2.49), 4.8045),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((2.0776, 0.0795, -1.135), (0.9033, -0.0636, -0.5514), 0.9082),
]


def test_ciede2000_matches_sharma_test_data():
    lab1 = np.array([p[0] for p in SHARMA_PAIRS])
    lab2 = np.array([p[1] for p in SHARMA_PAIRS])
    expected = np.array([p[2] for p in SHARMA_PAIRS])
    np.testing.assert_allclose(ciede2000(lab1, lab2), expected, atol=1e-4)
    np.testing.assert_allclose(ciede2000(lab2, lab1), expected, atol=1e-4)  # symmetric
    assert ciede2000(lab1, lab1).max() == 0


def test_lab_round_trip_and_reference_whites():
    np.testing.assert_allclose(xyz_to_lab(D50_XYZ), [100, 0, 0], atol=1e-9)
    np.testing.assert_allclose(linear_srgb_to_lab_d50(np.ones(3)), [100, 0, 0], atol=0.05)  # D65 white -> D50 white
    lab = np.array([[50.0, 20.0, -30.0], [5.0, 1.0, 1.0]])
    np.testing.assert_allclose(xyz_to_lab(lab_to_xyz(lab)), lab, atol=1e-9)
    # colour-science's xyY of 'dark skin' after Nov 2014 is derived from these Lab values.
    assert xyz_to_lab(D65_XYZ, D65_XYZ)[0] == pytest.approx(100)
