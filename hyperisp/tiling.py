"""Exact tiled inference: full-resolution photos in bounded memory, same pixels as whole-image runs.

Why it is not just "run the network on tiles": a HyperConv's filters come from a
GLOBAL max-pool of an embedding of the whole image (SPEC §4), so independent tiles
would each predict their own filters and show seams. Here the filters are computed
once per image and reused for every tile:

    HyperUNet, stage by stage (all coordinates in padded packed pixels):
      pass 1  tiles of x:  E1(x)                         -> whole 1/32 map -> pool -> p1
      pass 2  tiles of x:  y0 = stem(x; p1);  E2(y0)     -> whole 1/32 map -> pool -> p2
                           and x2 = maxpool(y0) is kept whole (n_fwd x H/2 x W/2, = size of x),
                           and y0 itself (keep_y0=True, default), so the final pass need not recompute it
      pass 3  tiles of x2: y2 = y2(x2; p2), kept whole;  E4(maxpool(y2)) -> pool -> p4
      pass 4  tiles of y2: y4 = y4(y2; p4), kept whole;  E8(maxpool(y4)) -> pool -> p8
      final   tiles of x:  y8, y16 from y4, then the model's decoder and head, cropped.
    y2 and y4 (n_fwd/2 channels at 1/2 and 1/4 scale) cost 1/8 and 1/32 of y0's memory.

Every tile is run on its core plus a halo (clipped at the image border) and only the core
of the result is kept. Tiles are full-width strips while the image is at most twice the
tile size wide (a strip of a channels_last map needs no copy), squares beyond.
Exactness rests on three facts:
  * the halo exceeds the receptive-field radius of every pass (96 against <= 94 worked
    out in ``_UNET_RADIUS``, more with refinement blocks: ``unet_halo``), so corrupted
    margins (reflect/zero padding, bilinear edge clamping at a tile's inner sides) never
    reach the core;
  * tile origins and halos are multiples of 32, the largest pooling stride, so every
    max-pool sees the same windows as in the whole image;
  * a tile that reaches a true image border keeps it, so every layer pads there
    exactly as whole-image inference does. The model's pad-to-16 is applied once to
    the whole (small, 4-channel) input, not per tile.
The embedding maps end at 1/32 scale (tiny), so their tile cores are assembled into the
whole map and pooled exactly as the model pools it (global max, or cell maxima with
``pool_cell``); average pools (VDN) agree to float rounding. A HyperUNet with a filter
view (``view_size``, the shipped isp) takes its pooled embeddings from the view instead,
once per image (``model.view_pooled``, a fixed number of small patches); the passes then
only compute the maps, and pass 1 is skipped.

Plain VDN is purely local: tiles with a halo of 64 (D-Net's receptive-field radius is
under 64 at depth 4; ``vdn_halo`` adds its extra blocks; each 3x3 conv counts 1 whether it
pads with zeros or, as HyperConvEmbed, by reflection), origins multiples of 16 (its 2x2
average pools), and the pad-to-16 applied once to the whole image.

HyperVDN predicts each layer's filters from the global AVERAGE of an embedding of that
layer's OWN input (SPEC §5). Pooled over the whole photo, exact tiling would need one
pass over the photo per layer (15 D-Net layers, ~8x the compute). Instead, a photo
larger than the model's filter view (``view_size``, 128 px by default; see
:mod:`hyperisp.models.vdn`) has all its filters predicted from a fixed-size view:
a batch of up to 3 x 3 patches of 128 x 128 spread over the photo, each layer
averaging its embedding over the whole batch. ``model(x)`` does the same, so:
    filters  = model.view_filters(x)          once per image (a fixed 147 k pixels)
    tiles    : the denoised tile (D-Net and the subtraction) with ``fixed_filters(model, filters)``, as plain VDN.
This also fixes a train/test mismatch: the model trains on small crops, and an
average over 12 MP is a statistic it never saw; the view keeps the pooled area at
training scale whatever the photo size. An image that fits in one patch is its own
view (the exact per-sample pooling used in training) and is run whole: memory is
then bounded by the view size.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from hyperisp.models.hyperunet import EMBED_STRIDE, HyperUNet, _prepare
from hyperisp.models.vdn import VDN, HyperVDN
from hyperisp.nn import HyperConv, fixed_filters
from hyperisp.runtime import release_freed_memory

# Receptive-field radius of HyperUNet's final pass (packed pixels): stem 2, +1 pool, +2, +2, +4, +4, +8,
# +8, +16 (y16: 47), up path +16+8, +8+4, +4+2, +2+1, head +1 (upsample head +1.5) -> 94 at most,
# plus 2 per refinement block. The embedding passes reach at most 79 (E1: 1+1+2+2+4+4+8+24+32 = 78).
_UNET_RADIUS, _REFINE_RADIUS = 94, 2
UNET_ALIGN = EMBED_STRIDE  # largest pooling stride (E1..E8 end at 1/32); tile origins are multiples of it
HALO = 96  # >= _UNET_RADIUS and the embedding passes' radius, multiple of UNET_ALIGN
_VDN_ALIGN = 16  # VDN pads its input to 16; D-Net's pools (2x2, up to depth 4) stay aligned


def unet_halo(model: HyperUNet) -> int:
    """Halo of HyperUNet's final pass: its receptive-field radius rounded up to UNET_ALIGN."""
    return _round_up(_UNET_RADIUS + _REFINE_RADIUS * len(model.refine), UNET_ALIGN)


