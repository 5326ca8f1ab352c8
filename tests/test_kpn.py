"""KPN and Gated-KPN burst denoisers: shapes, registry, and what their outputs are made of."""
from __future__ import annotations

import pytest
import torch

from hyperisp.models import GatedKPN, KPN, create_model


def _burst(n=2, t=8, h=20, w=28, seed=0):
    return torch.rand(n, t, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name,largest", [("kpn", 200), ("gated_kpn_128", 128), ("gated_kpn_64", 64)])
def test_registered_burst_models_shapes_and_largest_layer(name, largest):
    torch.manual_seed(0)
    model = create_model(name, widths=[8, 8, 8])
    assert model.task == "burst" and model.config["arch"] in ("kpn", "gated_kpn")
    sizes = []
    hooks = [m.register_forward_hook(lambda m, i, o: sizes.append(o.shape[1]))
             for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    y = model(_burst())
    for h in hooks:
        h.remove()
    assert y.shape == (2, 1, 20, 28)  # odd sizes are padded to the U-Net's multiple and cropped back
    assert max(sizes) == largest  # the per-pixel maps: 8 frames x 25 taps, or M


@pytest.mark.parametrize("name", ["kpn", "gated_kpn_64", "hyper_gated_kpn_64"])
def test_untrained_models_average_the_frames(name):
    torch.manual_seed(0)
    model = create_model(name, widths=[8, 8])
    burst = _burst(1)
    torch.testing.assert_close(model(burst)[:, 0], burst.mean(1), rtol=1e-5, atol=1e-6)


def test_kpn_output_is_the_kernel_weighted_sum_over_frames():
    torch.manual_seed(0)
    model = KPN(frames=3, kernel_size=3, widths=[4, 4])
    burst = _burst(1, t=3, h=8, w=8)
    # uniform kernels 1/(T*9): the output is the 3x3 box mean over all frames
    kernels = torch.full((1, 3 * 9, 8, 8), 1 / 27)
    y = model.combine(burst, kernels)
    padded = torch.nn.functional.pad(burst, (1, 1, 1, 1), mode="reflect")
    box = torch.nn.functional.avg_pool2d(padded, 3, stride=1).mean(1, keepdim=True)
    torch.testing.assert_close(y, box)
    # a delta on frame 2, tap (0, +1): the output is frame 2 shifted left by one pixel
    kernels = torch.zeros(1, 3, 9, 8, 8)
    kernels[:, 2, 5] = 1
    y = model.combine(burst, kernels.view(1, 27, 8, 8))
    torch.testing.assert_close(y[0, 0, :, :-1], burst[0, 2, :, 1:])


def test_gated_kpn_gradients_reach_the_unet_and_fixed_convs():
    torch.manual_seed(0)
    model = GatedKPN(frames=4, hidden=16, widths=[8, 8])
    burst = _burst(2, t=4, h=16, w=16)
    loss = (model(burst) - burst[:, :1]).square().mean() + model(burst).square().mean()
    loss.backward()
    assert model.gate.G.weight.grad.abs().sum() > 0 and model.unet.head.weight.grad.abs().sum() > 0


def test_wrong_frame_count_is_an_error():
    model = KPN(frames=8, widths=[4, 4])
    with pytest.raises(ValueError, match=r"\(N, 8, H, W\)"):
        model(_burst(1, t=4))


def test_hyper_gated_kpn_is_conditioned_on_the_burst():
    torch.manual_seed(0)
    model = create_model("hyper_gated_kpn_64", widths=[8, 8], n_hid=16)
    burst = _burst(2, h=16, w=20)
    model(burst).square().mean().backward()
    assert model.hyper_scale.grad is not None and model.hyper_scale.grad.abs() > 0
    with torch.no_grad():
        model.hyper_scale.fill_(1.0)
        # filters are predicted per burst: the two bursts get different filters
        pooled = torch.nn.functional.adaptive_max_pool2d(model.unet(burst, return_bottleneck=True)[1], 1).flatten(1)
        weights = model.hyper.predict(pooled).weight
    assert (weights[0] - weights[1]).abs().max() > 0
    assert model(burst).shape == (2, 1, 16, 20)
