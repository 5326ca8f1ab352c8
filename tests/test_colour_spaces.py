"""Output colour spaces: their matrices, ICC profiles, and develop --colour-space."""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms
from typer.testing import CliRunner

from hyperisp.cli import app
from hyperisp.io.icc import rgb_icc_profile
from hyperisp.io.images import read_image
from hyperisp.io.metadata import srgb_icc_profile
from hyperisp.raw.colour import finish, linear_to_srgb
from hyperisp.raw.colour_spaces import D50, SPACES, bradford, get_space, linear_srgb_to, rgb_to_xyz

WIDE = [name for name in SPACES if name != "srgb"]
# D50-adapted colourants (columns R, G, B) of the published profiles: Adobe RGB (1998) 2005-05
# spec, ProPhoto (ROMM, ISO 22028-2), Display P3 (Apple's profile)
PUBLISHED_COLOURANTS = {
    "adobe-rgb": [[0.6097, 0.2053, 0.1492], [0.3111, 0.6257, 0.0632], [0.0195, 0.0609, 0.7446]],
    "prophoto": [[0.7977, 0.1352, 0.0313], [0.2880, 0.7119, 0.0001], [0.0000, 0.0000, 0.8249]],
    "display-p3": [[0.5151, 0.2920, 0.1571], [0.2412, 0.6922, 0.0666], [-0.0011, 0.0419, 0.7841]],
}


@pytest.mark.parametrize("name", WIDE)
def test_colourants_match_the_published_profiles(name):
    space = SPACES[name]
    np.testing.assert_allclose(bradford(space.white, D50) @ rgb_to_xyz(space), PUBLISHED_COLOURANTS[name], atol=4e-4)


def test_matrices_keep_white_and_srgb_is_the_identity():
    for name in SPACES:
        np.testing.assert_allclose(linear_srgb_to(name) @ np.ones(3), 1.0, atol=1e-6)
    np.testing.assert_allclose(linear_srgb_to("srgb"), np.eye(3), atol=1e-4)
    with pytest.raises(ValueError, match="unknown colour space 'rec2020'; expected one of srgb"):
        get_space("rec2020")


def _to_srgb_through_icc(encoded: np.ndarray, profile: bytes) -> np.ndarray:
    """8-bit pixels in a profile's space -> sRGB values, by LittleCMS (relative colorimetric)."""
    image = Image.fromarray(np.round(encoded * 255).astype(np.uint8))
    source, target = (ImageCms.ImageCmsProfile(io.BytesIO(p)) for p in (profile, srgb_icc_profile()))
    return np.asarray(ImageCms.profileToProfile(image, source, target, renderingIntent=1)) / 255


@pytest.mark.parametrize("name", list(SPACES))
@pytest.mark.parametrize("linear", [False, True])
def test_icc_profiles_describe_the_pixels(name, linear):
    """LittleCMS, reading our profile, turns our encoding of a colour back into that colour's sRGB."""
    profile = rgb_icc_profile(name, linear)
    description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile))).strip()
    assert description == ("Linear " if linear else "") + SPACES[name].description
    zeroed = bytearray(profile)
    zeroed[44:48], zeroed[64:68], zeroed[84:100] = bytes(4), bytes(4), bytes(16)
    assert profile[84:100] == hashlib.md5(bytes(zeroed)).digest()  # the ICC v4 profile ID
    linear_srgb = np.random.default_rng(0).uniform(0.05, 0.85, (32, 32, 3)).astype(np.float32)  # below the highlight fade
    encoded = finish(linear_srgb, np.ones(3), np.eye(3), tone=False, encode=not linear, space=name)
    error = np.abs(_to_srgb_through_icc(encoded, profile) - linear_to_srgb(linear_srgb)) * 255
    assert error.mean() < 0.6 and error.max() <= 8  # 8-bit rounding, steepest in the darks of the wide spaces


@pytest.mark.parametrize("name", WIDE)
def test_wide_spaces_look_like_srgb_inside_its_gamut_and_keep_what_it_clips(name):
    rng = np.random.default_rng(1)
    inside = rng.uniform(0.05, 0.85, (16, 16, 3)).astype(np.float32)
    srgb = finish(inside, np.ones(3), np.eye(3))  # with the tone curve
    wide = finish(inside, np.ones(3), np.eye(3), space=name)
    error = np.abs(_to_srgb_through_icc(wide, rgb_icc_profile(name)) - srgb) * 255
    assert error.mean() < 0.6 and error.max() <= 8
    # a saturated green outside sRGB (inside each wide gamut): sRGB clips red to 0, the wide space keeps it
    green = (np.linalg.inv(linear_srgb_to(name)) @ np.array([0.1, 0.6, 0.1])).astype(np.float32)
    assert green[0] < 0 and finish(green[None, None], np.ones(3), np.eye(3))[0, 0, 0] == 0
    assert finish(green[None, None], np.ones(3), np.eye(3), space=name, tone=False).min() > 0.2


def test_develop_colour_space_tags_the_file(small_dng: Path, tmp_path: Path):
    runner = CliRunner()
    out = tmp_path / "wide.tif"
    result = runner.invoke(app, ["develop", str(small_dng), "-o", str(out), "--colour-space", "adobe-rgb", "-v"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("EV; adobe-rgb")
    assert read_image(out).icc_profile == rgb_icc_profile("adobe-rgb")
    linear = tmp_path / "linear.tif"
    assert runner.invoke(app, ["develop", str(small_dng), "-o", str(linear), "--linear", "--color-space",
                               "prophoto"]).exit_code == 0
    assert read_image(linear).icc_profile == rgb_icc_profile("prophoto", linear=True)
    refused = runner.invoke(app, ["develop", str(small_dng), "-o", str(tmp_path / "x.tif"), "--colour-space", "rec2020"])
    assert refused.exit_code == 2 and not (tmp_path / "x.tif").exists()
