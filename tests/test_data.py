"""Training-data synthesis: unprocessing (Brooks et al. 2019) and synthetic noise."""
from __future__ import annotations

import math

import pytest
import torch

from hyperisp.data import (
    blur_noise,
    mix_noise_channels,
    scale_noise_channels,
    signal_dependent_noise,
    add_awgn,
    add_raw_noise,
    inverse_tone_curve,
    linear_to_srgb,
    process,
    process_mosaic,
    quantize,
    random_bits,
    random_ccm,
    random_gains,
    random_metadata,
    random_noise_levels,
    random_phase_crop,
    srgb_realistic_noise,
    srgb_to_linear,
    tone_curve,
    unprocess,
)
from hyperisp.raw.bayer import mosaic_rgb


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def moderate_photos(n: int = 4, size: int = 32, seed: int = 0) -> torch.Tensor:
    """(n, 3, size, size) photos whose colours stay inside every camera gamut and below highlights."""
    g = gen(seed)
    grey = torch.rand(n, 1, size, size, generator=g)
    colour = torch.rand(n, 3, size, size, generator=g)
    return 0.05 + 0.8 * (0.6 * grey + 0.4 * colour)


# --- curves ----------------------------------------------------------------------------------

def test_tone_curve_and_inverse_round_trip():
    x = torch.linspace(0, 1, 10001)
    torch.testing.assert_close(tone_curve(inverse_tone_curve(x)), x, atol=1e-6, rtol=0)
    # The inverse is steep at 0 and 1, so check that direction in float64.
    torch.testing.assert_close(inverse_tone_curve(tone_curve(x.double())), x.double(), atol=1e-5, rtol=0)
    assert torch.allclose(tone_curve(torch.tensor([0.0, 0.5, 1.0])), torch.tensor([0.0, 0.5, 1.0]))


def test_srgb_curves_exact_and_inverse():
    x = torch.linspace(0, 1, 10001)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-5)
    assert torch.allclose(srgb_to_linear(linear_to_srgb(x)), x, atol=1e-5)
    # Reference values of the piecewise IEC 61966-2-1 curve (not a 2.2 power).
    assert srgb_to_linear(torch.tensor(0.5)).item() == pytest.approx(0.214041, abs=1e-5)
    assert srgb_to_linear(torch.tensor(0.02)).item() == pytest.approx(0.02 / 12.92, abs=1e-7)
    grad_x = torch.zeros(3, requires_grad=True)
    (linear_to_srgb(grad_x).sum() + srgb_to_linear(grad_x).sum()).backward()
    assert torch.isfinite(grad_x.grad).all()


# --- random camera parameters ----------------------------------------------------------------

def test_random_ccm_rows_and_inverse():
    rgb2cam, cam2rgb = random_ccm(256, gen(1))
    assert rgb2cam.shape == cam2rgb.shape == (256, 3, 3)
    assert torch.allclose(rgb2cam.sum(-1), torch.ones(256, 3), atol=1e-5)
    assert torch.allclose(rgb2cam @ cam2rgb, torch.eye(3).expand(256, 3, 3), atol=1e-5)
    # Camera matrices are diagonal dominant (each channel mostly sees its own primary) but random.
    diag = rgb2cam.diagonal(dim1=-2, dim2=-1)
    assert (diag > 0.4).all() and diag.std(0).min() > 1e-3


def test_random_gains_ranges():
    rgb_gain, red_gain, blue_gain = random_gains(20000, gen(2))
    assert red_gain.min() >= 1.2 and red_gain.max() <= 2.8
    assert blue_gain.min() >= 1.2 and blue_gain.max() <= 3.0
    # Spread over the range, covering daylight (red ~2.6, blue ~1.4) and tungsten (red ~1.3, blue ~2.7).
    assert red_gain.min() < 1.3 and red_gain.max() > 2.6 and blue_gain.min() < 1.4 and blue_gain.max() > 2.7
    red, blue = random_gains(100, gen(2), red_range=(2.0, 2.0), blue_range=(1.5, 1.6))[1:]
    assert torch.equal(red, torch.full((100,), 2.0)) and blue.min() >= 1.5 and blue.max() <= 1.6
    inv = 1.0 / rgb_gain  # ~ N(0.8, 0.1) clipped to [0.5, 1.0]
    assert inv.mean().item() == pytest.approx(0.8, abs=0.01)
    assert inv.std().item() == pytest.approx(0.1, abs=0.01)
    assert inv.min() >= 0.5 - 1e-6 and inv.max() <= 1.0 + 1e-6
    assert (rgb_gain >= 1.0).all()


