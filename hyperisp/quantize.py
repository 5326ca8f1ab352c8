"""Int8 storage of weight matrices, one scale per row (for weights files under the 25 MB limit).

A HyperConv's parameters are almost all in its filter MLP's last ``nn.Linear`` (paper A's
point: parameters at no per-pixel cost), so a model can have twice the parameters of an
fp16 file of the same size if those matrices are stored in 8 bits. Each row (one output
of the layer) gets its own symmetric scale, so a row of small weights keeps its precision.
Weights are dequantized to fp32 on load; inference never sees int8.

    quantize_rows(w (R, C) float) -> (q (R, C) int8, scale (R, 1) float32);  w ~= q * scale

In a state dict, a quantized tensor ``key`` is stored as ``key`` (int8) and ``key + SCALE_SUFFIX``
(:func:`quantize_state`, :func:`dequantize_state`). Every other tensor is stored as float16.
"""
from __future__ import annotations

import torch

SCALE_SUFFIX = ".int8_scale"
LEVELS = 127  # symmetric: -127..127, so a row's largest weight is exact in magnitude


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(R, C) float -> ((R, C) int8, (R, 1) float32 scale) with ``weight ~= q * scale``.

    Each weight comes back within half a step (its row's scale). The scales stay float32: in
    float16 a row of weights near 1e-4 would get a subnormal, imprecise scale. An all-zero row
    gets scale 0.
    """
    if weight.ndim != 2 or not weight.is_floating_point():
        raise ValueError(f"expected a float matrix (R, C), got {weight.dtype} of shape {tuple(weight.shape)}")
    w = weight.detach().float()
    scale = w.abs().amax(dim=1, keepdim=True) / LEVELS
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(w / safe).clamp(-LEVELS, LEVELS).to(torch.int8)
    return q, scale


def dequantize_rows(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(R, C) int8 and (R, 1) scale -> (R, C) float32."""
    if q.dtype != torch.int8 or scale.shape != (q.shape[0], 1):
        raise ValueError(f"expected int8 (R, C) and a scale (R, 1), got {q.dtype} {tuple(q.shape)} "
                         f"and {tuple(scale.shape)}")
    return q.float() * scale.float()


def quantize_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every float matrix (the ``nn.Linear`` weights) as int8 plus scales; the rest as float16."""
    stored: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        value = value.detach().cpu()
        if value.ndim == 2 and value.is_floating_point():
            stored[key], stored[key + SCALE_SUFFIX] = quantize_rows(value)
        else:
            stored[key] = value.half() if value.is_floating_point() else value
        stored[key] = stored[key].contiguous()
    return stored


def dequantize_state(stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`quantize_state`: float32 tensors under the model's own keys."""
    state = {}
    for key, value in stored.items():
        if key.endswith(SCALE_SUFFIX):
            continue
        scale = stored.get(key + SCALE_SUFFIX)
        if scale is None and value.dtype == torch.int8:
            raise ValueError(f"int8 tensor {key!r} has no {SCALE_SUFFIX!r} beside it")
        state[key] = dequantize_rows(value, scale) if scale is not None else value.float()
    return state
