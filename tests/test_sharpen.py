"""hyperisp.sharpen and --sharpen: output sharpening on luma."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from hyperisp.cli import app
from hyperisp.errors import HyperispError
from hyperisp.sharpen import gaussian_blur, unsharp_mask


def test_gaussian_blur_keeps_flat_areas_and_spreads_a_point_symmetrically():
    np.testing.assert_allclose(gaussian_blur(np.full((9, 11), 0.4, np.float32), 1.5), 0.4, atol=1e-6)
    point = np.zeros((21, 21), np.float32)
    point[10, 10] = 1.0
    spread = gaussian_blur(point, 1.0)
    assert spread.sum() == pytest.approx(1.0, abs=1e-5) and spread[10, 10] == spread.max()
    np.testing.assert_allclose(spread, spread.T, atol=1e-7)
    np.testing.assert_allclose(spread, spread[::-1, ::-1], atol=1e-7)
    assert spread[10, 11] / spread[10, 10] == pytest.approx(np.exp(-0.5), rel=1e-4)  # sigma 1


def test_an_edge_gains_contrast_on_luma_only():
    rgb = np.empty((16, 32, 3), np.float32)
    rgb[:, :16] = (0.30, 0.25, 0.20)
    rgb[:, 16:] = (0.60, 0.55, 0.50)
    out = unsharp_mask(rgb, 0.5)
    assert out[8, 15, 0] < 0.30 and out[8, 16, 0] > 0.60  # over- and undershoot at the edge
    np.testing.assert_allclose(out[:, :8], rgb[:, :8], atol=1e-6)  # flat far from it
    change = out - rgb
    np.testing.assert_allclose(change[..., 0], change[..., 1], atol=1e-6)  # the same on R, G, B: no fringes
    np.testing.assert_allclose(change[..., 0], change[..., 2], atol=1e-6)
    assert unsharp_mask(rgb, 0.0) is rgb
    grey = unsharp_mask(rgb[..., 1], 0.5)
    assert grey.shape == (16, 32) and grey.min() >= 0.0


def test_develop_sharpen_changes_the_output_and_bad_amounts_are_refused(small_dng: Path, tmp_path: Path):
    for amount, radius in ((-0.1, 1.0), (2.5, 1.0), (0.5, 0.0)):
        with pytest.raises(HyperispError, match="sharpen"):
            unsharp_mask(np.zeros((4, 4), np.float32), amount, radius)
    runner = CliRunner()
    plain, crisp = tmp_path / "plain.png", tmp_path / "crisp.png"
    assert runner.invoke(app, ["develop", str(small_dng), "-o", str(plain)]).exit_code == 0
    assert runner.invoke(app, ["develop", str(small_dng), "-o", str(crisp), "--sharpen", "1"]).exit_code == 0
    with Image.open(plain) as a, Image.open(crisp) as b:
        assert not np.array_equal(np.asarray(a), np.asarray(b))
    refused = runner.invoke(app, ["develop", str(small_dng), "-o", str(tmp_path / "x.png"), "--sharpen", "3"])
    assert refused.exit_code == 2 and not (tmp_path / "x.png").exists()
