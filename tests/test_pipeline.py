"""The Python API end to end, and the real-raw smoke test."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hyperisp
from conftest import TINY_MODELS, shared_path


def test_develop_a_bayer_array():
    rng = np.random.default_rng(0)
    mosaic = (rng.random((32, 48)) * 1000 + 100).astype(np.uint16)
    rgb = hyperisp.develop(mosaic, cfa_phase="GRBG", black_level=100, white_level=1100, device="cpu")
    assert rgb.shape == (32, 48, 3) and rgb.dtype == np.float32
    assert 0 <= rgb.min() and rgb.max() <= 1


def test_develop_rejects_a_cuda_request_without_gpu(small_dng):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(hyperisp.HyperispError, match="CUDA"):
        hyperisp.develop(small_dng, device="cuda")


def test_denoise_array_dtypes():
    img = np.full((24, 40, 3), 128, np.uint8)
    out = hyperisp.denoise(img, device="cpu")
    assert out.shape == (24, 40, 3) and out.dtype == np.float32


def test_denoise_strength_blends_the_input_with_the_full_result():
    image = np.random.default_rng(0).uniform(0, 1, (24, 40, 3)).astype(np.float32)
    full = hyperisp.denoise(image, device="cpu")
    assert np.abs(full - image).max() > 0.01  # the shipped model changes the pixels, so the blend is visible
    assert np.array_equal(hyperisp.denoise(image, device="cpu", strength=0), image)
    np.testing.assert_allclose(hyperisp.denoise(image, device="cpu", strength=0.25), image + 0.25 * (full - image),
                               atol=1e-6)
    for bad in (-0.1, 1.5):
        with pytest.raises(hyperisp.HyperispError, match=f"strength {bad}: expected a value from 0"):
            hyperisp.denoise(image, device="cpu", strength=bad)
    chroma_only = hyperisp.denoise(image, device="cpu", strength=0, chroma_strength=1)  # colour noise only
    from hyperisp.raw.colour_spaces import LUMA_WEIGHTS as luma
    np.testing.assert_allclose(chroma_only @ luma, np.clip(image, 0, 1) @ luma, atol=0.02)  # where clipping allows
    assert np.abs(chroma_only - image).max() > 0.01


def test_grey_photos_come_back_grey():
    y, x = np.mgrid[0:40, 0:56]
    grey = np.clip(0.5 + 0.3 * np.sin(x / 5) + np.random.default_rng(3).normal(0, 0.08, x.shape), 0, 1)
    out = hyperisp.denoise(grey.astype(np.float32), device="cpu")
    assert out.shape == (40, 56) and np.abs(out - grey).max() > 0.01
    neutral = hyperisp.denoise(np.repeat(grey[..., None], 3, axis=2).astype(np.float32), device="cpu")
    assert neutral.shape == (40, 56, 3)
    assert np.array_equal(neutral[..., 0], neutral[..., 1]) and np.array_equal(neutral[..., 0], neutral[..., 2])
    np.testing.assert_allclose(neutral[..., 0], out, atol=1e-6)


class _MustNotRun(torch.nn.Module):
    task = "denoise"

    def forward(self, x):
        raise AssertionError("the network ran although strength 0 keeps the input")


def test_denoise_at_strength_zero_skips_the_network():
    image = np.random.default_rng(1).uniform(0, 1, (8, 8, 3)).astype(np.float32)
    assert np.array_equal(hyperisp.denoise(image, model=_MustNotRun(), device="cpu", strength=0), image)
    with pytest.raises(AssertionError, match="the network ran"):
        hyperisp.denoise(image, model=_MustNotRun(), device="cpu", strength=0, chroma_strength=0.5)


def test_kodak_dc50_develops_upright_and_neutral():
    """Smoke test on a real camera raw (GRBG, no stored white balance)."""
    path = shared_path("datasets", "val", "raw", "kodak_dc50.kdc")
    developed = hyperisp.develop_raw(hyperisp.read_raw(path), device="cpu")
    rgb = developed.rgb
    assert rgb.shape == (512, 768, 3)
    assert developed.white_balance_source.startswith("auto")
    # The scene is grey concrete under a pale sky: the grey-world means should be close.
    means = rgb.reshape(-1, 3).mean(0)
    assert np.abs(means / means.mean() - 1).max() < 0.12, means
    # Upright: the sky (bright, bluish) is in the top rows, not the bottom.
    top, bottom = rgb[:60].mean(), rgb[-60:].mean()
    assert top > bottom


def test_a_model_passed_in_runs_where_its_weights_are_or_says_why_not():
    from hyperisp.errors import HyperispError
    from hyperisp.models import create_model

    net = create_model("denoise_small", **TINY_MODELS["denoise"]).eval()
    image = np.random.default_rng(0).uniform(0, 1, (24, 40, 3)).astype(np.float32)
    assert hyperisp.denoise(image, model=net).shape == image.shape  # 'auto': on its weights' device, even with a GPU
    with pytest.raises(HyperispError, match="model passed in is on meta, not on cpu"):
        hyperisp.denoise(image, model=net.to("meta"), device="cpu")
