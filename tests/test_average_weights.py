"""experiments/average_weights.py: the weight mean of two models of one architecture."""
import pytest
import torch

from conftest import TINY_MODELS, load_experiment
from hyperisp.models import create_model


def test_weighted_mean_of_two_models():
    average_state = load_experiment("average_weights").average_state
    torch.manual_seed(0)
    a, b = create_model("denoise_small", **TINY_MODELS["denoise"]), create_model("denoise_small", **TINY_MODELS["denoise"])
    with torch.no_grad():
        for p in b.parameters():
            p.add_(torch.randn_like(p))
    mean = average_state([a, b], [1.0, 3.0])  # normalised to 0.25 / 0.75
    for k, v in mean.items():
        torch.testing.assert_close(v, 0.25 * a.state_dict()[k].float() + 0.75 * b.state_dict()[k].float())
    assert any((v != a.state_dict()[k]).any() for k, v in mean.items())


def test_refuses_different_architectures():
    average_state = load_experiment("average_weights").average_state
    a = create_model("denoise_small", **TINY_MODELS["denoise"])
    b = create_model("denoise_small", **{**TINY_MODELS["denoise"], "n_hid": 16})
    with pytest.raises(ValueError, match="one architecture"):
        average_state([a, b], [1.0, 1.0])


def test_a_narrower_start_is_widened_to_the_first_model():
    module = load_experiment("average_weights")
    torch.manual_seed(0)
    narrow = create_model("denoise_small", **TINY_MODELS["denoise"]).eval()  # widths 2, 4
    wide = create_model("denoise_small", **TINY_MODELS["denoise"], widths=[4, 8]).eval()
    with torch.no_grad():
        narrow.out_scale.fill_(1.0)
    widened = module.as_architecture_of(narrow, wide)
    assert widened.config == wide.config and module.as_architecture_of(wide, wide) is wide
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(widened(x), narrow(x), rtol=0, atol=1e-5)
    module.average_state([wide, widened], [1.0, 1.0])  # one architecture now
    other = create_model("denoise_small", **{**TINY_MODELS["denoise"], "slope": 0.1})
    assert module.as_architecture_of(other, wide) is other  # differs beyond the widths: left for the check
    narrow_mlps = create_model("denoise_small", **{**TINY_MODELS["denoise"], "n_hid": 16})
    assert module.as_architecture_of(narrow_mlps, wide).config == wide.config  # n_hid grows too
