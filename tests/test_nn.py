"""Tests for hyperisp.nn: HyperConv prediction/application, normalisation, drop-in layer."""
import math

import pytest
import torch
import torch.nn.functional as F

from hyperisp.nn import (
    HyperConv,
    HyperConvEmbed,
    HyperFilters,
    StaticConv,
    global_pool,
    hyper_conv2d,
    normalize_filters,
    pad_to_multiple,
    reflect_pad,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _constant_mlp(hc: HyperConv, raw: torch.Tensor) -> None:
    """Make hc.mlp output ``raw`` (flattened) for every input."""
    last = hc.mlp[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(raw.flatten())


def test_grouped_and_per_image_paths_agree():
    hc = HyperConv(5, 7, embed_channels=6, n_hid=16, bias=True, gain=True)
    x, pooled = torch.randn(3, 5, 11, 13), torch.randn(3, 6)
    filters = hc.predict(pooled)
    grouped = hyper_conv2d(x, filters, path="grouped")
    per_image = hyper_conv2d(x, filters, path="per_image")
    assert grouped.shape == (3, 7, 11, 13)
    torch.testing.assert_close(grouped, per_image, atol=1e-5, rtol=1e-5)
    # Each sample really gets its own filters: sample 0 alone gives the same result.
    alone = hc(x[:1], pooled[:1])
    torch.testing.assert_close(alone, grouped[:1], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(grouped[1], hc(x[1:2], pooled[:1])[0], atol=1e-3)


def test_shared_filters_broadcast_over_batch():
    hc = HyperConv(4, 6, embed_channels=3, n_hid=8)
    x, pooled = torch.randn(3, 4, 9, 9), torch.randn(1, 3)
    shared = hyper_conv2d(x, hc.predict(pooled))
    expanded = hyper_conv2d(x, hc.predict(pooled.expand(3, -1)), path="grouped")
    torch.testing.assert_close(shared, expanded, atol=1e-5, rtol=1e-5)


def test_constant_mlp_equals_plain_conv_with_resulting_weight():
    hc = HyperConv(3, 4, embed_channels=5, n_hid=8, bias=False)
    raw = torch.randn(4, 3, 3, 3)
    _constant_mlp(hc, raw)
    weight = normalize_filters(raw[None], hc.const)[0]
    x = torch.randn(2, 3, 10, 12)
    expected = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), weight)
    torch.testing.assert_close(hc(x, torch.randn(2, 5)), expected, atol=1e-5, rtol=1e-5)


def test_zero_mlp_output_gives_const_filter():
    hc = HyperConv(2, 3, embed_channels=4, n_hid=8, bias=False)
    _constant_mlp(hc, torch.zeros(3, 2, 3, 3))  # 0 / (0 + 1e-12) = 0: only const remains
    x = torch.randn(1, 2, 8, 8)
    expected = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), hc.const[0])
    torch.testing.assert_close(hc(x, torch.randn(1, 4)), expected)


def test_normalization_hand_computed():
    # Two input channels: each (out, in) filter is normalised by ITS OWN L1 norm.
    a = torch.tensor([[1.0, -1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]])  # L1 = 4
    b = torch.tensor([[0.0, 0.0, 0.0], [0.0, -30.0, 0.0], [0.0, 0.0, 10.0]])  # L1 = 40
    raw = torch.stack([a, b])[None, None]  # (1, 1, 2, 3, 3)
    out = normalize_filters(raw)[0, 0]
    torch.testing.assert_close(out[0], a / 8)  # a / L1(a) / 2
    torch.testing.assert_close(out[1], b / 80)
    const = torch.full((1, 1, 2, 3, 3), 0.25)
    torch.testing.assert_close(normalize_filters(raw, const)[0, 0], out + 0.25)
    assert out.abs().sum(dim=(-2, -1)).allclose(torch.tensor(0.5))


def test_const_init_scale():
    hc = HyperConv(64, 64, embed_channels=4, n_hid=4)
    expected_std = 1 / math.sqrt(64 * 9 / 2) / 2
    assert abs(hc.const.std().item() / expected_std - 1) < 0.05


def test_bias_and_gain_clamped_and_applied():
    hc = HyperConv(2, 3, embed_channels=4, n_hid=8, bias=True, gain=True)
    pooled = 100 * torch.randn(5, 4)
    fresh = hc.predict(pooled)  # heads start at zero: inside the clamps, so they train
    assert torch.equal(fresh.bias, torch.zeros(5, 3)) and torch.equal(fresh.gain, torch.ones(5, 3))
    with torch.no_grad():
        torch.nn.init.normal_(hc.bias_head.weight)
        torch.nn.init.normal_(hc.gain_head.weight)
    f = hc.predict(pooled)  # large outputs: clamped
    assert f.bias.min() == -0.1 and f.bias.max() == 0.1
    assert torch.isclose(f.gain.min(), torch.tensor(0.1)) and torch.isclose(f.gain.max(), torch.tensor(1.1))
    x = torch.randn(5, 2, 6, 6)
    y = hyper_conv2d(x, f)
    unscaled = hyper_conv2d(x, HyperFilters(f.weight))
    torch.testing.assert_close(y, f.gain[..., None, None] * unscaled + f.bias[..., None, None], atol=1e-5, rtol=1e-5)


