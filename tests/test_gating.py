"""Paper B's theorems, checked numerically: hypernetwork layers == gated double layers."""
from __future__ import annotations

import pytest
import torch

from hyperisp.nn import HyperFilters, hyper_conv2d
from hyperisp.nn.gating import (
    GatedConvDoubleLayer,
    GatedDoubleLayer,
    apply_pixel_kernels,
    gdl_from_hypernetwork,
    gdl_from_kernel_prediction,
    hypernetwork_layer,
)

torch.set_default_dtype(torch.float32)


def test_theorem_3_1_indexing_construction_is_exact():
    g = torch.Generator().manual_seed(0)
    n, n_i, n_j = 5, 7, 3
    x = torch.randn(n, n_i, generator=g, dtype=torch.float64)
    weight = torch.randn(n, n_i, n_j, generator=g, dtype=torch.float64)  # predicted per sample
    gdl, a = gdl_from_hypernetwork(weight, torch.tanh)
    assert a.shape == (n, n_i * n_j) and gdl.v.shape == (n_i, n_i * n_j) and gdl.u.shape == (n_i * n_j, n_j)
    torch.testing.assert_close(gdl(x, a), hypernetwork_layer(x, weight, torch.tanh), rtol=0, atol=1e-12)
    # a is W flattened with k = n_i*j + i, v and u are 0/1 selectors
    assert a[2, n_i * 1 + 4] == weight[2, 4, 1]
    assert set(gdl.v.unique().tolist()) == {0.0, 1.0} and (gdl.v.sum(0) == 1).all() and (gdl.u.sum(1) == 1).all()


def test_theorem_3_1_fails_with_a_wrong_index_order():
    # The test above must be able to fail: flattening W the other way round breaks it.
    g = torch.Generator().manual_seed(1)
    x, weight = torch.randn(2, 4, generator=g), torch.randn(2, 4, 3, generator=g)
    gdl, _ = gdl_from_hypernetwork(weight)
    wrong = weight.reshape(2, 12)
    assert (gdl(x, wrong) - hypernetwork_layer(x, weight)).abs().max() > 1e-2


def test_dense_gdl_checks_shapes():
    gdl = GatedDoubleLayer(4, 6, 2)
    assert gdl(torch.randn(3, 4), torch.randn(3, 6)).shape == (3, 2)
    with pytest.raises(ValueError, match="a of shape"):
        gdl(torch.randn(3, 4), torch.randn(3, 5))


@pytest.mark.parametrize("c_in,c_out,f", [(1, 1, 5), (3, 2, 3)])
def test_corollary_3_2_kernel_prediction_is_a_conv_gdl(c_in, c_out, f):
    g = torch.Generator().manual_seed(2)
    n, h, w = 2, 9, 11
    x = torch.randn(n, c_in, h, w, generator=g, dtype=torch.float64)
    kernels = torch.randn(n, c_out, c_in, f * f, h, w, generator=g, dtype=torch.float64)
    gdl, a = gdl_from_kernel_prediction(kernels)
    assert a.shape == (n, c_out * c_in * f * f, h, w)
    torch.testing.assert_close(gdl(x, a), apply_pixel_kernels(x, kernels), rtol=0, atol=1e-12)


def test_pixel_kernels_match_a_plain_conv_when_constant_and_hyperconv_is_a_special_case():
    """A HyperConv (one kernel per image) is a kernel prediction layer with the kernel repeated per pixel."""
    g = torch.Generator().manual_seed(3)
    n, c_in, c_out, f, h, w = 2, 3, 4, 3, 8, 10
    x = torch.randn(n, c_in, h, w, generator=g)
    weight = torch.randn(n, c_out, c_in, f, f, generator=g)
    kernels = weight.reshape(n, c_out, c_in, f * f, 1, 1).expand(-1, -1, -1, -1, h, w)
    expected = hyper_conv2d(x, HyperFilters(weight))
    torch.testing.assert_close(apply_pixel_kernels(x, kernels), expected, rtol=1e-5, atol=1e-5)
    gdl, a = gdl_from_kernel_prediction(kernels)
    torch.testing.assert_close(gdl(x, a), expected, rtol=1e-5, atol=1e-5)
    # a pixel-varying kernel is not a conv
    kernels2 = kernels.clone()
    kernels2[..., 4, 5] += 1
    assert (apply_pixel_kernels(x, kernels2) - expected).abs().max() > 0.1


def test_low_rank_gdl_has_fewer_channels_and_checks_its_multiplier():
    layer = GatedConvDoubleLayer(8, 64, 1, kernel_size=5, out_kernel_size=5)
    x = torch.randn(1, 8, 12, 12)
    assert layer(x, torch.ones(1, 64, 12, 12)).shape == (1, 1, 12, 12)
    with pytest.raises(ValueError, match="multiplier"):
        layer(x, torch.ones(1, 200, 12, 12))


def test_theorem_3_3_low_rank_linear_hypernetwork_is_a_factorization_machine():
    """Theorem 3.3 on binary inputs, with the identity written out.

    Hypernetwork layer with one output whose weights are predicted LINEARLY from the
    layer's own input x in {0, 1}^n, through a rank-r map (a GDL with linear multiplier):

        H(x) = sum_i W(x)_i x_i,   W(x) = b + A x,   A = (1/2) V V^T,  V (n, r)

    Factorization machine (Rendle 2010):

        FM(x) = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j

    Identity tested: H(x) == FM(x) with w0 = 0, w_i = b_i + ||v_i||^2 / 2 and the FM
    factors v_i = rows of V. The rescaling is the 1/2 on the low-rank factor (x^T A x
    counts each pair i != j twice) and the diagonal folded into the linear term, which
    uses x_i^2 = x_i, i.e. binary inputs; on real inputs the identity fails.
    """
    g = torch.Generator().manual_seed(4)
    n, r = 10, 3
    b = torch.randn(n, generator=g, dtype=torch.float64)
    factors = torch.randn(n, r, generator=g, dtype=torch.float64)

    def hypernetwork(x):  # low-rank: the predicted weight goes through r numbers, (V^T x)
        weight = b + 0.5 * (x @ factors) @ factors.T
        return (weight * x).sum(-1)

    def factorization_machine(x):
        w = b + 0.5 * (factors**2).sum(1)
        pairs = factors @ factors.T
        upper = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
        return x @ w + torch.einsum("ni,ij,nj->n", x, pairs * upper, x)

    binary = torch.randint(0, 2, (256, n), generator=g).double()
    torch.testing.assert_close(hypernetwork(binary), factorization_machine(binary), rtol=0, atol=1e-10)
    real = torch.rand(256, n, generator=g, dtype=torch.float64)
    assert (hypernetwork(real) - factorization_machine(real)).abs().max() > 1e-2

    # The same layer as a rank-r GDL (plus the linear term b.x): v = V, u = 1, and the
    # multiplier predicted linearly, a(x) = V^T x / 2.
    gdl = GatedDoubleLayer(n, r, 1, trainable=False).double()
    gdl.v.copy_(factors)
    gdl.u.fill_(1.0)
    via_gdl = gdl(binary, 0.5 * binary @ factors)[:, 0] + binary @ b
    torch.testing.assert_close(via_gdl, factorization_machine(binary), rtol=0, atol=1e-10)
