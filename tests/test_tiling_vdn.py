"""HyperVDN's filter view and its exact tiled inference.

A view of 32 px makes the small test images "large" (several patches); tiles of
16-48 px with the 64 px halo then really cut them. Sizes are odd / not multiples of 16.
"""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import hyperisp
from hyperisp.models import create_model
from hyperisp.models.vdn import DNet, ZeroPadConv
from hyperisp.nn import HyperConvEmbed, global_pool, hyper_conv2d, pad_to_multiple
from hyperisp import tiling
from hyperisp.tiling import run_tiled

TOL = 1e-4
TINY = dict(base_channels=12, snet_channels=12, n_hid=16, embed_channels=[4, 8, 8])  # depth 4, maps 4/8/16/32


def _model(view_size: int = 32, view_grid: int = 3, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model("denoise_small", view_size=view_size, view_grid=view_grid, **TINY).eval()
    with torch.no_grad():
        model.out_scale.fill_(1.0)  # let D-Net show in the output (0 = identity)
    return model


def _image(*size: int, n: int = 1, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, *size, generator=torch.Generator().manual_seed(seed))


# --- references: SPEC §5 pooling written out, layer by layer ----------------------------------------
def _dnet_reference(dnet, x: torch.Tensor, conv) -> torch.Tensor:
    """DNet.forward with every HyperConvEmbed replaced by ``conv(layer, maps)``."""

    def block(convs, y):
        for layer in convs:
            y = F.leaky_relu(conv(layer, y), dnet.slope)
        return y

    skips = []
    for i, convs in enumerate(dnet.down):
        x = block(convs, x)
        if i < len(dnet.down) - 1:
            skips.append(x)
            x = F.avg_pool2d(x, 2)
    for upconv, convs in zip(dnet.up, dnet.up_blocks):
        x = block(convs, torch.cat([upconv(x), skips.pop()], 1))
    return conv(dnet.last, x)


def _per_sample(layer: HyperConvEmbed, y: torch.Tensor) -> torch.Tensor:
    return hyper_conv2d(y, layer.hyper.predict(global_pool(layer.embed(y), "avg")))


@torch.no_grad()
@pytest.mark.parametrize("size, n", [((64, 64), 2), ((37, 50), 1), ((32, 20), 3)])
def test_images_within_the_view_keep_per_sample_pooling(size, n):
    """The training path (crops no larger than the view, batches): exactly SPEC §5 pooling per sample."""
    model = _model(view_size=64)
    x = _image(*size, n=n)
    assert model.view_patches(*size) is None
    h, w = size
    reference = x - model.out_scale * _dnet_reference(model.dnet, pad_to_multiple(x, 16), _per_sample)[:, :3, :h, :w]
    torch.testing.assert_close(model(x), reference, rtol=0, atol=1e-6)
    for i in range(n):  # per-sample: each image's output is its own
        torch.testing.assert_close(model(x[i : i + 1]), model(x)[i : i + 1], rtol=0, atol=1e-6)


@torch.no_grad()
def test_the_view_pools_over_the_union_of_its_patches():
    model = _model()
    x = _image(150, 141)
    boxes = model.view_patches(150, 141)
    assert len(boxes) == 9
    xp = pad_to_multiple(x, 16)
    patches = torch.cat([xp[..., t : t + h, l : l + w] for t, l, h, w in boxes])
    names = {id(m): "dnet." + k for k, m in model.dnet.named_modules()}
    filters = {}

    def union(layer, y):  # one mean over every pixel of every patch: one filter set for the image
        filters[names[id(layer)]] = layer.hyper.predict(layer.embed(y).mean(dim=(0, 2, 3))[None])
        return hyper_conv2d(y, filters[names[id(layer)]])

    _dnet_reference(model.dnet, patches, union)
    got = model.view_filters(x)
    assert set(got) == set(filters) and len(got) == 15
    for name in got:
        torch.testing.assert_close(got[name].weight, filters[name].weight, rtol=0, atol=1e-6)
        torch.testing.assert_close(got[name].bias, filters[name].bias, rtol=0, atol=1e-6)
    # The image itself is then run with those filters, fixed.
    fixed = _dnet_reference(model.dnet, xp, lambda layer, y: hyper_conv2d(y, filters[names[id(layer)]]))
    torch.testing.assert_close(model(x), x - model.out_scale * fixed[:, :3, :150, :141], rtol=0, atol=1e-5)


def test_view_patches_are_aligned_inside_the_image_and_deterministic():
    model = _model(view_size=128, view_grid=3)
    assert model.view_patches(128, 120) is None  # fits: its own view
    assert model.view_patches(64, 64) is None
    boxes = model.view_patches(3000, 4000)
    assert len(boxes) == 9 and boxes == model.view_patches(3000, 4000)
    for top, left, h, w in boxes:
        assert (h, w) == (128, 128) and top % 16 == left % 16 == 0
        assert top + h <= 3000 and left + w <= 4000
    assert {b[0] for b in boxes} == {0, 1424, 2864} and {b[1] for b in boxes} == {0, 1936, 3872}
    # One side fits: the patches span it (padding included), spread along the other.
    assert model.view_patches(100, 300) == [(0, 0, 112, 128), (0, 80, 112, 128), (0, 160, 112, 128)]
    assert create_model("denoise_small", view_size=0).view_patches(3000, 4000) is None
    with pytest.raises(ValueError, match="view_size"):
        create_model("denoise_small", view_size=100)


@torch.no_grad()
def test_the_view_is_used_for_large_images_and_per_image_in_a_batch():
    model, whole_pool = _model(), _model(view_size=0)
    x = _image(97, 203, n=2)
    x[..., 100:] *= 0.3  # not stationary: the view's statistics differ from the whole image's
    out = model(x)
    assert (out - whole_pool(x)).abs().max().item() > 5 * TOL  # guard: the view changes the filters
    for i in range(2):  # each image of a batch gets the filters of its own view
        torch.testing.assert_close(model(x[i : i + 1]), out[i : i + 1], rtol=0, atol=1e-5)


@pytest.mark.parametrize("size, tile", [((150, 141), 48), ((97, 203), 48), ((20, 300), 16), ((161, 33), 32)])
def test_hypervdn_tiles_equal_whole_image(size, tile):
    model = _model()
    x = _image(*size, seed=4)
    with torch.no_grad():
        whole = model(x)
    tiled = run_tiled(model, x, tile)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max().item() < TOL
    acc = torch.ones_like(whole)
    assert run_tiled(model, x, tile, into=acc) is acc and (acc - 1 - whole).abs().max().item() < TOL  # added into


def test_hypervdn_tiles_of_a_batch_and_of_forward_vdn_paths():
    model = _model()
    x = _image(99, 130, n=2, seed=5)
    with torch.no_grad():
        whole = model(x)
        d, s = model.forward_vdn(x)  # S-Net uses the view too for large images
    assert (run_tiled(model, x, 48) - whole).abs().max().item() < TOL
    torch.testing.assert_close(x - model.out_scale * d[:, :3], whole, rtol=0, atol=1e-6)
    assert s.shape == (2, 6, 99, 130) and torch.isfinite(s).all()


def test_naive_hypervdn_tiles_would_differ():
    """Guard: per-tile filters (no shared view) would change the pixels."""
    model = _model()
    x = _image(150, 141, seed=4)
    with torch.no_grad():
        whole = model(x)
        naive = model(x[..., :48, :48])
    assert (naive - whole[..., :48, :48]).abs().max().item() > 1e-3


def test_view_filters_are_predicted_once_per_image():
    model = _model()
    calls = []
    hooks = [m.register_forward_hook(lambda *_: calls.append(1)) for m in model.modules()
             if isinstance(m, hyperisp.nn.FilterMLP)]
    run_tiled(model, _image(97, 130, n=2), tile=48)  # 6 tiles
    for h in hooks:
        h.remove()
    assert len(calls) == 15  # D-Net's 15 layers once (for both images), not once per tile; S-Net not run
    assert all(m.fixed is None and m.share is None for m in model.modules() if isinstance(m, HyperConvEmbed))


def test_old_card_configs_get_the_view_defaults(tmp_path):
    """A card written before the view existed (no view keys) still loads, with the view defaults."""
    model = create_model("denoise_small")
    card = hyperisp.pretrained.save_pretrained(model, "old", trained=False, description="test", directory=tmp_path)
    path = tmp_path / "old.json"
    data = json.loads(path.read_text())
    for key in ("view_size", "view_grid"):
        data["config"].pop(key)
    path.write_text(json.dumps(data))
    loaded = hyperisp.pretrained.load_pretrained(str(path))
    assert card.name == "old" and loaded.config["view_size"] == 128 and loaded.config["view_grid"] == 3


def test_shipped_denoise_tiles_exactly():
    model = hyperisp.pretrained.load_pretrained("denoise")
    x = _image(150, 141)
    with torch.no_grad():
        whole = model(x)
        assert (run_tiled(model, x, 64) - whole).abs().max() < 1e-4


@pytest.mark.parametrize("key, blocks, halo", [("n_refine", "refine", 64), ("n_bottom", "bottom", 96)])
def test_hypervdn_with_refinement_blocks_tiles_exactly(key, blocks, halo, monkeypatch):
    torch.manual_seed(0)
    model = create_model("denoise_small", view_size=32, **{key: 2}, **TINY).eval()
    with torch.no_grad():
        model.out_scale.fill_(1.0)
        for block in getattr(model.dnet, blocks):  # they start as the identity: make them count
            if blocks == "refine":
                block.scale.fill_(0.5)
            else:  # plain, zero last conv: the deep blocks made to dominate, so their reach shows
                block.conv_b.weight.normal_(0, 5.0)
    assert tiling.vdn_halo(model) == halo
    x = _image(300, 281, seed=6)  # tiles of 48 with their halos are smaller than the image
    with torch.no_grad():
        whole = model(x)
        assert (run_tiled(model, x, 48) - whole).abs().max().item() < TOL
        if blocks == "bottom":  # the blocks at 1/8 scale reach past the halo of 64: it would not do
            monkeypatch.setattr(tiling, "vdn_halo", lambda m: 64)
            assert (run_tiled(model, x, 48) - whole).abs().max().item() > TOL


@pytest.mark.parametrize("depth, n_refine, n_bottom", [(1, 0, 0), (2, 1, 0), (3, 0, 1), (4, 0, 0), (4, 1, 2)])
def test_dnet_radius_is_the_measured_reach(depth, n_refine, n_bottom):
    """The farthest output pixel one input pixel moves, over every position within a deepest-level
    cell, is the radius the halo is built on: not less (tiles would differ), not more."""
    torch.manual_seed(depth)
    dnet = DNet(ZeroPadConv, [4] * depth, 0.2, n_refine=n_refine, n_bottom=n_bottom).double().eval()
    with torch.no_grad():
        for block in [*dnet.refine, *dnet.bottom]:  # they start as the identity: make them reach
            block.conv_b.weight.normal_()
            block.scale.fill_(1.0)
        size, scale = 192, 2 ** (depth - 1)
        base = torch.rand(1, 3, size, size, dtype=torch.float64)
        reach = 0
        for offset in range(scale):
            x = base.clone()
            x[..., size // 2 + offset, size // 2 + offset] += 1.0
            moved = (dnet(x) - dnet(base)).abs().amax(dim=(0, 1)) > 0
            ys, xs = torch.nonzero(moved, as_tuple=True)
            reach = max(reach, int((ys - size // 2 - offset).abs().max()), int((xs - size // 2 - offset).abs().max()))
    assert reach == tiling.dnet_radius(depth, n_refine, n_bottom)


def test_clip_input_makes_the_model_see_a_saved_photo():
    """clip_input: unclipped AWGN (the CBSD68 convention) gives the output of its clip to [0, 1], on every path."""
    torch.manual_seed(0)
    plain = _model()
    clipping = create_model("denoise_small", view_size=32, clip_input=True, **TINY).eval()
    clipping.load_state_dict(plain.state_dict())
    assert clipping.config["clip_input"] is True and "clip_input" not in plain.config  # older cards unchanged
    x = _image(99, 130, seed=6) + 0.3 * torch.randn(1, 3, 99, 130, generator=torch.Generator().manual_seed(7))
    assert ((x < 0) | (x > 1)).any()
    with torch.no_grad():
        expected = plain(x.clamp(0, 1))
        assert (plain(x) - expected).abs().max() > 1e-3  # guard: the unclipped values change the plain model
        torch.testing.assert_close(clipping(x), expected, rtol=0, atol=0)
        assert (run_tiled(clipping, x, 48) - expected).abs().max() < TOL
        torch.testing.assert_close(clipping.forward_vdn(x)[0], plain.forward_vdn(x.clamp(0, 1))[0], rtol=0, atol=0)
