"""hyperisp.resize and --max-size: outputs scaled down to fit, never up."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from hyperisp.cli import app
from hyperisp.errors import HyperispError
from hyperisp.io.images import write_image
from hyperisp.resize import fit_size, resize_to_fit


def test_fit_size_keeps_the_aspect_and_never_enlarges():
    assert fit_size(4000, 6000, 2048) == (1365, 2048)
    assert fit_size(6000, 4000, 2048) == (2048, 1365)
    assert fit_size(300, 200, 1000) == (300, 200)
    assert fit_size(10, 5000, 100) == (1, 100)  # a side never shrinks to 0
    for bad in (0, -5, 2.5, True):
        with pytest.raises(HyperispError, match="expected a positive whole number of pixels"):
            fit_size(10, 10, bad)


def test_resize_keeps_smooth_content_and_the_value_range():
    y, x = np.mgrid[0:300, 0:450].astype(np.float32)
    ramp = np.stack([x / 450, y / 300, np.full_like(x, 0.5)], -1)
    small = resize_to_fit(ramp, 150)
    assert small.shape == (100, 150, 3) and small.dtype == np.float32
    yy, xx = np.mgrid[0:100, 0:150]
    np.testing.assert_allclose(small[5:-5, 5:-5, 0], ((xx + 0.5) * 3 - 0.5)[5:-5, 5:-5] / 450, atol=2e-3)
    edge = np.zeros((64, 64), np.float32)
    edge[:, 32:] = 1.0  # Lanczos rings at a hard edge: clipped back into [0, 1]
    out = resize_to_fit(edge, 20)
    assert out.shape == (20, 20) and out.min() == 0.0 and out.max() == 1.0
    assert resize_to_fit(ramp, None) is ramp and resize_to_fit(ramp, 450) is ramp


def test_max_size_on_the_commands(small_dng: Path, small_png: Path, tmp_path: Path):
    runner = CliRunner()
    developed = tmp_path / "d.png"
    assert runner.invoke(app, ["develop", str(small_dng), "-o", str(developed), "--max-size", "20"]).exit_code == 0
    with Image.open(developed) as im:
        assert max(im.size) == 20
    denoised = tmp_path / "n.png"
    assert runner.invoke(app, ["denoise", str(small_png), "-o", str(denoised), "--max-size", "28"]).exit_code == 0
    with Image.open(small_png) as a, Image.open(denoised) as b:
        assert max(b.size) == 28 and abs(a.size[0] / a.size[1] - b.size[0] / b.size[1]) < 0.05
    frames = [write_image(tmp_path / f"f{i}.png", np.full((24, 32, 3), 0.4 + 0.01 * i, np.float32)) for i in range(2)]
    burst = tmp_path / "b.png"
    assert runner.invoke(app, ["burst", *map(str, frames), "-o", str(burst), "--max-size", "16"]).exit_code == 0
    with Image.open(burst) as im:
        assert im.size == (16, 12)
    refused = runner.invoke(app, ["develop", str(small_dng), "-o", str(tmp_path / "x.png"), "--max-size", "0"])
    assert refused.exit_code == 2 and not (tmp_path / "x.png").exists()