# --- unprocess / process ---------------------------------------------------------------------

def test_unprocess_shapes_and_mosaic_of_target():
    srgb = moderate_photos()
    mosaic, meta = unprocess(srgb, gen(3))
    assert mosaic.shape == (4, 1, 32, 32)
    assert meta["clean_cam"].shape == (4, 3, 32, 32)
    for key in ("rgb_gain", "red_gain", "blue_gain", "exposure"):
        assert meta[key].shape == (4,)
    assert meta["rgb2cam"].shape == meta["cam2rgb"].shape == (4, 3, 3)
    assert torch.equal(mosaic, mosaic_rgb(meta["clean_cam"]))
    assert mosaic.min() >= 0 and mosaic.max() <= 1
    # Undoing white balance makes the raw green-dominant, as in real raws.
    cam = meta["clean_cam"]
    assert (cam[:, 1].mean((1, 2)) > cam[:, 0].mean((1, 2))).all()
    assert (cam[:, 1].mean((1, 2)) > cam[:, 2].mean((1, 2))).all()


def test_unprocess_then_process_round_trip():
    srgb = moderate_photos()
    meta = random_metadata(4, gen(4), exposure_log2_range=(-1.0, 0.0))  # no over-exposure: nothing clips
    _, meta = unprocess(srgb, metadata=meta)
    assert torch.allclose(process(meta["clean_cam"], meta), srgb, atol=1e-3)
    # The full ISP with bilinear demosaicking is close on a smooth photo (it errs only at edges).
    corners = moderate_photos(4, 2)
    smooth = torch.nn.functional.interpolate(corners, size=(32, 32), mode="bilinear", align_corners=True)
    mosaic, meta = unprocess(smooth, metadata=meta)
    assert (process_mosaic(mosaic, meta) - smooth)[..., 1:-1, 1:-1].abs().max() < 5e-3


def test_highlights_stay_neutral_and_overexposure_clips():
    white = torch.ones(2, 3, 4, 4)
    meta = random_metadata(2, gen(5), exposure_log2_range=None)
    mosaic, meta = unprocess(white, metadata=meta)
    # Highlight-preserving gain inversion: white stays at sensor saturation, and comes back white.
    assert torch.allclose(mosaic, torch.ones_like(mosaic))
    assert torch.allclose(process(meta["clean_cam"], meta), white, atol=1e-5)
    # Over-exposure by three stops saturates (green of) a grey that is otherwise well inside range.
    grey = torch.full((1, 3, 4, 4), 0.7)
    meta = random_metadata(1, gen(6), exposure_log2_range=None)
    dim, _ = unprocess(grey, metadata=meta)
    bright, _ = unprocess(grey, metadata={**meta, "exposure": torch.tensor([8.0])})
    assert dim.max() < 0.5 and bright.max() == 1.0


def test_unprocess_is_deterministic_per_seed():
    srgb = moderate_photos(2, 16)
    a, meta_a = unprocess(srgb, gen(7))
    b, meta_b = unprocess(srgb, gen(7))
    c, _ = unprocess(srgb, gen(8))
    assert torch.equal(a, b) and torch.equal(meta_a["rgb2cam"], meta_b["rgb2cam"])
    assert not torch.equal(a, c)


def test_random_phase_crop_covers_all_phases_and_flips():
    n, h, w = 64, 9, 10
    base = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w).expand(n, 3, h, w)
    out = random_phase_crop(base, gen(9))
    assert out.shape == (n, 3, 8, 8)
    tops_lefts, flips = set(), set()
    for crop in out[:, 0]:
        first, right, below = int(crop[0, 0]), int(crop[0, 1]), int(crop[1, 0])
        flip_cols, flip_rows = right < first, below < first
        row, col = divmod(first, w)
        # The crop is a contiguous window of the (flipped) image.
        ref = base[0, 0]
        ref = ref.flip(-1) if flip_cols else ref
        ref = ref.flip(-2) if flip_rows else ref
        r0, c0 = (h - 1 - row if flip_rows else row), (w - 1 - col if flip_cols else col)
        assert torch.equal(crop, ref[r0:r0 + 8, c0:c0 + 8])
        tops_lefts.add((r0 % 2, c0 % 2))
        flips.add((flip_rows, flip_cols))
    assert tops_lefts == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert len(flips) == 4
    with pytest.raises(ValueError, match="even"):
        random_phase_crop(base, gen(9), size=(7, 8))


