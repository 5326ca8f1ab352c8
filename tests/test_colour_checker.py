"""Colour accuracy end to end: a ColorChecker rendered through a known camera into a DNG
(:mod:`hyperisp.raw.chart_dng`), then `develop` with the real pipeline (shipped `isp` model,
white balance choice, colour matrices, tone). Run with -s for the numbers.
"""
from __future__ import annotations

import numpy as np
import torch
import pytest

import hyperisp
from hyperisp.raw import srgb_to_linear
from hyperisp.raw import chart_dng
from hyperisp.raw.camera_colour import D50_XYZ, D65_XYZ
from hyperisp.raw.chart_dng import BLACK, CAMERA_D65, WHITE, render_chart, write_chart_dng
from hyperisp.raw.colour_difference import ciede2000, lab_to_xyz, linear_srgb_to_lab_d50, xyz_to_lab
from hyperisp.raw.dng import ILLUMINANT_D65, write_dng



def chart_errors(rgb: np.ndarray, linear: bool) -> tuple[float, float]:
    return chart_dng.chart_errors(rgb if linear else srgb_to_linear(rgb))


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


def test_eval_colour_catches_a_dark_red_offset():
    """`hyperisp eval isp` develops the charts: a network adding a small red offset (as a badly
    trained one did) shows as a neutral cast far above bilinear's, worst in the pushed darks."""
    from hyperisp.evaluate_colour import evaluate_colour
    from hyperisp.models import create_model

    biased = create_model("isp_small").eval()
    offset = torch.tensor([0.003, 0.0, 0.0]).view(1, 3, 1, 1)
    biased.register_forward_hook(lambda module, inputs, output: output + offset)
    rows = evaluate_colour(biased, "biased", charts=(("A", 1.0), ("A", 0.125)))
    chroma = {(r["method"], r["level"]): r["neutral_chroma"] for r in rows}
    assert set(chroma) == {(m, c) for m in ("biased", "bilinear") for c in ("chart A", "chart A -3EV")}
    assert chroma[("bilinear", "chart A -3EV")] < 1.5
    assert chroma[("biased", "chart A -3EV")] > chroma[("bilinear", "chart A -3EV")] + 2
    assert chroma[("biased", "chart A -3EV")] > chroma[("biased", "chart A")]
