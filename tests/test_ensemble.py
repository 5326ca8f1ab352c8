"""Self-ensemble: views map back exactly, the mosaic's transpose is a real RGGB mosaic, options checked."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hyperisp
from hyperisp.ensemble import VIEWS, SelfEnsemble, from_view, max_views, self_ensemble, to_view
from hyperisp.errors import HyperispError
from hyperisp.models import create_model
from hyperisp.pipeline import resolve_views
from hyperisp.raw.bayer import pack_bayer
from hyperisp.tiling import run_tiled


@pytest.mark.parametrize("view", VIEWS)
def test_every_view_maps_back_to_the_input(view):
    x = torch.rand(1, 3, 5, 7)
    assert torch.equal(from_view(to_view(x, view), view), x)
    # an output at twice the size (isp: packed in, full resolution out) maps back the same way
    up = torch.nn.functional.interpolate(x, scale_factor=2)
    assert torch.equal(from_view(torch.nn.functional.interpolate(to_view(x, view), scale_factor=2), view), up)


def test_the_transposed_view_of_a_packed_mosaic_is_the_packed_transposed_mosaic():
    mosaic = torch.rand(1, 1, 6, 10)
    packed_of_transpose = pack_bayer(mosaic.transpose(-1, -2))
    assert torch.equal(to_view(pack_bayer(mosaic), VIEWS[1], bayer=True), packed_of_transpose)


def test_views_are_averaged_and_an_equivariant_network_is_unchanged():
    x = torch.rand(2, 3, 9, 6)
    calls = []

    def shifted(view):  # not equivariant: the views disagree
        calls.append(view.shape)
        return view + torch.arange(view.shape[-1], dtype=view.dtype)

    expected = sum(from_view(shifted(to_view(x, v)), v) for v in VIEWS[:4]) / 4
    calls.clear()
    torch.testing.assert_close(self_ensemble(shifted, x, 4), expected)
    assert calls == [(2, 3, 9, 6), (2, 3, 6, 9), (2, 3, 9, 6), (2, 3, 9, 6)]
    torch.testing.assert_close(self_ensemble(lambda v: 2 * v, x, 8), 2 * x)
    assert torch.equal(self_ensemble(shifted, x, 1), shifted(x))


def test_view_counts_are_checked():
    assert max_views(bayer=True) == 2 and max_views(bayer=False) == 8
    with pytest.raises(ValueError, match="expected 1 to 2 for a packed Bayer mosaic"):
        self_ensemble(lambda v: v, torch.rand(1, 4, 4, 4), 3, bayer=True)
    with pytest.raises(ValueError, match="expected 1 to 8"):
        SelfEnsemble(torch.nn.Identity(), 9)
    assert resolve_views("isp", 2) == 2 and resolve_views("denoise", 8) == 8
    with pytest.raises(HyperispError, match="--ensemble 4"):
        resolve_views("isp", 4)


def test_tiled_ensemble_is_exact_and_the_pipeline_averages_the_transpose():
    torch.manual_seed(0)
    net = create_model("isp_small", n_fwd=8, n_embed=4, n_hid=32).eval()
    with torch.no_grad():
        net.residual_scale.fill_(0.8)
        mosaic = torch.rand(1, 1, 262, 198, generator=torch.Generator().manual_seed(1))
        packed = pack_bayer(mosaic)
        whole = self_ensemble(net, packed, 2, bayer=True)
        tiled = self_ensemble(lambda v: run_tiled(net, v, tile=64), packed, 2, bayer=True)
        # the transposed view added tile by tile into a transposed view of the first's output
        added = self_ensemble(lambda v: run_tiled(net, v, tile=64), packed, 2, bayer=True,
                              run_into=lambda v, acc: run_tiled(net, v, tile=64, into=acc))
        transposed = net(pack_bayer(mosaic.transpose(-1, -2).contiguous())).transpose(-1, -2)
    assert (tiled - whole).abs().max().item() < 1e-4
    assert (added - whole).abs().max().item() < 1e-4
    torch.testing.assert_close(whole, (net(packed) + transposed) / 2)
    assert (transposed - net(packed)).abs().max().item() > 1e-3  # the views do differ: the test can fail

    options = dict(model=net, device="cpu", linear=True, tile=0)
    one, two = (hyperisp.develop(mosaic[0, 0].numpy(), ensemble=n, **options) for n in (1, 2))
    default = hyperisp.develop(mosaic[0, 0].numpy(), **options)
    assert np.array_equal(default, one) and not np.array_equal(one, two)  # develop runs 1 view unless asked


def test_cli_rejects_views_a_mosaic_does_not_have(tmp_path, small_dng):
    from typer.testing import CliRunner

    from hyperisp.cli import app

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["develop", str(small_dng), "-o", str(out), "--ensemble", "4"])
    assert result.exit_code == 2 and "--ensemble 4" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_denoise_runs_one_view_unless_asked():
    torch.manual_seed(0)
    net = create_model("denoise_small", n_hid=16).eval()
    with torch.no_grad():
        net.out_scale.fill_(0.8)  # an untrained HyperVDN returns its input, the same in every view
    photo = np.random.default_rng(2).random((40, 56, 3), dtype=np.float32)
    one, two = (hyperisp.denoise(photo, model=net, device="cpu", tile=0, ensemble=n) for n in (1, 2))
    default = hyperisp.denoise(photo, model=net, device="cpu", tile=0)
    assert np.array_equal(default, one) and not np.array_equal(one, two)  # the views do differ
