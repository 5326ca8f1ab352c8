"""Evaluation protocols: noise levels, baselines on the same inputs, card metrics."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hyperisp.evaluate import (ISP_LEVELS, bilinear_method, evaluate_denoise, evaluate_isp, libraw_method,
                               read_variance)
from hyperisp.data import linear_to_srgb, srgb_to_linear
from hyperisp.metrics import psnr
from hyperisp.raw.bayer import mosaic_rgb


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("val")
    yy, xx = np.mgrid[0:41, 0:49] / 48  # odd size: the protocol crops to even
    for i in range(2):
        image = np.stack([0.5 + 0.35 * np.sin((5 + i) * xx + 3 * yy + c) for c in range(3)], -1)
        Image.fromarray((image * 255).round().astype(np.uint8)).save(folder / f"img{i}.png")
    return folder


def test_read_noise_relation():
    assert read_variance(0.0) == 0.0
    assert read_variance(1e-2) == pytest.approx(math.exp(2.18 * math.log(1e-2) + 1.20))
    assert list(ISP_LEVELS.values()) == [0.0, 1e-3, 1e-2]


def test_isp_protocol_levels_and_determinism(images):
    rows, notes = evaluate_isp(None, images, baselines=["bilinear"])
    by = {r["level"]: r for r in rows}
    assert set(by) == {"clean", "moderate", "high"} and all(r["images"] == 2 for r in rows)
    assert by["clean"]["psnr"] > by["moderate"]["psnr"] > by["high"]["psnr"]
    assert by["clean"]["psnr"] > 30  # smooth images demosaic well
    again, _ = evaluate_isp(None, images, baselines=["bilinear"])
    assert [r["psnr"] for r in rows] == [r["psnr"] for r in again]


def test_model_is_scored_on_the_same_inputs(images):
    class Bilinear(torch.nn.Module):  # a "model" that is bilinear demosaicking must score the same
        def forward(self, packed):
            from hyperisp.raw.bayer import demosaic_bilinear
            return demosaic_bilinear(packed)

    rows, _ = evaluate_isp(Bilinear(), images, baselines=["bilinear"], model_name="m")
    scores = {(r["method"], r["level"]): r["psnr"] for r in rows}
    for level in ISP_LEVELS:
        assert scores[("m", level)] == pytest.approx(scores[("bilinear", level)], abs=1e-4)


def test_libraw_is_not_rescaled_on_noisy_bright_mosaics(images):
    # LibRaw must not stretch a noisy mosaic whose maximum is near white (adjust_maximum_thr).
    rows, _ = evaluate_isp(None, images, limit=1, baselines=["bilinear", "libraw"])
    by = {(r["method"], r["level"]): r["psnr"] for r in rows}
    for level in ISP_LEVELS:
        assert by[("libraw", level)] > by[("bilinear", level)] - 6, level


def test_libraw_ahd_on_identity_dng_is_aligned_and_sensible(tmp_path):
    # A smooth clean image: LibRaw's AHD output in raw colour, linear, unit WB must match it closely.
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    srgb = torch.stack([0.3 + 0.4 * xx, 0.2 + 0.5 * yy, 0.6 - 0.3 * xx * yy])[None]
    linear = srgb_to_linear(srgb)
    out = libraw_method(tmp_path)(mosaic_rgb(linear))
    assert out.shape == linear.shape
    value = float(psnr(linear_to_srgb(out.clamp(0, 1)), srgb, border=8))
    reference = float(psnr(linear_to_srgb(bilinear_method(mosaic_rgb(linear))), srgb, border=8))
    assert value > 35 and value > reference - 3


def test_menon_baseline_when_installed(images):
    pytest.importorskip("colour_demosaicing")
    rows, notes = evaluate_isp(None, images, limit=1, baselines=["menon"])
    by = {r["level"]: r["psnr"] for r in rows if r["method"] == "menon"}
    assert not notes and by["clean"] > 40 and by["clean"] > by["moderate"] > by["high"]


def test_denoise_protocol_with_identity_model(images, tmp_path):
    from hyperisp.models import create_model

    model = create_model("denoise_small").eval()  # untrained: returns its input
    sidd = tmp_path / "sidd"
    sidd.mkdir()
    gt = np.asarray(Image.open(sorted(images.glob("*.png"))[0]))
    noisy = np.clip(gt.astype(int) + np.random.default_rng(0).integers(-12, 13, gt.shape), 0, 255).astype(np.uint8)
    Image.fromarray(gt).save(sidd / "gt.png")
    Image.fromarray(noisy).save(sidd / "noisy.png")
    rows, notes = evaluate_denoise(model, images, baselines=[], model_name="d", sigmas=(25,), sidd=sidd)
    by = {(r["method"], r["level"]): r for r in rows}
    # Identity model = the clipped noisy input.
    assert by[("d", "sigma25")]["psnr"] == pytest.approx(by[("noisy", "sigma25")]["psnr"], abs=1e-3)
    assert by[("noisy", "sigma25")]["psnr"] == pytest.approx(20 * math.log10(255 / 25), abs=1.0)
    assert by[("d", "sidd")]["psnr"] == pytest.approx(by[("noisy", "sidd")]["psnr"], abs=1e-3)
    # Without its mean offset the noisy crop scores higher: the offset is part of its error.
    assert by[("noisy", "sidd_mean_fixed")]["psnr"] > by[("noisy", "sidd")]["psnr"]
    assert by[("d", "sidd_mean_fixed")]["psnr"] == pytest.approx(by[("noisy", "sidd_mean_fixed")]["psnr"], abs=1e-3)


def test_without_mean_offset_removes_a_constant_shift_per_channel():
    from hyperisp.evaluate import without_mean_offset

    clean = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    shifted = clean + torch.tensor([-0.04, 0.02, -0.03]).view(1, 3, 1, 1)
    torch.testing.assert_close(without_mean_offset(shifted, clean), clean)


def test_update_card_metrics_keeps_hash(tmp_path):
    from hyperisp.models import create_model
    from hyperisp.pretrained import load_pretrained, save_pretrained, update_card_metrics

    model = create_model("isp_small", n_fwd=4, n_embed=4, n_hid=8)
    save_pretrained(model, "m", trained=False, description="t", directory=tmp_path)
    update_card_metrics("m", [{"name": "isp clean psnr", "value": 30.0, "command": "hyperisp eval ..."}],
                        directory=tmp_path)
    card = json.loads((tmp_path / "m.json").read_text())
    assert card["metrics"][0]["value"] == 30.0
    # Same name: replaced; other names (another protocol or level) are kept.
    update_card_metrics("m", [{"name": "isp clean psnr", "value": 31.0, "command": "c"},
                              {"name": "isp chart A neutral_chroma", "value": 0.9, "command": "c"}], directory=tmp_path)
    update_card_metrics("m", [{"name": "burst spec psnr", "value": 27.0, "command": "c"}], directory=tmp_path)
    card = json.loads((tmp_path / "m.json").read_text())
    assert {m["name"]: m["value"] for m in card["metrics"]} == {
        "isp clean psnr": 31.0, "isp chart A neutral_chroma": 0.9, "burst spec psnr": 27.0}
    load_pretrained("m", directory=tmp_path)  # sha256 still matches


def test_nlm_baseline_denoises_when_installed(images):
    pytest.importorskip("cv2")
    rows, notes = evaluate_denoise(None, images, baselines=["nlm"], sigmas=(25,))
    by = {r["method"]: r["psnr"] for r in rows}
    assert not notes and by["nlm"] > by["noisy"] + 3