def dnet_radius(depth: int, n_refine: int = 0, n_bottom: int = 0) -> int:
    """Receptive-field radius in pixels of a D-Net (:class:`~hyperisp.models.vdn.DNet`).

    With s = 2^(depth-1), the scale of the deepest level: two 3x3 convs per level on the way
    down (2 + 4 + ... + 2s), a 2x2 pool below each but the deepest (1 + 2 + ... + s/2), two convs
    per level on the way up (2 + ... + s) and the last conv (1); 52 at depth 4. Each refinement
    block adds 2, each block at the deepest level 2s.
    """
    s = 2 ** (depth - 1)
    return (4 * s - 2) + (s - 1) + (2 * s - 2) + 1 + _REFINE_RADIUS * n_refine + 2 * s * n_bottom


def vdn_halo(model: VDN | HyperVDN) -> int:
    """Halo of a D-Net (64 at depth 4 without extra blocks): its receptive-field radius rounded up to 16."""
    dnet = model.dnet
    return _round_up(dnet_radius(model.config["depth"], len(dnet.refine), len(dnet.bottom)), _VDN_ALIGN)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple

Span = tuple[int, int, int, int]  # core start, core end, extended start, extended end (one axis)


def _spans(size: int, tile: int, halo: int, align: int) -> list[Span]:
    """Cut [0, size) into as few cores as ``tile`` allows, of equal sizes rounded up to ``align``,
    each extended by ``halo`` and clipped to the image (equal cores: no thin last tile paying a full halo)."""
    count = -(-size // tile)
    step = -(-size // (count * align)) * align
    return [(a, min(a + step, size), max(0, a - halo), min(size, a + step + halo)) for a in range(0, size, step)]


def _tiles(height: int, width: int, tile: int, halo: int, align: int) -> list[tuple[Span, Span]]:
    """Tiles of at most about ``tile`` x ``tile`` core pixels covering a ``height`` x ``width`` map.

    Full-width strips while the map is at most 2 x ``tile`` wide, squares beyond. Why strips:
    a row range of a channels_last map is one contiguous block, so a strip is cut out and
    stored back without a copy, and it has a halo on two sides instead of four (its core is
    at least ``tile`` / 2 high, so its halo share is at most a square's).
    """
    if width <= 2 * tile:
        strip = max(align, tile * tile // width // align * align)
        return [(ys, (0, width, 0, width)) for ys in _spans(height, strip, halo, align)]
    return [(ys, xs) for ys in _spans(height, tile, halo, align) for xs in _spans(width, tile, halo, align)]


def _extended(t: torch.Tensor, ys: Span, xs: Span, scale: float = 1.0) -> torch.Tensor:
    """The extended tile of a whole map ``t`` stored at ``scale`` x the tiling grid, (N, C, h, w)."""
    return t[..., int(ys[2] * scale) : math.ceil(ys[3] * scale), int(xs[2] * scale) : math.ceil(xs[3] * scale)].contiguous(
        memory_format=torch.channels_last
    )


def _core(t: torch.Tensor, ys: Span, xs: Span, scale: float) -> torch.Tensor:
    """The core of a map computed on an extended tile, ``scale`` = its size / the grid's size."""

    def cut(span: Span) -> slice:
        a, b, a0, _ = span
        return slice(int((a - a0) * scale), math.ceil((b - a0) * scale))

    return t[..., cut(ys), cut(xs)]


def _check_tile(tile: int, align: int) -> None:
    if tile < align or tile % align:
        raise ValueError(f"expected a tile size that is a positive multiple of {align}, got {tile}")


# -- HyperUNet ------------------------------------------------------------------------------------
def _pass_over_tiles(
    model: HyperUNet, tiles: list[tuple[Span, Span]], key: str, step: Callable[[Span, Span], torch.Tensor],
    size: tuple[int, int], pooled: dict[str, torch.Tensor],
) -> None:
    """Run ``step`` on every tile and set ``pooled[key]`` (unless the filter view already gave it).

    ``step`` stores the whole maps it makes and returns the extended input of embedding
    ``key``. Its tile cores are assembled into the whole (tiny, 1/32-scale) embedding map,
    which is then pooled exactly as whole-image inference pools it (global max or cell maxima).
    """
    embed = getattr(model, "embed" + key[1:])
    whole: Optional[torch.Tensor] = None
    s = 1 / EMBED_STRIDE
    for ys, xs in tiles:
        source = step(ys, xs)
        if key in pooled:
            continue
        part = _core(embed(source), ys, xs, s)
        if whole is None:
            whole = part.new_empty(*part.shape[:2], math.ceil(size[0] * s), math.ceil(size[1] * s))
        top, left = ys[0] // EMBED_STRIDE, xs[0] // EMBED_STRIDE
        whole[..., top : top + part.shape[-2], left : left + part.shape[-1]] = part
    if key not in pooled:
        assert whole is not None
        pooled[key] = model.pool_embedding(whole)


def _whole_map(like: torch.Tensor, channels: int, height: int, width: int) -> torch.Tensor:
    return like.new_empty(like.shape[0], channels, height, width).contiguous(memory_format=torch.channels_last)


def _store_core(whole: torch.Tensor, t: torch.Tensor, ys: Span, xs: Span, scale: float) -> None:
    """Write the core of ``t`` (computed on an extended tile) into ``whole``, both at ``scale`` x the grid."""
    a, b, c, d = int(ys[0] * scale), math.ceil(ys[1] * scale), int(xs[0] * scale), math.ceil(xs[1] * scale)
    whole[..., a:b, c:d] = _core(t, ys, xs, scale)


def hyperunet_pooled_tiled(
    model: HyperUNet, x: torch.Tensor, tile: int, keep_y0: bool = False, view: Optional[dict[str, torch.Tensor]] = None
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The pooled embeddings of the padded packed input ``x`` (N, 4, H, W), computed tile by tile.

    Equal to ``model.pooled_embeddings`` of the unpadded input (``x`` = ``_prepare(packed)``).
    ``view``: pooled embeddings already known (from the filter view, ``model.view_pooled``);
    the passes then only compute the maps.
    Returns ({"e1", "e2", "e4", "e8"} -> (N, C), maps): ``maps`` holds the whole down-path maps
    the passes computed on the way, "y2" (N, n_fwd/2, H/2, W/2) and "y4" (N, n_fwd/2, H/4, W/4),
    plus "y0" (N, n_fwd, H, W) if ``keep_y0``, so the final pass need not recompute them.
    Both dicts are empty for plain models.
    """
    if model.plain:
        return {}, {}
    _check_tile(tile, UNET_ALIGN)
    height, width = x.shape[-2:]
    tiles = _tiles(height, width, tile, HALO, UNET_ALIGN)
    size = (height, width)
    nf, half = model.config["n_fwd"], model.config["n_fwd"] // 2
    pooled = dict(view or {})
    if "e1" not in pooled:
        _pass_over_tiles(model, tiles, "e1", lambda ys, xs: _extended(x, ys, xs), size, pooled)
    maps = {"y0": _whole_map(x, nf, height, width)} if keep_y0 else {}
    x2 = _whole_map(x, nf, height // 2, width // 2)  # maxpool(y0): where the next passes start

    def pass2(ys: Span, xs: Span) -> torch.Tensor:
        y0 = model._stem(_extended(x, ys, xs), pooled)
        if keep_y0:
            _store_core(maps["y0"], y0, ys, xs, 1)
        _store_core(x2, F.max_pool2d(y0, 2), ys, xs, 0.5)
        return y0

    _pass_over_tiles(model, tiles, "e2", pass2, size, pooled)
    maps["y2"] = _whole_map(x, half, height // 2, width // 2)

    def pass3(ys: Span, xs: Span) -> torch.Tensor:
        y2 = model._y2(_extended(x2, ys, xs, 0.5), pooled["e2"])
        _store_core(maps["y2"], y2, ys, xs, 0.5)
        return F.max_pool2d(y2, 2)

    _pass_over_tiles(model, tiles, "e4", pass3, size, pooled)
    x2 = None  # freed: the next pass starts from y2
    maps["y4"] = _whole_map(x, half, height // 4, width // 4)

    def pass4(ys: Span, xs: Span) -> torch.Tensor:
        y4 = model._y4(_extended(maps["y2"], ys, xs, 0.5), pooled)
        _store_core(maps["y4"], y4, ys, xs, 0.25)
        return F.max_pool2d(y4, 2)

    _pass_over_tiles(model, tiles, "e8", pass4, size, pooled)
    return pooled, maps


@contextlib.contextmanager
def _trim_after(modules: nn.ModuleList) -> Iterator[None]:
    """Return freed memory to the OS (:func:`~hyperisp.runtime.release_freed_memory`) after each module runs.

    Why: within one tile the refinement blocks free and allocate maps of several sizes, and
    memory kept for reuse piles up until the tile ends. A 24 MP develop with 2 views peaked at
    3.2-4.1 GB RSS with one trim per tile, 2.6-2.9 GB with one per block, for about 1 s more
    (experiments/results/peak_rss_24mp.txt).
    """
    handles = [m.register_forward_hook(lambda *_: release_freed_memory()) for m in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _run_hyperunet(model: HyperUNet, packed: torch.Tensor, tile: int, keep_y0: bool,
                   into: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The tiled forward; with ``into`` (the output's shape, any strides), tile results are added into it."""
    h, w = packed.shape[-2:]
    x = _prepare(packed)  # the model's pad-to-16, once, on the whole input
    pooled, maps = hyperunet_pooled_tiled(model, x, tile, keep_y0, view=model.view_pooled(x, h, w))
    release_freed_memory()  # the embedding passes' tiles, before the final pass's (bigger) ones
    out = packed.new_empty(packed.shape[0], 3, 2 * h, 2 * w) if into is None else into
    with _trim_after(model.refine):
        _final_pass(model, packed, x, pooled, maps, tile, out, accumulate=into is not None)
    return out


def _final_pass(model: HyperUNet, packed: torch.Tensor, x: torch.Tensor, pooled: dict, maps: dict, tile: int,
                out: torch.Tensor, accumulate: bool) -> None:
    """Tiles of the padded input ``x``: the decoder and head, each tile's core written (or added) into ``out``."""
    h, w = packed.shape[-2:]
    for ys, xs in _tiles(*x.shape[-2:], tile, unet_halo(model), UNET_ALIGN):
        if ys[0] >= h or xs[0] >= w:  # a core entirely in the padding: nothing to output
            continue
        ys_out, xs_out = (ys[0], min(ys[1], h), ys[2], ys[3]), (xs[0], min(xs[1], w), xs[2], xs[3])
        xt = _extended(x, ys, xs)
        if model.plain:
            tile_maps = model._encode(xt, {})
        else:
            y0 = _extended(maps["y0"], ys, xs) if "y0" in maps else model._stem(xt, pooled)
            y4 = _extended(maps["y4"], ys, xs, 0.25)
            tile_maps = (y0, _extended(maps["y2"], ys, xs, 0.5), y4, *model._deep(y4, pooled))
        # The output step runs on the extended tile clipped to the UNPADDED input, as the model's forward
        # runs it on the whole unpadded image; then the core is kept.
        ye, xe = (ys[0], min(ys[1], h), ys[2], min(ys[3], h)), (xs[0], min(xs[1], w), xs[2], min(xs[3], w))
        s = model.head_scale
        head = model._decode(xt, tile_maps, pooled)[..., : s * (ye[3] - ye[2]), : s * (xe[3] - xe[2])]
        result = model.finish_output(packed[..., ye[2] : ye[3], xe[2] : xe[3]], head)
        target = out[..., 2 * ys_out[0] : 2 * ys_out[1], 2 * xs_out[0] : 2 * xs_out[1]]
        if accumulate:
            target.add_(_core(result, ye, xe, 2))
        else:
            target.copy_(_core(result, ye, xe, 2))
        # Kept freed memory (hyperisp.runtime) fragments across tiles: a 4-block model's 24 MP
        # develop peaked at 4.1-4.4 GB RSS without this trim, 3.4 GB with it.
        del head, result, tile_maps
        release_freed_memory()


# -- VDN --------------------------------------------------------------------------------------------
def _run_vdn(model: VDN | HyperVDN, x: torch.Tensor, tile: int, xp: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Plain VDN (or HyperVDN with fixed filters) is local: the denoised image, tile by tile with a halo.

    ``xp``: ``model._prepare(x)`` if the caller has it (the pad-to-16, once, on the whole image).
    """
    _check_tile(tile, _VDN_ALIGN)
    if model.config["depth"] > 4:
        return model(x)  # deeper pools than 16: tile origins at multiples of 16 would not be aligned
    h, w = x.shape[-2:]
    xp = model._prepare(x) if xp is None else xp
    out = torch.empty_like(x, memory_format=torch.channels_last)  # as the tiles come: a row block is one copy
    for ys, xs in _tiles(*xp.shape[-2:], tile, vdn_halo(model), _VDN_ALIGN):
        if ys[0] >= h or xs[0] >= w:
            continue
        ys_out, xs_out = (ys[0], min(ys[1], h), ys[2], ys[3]), (xs[0], min(xs[1], w), xs[2], xs[3])
        denoised = model._denoise_prepared(_extended(xp, ys, xs))
        out[..., ys_out[0] : ys_out[1], xs_out[0] : xs_out[1]] = _core(denoised, ys_out, xs_out, 1)
    return out


# -- dispatch -------------------------------------------------------------------------------------
@contextlib.contextmanager
def filters_once(model: nn.Module) -> Iterator[None]:
    """Inside this block every HyperConv of ``model`` predicts its filters once per pooled vector.

    The tiles of one image share the same pooled tensors, so their filters are predicted
    once per image and reused for every tile (memoised on the pooled tensor's identity;
    the tensor is kept alive in the cache so its id cannot be recycled).
    """
    patched = []
    for module in model.modules():
        if isinstance(module, HyperConv) and "predict" not in vars(module):
            cache: dict[int, tuple] = {}

            def predict(pooled: torch.Tensor, _predict=module.predict, _cache=cache):  # noqa: ANN001, ANN202
                if id(pooled) not in _cache:
                    _cache[id(pooled)] = (pooled, _predict(pooled))
                return _cache[id(pooled)][1]

            module.predict = predict
            patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.predict


def _is_one_tile(x: torch.Tensor, tile: int, align: int) -> bool:
    """Whether the model's input ``x``, once padded to a multiple of 16 as the models pad it, is a single tile."""
    height, width = (_round_up(n, 16) for n in x.shape[-2:])
    return len(_tiles(height, width, tile, 0, align)) == 1


def supports_tiling(model: nn.Module) -> bool:
    """Whether :func:`run_tiled` knows this model type."""
    return isinstance(model, (HyperUNet, VDN, HyperVDN))


def tile_align(model: nn.Module) -> int:
    """What tile sizes and origins must be multiples of: 32 for HyperUNet (its pooling grid), 16 for the VDNs."""
    return UNET_ALIGN if isinstance(model, HyperUNet) else _VDN_ALIGN


def default_tile(model: nn.Module) -> int:
    """The default tile size in network-input pixels: 2048 (4096 image pixels for the packed-Bayer HyperUNet).

    A 24 MP develop then peaks near 3 GB RSS on CPU (4 GB budget). The denoiser keeps more
    bytes per pixel (a 12 MP photo: 3.8 GB RSS untiled, 1.6 GB at 2048) and ran no faster
    with larger tiles.
    """
    return 2048


@torch.no_grad()
def run_tiled(model: nn.Module, x: torch.Tensor, tile: Optional[int] = None, keep_y0: bool = True,
              into: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Whole-image inference computed tile by tile; equals ``model(x)`` (max abs diff < 1e-4).

    Args:
        model: a HyperUNet (x: packed Bayer (N, 4, h, w) -> (N, 3, 2h, 2w)), a VDN or a
            HyperVDN (x: (N, 3, H, W) -> (N, 3, H, W)); in eval mode.
        x: the model's input.
        tile: a multiple of 32 (HyperUNet) or 16 (VDN); None = :func:`default_tile`. Tiles hold
            at most about ``tile`` x ``tile`` core input pixels: full-width strips for inputs up
            to 2 x ``tile`` wide, squares of side ``tile`` beyond. Each tile is run with a halo
            (HyperUNet 96, or :func:`unet_halo` with refinement blocks; VDN 64, or :func:`vdn_halo`).
            HyperVDN: filters from the model's filter view, predicted once per image; an
            image no larger than the view (``view_size``) is run whole.
        keep_y0: HyperUNet only: keep the full-scale maps y0 (n_fwd floats per packed pixel,
            384 MB for a 24 MP raw at n_fwd = 16) from pass 2 instead of recomputing them in
            the final pass (12 MP, 2 cores: 8.8 s instead of 11.1 s); False = working memory
            of the tile plus the whole maps at 1/2 scale and below (a quarter of y0's size).
        into: a tensor of the output's shape (any strides, e.g. a transposed view) to add the
            output into; a tiled HyperUNet then adds tile by tile and never holds a second
            whole output (a self-ensemble's views: :func:`hyperisp.ensemble.self_ensemble`).
    Returns:
        The model's output assembled from the tiles, or ``into`` with it added.
    """
    tile = default_tile(model) if tile is None else int(tile)
    align = tile_align(model)
    if isinstance(model, (HyperUNet, VDN)):
        model._check(x)
        _check_tile(tile, align)
        if isinstance(model, HyperUNet) and not _is_one_tile(x, tile, align):
            with filters_once(model):
                return _run_hyperunet(model, x, tile, keep_y0, into)
        out = model(x) if _is_one_tile(x, tile, align) else _run_vdn(model, x, tile)  # one tile: the plain forward
        return out if into is None else into.add_(out)
    if isinstance(model, HyperVDN):
        model._check(x)
        _check_tile(tile, align)
        if _is_one_tile(x, tile, align) or model.view_patches(*x.shape[-2:]) is None:
            out = model(x)  # one tile, or an image that is its own filter view (at most view_size)
        else:
            xp = model._prepare(x)
            filters = model._view_filters(xp, *x.shape[-2:], ("dnet",))  # once per image, for every tile (module doc)
            with fixed_filters(model, filters):
                out = _run_vdn(model, x, tile, xp)
        return out if into is None else into.add_(out)
    raise TypeError(f"expected a HyperUNet, VDN or HyperVDN, got {type(model).__name__}")
