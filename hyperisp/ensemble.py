"""Geometric self-ensemble: a network's outputs averaged over transposed and flipped views of its input.

A network trained on flipped and transposed crops is close to equivariant to those symmetries,
not exactly; the mean over views cancels part of its error (the "self-ensemble" of Lim et al.
2017, EDSR+), for one network run per view.

An RGB image has all 8 views of the square's symmetries. A packed RGGB mosaic has 2: the
transpose keeps R and B on the diagonal and swaps the greens (Gr <-> Gb), while every flip
moves R onto a G or B site, so the network would see another CFA phase. Each view is a whole
network run (tiled or not), so tiled inference stays exact.

Unless asked (``--ensemble``), the pipeline runs :data:`DEFAULT_VIEWS`: one view for every task.
Measured gains and costs are in the README ("Self-ensemble").
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

# (transpose, flip width, flip height), in the order views are added.
VIEWS = ((False, False, False), (True, False, False), (False, True, False), (False, False, True),
         (False, True, True), (True, True, False), (True, False, True), (True, True, True))
_TRANSPOSE = VIEWS[1]
BAYER_VIEWS = 2  # identity and transpose: the symmetries that keep an RGGB mosaic RGGB
_SWAP_GREENS = [0, 2, 1, 3]  # packed (R, Gr, Gb, B) of the transposed mosaic
# Views a task's network averages unless told otherwise (README, "Self-ensemble"). Develop's second
# view gives +0.25 / +0.14 / +0.11 dB on CBSD68 for twice the network time, which put it at
# 0.36-0.51 s/MP at 12 MP on the machines measured, against a 0.5 s/MP budget: one view keeps the
# default inside it on any of them, and `--ensemble 2` buys the quality. The denoiser's second view
# gives +0.10-0.12 dB (session 16) for 1.9x the end-to-end time (0.99 s/MP at 12 MP on the fastest
# machine measured, against a 1 s/MP budget) and 1.6x the end-to-end peak memory: one view too.
DEFAULT_VIEWS = {"isp": 1, "denoise": 1, "burst": 1}


def max_views(bayer: bool) -> int:
    """How many views an input allows: 2 for a packed RGGB mosaic, 8 for an image."""
    return BAYER_VIEWS if bayer else len(VIEWS)


def check_views(views: int, bayer: bool = False) -> int:
    """``views`` if the input allows that many, else ValueError saying what it allows."""
    if not 1 <= views <= max_views(bayer):
        kind = "a packed Bayer mosaic (identity, transpose)" if bayer else "an image"
        raise ValueError(f"self-ensemble views: expected 1 to {max_views(bayer)} for {kind}, got {views}")
    return views


def to_view(x: torch.Tensor, view: tuple[bool, bool, bool], bayer: bool = False) -> torch.Tensor:
    """(N, C, H, W) -> the view (a strided view, or a copy when greens are swapped)."""
    transpose, flip_w, flip_h = view
    if transpose:
        x = x.transpose(-1, -2)
        if bayer:
            x = x[:, _SWAP_GREENS]
    if flip_w:
        x = x.flip(-1)
    if flip_h:
        x = x.flip(-2)
    return x


def from_view(y: torch.Tensor, view: tuple[bool, bool, bool]) -> torch.Tensor:
    """Undo :func:`to_view` on an output (N, C', sH, sW) at any integer scale s."""
    transpose, flip_w, flip_h = view
    if flip_h:
        y = y.flip(-2)
    if flip_w:
        y = y.flip(-1)
    return y.transpose(-1, -2) if transpose else y


def self_ensemble(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, views: int = 1,
                  bayer: bool = False,
                  run_into: Optional[Callable[[torch.Tensor, torch.Tensor], object]] = None) -> torch.Tensor:
    """Mean of ``run`` over the first ``views`` views of ``x``.

    Args:
        run: the network, (N, C, H, W) -> (N, C', sH, sW); its outputs are summed in place.
        x: (N, C, H, W) input; with ``bayer``, a packed RGGB mosaic (N, 4, H, W).
        views: 1 (``run(x)`` alone) up to :func:`max_views`.
        run_into: optional ``run_into(view_input, acc)`` that adds the network's output into
            ``acc``. Used for the transposed view, whose output maps back as a transposed
            VIEW of the running sum (no copy): a tiled network then adds tile by tile instead
            of holding a second whole output (:func:`hyperisp.tiling.run_tiled`'s ``into``).
    Returns:
        (N, C', sH, sW), the mean of the views' outputs mapped back.
    """
    check_views(views, bayer)
    y = run(x)
    for view in VIEWS[1:views]:
        if run_into is not None and view == _TRANSPOSE:
            run_into(to_view(x, view, bayer), y.transpose(-1, -2))
        else:
            y.add_(from_view(run(to_view(x, view, bayer)), view))  # one view's output alive at a time
    return y.div_(views) if views > 1 else y


class SelfEnsemble(torch.nn.Module):
    """:func:`self_ensemble` around a module: ``SelfEnsemble(net, 2, bayer=True)(packed)``."""

    def __init__(self, net: torch.nn.Module, views: int, bayer: bool = False) -> None:
        super().__init__()
        self.net, self.views, self.bayer = net, check_views(views, bayer), bayer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self_ensemble(self.net, x, self.views, self.bayer)