# --- noise -----------------------------------------------------------------------------------

def test_noise_levels_distribution_and_log_log_fit():
    shot, read = random_noise_levels(20000, gen(10))
    log_shot, log_read = shot.double().log(), read.double().log()
    lo, hi = math.log(1e-4), math.log(1.2e-2)
    assert log_shot.min() >= lo - 1e-6 and log_shot.max() <= hi + 1e-6
    counts = torch.histc(log_shot, bins=10, min=lo, max=hi)  # log-uniform: flat histogram
    assert ((counts - 2000).abs() < 200).all()
    centred = log_shot - log_shot.mean()
    slope = (centred * (log_read - log_read.mean())).sum() / (centred**2).sum()
    intercept = log_read.mean() - slope * log_shot.mean()
    residual = log_read - (slope * log_shot + intercept)
    assert slope.item() == pytest.approx(2.18, abs=0.05)
    assert intercept.item() == pytest.approx(1.20, abs=0.25)
    assert residual.std().item() == pytest.approx(0.26, abs=0.02)


@pytest.mark.parametrize("level,shot,read", [(0.3, 1e-2, 1e-3), (0.6, 1e-3, 1e-5), (0.1, 1e-4, 1e-6)])
def test_add_raw_noise_variance(level, shot, read):
    flat = torch.full((4, 1, 64, 64), level)
    noisy = add_raw_noise(flat, shot, read, gen(11))
    expected = shot * level + read
    assert (noisy - flat).var().item() == pytest.approx(expected, rel=0.1)
    assert (noisy - flat).mean().abs() < 4 * math.sqrt(expected / flat.numel())


def test_add_raw_noise_per_sample_levels_clip_and_determinism():
    flat = torch.full((2, 1, 64, 64), 0.5)
    shot, read = torch.tensor([1e-2, 1e-4]), torch.tensor([1e-3, 1e-6])
    noisy = add_raw_noise(flat, shot, read, gen(12))
    var = (noisy - flat).var(dim=(1, 2, 3))
    assert torch.allclose(var, shot * 0.5 + read, rtol=0.1)
    assert torch.equal(noisy, add_raw_noise(flat, shot, read, gen(12)))
    assert not torch.equal(noisy, add_raw_noise(flat, shot, read, gen(13)))
    dark = add_raw_noise(torch.zeros(1, 1, 32, 32), 1e-2, 1e-2, gen(14))
    assert dark.min() == 0.0 and dark.max() <= 1.0
    assert add_raw_noise(torch.zeros(1, 1, 32, 32), 1e-2, 1e-2, gen(14), clip=False).min() < 0
    with pytest.raises(ValueError, match="shot"):
        add_raw_noise(flat, torch.ones(3), read, gen(12))


def test_quantize_levels():
    x = torch.rand(3, 1, 64, 64, generator=gen(15)) * 1.2 - 0.1
    for bits in (4, 10):
        q = quantize(x, bits)
        assert q.unique().numel() <= 2 ** bits
        inside = (x >= 0) & (x <= 1)
        assert (q - x)[inside].abs().max() <= 0.5 / (2 ** bits - 1) + 1e-6
        assert q.min() >= 0 and q.max() <= 1
    per_sample = quantize(x, torch.tensor([2, 3, 4]))
    for i, bits in enumerate((2, 3, 4)):
        assert per_sample[i].unique().numel() <= 2 ** bits
    bits = random_bits(1000, gen(16))
    assert bits.min() == 10 and bits.max() == 14