def test_global_pool():
    e = torch.randn(2, 3, 5, 7)
    torch.testing.assert_close(global_pool(e, "max"), e.flatten(2).max(-1).values)
    torch.testing.assert_close(global_pool(e, "avg"), e.flatten(2).mean(-1))
    with pytest.raises(ValueError, match="mode"):
        global_pool(e, "median")
    with pytest.raises(ValueError, match=r"\(N, Ce, H, W\)"):
        global_pool(e[0])


def test_input_checks():
    hc = HyperConv(3, 4, embed_channels=5, n_hid=8)
    with pytest.raises(ValueError, match="input channels"):
        hc(torch.randn(1, 2, 8, 8), torch.randn(1, 5))
    with pytest.raises(ValueError, match="filters for 1 or 2 images"):
        hyper_conv2d(torch.randn(2, 3, 8, 8), hc.predict(torch.randn(3, 5)))
    with pytest.raises(ValueError, match="path"):
        hyper_conv2d(torch.randn(1, 3, 8, 8), hc.predict(torch.randn(1, 5)), path="fast")


def test_static_conv_same_signature_and_reflection():
    sc = StaticConv(3, 5)
    x = torch.randn(2, 3, 7, 9)
    y = sc(x, torch.randn(2, 11))  # pooled is ignored
    expected = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), sc.conv.weight, sc.conv.bias)
    torch.testing.assert_close(y, expected)
    assert sc(x).shape == (2, 5, 7, 9)


def test_hyperconv_embed_shapes_and_own_input_prediction():
    layer = HyperConvEmbed(6, 4, n_hid=16)
    x = torch.randn(2, 6, 17, 23)
    y = layer(x)
    assert y.shape == (2, 4, 17, 23)
    # Filters come from the layer's own input: a batch equals its samples run alone.
    torch.testing.assert_close(torch.cat([layer(x[:1]), layer(x[1:])]), y, atol=1e-5, rtol=1e-5)
    assert layer(torch.randn(1, 6, 2, 2)).shape == (1, 4, 2, 2)  # tiny maps still work
    assert isinstance(layer.hyper.mlp[1], torch.nn.LeakyReLU)


def test_padding_helpers():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    torch.testing.assert_close(reflect_pad(x, (1, 1, 1, 1)), F.pad(x, (1, 1, 1, 1), mode="reflect"))
    big = reflect_pad(x, (0, 5, 0, 5))  # too large to mirror: replicate instead of failing
    assert big.shape == (1, 1, 8, 9)
    p = pad_to_multiple(torch.randn(1, 2, 17, 5), 16, min_size=32)
    assert p.shape == (1, 2, 32, 32)
    assert pad_to_multiple(torch.randn(1, 2, 48, 33), 16).shape == (1, 2, 48, 48)


def test_cell_max_pool_is_the_mean_of_cell_maxima():
    from hyperisp.nn import cell_max_pool, global_pool

    e = torch.arange(2 * 5 * 6, dtype=torch.float32).view(1, 2, 5, 6)
    # cells of 3: rows {0-2, 3-4}, cols {0-2, 3-5}; maxima at their bottom-right corners
    expected = torch.stack([e[0, c, [2, 2, 4, 4], [2, 5, 2, 5]].mean() for c in range(2)])[None]
    torch.testing.assert_close(cell_max_pool(e, 3), expected)
    torch.testing.assert_close(cell_max_pool(e, 6), global_pool(e, "max"))  # one cell = the global max
    # A photo made of repeats of one crop keeps the crop's statistics; the global max would too,
    # but not for a larger photo of varied content, which only ever raises a max.
    crop = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(cell_max_pool(crop.repeat(1, 1, 3, 3), 4), crop.amax(dim=(2, 3)))
    with pytest.raises(ValueError, match="cell size"):
        cell_max_pool(e, 0)


def test_group_mean_is_each_runs_mean():
    from hyperisp.nn import group_mean

    pooled = torch.tensor([[0.0, 2.0], [2.0, 4.0], [10.0, 0.0], [20.0, 2.0]])
    torch.testing.assert_close(group_mean(pooled, 2), torch.tensor([[1.0, 3.0], [15.0, 1.0]]))
    torch.testing.assert_close(group_mean(pooled, 1), pooled)
    torch.testing.assert_close(group_mean(pooled, 4), pooled.mean(0, keepdim=True))
    with pytest.raises(ValueError, match="multiple of the group 3"):
        group_mean(pooled, 3)
    with pytest.raises(ValueError, match=r"\(N, Ce\)"):
        group_mean(pooled[None], 2)


