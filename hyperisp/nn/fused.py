"""oneDNN fast paths for CPU inference: ``act(conv2d(x) + residual)`` in one call, 2x2 average pooling.

Why: the models' maps are narrow (8-16 channels), so a separate activation or residual
add costs a whole pass over a map for almost no arithmetic: on this project's 2-core CPU
the leaky ReLUs alone were a tenth of the denoise network's time. oneDNN can apply them
to each output block of the convolution while it is still in cache ("post-ops"); PyTorch
exposes that as ``torch.ops.mkldnn._convolution_pointwise``, the op its own inductor
compiler emits for CPU. It is used only for float32 CPU inference without autograd, and
only for what it fuses (an activation, or a residual add followed by the activation in
place); everything else, training included, runs the same maths as separate ops.

    Activation("gelu") | Activation("leaky_relu", (slope,)) | Activation("hardtanh", (lo, hi))

Results equal the separate ops to float rounding (GELU differs by ~1e-6; the others are
bit-identical in our tests). :func:`avg_pool2x2` runs VDN's 2x2 average pool as a
depthwise stride-2 convolution: 8x faster than ``F.avg_pool2d`` on channels_last maps
here (2 vs 17 ms for 8 x 1488 x 1488), same values.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Iterator, NamedTuple, Optional

import torch
import torch.nn.functional as F


class Activation(NamedTuple):
    """An elementwise activation by oneDNN's name: "relu", "leaky_relu" (slope), "gelu", "hardtanh" (lo, hi)."""

    name: str
    scalars: tuple[float, ...] = ()


GELU = Activation("gelu")
CLAMP01 = Activation("hardtanh", (0.0, 1.0))


def leaky_relu(slope: float) -> Activation:
    """LeakyReLU with negative ``slope``."""
    return Activation("leaky_relu", (float(slope),))


def activate(y: torch.Tensor, act: Optional[Activation], inplace: bool = False) -> torch.Tensor:
    """Apply ``act`` to ``y`` with ordinary PyTorch ops (``inplace``: overwrite ``y``, no autograd)."""
    if act is None:
        return y
    name, scalars = act
    if name == "relu":
        return F.relu(y, inplace=inplace)
    if name == "leaky_relu":
        return F.leaky_relu(y, scalars[0], inplace=inplace)
    if name == "gelu":
        return torch.ops.aten.gelu_(y) if inplace else F.gelu(y)
    if name == "hardtanh":
        return y.clamp_(*scalars) if inplace else y.clamp(*scalars)
    raise ValueError(f"expected an activation in relu, leaky_relu, gelu, hardtanh, got {name!r}")


@functools.lru_cache(maxsize=None)
def _pointwise_available() -> bool:
    """Whether this PyTorch build's oneDNN fused convolution gives the separate ops' results.

    A private API: checked once, on a tiny input, for every activation used here and the
    residual add, not assumed (builds without oneDNN, or whose oneDNN lacks a post-op, fall back).
    """
    op = getattr(torch.ops.mkldnn, "_convolution_pointwise", None)
    if op is None or not torch.backends.mkldnn.is_available():
        return False
    x = torch.linspace(-2, 2, 2 * 5 * 5).reshape(1, 2, 5, 5)
    w, same = torch.linspace(-1, 1, 3 * 2 * 9).reshape(3, 2, 3, 3), [1, 1]
    conv = F.conv2d(x, w, padding=1)
    try:
        for act in (GELU, CLAMP01, leaky_relu(0.2), Activation("relu")):
            y = op(x, w, None, same, [1, 1], [1, 1], 1, act.name, list(act.scalars), _algorithm(act.name))
            if not torch.allclose(y, activate(conv, act), atol=1e-5):
                return False
        y = op.binary(x, conv, w, None, same, [1, 1], [1, 1], 1, "add", None, None, [], None)
    except (RuntimeError, TypeError):
        return False
    return torch.allclose(y, 2 * conv, atol=1e-5)


_fusion = {"enabled": True}


@contextlib.contextmanager
def fusion_disabled() -> Iterator[None]:
    """Inside: every op here runs unfused, as in training (for A/B timing and profiling the convolutions alone)."""
    before, _fusion["enabled"] = _fusion["enabled"], False
    try:
        yield
    finally:
        _fusion["enabled"] = before


def _fusable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    return (_fusion["enabled"] and not needs_grad and x.device.type == "cpu" and x.dtype == torch.float32
            and weight.dtype == torch.float32 and _pointwise_available())


def conv2d_act(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    padding: int = 0,
    groups: int = 1,
    activation: Optional[Activation] = None,
    residual: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """``activation(F.conv2d(x, weight, bias, padding=padding, groups=groups) + residual)``, fused where possible.

    Args:
        x: (N, Cin, H, W).
        weight: (Cout, Cin / groups, f, f).
        bias: (Cout,) or None.
        padding: zero padding on every side.
        activation: None (identity) or an :class:`Activation`.
        residual: None, or a map added before the activation, (N, Cout, H', W') of the output's
            size (a broadcastable one, e.g. (N, 1, H', W'), is added as a separate op).
    Returns:
        (N, Cout, H', W').
    """
    if not _fusable(x, weight):
        y = F.conv2d(x, weight, bias, padding=padding, groups=groups)
        return activate(y if residual is None else y + residual, activation)
    pointwise, pad, one = torch.ops.mkldnn._convolution_pointwise, [padding] * 2, [1, 1]
    if residual is None:
        name, scalars = activation if activation is not None else ("none", ())
        return pointwise(x, weight, bias, pad, one, one, groups, name, list(scalars), _algorithm(name))
    n, _, h, w = x.shape
    out_shape = (n, weight.shape[0], h + 2 * padding - weight.shape[-2] + 1, w + 2 * padding - weight.shape[-1] + 1)
    if tuple(residual.shape) == out_shape and residual.dtype == x.dtype:
        y = pointwise.binary(x, residual, weight, bias, pad, one, one, groups, "add", None, None, [], None)
    else:  # a broadcast residual: oneDNN's binary post-op wants the output's shape
        y = pointwise(x, weight, bias, pad, one, one, groups, "none", [], "") + residual
    return activate(y, activation, inplace=True)


def _algorithm(name: str) -> str:
    return "none" if name == "gelu" else ""  # GELU's exact (erf) form, as F.gelu


def avg_pool2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.avg_pool2d(x, 2)``: (N, C, H, W) -> (N, C, H // 2, W // 2), as a depthwise convolution where possible."""
    if x.ndim != 4:
        raise ValueError(f"expected maps of shape (N, C, H, W), got {tuple(x.shape)}")
    weight = x.new_full((x.shape[1], 1, 2, 2), 0.25)
    if not _fusable(x, weight):
        return F.avg_pool2d(x, 2)
    return F.conv2d(x, weight, stride=2, groups=x.shape[1])
