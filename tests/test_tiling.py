"""Exact tiled inference: tiles must give the same pixels as whole-image inference.

The halo is 96 packed pixels, so images must be well over 96 + tile for the tiles to
differ from the whole image; sizes here are odd and not multiples of 16 on purpose.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hyperisp
from hyperisp.models import create_model
from hyperisp.raw import BAYER_PHASES
from hyperisp.tiling import filters_once, hyperunet_pooled_tiled, run_tiled, unet_halo
from hyperisp.models.hyperunet import _prepare

TOL = 1e-4


def _unet(config: str = "isp_small", seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model(config, n_fwd=8, n_embed=4, n_hid=32, **overrides).eval()  # small: the tests run many tiles
    with torch.no_grad():
        if model.residual_scale is not None:
            model.residual_scale.fill_(0.8)  # let the network's head show in the output
        for block in model.refine:
            block.scale.fill_(0.5)  # refinement blocks start as the identity: make them count
    return model


@pytest.mark.parametrize(
    "config, size, overrides",
    [("isp_small", (177, 203), {}), ("isp_small", (230, 141), {"view_grid": 2}),  # with the filter view
     ("isp_small", (177, 203), {"view_size": 0, "pool_cell": None}), ("hyperunet_8_8_256", (163, 181), {}),
     ("isp_small", (177, 203), {"view_size": 0, "pool_cell": 64}), ("isp_small", (230, 141), {"view_size": 0, "pool_cell": 96})],
)
def test_hyperunet_tiles_equal_whole_image(config, size, overrides):
    model = _unet(config, **overrides)
    assert (model.view_boxes(*size) is not None) == (model.config.get("view_size", 0) > 0)
    x = torch.rand(1, 4, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = model(x)
    tiled = run_tiled(model, x, tile=64)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max().item() < TOL


def test_refinement_blocks_widen_the_halo_and_tiles_stay_exact():
    # Two blocks add 4 to the final pass's radius (94 -> 98): a 96 halo would no longer cover it.
    model = _unet(n_refine=2)
    assert unet_halo(model) == 128 and unet_halo(_unet()) == 96
    x = torch.rand(1, 4, 301, 283, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = model(x)
    for tile in (64, 96):
        assert (run_tiled(model, x, tile=tile) - whole).abs().max().item() < TOL


def test_tiles_add_into_a_strided_output():
    # into= adds the output into a tensor of its shape, here a transposed view (the self-ensemble's use)
    model = _unet()
    x = torch.rand(1, 4, 177, 203, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        whole = model(x)
    base = torch.rand(1, 3, 2 * 203, 2 * 177)
    for tile in (64, 512):  # tiled, and one tile (the plain forward)
        acc = base.clone()
        assert run_tiled(model, x, tile=tile, into=acc.transpose(-1, -2)).data_ptr() == acc.data_ptr()
        assert (acc.transpose(-1, -2) - base.transpose(-1, -2) - whole).abs().max().item() < TOL


@pytest.mark.parametrize("pool_cell", [None, 64])
def test_pooled_embeddings_reduce_exactly_over_tiles(pool_cell):
    model = _unet(pool_cell=pool_cell, view_size=0)  # no filter view: the image's own pooled embeddings
    x = torch.rand(1, 4, 200, 190, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = model.pooled_embeddings(x)
        tiled, _ = hyperunet_pooled_tiled(model, _prepare(x), tile=64)
    assert set(tiled) == {"e1", "e2", "e4", "e8"}
    for key in whole:
        torch.testing.assert_close(tiled[key], whole[key], rtol=0, atol=1e-6)
    if pool_cell:  # the cells matter on this size: the global max is different
        assert not torch.allclose(whole["e1"], _unet(pool_cell=None, view_size=0).pooled_embeddings(x)["e1"])


def test_tiled_passes_take_the_filter_views_pooled_embeddings():
    model = _unet()
    x = torch.rand(1, 4, 200, 190, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        view = model.view_pooled(_prepare(x), 200, 190)
        tiled, maps = hyperunet_pooled_tiled(model, _prepare(x), tile=64, view=view)
        own, _ = hyperunet_pooled_tiled(model, _prepare(x), tile=64)
    assert set(view) == {"e1", "e2", "e4", "e8"} and all(tiled[k] is view[k] for k in view)
    assert set(maps) == {"y2", "y4"}
    assert not torch.allclose(own["e1"], view["e1"])  # the image pooled whole is another statistic


def test_naive_tiles_would_differ():
    """Guard: the test images are big enough that per-tile filters really change the output."""
    model = _unet()
    x = torch.rand(1, 4, 177, 203, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = model(x)
        naive = model(x[..., :64, :64])
    assert (naive - whole[..., :128, :128]).abs().max().item() > 1e-3


@pytest.mark.parametrize("view_size, predictions", [(0, 11), (64, 17)])
def test_filters_are_predicted_once_per_image(view_size, predictions):
    # with a filter view, the down path's 6 HyperConvs also predict filters once for the view's patches
    model = _unet(view_size=view_size)
    calls = []
    hooks = [m.register_forward_hook(lambda *_: calls.append(1)) for m in model.modules()
             if isinstance(m, hyperisp.nn.FilterMLP)]
    x = torch.rand(1, 4, 150, 170, generator=torch.Generator().manual_seed(3))
    run_tiled(model, x, tile=64)
    for h in hooks:
        h.remove()
    assert len(hooks) == 11 and len(calls) == predictions  # every HyperConv once, not once per tile
    assert all("predict" not in vars(m) for m in model.modules())  # the memo is undone afterwards
    with filters_once(model):
        pass


def test_plain_vdn_tiles_equal_whole_image():
    torch.manual_seed(0)
    model = create_model("vdn", base_channels=8, snet_channels=8).eval()
    with torch.no_grad():
        model.dnet.last.weight.normal_(0, 0.1)
    x = torch.rand(1, 3, 150, 141, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        whole = model(x)
    assert (run_tiled(model, x, tile=32) - whole).abs().max().item() < TOL


def test_hypervdn_within_its_filter_view_runs_whole_image():  # larger images: tests/test_tiling_vdn.py
    torch.manual_seed(0)
    model = create_model("denoise_small").eval()
    with torch.no_grad():
        model.out_scale.fill_(1.0)
    x = torch.rand(1, 3, 40, 52)
    with torch.no_grad():
        assert torch.equal(run_tiled(model, x, tile=16), model(x))


def test_bad_tile_size_is_rejected():
    with pytest.raises(ValueError, match="multiple of 32"):
        run_tiled(_unet(), torch.rand(1, 4, 100, 100), tile=48)


@pytest.mark.parametrize("phase", BAYER_PHASES)
def test_develop_tiled_equals_whole_for_every_bayer_phase(phase):
    """Through develop(): odd sensor size, every CFA phase, tiles of 128 image pixels."""
    model = _unet()
    rng = np.random.default_rng(5)
    mosaic = (rng.random((331, 405)) * 4000 + 64).astype(np.uint16)
    kwargs = dict(model=model, device="cpu", cfa_phase=phase, black_level=64, white_level=4095, wb=[2.0, 1.0, 1.5])
    whole = hyperisp.develop(mosaic, tile=0, **kwargs)
    tiled = hyperisp.develop(mosaic, tile=128, **kwargs)
    assert tiled.shape == whole.shape == (331, 405, 3)
    assert np.abs(tiled - whole).max() < TOL


def _demosaic_reference(packed: torch.Tensor) -> torch.Tensor:
    """Textbook bilinear demosaic: masked mosaic planes, 3x3 kernels, mosaic reflected at the border."""
    import torch.nn.functional as F

    mosaic = F.pixel_shuffle(packed, 2)
    h, w = mosaic.shape[-2:]
    masks = torch.zeros(1, 3, h, w)
    masks[:, 0, 0::2, 0::2] = 1
    masks[:, 1, 0::2, 1::2] = masks[:, 1, 1::2, 0::2] = 1
    masks[:, 2, 1::2, 1::2] = 1
    k_g = torch.tensor([[0, 1, 0], [1, 4, 1], [0, 1, 0]]) / 4.0
    k_rb = torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 4.0
    kernels = torch.stack([k_rb, k_g, k_rb]).unsqueeze(1)
    return F.conv2d(F.pad(mosaic * masks, (1, 1, 1, 1), mode="reflect"), kernels, groups=3)


@pytest.mark.parametrize("size", [(1, 1), (2, 7), (13, 10)])
def test_fast_demosaic_bilinear_matches_the_textbook_conv(size):
    from hyperisp.raw.bayer import demosaic_bilinear

    packed = torch.rand(2, 4, *size, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(demosaic_bilinear(packed), _demosaic_reference(packed), rtol=0, atol=1e-6)


def test_bilinear_planes_shuffle_to_the_demosaic_in_either_memory_format():
    from hyperisp.nn import pixel_shuffle
    from hyperisp.raw.bayer import demosaic_bilinear, demosaic_bilinear_planes

    packed = torch.rand(2, 4, 9, 14, generator=torch.Generator().manual_seed(8))
    reference = _demosaic_reference(packed)
    for layout in (torch.contiguous_format, torch.channels_last):
        planes = demosaic_bilinear_planes(packed.contiguous(memory_format=layout))
        assert planes.shape == (2, 12, 9, 14) and planes.is_contiguous(memory_format=layout)
        torch.testing.assert_close(pixel_shuffle(planes, 2), reference, rtol=0, atol=1e-6)
    assert demosaic_bilinear(packed).is_contiguous()
    # FLOP counting sees no convolution: the fixed base is not model work.
    assert demosaic_bilinear_planes(torch.empty(1, 4, 8, 8, device="meta")).shape == (1, 12, 8, 8)


def test_recomputing_y0_gives_the_same_pixels():
    model = _unet()
    x = torch.rand(1, 4, 170, 199, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        whole = model(x)
    assert (run_tiled(model, x, tile=64, keep_y0=False) - whole).abs().max().item() < TOL


@pytest.mark.parametrize("height, width, tile", [(240, 112, 64), (1424, 2128, 2048), (2000, 3008, 2048),
                                                 (208, 192, 64), (4000, 9000, 2048)])
def test_tiles_are_strips_up_to_twice_the_tile_wide_and_cover_the_map_once(height, width, tile):
    from hyperisp.tiling import HALO, UNET_ALIGN, _tiles

    tiles = _tiles(height, width, tile, HALO, UNET_ALIGN)
    covered = torch.zeros(height, width, dtype=torch.int32)
    for (y0, y1, ey0, ey1), (x0, x1, ex0, ex1) in tiles:
        assert y0 % UNET_ALIGN == 0 and x0 % UNET_ALIGN == 0
        assert (ey0, ey1) == (max(0, y0 - HALO), min(height, y1 + HALO))
        assert (ex0, ex1) == (max(0, x0 - HALO), min(width, x1 + HALO))
        assert (y1 - y0) * (x1 - x0) <= max(tile * tile, UNET_ALIGN * width)  # the memory bound
        covered[y0:y1, x0:x1] += 1
    assert (covered == 1).all()
    strips = all(xs[:2] == (0, width) for _, xs in tiles)
    assert strips == (width <= 2 * tile)


def test_full_width_strips_equal_whole_image():
    """Strips (input at most 2 x tile wide) are cut from channels_last maps without copies: same pixels."""
    from hyperisp.tiling import _tiles

    model = _unet()
    x = torch.rand(1, 4, 230, 101, generator=torch.Generator().manual_seed(9))
    assert len(_tiles(240, 112, 64, 96, 32)) > 2  # padded size: several strips, each with halos
    with torch.no_grad():
        whole = model(x)
    assert (run_tiled(model, x, tile=64) - whole).abs().max().item() < TOL


def test_each_task_has_its_default_tile():
    from hyperisp.pipeline import _network_tile

    assert _network_tile(_unet(), None) == 2048  # 4096 image pixels, packed: 2048
    assert _network_tile(create_model("denoise_small"), None) == 2048
    assert _network_tile(create_model("denoise_small"), 0) is None
