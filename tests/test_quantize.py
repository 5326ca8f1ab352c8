"""Int8 rows with per-row scales (hyperisp.quantize)."""
import pytest
import torch

from hyperisp.quantize import SCALE_SUFFIX, dequantize_rows, dequantize_state, quantize_rows, quantize_state


def test_rows_come_back_within_half_a_step_of_their_own_scale():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 50, generator=g) * torch.tensor([1e-4, 1e-2, 1, 10, 0, 3]).view(-1, 1)
    q, scale = quantize_rows(w)
    assert q.dtype == torch.int8 and scale.shape == (6, 1) and scale.dtype == torch.float32
    back = dequantize_rows(q, scale)
    assert ((back - w).abs() <= scale / 2 * (1 + 1e-5)).all()  # also row 0, whose scale fp16 would make subnormal
    assert back[4].abs().max() == 0 and q.abs().max() == 127  # a zero row; each row uses the full range


def test_state_stores_matrices_in_int8_and_the_rest_in_fp16():
    state = {"fc.weight": torch.randn(40, 8), "fc.bias": torch.randn(40), "conv.weight": torch.randn(4, 3, 3, 3),
             "steps": torch.tensor(3)}
    stored = quantize_state(state)
    assert stored["fc.weight"].dtype == torch.int8 and "fc.weight" + SCALE_SUFFIX in stored
    assert stored["fc.bias"].dtype == stored["conv.weight"].dtype == torch.float16
    assert stored["steps"].dtype == torch.int64
    back = dequantize_state(stored)
    assert set(back) == set(state) and all(v.dtype == torch.float32 for v in back.values())
    torch.testing.assert_close(back["fc.weight"], state["fc.weight"], atol=0.02, rtol=0.01)


def test_bad_inputs_are_refused_with_what_was_expected():
    with pytest.raises(ValueError, match="expected a float matrix"):
        quantize_rows(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="expected int8"):
        dequantize_rows(torch.zeros(2, 3), torch.ones(2, 1))
    with pytest.raises(ValueError, match="has no"):
        dequantize_state({"fc.weight": torch.zeros(2, 3, dtype=torch.int8)})
