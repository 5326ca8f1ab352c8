"""Fused convolution + residual + activation (hyperisp.nn.fused) against the separate ops."""
import pytest
import torch
import torch.nn.functional as F

from hyperisp.models import create_model
from hyperisp.nn import CLAMP01, GELU, Activation, activate, conv2d_act, leaky_relu, reflect_conv2d, reflect_pad
from hyperisp.nn.fused import _pointwise_available

ACTIVATIONS = [None, GELU, CLAMP01, leaky_relu(0.2), Activation("relu")]
EAGER = {None: lambda y: y, "gelu": F.gelu, "hardtanh": lambda y: y.clamp(0, 1),
         "leaky_relu": lambda y: F.leaky_relu(y, 0.2), "relu": F.relu}


def _reference(x, weight, bias, act, residual, padding=1):
    y = F.conv2d(x, weight, bias, padding=padding)
    return EAGER[act.name if act else None](y if residual is None else y + residual)


def test_this_torch_has_the_fused_op():
    """The speed of CPU inference rests on it: fail loudly if a PyTorch upgrade removes it."""
    assert _pointwise_available()


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: a.name if a else "none")
@pytest.mark.parametrize("residual_channels", [None, 6, 1])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
def test_conv2d_act_equals_the_separate_ops(act, residual_channels, layout):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 23, 31, generator=g)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "strided":
        x = torch.randn(2, 4, 23, 40, generator=g).contiguous(memory_format=torch.channels_last)[..., 3:34]
    weight, bias = torch.randn(6, 4, 3, 3, generator=g) / 6, torch.randn(6, generator=g)
    residual = None if residual_channels is None else torch.randn(2, residual_channels, 23, 31, generator=g)
    expected = _reference(x, weight, bias, act, residual)
    with torch.no_grad():  # the fused path
        got = conv2d_act(x, weight, bias, 1, 1, act, residual)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    eager = conv2d_act(x.requires_grad_(), weight, bias, 1, 1, act, residual)  # autograd: the separate ops
    assert eager.requires_grad
    torch.testing.assert_close(eager.detach(), expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("act", [GELU, CLAMP01, leaky_relu(0.2)], ids=lambda a: a.name)
@pytest.mark.parametrize("broadcast", [False, True])
def test_reflect_conv2d_fuses_with_its_border_recomputed(act, broadcast):
    """Maps large enough for the border fix (>= 128 x 128): the border strips get the residual and activation too."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 8, 131, 140, generator=g).contiguous(memory_format=torch.channels_last)
    weight, bias = torch.randn(5, 8, 3, 3, generator=g) / 8, torch.randn(5, generator=g)
    residual = torch.randn(1, 1 if broadcast else 5, 131, 140, generator=g)
    expected = _reference(reflect_pad(x, (1,) * 4), weight, bias, act, residual, padding=0)
    with torch.no_grad():
        got = reflect_conv2d(x, weight, bias, 1, act, residual)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_activate_in_place_and_unknown_names():
    y = torch.randn(50)
    for act in ACTIVATIONS[1:]:
        expected = activate(y, act)
        z = y.clone()
        assert activate(z, act, inplace=True).data_ptr() == z.data_ptr()
        torch.testing.assert_close(z, expected, atol=0, rtol=0)
    with pytest.raises(ValueError, match="expected an activation"):
        activate(y, Activation("swish"))


@pytest.mark.parametrize("name", ["isp_small", "denoise_small"])
def test_models_give_the_same_output_fused_and_unfused(name):
    """Inference (fused, no autograd) and training mode's separate ops compute the same network."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 0:
                p.fill_(0.8)  # residual_scale / out_scale: let the network show in the output
    x = torch.rand(1, 4 if name == "isp_small" else 3, 150, 137)
    with torch.no_grad():
        fused = model(x)
    x.requires_grad_()
    unfused = model(x)
    torch.testing.assert_close(fused, unfused.detach(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("size", [(8, 12), (9, 13), (2, 3)])
def test_avg_pool2x2_equals_torch(size):
    from hyperisp.nn import avg_pool2x2

    x = torch.randn(2, 5, *size).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        fast = avg_pool2x2(x)
    torch.testing.assert_close(fast, F.avg_pool2d(x, 2), atol=1e-6, rtol=0)
    torch.testing.assert_close(avg_pool2x2(x.requires_grad_()), F.avg_pool2d(x, 2), atol=0, rtol=0)


@pytest.mark.parametrize("n_filters", [1, 2])
def test_hyper_conv2d_of_parts_equals_conv_of_their_concatenation(n_filters):
    from hyperisp.nn import HyperFilters, hyper_conv2d

    g = torch.Generator().manual_seed(2)
    parts = [torch.randn(2, c, 131, 129, generator=g).contiguous(memory_format=torch.channels_last) for c in (3, 5)]
    filters = HyperFilters(torch.randn(n_filters, 4, 8, 3, 3, generator=g) / 8, torch.randn(n_filters, 4, generator=g),
                           torch.rand(n_filters, 4, generator=g) + 0.5)
    residual = torch.randn(2, 4, 131, 129, generator=g)
    with torch.no_grad():
        whole = hyper_conv2d(torch.cat(parts, 1), filters, activation=GELU, residual=residual)
        split = hyper_conv2d(parts, filters, activation=GELU, residual=residual)
        torch.testing.assert_close(split, whole, atol=1e-5, rtol=1e-5)
        with pytest.raises(ValueError, match="the parts have"):
            hyper_conv2d(parts[:1], filters)


def test_vdn_up_path_convs_take_the_parts_of_the_concatenation():
    from hyperisp.models.vdn import ZeroPadConv
    from hyperisp.nn import HyperConvEmbed, fixed_filters

    parts = [torch.randn(1, 4, 40, 36), torch.randn(1, 4, 40, 36)]
    conv = ZeroPadConv(8, 6)
    with torch.no_grad():
        torch.testing.assert_close(conv(parts, leaky_relu(0.2)), conv(torch.cat(parts, 1), leaky_relu(0.2)),
                                   atol=1e-5, rtol=1e-5)
    layer = HyperConvEmbed(8, 6, n_hid=8, embed_channels=(4, 4, 4)).eval()
    with torch.no_grad():
        whole = layer(torch.cat(parts, 1), leaky_relu(0.2))  # predicts from the concatenation
        assert torch.equal(layer(parts, leaky_relu(0.2)), whole)
        with fixed_filters(torch.nn.ModuleDict({"layer": layer}), {"layer": layer.predict(torch.cat(parts, 1))}):
            torch.testing.assert_close(layer(parts, leaky_relu(0.2)), whole, atol=1e-5, rtol=1e-5)


def test_fusion_disabled_runs_the_separate_ops():
    from hyperisp.nn.fused import fusion_disabled

    x, weight = torch.randn(1, 2, 9, 9), torch.randn(3, 2, 3, 3)
    calls = []

    class Record(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            calls.append(getattr(func, "__name__", ""))
            return func(*args, **(kwargs or {}))

    with torch.no_grad(), Record():
        conv2d_act(x, weight, None, 1, 1, GELU)
        fused_calls, calls[:] = list(calls), []
        with fusion_disabled():
            conv2d_act(x, weight, None, 1, 1, GELU)
    assert "conv2d" not in fused_calls and {"conv2d", "gelu"} <= set(calls)


def test_builds_without_the_fused_op_fall_back_to_the_separate_ops(monkeypatch):
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    _pointwise_available.cache_clear()
    try:
        assert not _pointwise_available()
        x, weight = torch.randn(1, 2, 9, 9), torch.randn(3, 2, 3, 3)
        with torch.no_grad():
            torch.testing.assert_close(conv2d_act(x, weight, None, 1, 1, GELU), F.gelu(F.conv2d(x, weight, padding=1)))
    finally:
        _pointwise_available.cache_clear()
