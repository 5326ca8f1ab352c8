"""hyperisp.blend: strength and chroma strength, the amounts of noise `denoise` and `burst` remove."""
from __future__ import annotations

import numpy as np
import pytest

from hyperisp.blend import LUMA_WEIGHTS, blend_denoised, check_strength, keeps_input
from hyperisp.errors import HyperispError


def _pair(shape=(16, 24, 3), seed=0):
    """(noisy, denoised) away from 0 and 1, so no clipping hides the blend."""
    rng = np.random.default_rng(seed)
    denoised = rng.uniform(0.3, 0.7, shape).astype(np.float32)
    return np.clip(denoised + rng.normal(0, 0.05, shape), 0.1, 0.9).astype(np.float32), denoised


def _luma_chroma(rgb):
    luma = rgb @ LUMA_WEIGHTS
    return luma, rgb - luma[..., None]


def test_equal_amounts_blend_the_whole_pixel():
    noisy, denoised = _pair()
    for strength in (0.0, 0.4, 1.0):
        out = blend_denoised(noisy, denoised.copy(), strength, strength)
        np.testing.assert_allclose(out, noisy + strength * (denoised - noisy), atol=1e-6)
    np.testing.assert_allclose(blend_denoised(noisy, denoised.copy(), 0.4), blend_denoised(noisy, denoised.copy(), 0.4, 0.4))


@pytest.mark.parametrize("strength, chroma", [(0.0, 1.0), (1.0, 0.0), (0.7, 1.0), (0.5, 0.2)])
def test_strength_sets_the_luma_and_chroma_strength_the_colour(strength, chroma):
    noisy, denoised = _pair()
    out = blend_denoised(noisy, denoised.copy(), strength, chroma)
    (out_y, out_c), (n_y, n_c), (d_y, d_c) = map(_luma_chroma, (out, noisy, denoised))
    np.testing.assert_allclose(out_y, n_y + strength * (d_y - n_y), atol=1e-5)
    np.testing.assert_allclose(out_c, n_c + chroma * (d_c - n_c), atol=1e-5)


def test_grey_images_have_no_chroma_and_the_result_is_clipped():
    noisy, denoised = _pair((16, 24))
    np.testing.assert_allclose(blend_denoised(noisy, denoised.copy(), 0.5, chroma_strength=0.0),
                               noisy + 0.5 * (denoised - noisy), atol=1e-6)
    out = blend_denoised(np.full((2, 2, 3), 1.2, np.float32), np.zeros((2, 2, 3), np.float32), 0.1)
    assert out.max() == 1.0


def test_bad_amounts_and_shapes_are_refused():
    noisy, denoised = _pair()
    for kwargs, name in (({"strength": -0.1}, "strength -0.1"), ({"strength": 1, "chroma_strength": 1.5}, "chroma strength 1.5")):
        with pytest.raises(HyperispError, match=f"{name}: expected a value from 0"):
            blend_denoised(noisy, denoised.copy(), **kwargs)
    with pytest.raises(ValueError, match="one shape"):
        blend_denoised(noisy, denoised[:8].copy(), 0.5)
    check_strength(0.0, None)  # in range: no error


def test_only_zero_for_both_keeps_the_input():
    assert keeps_input(0.0) and keeps_input(0.0, 0.0)
    assert not keeps_input(0.0, 0.5) and not keeps_input(0.5) and not keeps_input(0.5, 0.0)
