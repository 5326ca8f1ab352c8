"""Gated double layers (paper B, SPEC §6): hypernetwork layers rewritten as gating.

A hypernetwork layer multiplies its input by a PREDICTED weight matrix:

    x_j = f(sum_i W(x0)_ij x_i)                                   (W: (N, n_i, n_j))

A gated double layer (GDL) keeps two FIXED (input-independent, still trainable)
matrices v (n_i, n_k) and u (n_k, n_j) and only predicts an elementwise multiplier a:

    x_j = f(sum_k u_kj a(x0)_k sum_i v_ik x_i)                    (a: (N, n_k))

Theorem 3.1: with n_k = n_i * n_j and the indexing construction
``v_ik = [k mod n_i == i]``, ``u_kj = [k // n_i == j]``, ``a_k = W_ij`` (k = n_i*j + i)
both layers are equal (:func:`gdl_from_hypernetwork`).

Corollary 3.2 (convolutional): a per-pixel kernel prediction layer
(:func:`apply_pixel_kernels`) equals fixed conv F -> per-pixel multiplier -> fixed
conv G, with F the one-hot shift convs, a the predicted kernels, G a summation
(:func:`gdl_from_kernel_prediction`). Fewer multiplier channels than
C_in*C_out*f^2 give a low-rank kernel prediction with a smaller largest layer.

All convolutions here use reflection 'same' padding (:func:`hyperisp.nn.reflect_pad`).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from hyperisp.nn.padding import reflect_conv2d, reflect_pad

Activation = Optional[Callable[[torch.Tensor], torch.Tensor]]


class GatedDoubleLayer(nn.Module):
    """Dense GDL: ``y = f(((x @ v) * a) @ u)``.

    ``forward(x (N, n_i), a (N, n_k)) -> (N, n_j)``. u and v are parameters (fixed
    with respect to the input, trained like any weight); pass ``trainable=False``
    to hold them as buffers (the exact constructions of Theorem 3.1).
    """

    def __init__(self, in_features: int, hidden: int, out_features: int, activation: Activation = None,
                 trainable: bool = True) -> None:
        super().__init__()
        if min(in_features, hidden, out_features) < 1:
            raise ValueError(f"expected positive sizes, got {in_features}, {hidden}, {out_features}")
        v = torch.randn(in_features, hidden) / in_features**0.5
        u = torch.randn(hidden, out_features) / hidden**0.5
        if trainable:
            self.v, self.u = nn.Parameter(v), nn.Parameter(u)
        else:
            self.register_buffer("v", v)
            self.register_buffer("u", u)
        self.activation = activation

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.v.shape[0]:
            raise ValueError(f"expected x of shape (N, {self.v.shape[0]}), got {tuple(x.shape)}")
        if a.shape != (x.shape[0], self.v.shape[1]):
            raise ValueError(f"expected a of shape ({x.shape[0]}, {self.v.shape[1]}), got {tuple(a.shape)}")
        y = ((x @ self.v) * a) @ self.u
        return self.activation(y) if self.activation is not None else y


def hypernetwork_layer(x: torch.Tensor, weight: torch.Tensor, activation: Activation = None) -> torch.Tensor:
    """The reference hypernetwork layer ``x_j = f(sum_i W_ij x_i)``: x (N, n_i), W (N, n_i, n_j) -> (N, n_j)."""
    y = torch.einsum("ni,nij->nj", x, weight)
    return activation(y) if activation is not None else y


def gdl_from_hypernetwork(weight: torch.Tensor, activation: Activation = None
                          ) -> tuple[GatedDoubleLayer, torch.Tensor]:
    """Theorem 3.1: the GDL (n_k = n_i*n_j) and multiplier equal to a hypernetwork layer.

    Args:
        weight: (N, n_i, n_j) predicted weights W(x0) of the hypernetwork layer.
    Returns:
        (gdl, a): ``gdl(x, a) == hypernetwork_layer(x, weight)`` for every x (N, n_i);
        a (N, n_i*n_j) is W flattened with k = n_i*j + i.
    """
    if weight.ndim != 3:
        raise ValueError(f"expected predicted weights of shape (N, n_i, n_j), got {tuple(weight.shape)}")
    n, n_i, n_j = weight.shape
    k = torch.arange(n_i * n_j, device=weight.device)
    gdl = GatedDoubleLayer(n_i, n_i * n_j, n_j, activation, trainable=False).to(weight.device, weight.dtype)
    gdl.v.copy_((k[None, :] % n_i == torch.arange(n_i, device=weight.device)[:, None]).to(weight.dtype))
    gdl.u.copy_((k[:, None] // n_i == torch.arange(n_j, device=weight.device)[None, :]).to(weight.dtype))
    a = weight.transpose(1, 2).reshape(n, n_i * n_j)  # a[n_i*j + i] = W[i, j]
    return gdl, a


# ----------------------------------------------------------------------------- convolutional

def apply_pixel_kernels(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Per-pixel kernel prediction layer: a different f x f kernel at every pixel.

    ``y[n, o, p] = sum_c sum_d kernels[n, o, c, d, p] * x[n, c, p + d]`` with d over the
    f x f window (row-major), reflection padding at the border.

    Args:
        x: (N, C_in, H, W).
        kernels: (N, C_out, C_in, f*f, H, W).
    Returns:
        (N, C_out, H, W).
    """
    if x.ndim != 4 or kernels.ndim != 6:
        raise ValueError(f"expected x (N, C, H, W) and kernels (N, C_out, C, f*f, H, W), "
                         f"got {tuple(x.shape)} and {tuple(kernels.shape)}")
    n, c, h, w = x.shape
    f = round(kernels.shape[3] ** 0.5)
    if kernels.shape[0] != n or kernels.shape[2] != c or kernels.shape[4:] != (h, w) or f * f != kernels.shape[3]:
        raise ValueError(f"kernels {tuple(kernels.shape)} do not fit input {tuple(x.shape)}")
    patches = F.unfold(reflect_pad(x, (f // 2,) * 4), f).view(n, 1, c, f * f, h, w)
    return (patches * kernels).sum(dim=(2, 3))


class GatedConvDoubleLayer(nn.Module):
    """Convolutional GDL: ``y = G * (a ⊙ (F * x))`` with fixed convs F, G and a per-pixel multiplier a.

    ``forward(x (N, C_in, H, W), a (N, M, H, W)) -> (N, C_out, H, W)``. F is f x f
    (C_in -> M), G is g x g (M -> C_out), both without bias, reflection 'same' padding.
    """

    def __init__(self, in_channels: int, hidden: int, out_channels: int, kernel_size: int = 5,
                 out_kernel_size: int = 1) -> None:
        super().__init__()
        for name, size in (("kernel_size", kernel_size), ("out_kernel_size", out_kernel_size)):
            if size < 1 or size % 2 == 0:
                raise ValueError(f"expected an odd positive {name}, got {size}")
        self.F = nn.Conv2d(in_channels, hidden, kernel_size, bias=False)
        self.G = nn.Conv2d(hidden, out_channels, out_kernel_size, bias=False)

    @staticmethod
    def _same_conv(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
        return reflect_conv2d(x, conv.weight, conv.bias)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.F.in_channels:
            raise ValueError(f"expected x of shape (N, {self.F.in_channels}, H, W), got {tuple(x.shape)}")
        expected = (x.shape[0], self.F.out_channels, *x.shape[2:])
        if tuple(a.shape) != expected:
            raise ValueError(f"expected a multiplier of shape {expected}, got {tuple(a.shape)}")
        return self._same_conv(a * self._same_conv(x, self.F), self.G)


def gdl_from_kernel_prediction(kernels: torch.Tensor) -> tuple[GatedConvDoubleLayer, torch.Tensor]:
    """Corollary 3.2: the convolutional GDL equal to a per-pixel kernel prediction layer.

    F (C_in -> M = C_out*C_in*f^2): channel m = ((o*C_in + c)*f^2 + d) is the one-hot
    conv that copies x_c shifted by window offset d; a = the kernels flattened the same
    way; G (1 x 1, M -> C_out) sums the C_in*f^2 channels of each output o.

    Args:
        kernels: (N, C_out, C_in, f*f, H, W) as for :func:`apply_pixel_kernels`.
    Returns:
        (gdl, a): ``gdl(x, a) == apply_pixel_kernels(x, kernels)``; a (N, M, H, W).
    """
    if kernels.ndim != 6:
        raise ValueError(f"expected kernels of shape (N, C_out, C_in, f*f, H, W), got {tuple(kernels.shape)}")
    n, c_out, c_in, ff, h, w = kernels.shape
    f = round(ff**0.5)
    if f * f != ff or f % 2 == 0:
        raise ValueError(f"expected f*f kernel taps with f odd, got {ff}")
    m = c_out * c_in * ff
    gdl = GatedConvDoubleLayer(c_in, m, c_out, f, 1).to(kernels.device, kernels.dtype)
    with torch.no_grad():
        shift = torch.eye(ff, dtype=kernels.dtype, device=kernels.device).view(ff, 1, f, f)  # tap d -> offset d
        weight_f = torch.zeros(c_out, c_in, ff, c_in, f, f, dtype=kernels.dtype, device=kernels.device)
        for c in range(c_in):
            weight_f[:, c, :, c] = shift[:, 0]
        gdl.F.weight.copy_(weight_f.view(m, c_in, f, f))
        weight_g = torch.zeros(c_out, c_out, c_in * ff, dtype=kernels.dtype, device=kernels.device)
        for o in range(c_out):
            weight_g[o, o] = 1
        gdl.G.weight.copy_(weight_g.view(c_out, m, 1, 1))
    gdl.requires_grad_(False)
    return gdl, kernels.reshape(n, m, h, w)
