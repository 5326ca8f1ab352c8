"""Burst evaluation protocol: deterministic bursts, PSNR after gamma, measured largest layer."""
from __future__ import annotations

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