def test_add_awgn_sigma():
    image = torch.full((3, 3, 64, 64), 0.5)
    sigma = torch.tensor([5, 25, 50]) / 255
    noise = add_awgn(image, sigma, gen(17)) - image
    assert torch.allclose(noise.std(dim=(1, 2, 3)), sigma, rtol=0.03)


def test_srgb_realistic_noise_modes():
    clean = moderate_photos(4, 32, seed=18)
    awgn = srgb_realistic_noise(clean, gen(19), sigma_awgn_max=20 / 255, mode_probs=(0, 1, 0), blur_prob=0.0) - clean
    assert awgn.std(dim=(1, 2, 3)).max() <= 20 / 255 * 1.05
    camera = srgb_realistic_noise(clean, gen(19), mode_probs=(1, 0, 0))
    assert camera.shape == clean.shape and camera.min() >= 0 and camera.max() <= 1
    noise = camera - clean
    assert (noise.std(dim=(1, 2, 3)) > 1e-3).all()

    def neighbour_correlation(n: torch.Tensor) -> float:
        a, b = n[..., :, :-1].flatten(), n[..., :, 1:].flatten()
        return torch.corrcoef(torch.stack([a, b]))[0, 1].item()

    # Demosaicking makes camera noise spatially correlated; AWGN is white.
    assert neighbour_correlation(noise) > 0.2
    assert abs(neighbour_correlation(awgn)) < 0.05
    # Same seed, same output; the mixture never leaves a sample clean.
    mixed = srgb_realistic_noise(clean, gen(20))
    assert torch.equal(mixed, srgb_realistic_noise(clean, gen(20)))
    assert ((mixed - clean).abs().mean(dim=(1, 2, 3)) > 0).all()


def channel_correlation(noise: torch.Tensor) -> torch.Tensor:
    """Mean off-diagonal correlation between the channels of (N, 3, H, W) noise."""
    c = torch.corrcoef(noise.transpose(0, 1).flatten(1))
    return (c.sum() - c.trace()) / 6


def test_blur_noise_correlates_neighbours_and_keeps_rms():
    noise = torch.randn(3, 3, 48, 48, generator=gen(24))
    blurred = blur_noise(noise, torch.tensor([0.0, 0.5, 1.2]))
    torch.testing.assert_close(blurred[0], noise[0])  # sigma 0: unchanged
    rms = lambda n: n.square().mean(dim=(1, 2, 3)).sqrt()  # noqa: E731
    torch.testing.assert_close(rms(blurred), rms(noise))

    def lag1(n: torch.Tensor) -> float:
        return torch.corrcoef(torch.stack([n[..., :-1].flatten(), n[..., 1:].flatten()]))[0, 1].item()

    assert abs(lag1(blurred[0])) < 0.05 < lag1(blurred[1]) < lag1(blurred[2])
    # And through the mixture: blurred Gaussian noise is spatially correlated.
    clean = moderate_photos(4, 32, seed=25)
    coloured = srgb_realistic_noise(clean, gen(26), mode_probs=(0, 1, 0), blur_prob=1.0) - clean
    assert lag1(coloured) > 0.3


def test_phone_sigma_max_scales_only_the_blurred_noise():
    clean = torch.full((6, 3, 32, 32), 0.5)
    rms = lambda n: n.square().mean(dim=(1, 2, 3)).sqrt()  # noqa: E731
    for blur_prob, ratio in ((1.0, 2.0), (0.0, 1.0)):  # blurred: twice the level; white: unchanged
        kwargs = dict(sigma_awgn_max=10 / 255, mode_probs=(0, 1, 0), blur_prob=blur_prob)
        base = srgb_realistic_noise(clean, gen(27), **kwargs) - clean
        strong = srgb_realistic_noise(clean, gen(27), phone_sigma_max=20 / 255, **kwargs) - clean
        torch.testing.assert_close(rms(strong), ratio * rms(base), rtol=1e-4, atol=1e-6)


