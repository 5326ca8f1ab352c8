"""Tests for hyperisp.models: HyperUNet, VDN/HyperVDN, registry, parameter and FLOP counting."""
import json

import pytest
import torch
import torch.nn as nn

from hyperisp.models import (
    VDN,
    HyperUNet,
    HyperVDN,
    count_flops,
    count_params,
    create_model,
    flops_per_param,
    list_configs,
    model_cost,
)
from hyperisp.errors import HyperispError
from hyperisp.models.counting import input_shape_for
from hyperisp.models.vdn import ZeroPadConv
from hyperisp.nn import HyperConvEmbed
from hyperisp.raw.bayer import demosaic_bilinear

TINY_UNET = dict(n_fwd=8, n_embed=4, n_hid=16)
TINY_HYPERVDN = dict(ratio=0.5, n_hid=8, base_channels=8, depth=3, snet_channels=8, embed_channels=[4, 8, 8])


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _meta(name: str, **overrides) -> nn.Module:
    with torch.device("meta"):  # no memory for the 100 M+ parameter models
        return create_model(name, **overrides)


# --- parameter counts -------------------------------------------------------------
@pytest.mark.parametrize(
    "name, exact, spec_millions",
    [
        ("hyperunet_64_32_2048", 276_049_571, 276.0),
        ("hyperunet_32_16_2048", 90_485_331, 90.5),
        ("hyperunet_16_16_1024", 16_300_035, 16.3),
        ("hyperunet_8_8_256", 1_272_387, 1.3),
        ("vdn", 7_816_780, 7.8),
    ],
)
def test_param_counts_match_spec(name, exact, spec_millions):
    n = count_params(_meta(name))
    assert n == exact
    assert round(n / 1e6, 1) == spec_millions


@pytest.mark.parametrize("name, spec_millions", [("hypervdn_c3", 55.0), ("hypervdn_c2", 119.6)])
def test_hypervdn_param_counts_near_spec(name, spec_millions):
    # The paper's exact HyperVDN layer list is unknown; ours is within 1.1 %.
    assert abs(count_params(_meta(name)) / 1e6 / spec_millions - 1) < 0.011


# --- HyperUNet ----------------------------------------------------------------------
@pytest.mark.parametrize("head", ["upsample", "pixel_shuffle"])
@pytest.mark.parametrize("output", ["sigmoid", "residual"])
@pytest.mark.parametrize("plain", [False, True])
def test_hyperunet_shapes_any_size(head, output, plain):
    model = HyperUNet(**TINY_UNET, output=output, head=head, plain=plain).eval()
    with torch.no_grad():
        for shape in [(2, 4, 20, 27), (1, 4, 5, 7), (1, 4, 32, 48)]:
            y = model(torch.rand(shape))
            assert y.shape == (shape[0], 3, 2 * shape[2], 2 * shape[3])
            assert torch.isfinite(y).all()
            if output == "sigmoid":
                assert y.min() >= 0 and y.max() <= 1


def test_hyperunet_plain_has_no_embeddings():
    plain = HyperUNet(**TINY_UNET, plain=True)
    assert plain.embed1 is None
    assert not any("mlp" in k or "embed" in k for k in plain.state_dict())
    assert count_params(plain) < count_params(HyperUNet(**TINY_UNET))


def test_residual_hyperunet_untrained_is_bilinear_demosaic():
    model = HyperUNet(**TINY_UNET, output="residual").eval()
    packed = torch.rand(2, 4, 19, 26)
    with torch.no_grad():
        torch.testing.assert_close(model(packed), demosaic_bilinear(packed), atol=0, rtol=0)
        model.residual_scale.fill_(0.5)
        assert not torch.allclose(model(packed), demosaic_bilinear(packed))


