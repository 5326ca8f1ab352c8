"""Burst evaluation protocol: deterministic bursts, PSNR after gamma, measured largest layer."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hyperisp.errors import HyperispError
from hyperisp.evaluate_burst import baseline_methods, evaluate_burst, largest_layer, make_test_bursts, run_burst_eval
from hyperisp.io.images import write_image
from hyperisp.models import create_model


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for i in range(2):
        yy, xx = np.mgrid[0:100, 0:110] / 100
        img = 0.5 + 0.4 * np.sin(6 * xx + i) * np.cos(4 * yy) + rng.normal(0, 0.01, (100, 110))
        write_image(tmp_path / f"p{i}.png", np.clip(img, 0, 1))
    return tmp_path


def test_bursts_are_the_same_on_every_run(photos: Path):
    a, b = make_test_bursts(photos, size=48), make_test_bursts(photos, size=48)
    assert [n for n, _ in a] == ["p0.png", "p1.png"]
    torch.testing.assert_close(a[1][1]["noisy"], b[1][1]["noisy"])
    assert a[0][1]["noisy"].shape == (1, 8, 48, 48)


def test_evaluate_burst_rows(photos: Path):
    methods = {**baseline_methods(), "model": create_model("gated_kpn_64", widths=[8, 8]).eval()}
    rows = {r["method"]: r for r in evaluate_burst(methods, photos, size=48)}
    assert rows["single frame"]["images"] == 2 and 5 < rows["single frame"]["psnr"] < 60
    # the untrained gated model is the frame mean
    assert rows["model"]["psnr"] == pytest.approx(rows["mean of frames"]["psnr"], abs=1e-3)


def test_evaluate_burst_needs_big_enough_photos(tmp_path: Path):
    write_image(tmp_path / "small.png", np.zeros((40, 40)))
    with pytest.raises(HyperispError, match="smaller than"):
        make_test_bursts(tmp_path, size=48)
    (tmp_path / "empty").mkdir()
    with pytest.raises(HyperispError, match="no PNG"):
        make_test_bursts(tmp_path / "empty", size=48)


@pytest.mark.parametrize("name,expected", [("kpn", 200), ("gated_kpn_64", 64)])
def test_largest_layer_is_measured(name, expected):
    assert largest_layer(create_model(name, widths=[8, 8]).eval(), size=32) == expected


def test_run_burst_eval_with_the_shipped_model(photos: Path):
    rows, notes = run_burst_eval(photos, "burst", limit=1, size=48)
    assert [r["method"] for r in rows] == ["single frame", "mean of frames", "burst"]
    assert all(r["level"] == "spec" and r["images"] == 1 and r["cpu_s_per_mp"] >= 0 for r in rows)
    assert "fixed seed" in notes[0]


def test_cli_eval_burst_noise_forms(tmp_path: Path):
    from typer.testing import CliRunner

    from hyperisp.cli import app

    rng = np.random.default_rng(1)
    write_image(tmp_path / "p.png", np.clip(0.5 + rng.normal(0, 0.1, (290, 290)), 0, 1))
    runner = CliRunner()
    psnr = {}
    for noise in ("spec", "mildenhall"):
        result = runner.invoke(app, ["eval", "burst", "--data", str(tmp_path), "--noise", noise, "--json"])
        assert result.exit_code == 0, result.output
        rows = json.loads(result.stdout[result.stdout.index("{"):])["rows"]
        assert {r["level"] for r in rows} == {noise}
        psnr[noise] = {r["method"]: r["psnr"] for r in rows}["single frame"]
    assert psnr["mildenhall"] < psnr["spec"] - 3  # shot noise as a variance is far stronger at these levels
    bad = runner.invoke(app, ["eval", "burst", "--data", str(tmp_path), "--noise", "gaussian"])
    assert bad.exit_code == 2 and "unknown noise form" in bad.output
    views = runner.invoke(app, ["eval", "burst", "--data", str(tmp_path), "--ensemble", "2"])
    assert views.exit_code == 2 and "no self-ensemble views" in views.output  # not silently ignored