def check_phone_only_option(clean: torch.Tensor, phone: dict, option: str, off, on, bad, seed: int) -> None:
    """An option of the phone noise alone: off, a seed's stream is kept; white AWGN samples (CBSD68's
    noise) are the same with it on; a bad value raises. ``phone``: arguments giving phone noise only."""
    assert torch.equal(srgb_realistic_noise(clean, gen(seed), **phone),
                       srgb_realistic_noise(clean, gen(seed), **{option: off}, **phone))
    white = dict(phone, blur_prob=0.0)
    torch.testing.assert_close(srgb_realistic_noise(clean, gen(seed + 1), **{option: on}, **white),
                               srgb_realistic_noise(clean, gen(seed + 1), **white))
    with pytest.raises(ValueError, match=option):
        srgb_realistic_noise(clean, gen(seed + 1), **{option: bad})


def test_phone_channel_gain_makes_green_the_quietest_phone_channel():
    clean = torch.full((8, 3, 32, 32), 0.5)
    phone = dict(sigma_awgn_max=10 / 255, mode_probs=(0, 1, 0), blur_prob=1.0, luma_mix_max=0.0)
    check_phone_only_option(clean, phone, "phone_channel_gain_max", off=1.0, on=2.0, bad=0.5, seed=32)
    equal = srgb_realistic_noise(clean, gen(32), **phone) - clean
    louder = srgb_realistic_noise(clean, gen(32), phone_channel_gain_max=2.0, **phone) - clean
    rms = lambda n: n.square().mean(dim=(2, 3)).sqrt()  # noqa: E731  (N, 3)
    ratio = rms(louder) / rms(equal)
    assert (ratio[:, 1] < 1).all() and (ratio[:, 0] > ratio[:, 1]).all() and (ratio[:, 2] > ratio[:, 1]).all()
    torch.testing.assert_close(louder.square().mean(dim=(1, 2, 3)), equal.square().mean(dim=(1, 2, 3)), rtol=1e-3, atol=0)


def test_scale_noise_channels():
    noise = torch.randn(2, 3, 16, 16, generator=gen(34))
    torch.testing.assert_close(scale_noise_channels(noise, torch.full((2, 3), 3.0)), noise)
    scaled = scale_noise_channels(noise, torch.tensor([[2.0, 1.0, 1.0], [1.0, 1.0, 2.0]]))
    rms = lambda n: n.square().mean(dim=(1, 2, 3)).sqrt()  # noqa: E731
    torch.testing.assert_close(rms(scaled), rms(noise))
    torch.testing.assert_close(scaled[0, 0] / noise[0, 0], 2 * scaled[0, 1] / noise[0, 1])
    with pytest.raises(ValueError, match="positive gains"):
        scale_noise_channels(noise, torch.zeros(2, 3))


def test_signal_dependent_noise_follows_the_signal_and_keeps_the_level():
    clean = torch.cat([torch.full((2, 3, 32, 16), 0.2), torch.full((2, 3, 32, 16), 0.8)], dim=3)
    noise = 0.01 * torch.randn(clean.shape, generator=gen(36))
    rms = lambda n: n.square().mean(dim=(1, 2, 3)).sqrt()  # noqa: E731
    shot = signal_dependent_noise(clean, noise, 1.0)  # gamma 1, nothing clipped: a per-pixel gain only
    torch.testing.assert_close(rms(shot), rms(noise))
    dark, bright = rms(shot[..., :16]), rms(shot[..., 16:])
    torch.testing.assert_close(bright / dark, torch.full((2,), math.sqrt(0.82 / 0.22)), rtol=0.1, atol=0)
    curved = signal_dependent_noise(clean, 10 * noise, torch.tensor([2.0, 2.0]))
    torch.testing.assert_close(rms(curved), rms(10 * noise), rtol=0.05, atol=0)
    assert (curved.mean(dim=(1, 2, 3)) < 0).all()  # a concave curve darkens symmetric noise on average
    strong = signal_dependent_noise(clean, 30 * noise, 1.5)
    assert float((clean + strong).min()) >= 0 and float((clean + strong).max()) <= 1 + 1e-6
    with pytest.raises(ValueError, match="gamma >= 1"):
        signal_dependent_noise(clean, noise, 0.5)
    with pytest.raises(ValueError, match="one shape"):
        signal_dependent_noise(clean, noise[:1], 1.0)


