"""Synthetic bursts (SPEC §6): noise statistics, shift distribution, crop geometry."""
from __future__ import annotations

import math

import pytest
import torch

from hyperisp.data.burst import (
    LARGE_SHIFT,
    P_LARGE_SHIFT,
    SMALL_SHIFT,
    add_burst_noise,
    random_burst_noise_levels,
    random_shifts,
    shifted_crops,
    synthesize_bursts,
)
from hyperisp.data.unprocess import srgb_to_linear


def test_noise_levels_are_log_uniform_in_the_spec_ranges():
    read, shot = random_burst_noise_levels(20000, torch.Generator().manual_seed(0))
    r, s = read.log10(), shot.log10()
    assert -3 <= r.min() and r.max() <= -1.5 and -2 <= s.min() and s.max() <= -1
    assert abs(r.mean() + 2.25) < 0.02 and abs(s.mean() + 1.5) < 0.02  # uniform in log10
    assert abs(r.std() - 1.5 / math.sqrt(12)) < 0.01


@pytest.mark.parametrize("level", [0.05, 0.6])
def test_noise_std_is_read_plus_shot(level):
    g = torch.Generator().manual_seed(1)
    clean = torch.full((2, 8, 64, 64), level)
    read, shot = torch.tensor([0.001, 0.03]), torch.tensor([0.1, 0.01])
    noise = add_burst_noise(clean, read, shot, g) - clean
    expected = torch.sqrt(read**2 + shot**2 * level)
    measured = noise.std(dim=(1, 2, 3))
    torch.testing.assert_close(measured, expected, rtol=0.02, atol=0)
    assert noise.mean(dim=(1, 2, 3)).abs().max() < 0.01 * expected.max()
    # Mildenhall's form: shot is a variance coefficient
    noise = add_burst_noise(clean, read, shot, g, shot_variance=True) - clean
    torch.testing.assert_close(noise.std(dim=(1, 2, 3)), torch.sqrt(read**2 + shot * level), rtol=0.02, atol=0)
    # independent between frames
    corr = torch.corrcoef(noise[1, :2].reshape(2, -1))[0, 1]
    assert abs(corr) < 0.03


def test_shifts_small_with_high_probability_and_large_rarely():
    shifts = random_shifts(4000, 8, torch.Generator().manual_seed(2))
    assert (shifts[:, 0] == 0).all()
    reach = shifts[:, 1:].abs().amax(-1)
    assert reach.max() <= LARGE_SHIFT and reach.max() > SMALL_SHIFT
    frac_beyond_small = (reach > SMALL_SHIFT).float().mean()
    # a large draw lands within 2 px with probability (5/33)^2
    expected = P_LARGE_SHIFT * (1 - (5 / 33) ** 2)
    assert abs(frac_beyond_small - expected) < 0.01


def test_shifted_crops_show_the_image_moved_by_the_shift():
    image = torch.arange(60 * 70, dtype=torch.float32).view(1, 60, 70)
    shifts = torch.tensor([[[0, 0], [2, -1], [-16, 16]]])
    crops = shifted_crops(image, shifts, 20)
    assert crops.shape == (1, 3, 20, 20)
    torch.testing.assert_close(crops[0, 1, :-2, 1:], crops[0, 0, 2:, :-1])  # frame1[p] = ref[p + (2, -1)]
    with pytest.raises(ValueError, match="at least 52 px"):
        shifted_crops(image[:, :40], shifts, 20)


def test_synthesized_bursts_are_linear_and_the_clean_target_is_the_reference():
    g = torch.Generator().manual_seed(3)
    srgb = torch.rand(3, 100, 100, generator=g)
    out = synthesize_bursts(srgb, frames=8, size=48, generator=g)
    assert out["noisy"].shape == (3, 8, 48, 48) and out["clean"].shape == (3, 1, 48, 48)
    torch.testing.assert_close(out["clean"][:, 0], srgb_to_linear(srgb[:, 26:74, 26:74]))
    residual = out["noisy"][:, 0] - out["clean"][:, 0]
    assert residual.std() > 1e-3  # the reference frame is noisy too
