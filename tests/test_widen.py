"""Widening a trained HyperVDN's D-Net keeps its output, then trains (hyperisp.train.widen)."""
import pytest
import torch

from conftest import TINY_MODELS
from hyperisp.models import create_model
from hyperisp.nn import FilterMLP
from hyperisp.train.widen import can_widen, widen_channel_map, widen_filter_mlp, widen_hypervdn

TINY = {**TINY_MODELS["denoise"], "depth": 3}  # levels of 2 / 4 / 8 channels (ratio 1/3 of base 6)


def trained_like(config: dict) -> torch.nn.Module:
    """A HyperVDN with a nonzero output scale and bias heads: an untrained one returns its input."""
    torch.manual_seed(0)
    model = create_model("denoise_small", **config)
    with torch.no_grad():
        model.out_scale.fill_(0.8)
        for name, p in model.named_parameters():
            if "bias_head" in name:
                p.normal_(0, 0.05)
    return model


def test_channel_map_keeps_channels_then_adds_signed_pairs():
    m = widen_channel_map(2, 6)
    assert m.source == [0, 1, 0, 0, 1, 1] and m.sign == [1, 1, 1, -1, 1, -1] and m.new == [False] * 2 + [True] * 4
    assert widen_channel_map(3, 3).new == [False] * 3
    for bad in (1, 3, 8):  # narrower, odd growth, more pairs than channels
        with pytest.raises(ValueError, match="can widen 2 channels"):
            widen_channel_map(2, bad)


@pytest.mark.parametrize("widths", [[4, 4, 8], [6, 8, 12], [2, 4, 8]])
def test_widened_model_computes_the_same_output(widths):
    source = trained_like(TINY).eval()
    target = widen_hypervdn(create_model("denoise_small", **TINY, widths=widths), source).eval()
    assert target.config["widths"] == widths and [c.hyper.out_channels for c in target.dnet.up_blocks[-1]] == [widths[0]] * 2
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        denoised = source(x)
        assert (denoised - x).abs().max() > 1e-2  # the check below is not trivially true
        torch.testing.assert_close(target(x), denoised, atol=1e-5, rtol=0)
        large = torch.rand(1, 3, 200, 330, generator=torch.Generator().manual_seed(2))  # its filter view
        torch.testing.assert_close(target(large), source(large), atol=1e-5, rtol=0)
        torch.testing.assert_close(target.forward_vdn(x)[0], source.forward_vdn(x)[0], atol=1e-5, rtol=0)


def test_widened_copies_diverge_with_training():
    source = trained_like(TINY)
    target = widen_hypervdn(create_model("denoise_small", **TINY, widths=[4, 4, 8]), source)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    loss = (target(x) - x.flip(-1)).square().mean()
    loss.backward()
    grad = target.dnet.down[0][1].hyper.mlp[-1].weight.grad.reshape(4, 4, 9, -1)
    # the consumer rows of a pair (input channels 2 and 3, both copies of channel 0) get gradients
    assert grad[:, 2].abs().sum() > 0 and grad[:, 3].abs().sum() > 0
    producer = target.dnet.down[0][0].hyper.mlp[-1].weight.grad.reshape(4, 3, 9, -1)
    # and the two copies' producers are pushed apart: opposite gradients
    torch.testing.assert_close(producer[2], -producer[3])


@pytest.mark.parametrize("widths", [None, [4, 4, 8]])
def test_wider_filter_mlps_compute_the_same_output_then_train(widths):
    source = trained_like(TINY).eval()
    n_hid = 2 * source.config["n_hid"]
    target = widen_hypervdn(create_model("denoise_small", **{**TINY, "n_hid": n_hid}, widths=widths), source)
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        denoised = source(x)
        assert (denoised - x).abs().max() > 1e-2
        torch.testing.assert_close(target.eval()(x), denoised, atol=1e-5, rtol=0)
    mlp = target.dnet.down[0][1].hyper.mlp
    assert mlp[0].out_features == n_hid
    (target.train()(x) - x.flip(-1)).square().mean().backward()
    # the new units' weights into the output start at zero but are trained
    new = slice(source.config["n_hid"], None)
    assert mlp[-1].weight[:, new].abs().max() == 0 and mlp[-1].weight.grad[:, new].abs().max() > 0


def test_filter_mlp_widening_refuses_narrower_or_other_shapes():
    source = FilterMLP(8, 16, 36)
    for target in (FilterMLP(8, 8, 36), FilterMLP(4, 32, 36), FilterMLP(8, 32, 18)):
        with pytest.raises(ValueError, match="can widen an MLP"):
            widen_filter_mlp(source, target)


def test_only_widths_and_n_hid_may_differ_and_n_hid_only_grow():
    source = trained_like(TINY)
    n_hid = source.config["n_hid"]
    assert can_widen(create_model("denoise_small", **TINY, widths=[4, 4, 8]), source)
    assert can_widen(create_model("denoise_small", **{**TINY, "n_hid": 2 * n_hid}), source)
    narrower = create_model("denoise_small", **{**TINY, "n_hid": n_hid // 2})
    other = create_model("denoise_small", **{**TINY, "slope": 0.1}, widths=[4, 4, 8])
    for bad in (narrower, other):
        assert not can_widen(bad, source)
        with pytest.raises(ValueError, match="differ elsewhere"):
            widen_hypervdn(bad, source)


def test_training_grows_a_shipped_denoiser_wider(tiny_config, tmp_path):
    from hyperisp.pretrained import load_pretrained
    from hyperisp.train.trainer import build_model, export_if_better, train

    result = train(tiny_config(task="denoise", iters=2, loss="mse"), tmp_path / "small", progress=False)
    weights = tmp_path / "weights"
    export_if_better(result, "tiny_dn", "hyperisp train denoise ...", directory=weights)
    card = str(weights / "tiny_dn.json")
    wide = {**TINY_MODELS["denoise"], "widths": [4, 4]}
    grown = build_model(tiny_config(task="denoise", init=card, model="denoise_small", model_overrides=wide))
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(grown.eval()(x), load_pretrained(card)(x), atol=1e-5, rtol=0)
    assert grown.config["widths"] == [4, 4]


@pytest.mark.parametrize("narrow, wide", [("denoise_small", "denoise_wide_top"), ("denoise_wide_top", "denoise_wide2"),
                                          ("denoise_wide2", "denoise_wide2_hid128")])
def test_registry_widenings_are_valid(narrow, wide):
    """Each registered widening (shipped models were trained through them) passes widen's checks."""
    with torch.device("meta"):  # structure only: no weights allocated
        small, large = create_model(narrow), create_model(wide)
    assert can_widen(large, small)
    old, new = ([convs[1].hyper.out_channels for convs in m.dnet.down] for m in (small, large))
    assert old != new or large.config["n_hid"] > small.config["n_hid"]
    for o, n in zip(old, new):
        assert widen_channel_map(o, n).new.count(True) == n - o