def test_phone_signal_prob_changes_only_the_phone_noise():
    clean = torch.rand(8, 3, 32, 32, generator=gen(37))
    phone = dict(mode_probs=(0, 1, 0), blur_prob=1.0)
    check_phone_only_option(clean, phone, "phone_signal_prob", off=0.0, on=1.0, bad=1.5, seed=37)
    assert not torch.equal(srgb_realistic_noise(clean, gen(37), **phone),
                           srgb_realistic_noise(clean, gen(37), phone_signal_prob=1.0, **phone))


def test_return_white_marks_the_plain_white_awgn_samples():
    clean = torch.rand(6, 3, 16, 16, generator=gen(39))
    for kwargs, expected in ((dict(mode_probs=(0, 1, 0), blur_prob=0.0), True),
                             (dict(mode_probs=(0, 1, 0), blur_prob=1.0), False),  # phone noise
                             (dict(mode_probs=(0, 0, 1), blur_prob=0.0), False)):  # camera noise too
        noisy, white = srgb_realistic_noise(clean, gen(39), return_white=True, **kwargs)
        assert torch.equal(noisy, srgb_realistic_noise(clean, gen(39), **kwargs))
        assert white.dtype == torch.bool and torch.equal(white, torch.full((6,), expected))


def test_unclipped_prob_leaves_only_white_awgn_samples_unclipped():
    clean = torch.cat([torch.full((8, 3, 32, 32), 0.02), torch.full((8, 3, 32, 32), 0.98)])
    clipped = srgb_realistic_noise(clean, gen(28))
    assert torch.equal(clipped, srgb_realistic_noise(clean, gen(28), unclipped_prob=0.0))  # old streams kept
    outside = lambda x: ((x < 0) | (x > 1)).flatten(1).any(dim=1)  # noqa: E731
    white = dict(mode_probs=(0, 1, 0), blur_prob=0.0)
    # (all but the samples whose level, U(0, 50/255), is too small to leave [0, 0.02] or [0.98, 1])
    assert outside(srgb_realistic_noise(clean, gen(29), unclipped_prob=1.0, **white)).float().mean() > 0.8
    # Pure white AWGN samples unclipped: the same values, clipped, as without the option.
    torch.testing.assert_close(srgb_realistic_noise(clean, gen(29), unclipped_prob=1.0, **white).clamp(0, 1),
                               srgb_realistic_noise(clean, gen(29), **white))
    for others in ({"mode_probs": (1, 0, 0)}, {"mode_probs": (0, 0, 1)}, {"mode_probs": (0, 1, 0), "blur_prob": 1.0}):
        assert not outside(srgb_realistic_noise(clean, gen(30), unclipped_prob=1.0, **others)).any()
    half = outside(srgb_realistic_noise(clean.repeat(8, 1, 1, 1), gen(31), unclipped_prob=0.5, **white))
    assert 0.3 < half.float().mean() < 0.7
    with pytest.raises(ValueError, match="unclipped_prob"):
        srgb_realistic_noise(clean, gen(31), unclipped_prob=1.5)


def test_mix_noise_channels():
    noise = torch.randn(2, 3, 16, 16, generator=gen(21))
    assert torch.equal(mix_noise_channels(noise, 0.0), noise)
    luma = mix_noise_channels(noise, 1.0)
    assert torch.allclose(luma[:, :1].expand_as(luma), luma)
    rms = lambda n: n.square().mean(dim=(1, 2, 3)).sqrt()  # noqa: E731
    assert torch.allclose(rms(mix_noise_channels(noise, torch.tensor([0.3, 0.7]))), rms(noise), rtol=1e-5)
    with pytest.raises(ValueError, match="N, 3, H, W"):
        mix_noise_channels(noise[:, :2], 0.5)


def test_srgb_realistic_noise_covers_positive_channel_correlation():
    # A CCM makes camera noise anti-correlated across channels; real phone noise is positively
    # correlated (the SIDD pair: +0.3 to +0.5), and the channel mix must produce that too.
    clean = moderate_photos(8, 32, seed=22)
    plain = srgb_realistic_noise(clean, gen(23), mode_probs=(1, 0, 0), luma_mix_prob=0.0) - clean
    mixed = srgb_realistic_noise(clean, gen(23), mode_probs=(1, 0, 0), luma_mix_prob=1.0, luma_mix_max=1.0) - clean
    assert channel_correlation(plain) < 0
    assert channel_correlation(mixed) > channel_correlation(plain) + 0.2