def test_hyperunet_pool_cell_validated_and_kept_out_of_global_max_configs():
    from hyperisp.models import create_model

    assert "pool_cell" not in create_model("hyperunet_8_8_256").config  # the paper's global max
    assert create_model("isp_small").config["pool_cell"] == 128
    with pytest.raises(ValueError, match="pool_cell"):
        create_model("isp_small", pool_cell=48)


@pytest.mark.parametrize("size", [(130, 129), (128, 128), (3, 200)])
@pytest.mark.parametrize("kernel, groups", [(3, 1), (5, 1), (3, 2)])
def test_reflect_conv2d_equals_conv_of_the_padded_copy(size, kernel, groups):
    from hyperisp.nn import reflect_conv2d

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, *size, generator=g)
    weight, bias = torch.randn(6, 4 // groups, kernel, kernel, generator=g), torch.randn(6, generator=g)
    p = kernel // 2
    expected = F.conv2d(reflect_pad(x, (p,) * 4), weight, bias, groups=groups)
    for layout in (torch.contiguous_format, torch.channels_last):
        got = reflect_conv2d(x.contiguous(memory_format=layout), weight, bias, groups=groups)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)


def test_reflect_conv2d_gradients_match_the_padded_copy():
    from hyperisp.nn import reflect_conv2d

    x = torch.randn(1, 2, 140, 131, requires_grad=True)
    weight = torch.randn(3, 2, 3, 3, requires_grad=True)
    (reflect_conv2d(x, weight) ** 2).sum().backward()
    gx, gw = x.grad.clone(), weight.grad.clone()
    x.grad = weight.grad = None
    (F.conv2d(reflect_pad(x, (1,) * 4), weight) ** 2).sum().backward()
    torch.testing.assert_close(gx, x.grad, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(gw, weight.grad, atol=1e-2, rtol=1e-4)


def test_hyperunet_pixel_shuffle_equals_torch_in_every_layout():
    from hyperisp.nn import pixel_shuffle

    x = torch.randn(2, 12, 5, 7)
    for layout in (torch.contiguous_format, torch.channels_last):
        torch.testing.assert_close(pixel_shuffle(x.contiguous(memory_format=layout), 2), F.pixel_shuffle(x, 2),
                                   atol=0, rtol=0)
    with pytest.raises(ValueError, match="divisible by 4"):
        pixel_shuffle(torch.randn(1, 6, 4, 4).contiguous(memory_format=torch.channels_last), 2)


def test_static_conv_predict_gives_the_filters_its_forward_applies():
    from hyperisp.nn import StaticConv, hyper_conv2d

    torch.manual_seed(0)
    conv = StaticConv(3, 5)
    x = torch.rand(2, 3, 9, 11)
    filters = conv.predict(None)
    assert filters.weight.shape == (1, 5, 3, 3, 3) and filters.bias.shape == (1, 5) and filters.gain is None
    with torch.no_grad():
        torch.testing.assert_close(hyper_conv2d(x, filters), conv(x), atol=1e-6, rtol=1e-5)


def test_view_boxes_spread_training_size_patches_over_the_image():
    from hyperisp.nn import padded_length, view_boxes

    assert padded_length(20, 16, 32) == 32 and padded_length(33, 16) == 48 and padded_length(64, 16, 32) == 64
    assert view_boxes(64, 60, 64, 8, 16) is None  # fits once padded: its own view
    assert view_boxes(3000, 4000, 0, 8, 16) is None  # no view
    boxes = view_boxes(1500, 2000, 64, 8, 16)
    assert len(boxes) == 64 and boxes == view_boxes(1500, 2000, 64, 8, 16)
    assert all(t % 16 == 0 and l % 16 == 0 and t + h <= 1500 and l + w <= 2000 and (h, w) == (64, 64)
               for t, l, h, w in boxes)
    assert {t for t, *_ in boxes} >= {0, 1436 // 16 * 16}  # first and last rows reach the borders
    assert len(view_boxes(100, 150, 64, 8, 16)) == 2 * 3  # fewer patches than the grid: enough to cover
    # A short side is spanned whole, padding included (min_size pads 20 to 32).
    assert view_boxes(20, 150, 64, 8, 16, min_size=32) == [(0, 0, 32, 64), (0, 43 // 16 * 16, 32, 64), (0, 86 // 16 * 16, 32, 64)]
    with pytest.raises(ValueError, match="multiple of 16"):
        view_boxes(100, 100, 40, 8, 16)
