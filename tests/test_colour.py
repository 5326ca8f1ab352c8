"""The analytic colour pipeline (sRGB curves, tone, white balance, finish) and the synthetic sample."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from hyperisp.raw import (
    apply_tone_curve,
    auto_white_balance,
    camera_to_srgb_matrix,
    choose_white_balance,
    demosaic_bilinear,
    finish,
    from_canonical,
    linear_to_srgb,
    mosaic_rgb,
    pack_bayer,
    raw_from_array,
    read_raw,
    sample_scene_srgb,
    srgb_to_linear,
    write_sample_dng,
)
from hyperisp.raw.sample import COLOR_CHECKER_SRGB, SAMPLE_COLOR_MATRIX, sample_white_balance

CAST = np.array([0.5, 1.0, 0.8])  # camera response to white: true gains are 1 / CAST = (2, 1, 1.25)


def grey_world_scene(seed: int = 0, size: int = 96) -> np.ndarray:
    """(size, size, 3) neutral scene (random grey patches and texture) seen through CAST."""
    rng = np.random.default_rng(seed)
    blocks = rng.uniform(0.05, 0.7, (size // 8, size // 8))
    grey = np.kron(blocks, np.ones((8, 8))) * rng.uniform(0.9, 1.1, (size, size))
    return (grey[..., None] * CAST).astype(np.float32)


def test_srgb_curves_are_exact_inverses_with_known_values():
    x = np.linspace(0, 1, 10001, dtype=np.float32)
    np.testing.assert_allclose(srgb_to_linear(linear_to_srgb(x)), x, atol=2e-6)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=2e-6)
    np.testing.assert_allclose(linear_to_srgb(np.array([0.0, 0.0031308, 0.18, 1.0])),
                               [0.0, 0.04045, 0.46135, 1.0], atol=1e-4)
    assert linear_to_srgb(np.array([-0.5]))[0] == 0.0
    assert linear_to_srgb(x).dtype == np.float32


def test_srgb_curves_on_torch_match_numpy_and_have_finite_gradients():
    x = torch.linspace(0, 1, 101, requires_grad=True)
    y = linear_to_srgb(x)
    np.testing.assert_allclose(y.detach().numpy(), linear_to_srgb(x.detach().numpy()), atol=1e-6)
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    np.testing.assert_allclose(srgb_to_linear(y).detach().numpy(), x.detach().numpy(), atol=1e-5)


def test_tone_curve_is_monotonic_with_fixed_ends_and_adds_midtone_contrast():
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    y = apply_tone_curve(x)
    assert y[0] == 0.0 and y[-1] == pytest.approx(1.0) and y[500] == pytest.approx(0.5)
    assert np.all(np.diff(y) > 0)
    assert (y[510] - y[490]) > (x[510] - x[490])  # steeper in the mid-tones
    assert apply_tone_curve(np.array([1.5, -0.2])).tolist() == [1.0, 0.0]


@pytest.mark.parametrize("as_mosaic", [False, True])
def test_auto_white_balance_recovers_a_colour_cast(as_mosaic):
    scene = grey_world_scene()
    scene[:16, :16] = 1.0  # a clipped highlight: all channels at the sensor maximum, must be ignored
    scene[-16:, -16:] = 0.002  # near-black: mostly noise, must be ignored
    if as_mosaic:
        scene = mosaic_rgb(torch.from_numpy(scene).permute(2, 0, 1)[None])[0, 0].numpy()
    gains = auto_white_balance(scene)
    np.testing.assert_allclose(gains, 1 / CAST, rtol=0.03)
    assert gains[1] == 1.0


def test_choose_white_balance_modes_and_reasons():
    mosaic = (mosaic_rgb(torch.from_numpy(grey_world_scene()).permute(2, 0, 1)[None])[0, 0].numpy() * 1000)
    with_wb = raw_from_array(mosaic.astype(np.uint16), white_level=1000, wb=[3, 1, 2])
    without = raw_from_array(mosaic.astype(np.uint16), white_level=1000)
    gains, reason = choose_white_balance(with_wb)
    assert reason == "as-shot" and gains.tolist() == [3, 1, 2]
    gains, reason = choose_white_balance(without)
    assert reason == "auto (file has no as-shot white balance)"
    np.testing.assert_allclose(gains, 1 / CAST, rtol=0.03)
    assert choose_white_balance(with_wb, "auto")[1] == "auto"
    assert choose_white_balance(with_wb, "daylight")[1].startswith("auto")  # no daylight data in an array
    gains, reason = choose_white_balance(with_wb, (4.0, 2.0, 1.0))
    assert reason == "user" and gains.tolist() == [2, 1, 0.5]
    with pytest.raises(ValueError):
        choose_white_balance(with_wb, "tungsten")
    with pytest.raises(ValueError):
        choose_white_balance(with_wb, (1.0, -1.0, 1.0))


def test_finish_keeps_neutrals_neutral_and_clipped_highlights_white():
    cam_to_srgb = camera_to_srgb_matrix(SAMPLE_COLOR_MATRIX)
    np.testing.assert_allclose(cam_to_srgb.sum(axis=1), 1.0, atol=1e-5)  # white -> white
    neutral = sample_white_balance()  # camera RGB of a grey under D65
    levels = np.array([0.02, 0.1, 0.3, 0.6, 0.9])
    cam = (levels[:, None, None] * neutral).reshape(5, 1, 3).astype(np.float32)
    cam = np.concatenate([cam, np.ones((1, 1, 3), np.float32)])  # last: a fully clipped pixel
    out = finish(cam, 1 / neutral, cam_to_srgb)
    assert out.shape == (6, 1, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-4)
    np.testing.assert_allclose(out[..., 2], out[..., 1], atol=1e-4)
    assert np.all(np.diff(out[:, 0, 1]) > 0)
    np.testing.assert_allclose(out[-1, 0], 1.0, atol=1e-5)  # white, not magenta
    # Without tone curve, a mid grey is exactly the sRGB encoding; +1 EV doubles linear light.
    plain = finish(cam[2:3], 1 / neutral, cam_to_srgb, tone=False)
    np.testing.assert_allclose(plain, linear_to_srgb(np.float32(0.3)), atol=1e-4)
    brighter = finish(cam[2:3], 1 / neutral, cam_to_srgb, tone=False, exposure_ev=1.0)
    np.testing.assert_allclose(srgb_to_linear(brighter), 0.6, atol=1e-4)


def test_sample_dng_is_deterministic_and_develops_to_the_scene(tmp_path):
    first = write_sample_dng(tmp_path / "a.dng")
    second = write_sample_dng(tmp_path / "b.dng")
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    raw = read_raw(first)
    assert raw.phase == "RGGB" and raw.mosaic.shape == (480, 640)
    np.testing.assert_allclose(raw.as_shot_wb, 1 / sample_white_balance(), rtol=1e-4)
    np.testing.assert_allclose(raw.cam_to_srgb, camera_to_srgb_matrix(SAMPLE_COLOR_MATRIX), atol=1e-4)
    packed = pack_bayer(torch.from_numpy(raw.mosaic)[None, None])
    cam = from_canonical(demosaic_bilinear(packed)[0].permute(1, 2, 0).numpy(), raw.frame)
    gains, _ = choose_white_balance(raw)
    out = finish(cam, gains, raw.cam_to_srgb, tone=False)
    scene = sample_scene_srgb(480, 640)
    # The colour chart comes back within a couple of 8-bit levels (patch centres, noise averaged out).
    for i, colour in enumerate(COLOR_CHECKER_SRGB):
        y0 = int(0.04 * 480 + (i // 6) * 0.15 * 480 + 0.04 * 480)
        x0 = int(0.03 * 640 + (i % 6) * 0.108 * 640 + 0.03 * 640)
        np.testing.assert_array_equal(scene[y0 : y0 + 20, x0 : x0 + 20], np.broadcast_to(colour, (20, 20, 3)))
        patch = out[y0 : y0 + 20, x0 : x0 + 20].reshape(-1, 3).mean(axis=0)
        np.testing.assert_allclose(patch, colour, atol=4 / 255, err_msg=f"patch {i}")
