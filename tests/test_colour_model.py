"""DNG colour model (tags, CCT, matrix interpolation, ForwardMatrix), WB plausibility, exposure, linear output, CLI."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
import rawpy
from PIL import Image, ImageCms
from typer.testing import CliRunner

import hyperisp
from hyperisp.cli import app
from hyperisp.io.images import read_image
from hyperisp.io.icc import linear_srgb_icc_profile
from hyperisp.raw import finish, srgb_to_linear
from hyperisp.raw.camera_colour import (
    D50_XYZ,
    D65_XYZ,
    CameraColour,
    bradford,
    camera_colour_from_dng_tags,
    cct_duv,
    planckian_xy,
    xy_to_xyz,
)
from hyperisp.raw.chart_dng import CAMERA_A, CAMERA_D65, render_chart
from hyperisp.raw.chart_dng import ILLUMINANT_XY as XY
from hyperisp.raw.dng import ILLUMINANT_D65, ILLUMINANT_STANDARD_A, write_dng
from hyperisp.raw.exposure import auto_exposure
from hyperisp.raw.tiff_tags import read_file_tags
from hyperisp.raw.white_balance import implausible_as_shot, project_to_locus

MODEL = CameraColour((CAMERA_A, CAMERA_D65), (2856.0, 6504.0))


def test_cct_and_duv_of_known_whites():
    cct, duv = cct_duv(XY["D65"])
    assert cct == pytest.approx(6504, abs=15) and duv == pytest.approx(0.0032, abs=3e-4)
    cct, duv = cct_duv(XY["A"])
    assert cct == pytest.approx(2856, abs=15) and abs(duv) < 5e-4
    assert cct_duv(planckian_xy(4000.0))[0] == pytest.approx(4000, rel=2e-3)
    assert cct_duv((0.25, 0.45))[1] > 0.05 and cct_duv((0.35, 0.25))[1] < -0.05  # green above, magenta below


def test_matrices_interpolate_by_inverse_cct_and_white_iterates_to_the_scene_white():
    np.testing.assert_allclose(MODEL.colour_matrix(2856), CAMERA_A)
    np.testing.assert_allclose(MODEL.colour_matrix(6504), CAMERA_D65)
    np.testing.assert_allclose(MODEL.colour_matrix(1000), CAMERA_A)  # clamped outside the range
    middle = 1 / (0.5 / 2856 + 0.5 / 6504)  # halfway in mireds
    np.testing.assert_allclose(MODEL.colour_matrix(middle), (CAMERA_A + CAMERA_D65) / 2)
    for name, matrix in (("A", CAMERA_A), ("D65", CAMERA_D65)):
        neutral = matrix @ xy_to_xyz(XY[name])
        xy, _ = MODEL.neutral_to_xy(neutral)
        np.testing.assert_allclose(xy, XY[name], atol=2e-4)
        np.testing.assert_allclose(MODEL.xy_to_neutral(XY[name]), neutral / neutral[1], rtol=1e-3)


def test_forward_matrix_path_agrees_with_colour_matrix_path():
    forwards = []
    for name, matrix in (("A", CAMERA_A), ("D65", CAMERA_D65)):
        white = xy_to_xyz(XY[name])
        neutral = matrix @ white
        forwards.append(bradford(white, D50_XYZ) @ np.linalg.inv(matrix) @ np.diag(neutral))
    with_forward = CameraColour((CAMERA_A, CAMERA_D65), (2856.0, 6504.0), tuple(forwards))
    for name, matrix in (("A", CAMERA_A), ("D65", CAMERA_D65)):
        neutral = matrix @ xy_to_xyz(XY[name])
        np.testing.assert_allclose(with_forward.camera_to_srgb(neutral)[0], MODEL.camera_to_srgb(neutral)[0], atol=2e-3)
        np.testing.assert_allclose(MODEL.camera_to_srgb(neutral)[0].sum(axis=1), 1.0, atol=1e-5)  # white -> white


def test_dng_colour_tags_round_trip_and_libraw_still_reads_them(tmp_path):
    mosaic, neutral = render_chart("D65")
    path = write_dng(tmp_path / "two.dng", mosaic, black_level=128, white_level=4095, color_matrix=CAMERA_A,
                     calibration_illuminant=ILLUMINANT_STANDARD_A, color_matrix_2=CAMERA_D65,
                     calibration_illuminant_2=ILLUMINANT_D65, forward_matrix_1=np.eye(3), forward_matrix_2=np.eye(3),
                     as_shot_white_xy=XY["D65"])
    tags = read_file_tags(path, ifd0_codes=None).ifd0
    assert tags[50778] == (17,) and tags[50779] == (21,) and tags[271] == "hyperisp"
    np.testing.assert_allclose(np.reshape(tags[50722], (3, 3)), CAMERA_D65, atol=1e-6)
    np.testing.assert_allclose(tags[50729], XY["D65"], atol=1e-6)
    model = camera_colour_from_dng_tags(tags)
    assert model.temperatures == (2856.0, 6504.0) and model.forward_matrices is not None
    with rawpy.imread(str(path)) as raw:  # LibRaw still decodes the file
        np.testing.assert_array_equal(raw.raw_image_visible, mosaic)
    image = hyperisp.read_raw(path)  # AsShotWhiteXY becomes the as-shot neutral
    np.testing.assert_allclose(1 / image.as_shot_wb, neutral, rtol=2e-3)
    assert read_file_tags(tmp_path / "missing.dng", ifd0_codes=None).ifd0 == {}


def test_implausible_as_shot_white_is_detected_and_auto_stays_near_the_locus():
    neutral = CAMERA_D65 @ D65_XYZ
    assert implausible_as_shot(1 / neutral, MODEL, None) is None
    assert "implausible" in implausible_as_shot(1 / (neutral * [0.6, 1, 0.55]), MODEL, None)
    assert implausible_as_shot(np.array([4.0, 1, 1]), None, np.array([2.0, 1, 1.5])) is None
    assert "daylight" in implausible_as_shot(np.array([8.0, 1, 0.3]), None, np.array([2.0, 1, 1.5]))
    projected = project_to_locus(neutral * [0.6, 1, 0.55], MODEL)
    cct, duv = cct_duv(MODEL.neutral_to_xy(projected)[0])
    assert abs(duv) <= 0.0081 and 2000 <= cct <= 12000


def test_auto_exposure_brightens_a_dark_frame_but_keeps_highlights():
    rng = np.random.default_rng(0)
    dark = rng.uniform(0.0, 0.05, (64, 64, 3)).astype(np.float32)
    ev = auto_exposure(dark, np.ones(3), np.eye(3))
    assert 2.0 < ev <= 4.0
    with_highlight = dark.copy()
    with_highlight[:8] = 0.5  # 12 % of the frame at half scale: at most one stop of headroom
    assert auto_exposure(with_highlight, np.ones(3), np.eye(3)) <= 1.0 + 1e-6
    assert auto_exposure(np.ones((8, 8, 3), np.float32), np.ones(3), np.eye(3)) == 0.0


def test_linear_finish_is_scene_linear():
    cam = np.full((2, 2, 3), 0.25, np.float32)
    np.testing.assert_allclose(finish(cam, np.ones(3), np.eye(3), tone=False, encode=False), 0.25, atol=1e-6)
    np.testing.assert_allclose(finish(cam, np.ones(3), np.eye(3), exposure_ev=1, encode=False), 0.5, atol=1e-6)


def test_linear_icc_profile_maps_linear_to_srgb():
    profile = ImageCms.ImageCmsProfile(io.BytesIO(linear_srgb_icc_profile()))
    assert "Linear" in ImageCms.getProfileDescription(profile)
    transform = ImageCms.buildTransform(profile, ImageCms.createProfile("sRGB"), "RGB", "RGB")
    out = np.asarray(ImageCms.applyTransform(Image.fromarray(np.full((1, 1, 3), 128, np.uint8)), transform))
    assert abs(int(out[0, 0, 0]) - round(255 * (1.055 * (128 / 255) ** (1 / 2.4) - 0.055))) <= 1


def test_cli_verbose_json_linear_and_exposure(small_dng, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["develop", str(small_dng), "-o", str(tmp_path / "a.jpg"), "--json", "-v",
                                 "--exposure", "auto", "--wb", "auto"])
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)["files"][0]
    summary = done["info"]
    assert summary["white_balance_source"] == "auto" and summary["exposure_ev"] >= 0
    assert len(summary["white_balance"]) == 3 and done["output"].endswith("a.jpg")
    assert "white balance R,G,B" in result.output
    result = runner.invoke(app, ["develop", str(small_dng), "-o", str(tmp_path / "lin.png"), "--linear"])
    assert result.exit_code == 0, result.output
    photo = read_image(tmp_path / "lin.png")
    assert photo.bit_depth == 16
    assert "Linear sRGB" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(photo.icc_profile)))
    linear = hyperisp.develop(small_dng, linear=True, device="cpu")
    encoded = hyperisp.develop(small_dng, device="cpu")
    assert linear.mean() < srgb_to_linear(encoded).mean() * 1.5 and linear.mean() < encoded.mean()
    bad = runner.invoke(app, ["develop", str(small_dng), "--exposure", "bright"])
    assert bad.exit_code == 2 and "--exposure" in bad.output


def test_clipped_highlights_stay_white_whatever_the_gains():
    """Pixels clipped in one, two or all channels must not turn magenta or cyan (gains below and above 1)."""
    cam = np.array([[[1.0, 1.0, 1.0], [0.7, 1.0, 0.8], [1.0, 1.0, 0.9]]], np.float32)
    for gains in ([0.9, 1.0, 1.2], [2.0, 1.0, 1.5]):
        out = finish(cam, gains, np.eye(3), tone=False)
        np.testing.assert_allclose(out[0, 0], 1.0, atol=1e-6)  # fully clipped -> white
        np.testing.assert_allclose(out[0, 1:], 1.0, atol=1e-6)  # clipped in one channel: white, not a cast
    below = np.array([[[0.5, 0.85, 0.6]]], np.float32)  # nothing near the clip: untouched by the fade
    np.testing.assert_allclose(finish(below, [1.5, 1, 1.2], np.eye(3), tone=False, encode=False)[0, 0],
                               [0.75, 0.85, 0.72], atol=1e-6)


def test_dng_baseline_exposure_moves_the_exposure_zero_point(tmp_path):
    mosaic, neutral = render_chart("D65")
    common = dict(black_level=128, white_level=4095, color_matrix=CAMERA_D65, as_shot_neutral=neutral)
    plain = hyperisp.develop_raw(hyperisp.read_raw(write_dng(tmp_path / "a.dng", mosaic, **common)),
                                 device="cpu", linear=True)
    raw = hyperisp.read_raw(write_dng(tmp_path / "b.dng", mosaic, baseline_exposure=-1.0, **common))
    assert raw.metadata["baseline_exposure"] == -1.0
    darker = hyperisp.develop_raw(raw, device="cpu", linear=True, exposure=0.5)
    assert darker.exposure_ev == pytest.approx(-0.5)
    np.testing.assert_allclose(darker.rgb, plain.rgb * 2**-0.5, atol=2e-3)


def test_a_white_given_as_temperature_and_tint_lands_on_that_light():
    from types import SimpleNamespace

    from hyperisp.raw.camera_colour import locus_xy
    from hyperisp.raw.white_balance import choose_white_balance, parse_temperature

    for kelvin in (2000.0, 3200.0, 5600.0, 9000.0):
        for duv in (0.0, 0.004, -0.006):
            cct, got = cct_duv(locus_xy(kelvin, duv))
            assert cct == pytest.approx(kelvin, rel=2e-3) and got == pytest.approx(duv, abs=1e-4)
    raw = SimpleNamespace(mosaic=np.full((8, 8), 0.3, np.float32), colour=MODEL, as_shot_wb=None, daylight_wb=None)
    # D65 is 6504 K, Duv +0.0032: as a temperature and tint it gives D65's neutral.
    choice = choose_white_balance(raw, "6504K,+0.0032")
    neutral = CAMERA_D65 @ D65_XYZ
    np.testing.assert_allclose(choice.gains, neutral[1] / neutral, rtol=3e-3)
    assert choice.reason == "user temperature, Duv +0.0032" and choice.cct == pytest.approx(6504, rel=2e-3)
    tungsten = choose_white_balance(raw, "3200k")
    assert tungsten.cct == pytest.approx(3200, rel=2e-3) and tungsten.gains[2] > choice.gains[2]  # more blue gain
    assert parse_temperature("camera") is None and parse_temperature("5600K") == (5600.0, 0.0)
    for bad in ("900K", "30000K", "5600K,0.2", "warmK", "5600K,x"):
        with pytest.raises(ValueError, match="temperature from 1667K"):
            parse_temperature(bad)
    with pytest.raises(ValueError, match="no colour matrix"):
        choose_white_balance(SimpleNamespace(**{**vars(raw), "colour": None}), "5600K")


def test_cli_white_balance_by_temperature(tmp_path):
    data = (64 + np.full((32, 48), 0.4) * (4095 - 64)).astype(np.uint16)
    path = write_dng(tmp_path / "t.dng", data, cfa_phase="RGGB", black_level=64, white_level=4095,
                     color_matrix=CAMERA_D65, calibration_illuminant=ILLUMINANT_D65)
    runner = CliRunner()
    result = runner.invoke(app, ["develop", str(path), "-o", str(tmp_path / "t.png"), "--wb", "3200K", "-v"])
    assert result.exit_code == 0, result.output
    assert "(user temperature, 3200 K)" in result.output
    result = runner.invoke(app, ["develop", str(path), "-o", str(tmp_path / "u.png"), "--wb", "500K"])
    assert result.exit_code == 2 and "--wb" in result.output and "1667K" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "u.png").exists()
    bare = write_dng(tmp_path / "bare.dng", data, cfa_phase="RGGB", black_level=64, white_level=4095)
    result = runner.invoke(app, ["develop", str(bare), "-o", str(tmp_path / "b.png"), "--wb", "3200K"])
    assert result.exit_code == 1 and "bare.dng: white balance 3200K: the file has no colour matrix" in result.output
    assert "unexpected" not in result.output and not (tmp_path / "b.png").exists()