def test_hyperunet_batch_equals_single_images():
    model = HyperUNet(**TINY_UNET, output="sigmoid").eval()
    packed = torch.rand(3, 4, 24, 20)
    with torch.no_grad():
        batch = model(packed)
        single = torch.cat([model(packed[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, single, atol=1e-5, rtol=1e-4)


def test_hyperunet_pooled_embeddings_can_be_passed_in():
    model = HyperUNet(n_fwd=8, n_embed=4, n_hid=16).eval()
    packed = torch.rand(1, 4, 33, 40)
    with torch.no_grad():
        pooled = model.pooled_embeddings(packed)
        assert {k: tuple(v.shape) for k, v in pooled.items()} == {
            "e1": (1, 64), "e2": (1, 32), "e4": (1, 16), "e8": (1, 8)
        }
        torch.testing.assert_close(model(packed, pooled=pooled), model(packed))
        other = model(packed, pooled={k: v + 1 for k, v in pooled.items()})
        assert not torch.allclose(other, model(packed))


def test_pooling_groups_give_each_run_of_crops_one_filter_set():
    from hyperisp.models import pooling_groups

    model = HyperUNet(n_fwd=8, n_embed=4, n_hid=16, pool_cell=32).eval()
    batch = torch.rand(4, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        with pooling_groups(model, 2):
            pooled = model.pooled_embeddings(batch)
            grouped = model(batch)
        assert model.pool_group == 1
        for v in pooled.values():  # runs (0, 1) and (2, 3) share their mean embedding
            torch.testing.assert_close(v[0], v[1])
            torch.testing.assert_close(v[2], v[3])
            assert not torch.allclose(v[0], v[2])
        # Each crop is developed with its run's filters, exactly as with the shared embedding passed in.
        for i in range(4):
            alone = model(batch[i:i + 1], pooled={k: v[i:i + 1] for k, v in pooled.items()})
            torch.testing.assert_close(grouped[i:i + 1], alone, atol=1e-6, rtol=1e-5)
        assert not torch.allclose(grouped, model(batch))
        twins, alone = batch[:1].repeat(2, 1, 1, 1), model(batch[:1])  # a run of identical crops = the crop alone
        with pooling_groups(model, 2):
            torch.testing.assert_close(model(twins), alone.repeat(2, 1, 1, 1))
    with pytest.raises(ValueError, match="HyperUNet"):
        with pooling_groups(torch.nn.Identity(), 2):
            pass
    with pooling_groups(torch.nn.Identity(), 1):  # nothing to group: any model (validate() on denoisers)
        pass
    with pytest.raises(ValueError, match="multiple of the group 3"), pooling_groups(model, 3):
        model(batch)
    assert model.pool_group == 1


def test_hyperunet_input_check():
    with pytest.raises(ValueError, match=r"\(N, 4, h, w\)"):
        HyperUNet(**TINY_UNET)(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="head"):
        HyperUNet(**TINY_UNET, head="deconv")


# --- VDN / HyperVDN -----------------------------------------------------------------
@pytest.mark.parametrize("factory", [lambda: VDN(base_channels=8, snet_channels=8), lambda: HyperVDN(**TINY_HYPERVDN)])
def test_denoisers_shapes_and_identity_when_untrained(factory):
    model = factory().eval()
    for shape in [(2, 3, 21, 30), (1, 3, 16, 16), (1, 3, 5, 9)]:
        x = torch.rand(shape)
        with torch.no_grad():
            torch.testing.assert_close(model(x), x, atol=0, rtol=0)
            d, s = model.forward_vdn(x)
        assert d.shape == s.shape == (shape[0], 6, *shape[2:])
        assert torch.isfinite(s).all()
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.rand(1, 4, 16, 16))


def test_hypervdn_uses_reduced_hyperconvs():
    model = HyperVDN(**TINY_HYPERVDN)
    first = model.dnet.down[0][0]
    assert isinstance(first, HyperConvEmbed)
    assert first.hyper.out_channels == 4  # int(8 * 0.5)
    assert model.dnet.down[2][0].hyper.out_channels == 16
    assert not any(isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.stride == (1, 1)
                   for m in model.modules())


# --- registry -------------------------------------------------------------------------
@pytest.mark.parametrize("name", list_configs())
def test_registry_round_trip(name):
    model = _meta(name)
    assert model.task in ("isp", "denoise", "burst")
    config = json.loads(json.dumps(model.config))  # plain JSON data
    with torch.device("meta"):
        clone = create_model(config)
    assert type(clone) is type(model)
    assert {k: v.shape for k, v in clone.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_registry_overrides_and_errors():
    model = create_model("isp_small", n_hid=32, n_fwd=8)
    assert model.config["n_hid"] == 32 and model.config["arch"] == "hyperunet"
    assert model.config["output"] == "residual" and model.config["head"] == "pixel_shuffle"
    with pytest.raises(ValueError, match="isp_small"):
        create_model("no_such_model")
    with pytest.raises(ValueError, match="architecture"):
        create_model({"arch": "resnet"})


# --- counting -------------------------------------------------------------------------
def test_count_flops_plain_conv_exact():
    conv = nn.Conv2d(5, 7, 3, padding=1)
    fc = count_flops(conv, (1, 5, 30, 40))
    assert fc.forward == fc.total == 2 * 5 * 7 * 9 * 30 * 40
    assert fc.filter_prediction == 0
    assert conv.weight.device.type == "cpu"  # the model is left untouched
    assert flops_per_param(nn.Conv2d(5, 7, 3, padding=1, bias=False), (1, 5, 30, 40)) == 2 * 30 * 40


def test_count_flops_hyperconv_embed():
    layer = HyperConvEmbed(6, 4, n_hid=16)
    fc = count_flops(layer, (1, 6, 64, 64))
    assert fc.forward == 2 * 6 * 4 * 9 * 64 * 64  # predicted filters applied like a conv
    mlp = 2 * sum(m.weight.numel() for m in layer.modules() if isinstance(m, nn.Linear))
    assert fc.mlp == mlp
    embed = 2 * (6 * 32 * 9 * 32 * 32 + 32 * 64 * 9 * 16 * 16 + 64 * 128 * 9 * 8 * 8)
    assert fc.filter_prediction == embed + mlp


def test_count_flops_hyperunet_scaling():
    model = _meta("hyperunet_8_8_256")
    small, large = count_flops(model, (1, 4, 128, 128)), count_flops(model, (1, 4, 512, 512))
    assert 15.5 < large.forward / small.forward < 16.5  # ~linear in pixels
    assert large.mlp == small.mlp  # MLP cost does not depend on the image size
    assert large.mlp == 2 * sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    assert small.total == small.forward + small.filter_prediction


def test_count_flops_paper_scale_is_instant():
    fc = count_flops(_meta("hyperunet_64_32_2048"), (1, 4, 1458, 2178))  # 12.6 MP output
    assert 0.6e12 < fc.total < 0.9e12  # SPEC table: 0.7 T


@pytest.mark.parametrize("task", ["isp", "denoise"])
def test_every_parameter_gets_a_gradient(task):
    # Catches layers that are built but never used (e.g. an embedding net left out).
    # n_hid 64: with tiny MLPs a whole ReLU layer can start dead by chance.
    if task == "isp":
        model, x = HyperUNet(n_fwd=8, n_embed=4, n_hid=64, output="sigmoid", head="upsample"), torch.rand(2, 4, 16, 16)
        out = model(x)
    else:
        model, x = VDN(base_channels=4, snet_channels=4), torch.rand(2, 3, 16, 16)
        out = torch.cat(model.forward_vdn(x), 1)
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if model.task == "isp":
            assert p.grad.abs().sum() > 0, name


def test_model_cost_for_cli():
    cost = model_cost("hyperunet_8_8_256", megapixels=1.0)
    _, _, h, w = cost["input_shape"]
    assert abs(4 * h * w / 1e6 - 1.0) < 0.01 and cost["task"] == "isp"
    assert cost["params"] == 1_272_387
    assert cost["flops_total"] == cost["flops_forward"] + cost["flops_filter_prediction"]
    _, c, big_h, big_w = input_shape_for("denoise", 12.6)
    assert c == 3 and abs(big_h * big_w / 12.6e6 - 1) < 0.01 and abs(big_w / big_h - 1.5) < 0.01
    with pytest.raises(HyperispError, match="no_such_model"):
        model_cost("no_such_model")


@pytest.mark.parametrize("plain", [False, True])
def test_refinement_blocks_start_as_the_identity(plain):
    torch.manual_seed(0)
    base = HyperUNet(**TINY_UNET, output="residual", plain=plain).eval()
    grown = HyperUNet(**TINY_UNET, output="residual", plain=plain, n_refine=2).eval()
    assert grown.config["n_refine"] == 2 and "n_refine" not in base.config  # older cards keep their configs
    missing = grown.load_state_dict(base.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("refine.") for k in missing)
    packed = torch.rand(2, 4, 21, 18)
    with torch.no_grad():
        base.residual_scale.fill_(0.5)
        grown.residual_scale.fill_(0.5)
        torch.testing.assert_close(grown(packed), base(packed), atol=0, rtol=0)
        grown.refine[1].scale.fill_(0.3)
        assert not torch.allclose(grown(packed), base(packed))


def test_negative_refinement_count_is_rejected():
    with pytest.raises(ValueError, match="n_refine"):
        HyperUNet(**TINY_UNET, n_refine=-1)


def test_refinement_blocks_take_their_own_filter_mlp_widths():
    torch.manual_seed(0)
    base = HyperUNet(**TINY_UNET, output="residual", n_refine=1).eval()
    grown = HyperUNet(**TINY_UNET, output="residual", n_refine=3, refine_hid=[TINY_UNET["n_hid"] // 2, 6, 4]).eval()
    assert grown.config["refine_hid"] == [TINY_UNET["n_hid"] // 2, 6, 4] and "refine_hid" not in base.config
    assert [b.conv_a.mlp[0].out_features for b in grown.refine][1:] == [6, 4]
    # A model with default-width blocks grows into narrower extra blocks unchanged.
    missing = grown.load_state_dict(base.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith(("refine.1.", "refine.2.")) for k in missing)
    packed = torch.rand(1, 4, 20, 22)
    with torch.no_grad():
        torch.testing.assert_close(grown(packed), base(packed), atol=0, rtol=0)
    for bad in ([4], [4, 4, 0]):
        with pytest.raises(ValueError, match="refine_hid"):
            HyperUNet(**TINY_UNET, n_refine=3, refine_hid=bad)


@pytest.mark.parametrize("key, blocks", [("n_refine", "refine"), ("n_bottom", "bottom")])
def test_hypervdn_refinement_blocks_start_as_the_identity(key, blocks):
    tiny = dict(base_channels=12, snet_channels=12, n_hid=16, embed_channels=[4, 8, 8])
    torch.manual_seed(0)
    base = create_model("denoise_small", **tiny).eval()
    grown = create_model("denoise_small", **{key: 1}, **tiny).eval()
    assert grown.config[key] == 1 and key not in base.config  # older cards keep their configs
    grown.load_state_dict(base.state_dict(), strict=False)
    x = torch.rand(2, 3, 40, 36)
    with torch.no_grad():
        base.out_scale.fill_(1.0)
        grown.out_scale.fill_(1.0)
        torch.testing.assert_close(grown(x), base(x), atol=0, rtol=0)
        block = getattr(grown.dnet, blocks)[0]  # make it count: a zero scale (refine), a zero last conv (bottom)
        if blocks == "refine":
            block.scale.fill_(0.5)
        else:
            block.conv_b.weight.normal_(0, 0.1)
        assert not torch.allclose(grown(x), base(x))
    with pytest.raises(ValueError, match=key):
        create_model("denoise_small", **{key: -1}, **tiny)


def test_hypervdn_bottom_blocks_are_plain_convolutions_at_the_deepest_level():
    with torch.device("meta"):
        model = create_model("denoise_wide2_bottom4")
    assert len(model.dnet.bottom) == 4
    for block in model.dnet.bottom:  # 64 -> 128 -> 64 plain: 74 k parameters each, not 4.7 M as HyperConvs
        assert isinstance(block.conv_a, ZeroPadConv) and isinstance(block.conv_b, ZeroPadConv)
        assert (block.conv_a.in_channels, block.conv_a.out_channels, block.conv_b.out_channels) == (64, 128, 64)
    assert sum(p.numel() for p in model.parameters()) * 2 < 25e6  # fits the weights limit in fp16


def test_hyperunet_filter_view_pools_training_size_patches():
    from hyperisp.models import pooling_groups

    model = HyperUNet(n_fwd=8, n_embed=4, n_hid=16, pool_cell=128, view_size=32, view_grid=3).eval()
    assert model.config["view_size"] == 32 and model.config["view_grid"] == 3
    assert "view_size" not in HyperUNet(n_fwd=8, n_embed=4, n_hid=16).config  # older cards stay as they were
    small = torch.rand(2, 4, 30, 32, generator=torch.Generator().manual_seed(0))
    big = torch.rand(2, 4, 70, 100, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        # An image within one patch is its own view: exactly the per-sample pooling of training.
        assert model.view_boxes(30, 32) is None
        torch.testing.assert_close(model(small), model(small, pooled=model.pooled_embeddings(small)))
        # A larger one: up to 3 x 3 patches of 32, inside the image, corners on the pad-to-16 grid.
        boxes = model.view_boxes(70, 100)
        assert boxes == [(t, l, 32, 32) for t in (0, 16, 32) for l in (0, 32, 64)]
        pooled = model.pooled_embeddings(big)
        patches = torch.stack([big[..., t:t + h, l:l + w] for t, l, h, w in boxes], dim=1).flatten(0, 1)
        with pooling_groups(model, len(boxes)):
            grouped = model.pooled_embeddings(patches)
        for key, value in pooled.items():
            assert value.shape[0] == 2  # one pooled vector per image of the batch
            torch.testing.assert_close(value, grouped[key][:: len(boxes)])
        # E1 pools the input itself: the mean over the patches of each patch's own pooled embedding.
        alone = torch.stack([model.pooled_embeddings(big[:1, :, t:t + h, l:l + w])["e1"][0] for t, l, h, w in boxes])
        torch.testing.assert_close(pooled["e1"][0], alone.mean(0))
        # The forward runs the whole image with the view's embeddings, not its own.
        torch.testing.assert_close(model(big), model(big, pooled=pooled))
        from hyperisp.models import reconfigured

        no_view = reconfigured(model, view_size=0)
        assert "view_size" not in no_view.config and not no_view.training
        assert not torch.allclose(model(big), no_view(big))
    with pytest.raises(ValueError, match="view_size a multiple of 16"):
        HyperUNet(n_fwd=8, n_embed=4, n_hid=16, view_size=40)
