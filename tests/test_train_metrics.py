"""Metrics: PSNR, SSIM, MS-SSIM against known values."""
import math

import pytest
import torch

from hyperisp.metrics import crop_border, ms_ssim, psnr, ssim


pytestmark = pytest.mark.usefixtures("one_thread")


def _image(seed: int, size: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, size, size, generator=g)


def test_psnr_of_constant_offset_follows_formula():
    x = _image(0) * 0.8
    assert torch.allclose(psnr(x, x + 0.05), torch.full((2,), -20 * math.log10(0.05)), atol=1e-4)
    assert torch.allclose(psnr(x * 255, x * 255 + 2, data_range=255), torch.full((2,), 10 * math.log10(255**2 / 4)),
                          atol=1e-4)


def test_psnr_identical_is_inf_and_border_excludes_edges():
    x = _image(1)
    assert torch.isinf(psnr(x, x)).all()
    y = x.clone()
    y[..., :8, :] += 0.5  # damage only the top 8 rows
    assert torch.isfinite(psnr(x, y)).all()
    assert torch.isinf(psnr(x, y, border=8)).all()
    assert crop_border(x, 8).shape == (2, 3, 48, 48)


def test_ssim_identity_symmetry_and_bounds():
    x, y = _image(2), _image(3)
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-6)
    assert torch.allclose(ssim(x, y), ssim(y, x), atol=1e-6)
    assert (ssim(x, y) <= 1).all() and (ssim(x, y) < 0.2).all()  # independent noise: almost no structure
    noisy = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(4))).clamp(0, 1)
    noisier = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(4))).clamp(0, 1)
    assert (ssim(x, noisy) > ssim(x, noisier)).all()


def test_ssim_of_constant_images_matches_luminance_term():
    # Constant images: sigma terms are 0, so SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    a, b = torch.full((1, 1, 16, 16), 0.5), torch.full((1, 1, 16, 16), 0.3)
    c1 = 0.01**2
    expected = (2 * 0.5 * 0.3 + c1) / (0.5**2 + 0.3**2 + c1)
    assert float(ssim(a, b)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("size", [200, 64, 12, 5])
def test_ms_ssim_identity_is_one_for_any_size(size):
    x = _image(5, size)
    assert torch.allclose(ms_ssim(x, x), torch.ones(2), atol=1e-6)
    y = (x + 0.1).clamp(0, 1)
    assert (ms_ssim(x, y) < 1).all()


def test_ms_ssim_is_differentiable_and_orders_noise():
    x = _image(6, 96)
    y = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(7))).requires_grad_()
    value = ms_ssim(x, y, dtype=torch.float32).mean()
    value.backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    z = x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    assert float(value.detach()) > float(ms_ssim(x, z).mean())


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="same shape"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
