"""experiments/clipping_check.py: a denoiser scored on unclipped and clipped AWGN inputs."""
import torch

from conftest import load_experiment


class OutOfRangeAsGrey(torch.nn.Module):
    """A 'denoiser' that never saw values outside [0, 1]: it turns them into mid-grey."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where((x < 0) | (x > 1), torch.full_like(x, 0.5), x)


def test_clipping_rows_separate_the_two_inputs():
    clipping_rows = load_experiment("clipping_check").clipping_rows
    images = [("dark", torch.full((1, 3, 32, 32), 0.05)), ("bright", torch.full((1, 3, 32, 32), 0.95))]
    same = clipping_rows(torch.nn.Identity(), images, sigmas=(15, 50))
    # The identity's output is clamped for PSNR, so clipping its input first changes nothing.
    assert all(r["psnr_unclipped_input"] == r["psnr_clipped_input"] for r in same)
    assert 0 < same[0]["share_outside_0_1"] < same[1]["share_outside_0_1"] < 1
    worse = clipping_rows(OutOfRangeAsGrey(), images, sigmas=(50,))[0]
    identity = clipping_rows(torch.nn.Identity(), images, sigmas=(50,))[0]
    assert worse["psnr_unclipped_input"] < worse["psnr_clipped_input"] == identity["psnr_clipped_input"]
    assert worse["images"] == 2 and worse["sigma"] == 50
