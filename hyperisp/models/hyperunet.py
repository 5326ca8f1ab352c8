"""HyperUNet ISP (paper A, Fig. 7/8; SPEC §3): packed Bayer RAW -> linear camera RGB.

Layout (n_fwd forward maps, e = n_embed, h = n_fwd/2; [Ek] = pooled embedding used):

    E1 on x (packed input), E2 on y0, E4 on maxpool(y2), E8 on maxpool(y4)
    y0  = clamp(HC0(x)[E1]); y0 = clamp(HC1(y0)[E1] + y0)              scale 1
    y2  = gelu(HC1_2(maxpool(y0))[E2])                                  1/2 (n_fwd -> h)
    y4  = gelu(HC1_4(maxpool(y2))[E4]);  y8 = gelu(HC1_8(maxpool(y4))[E8])
    y16 = gelu(HC1_16(maxpool(y8))[E8])
    y8  = gelu(HC2_8(y8 + up(y16)/4)[E8] + y8);  y4 = gelu(HC2_4(y4 + up(y8)/4)[E4] + y4)
    y2  = gelu(HC2_2(y2 + up(y4)/4)[E2] + mean_c(y2))                  (h -> n_fwd)
    y   = gelu(HC2(y0 + up(y2)/4)[E1] + y0) + mean_c(x)
    y   = y + s_k * HCb_k(gelu(HCa_k(y)[E1]))[E1]   k = 1..n_refine (ours; n_fwd -> 2 n_fwd -> n_fwd)
    head "upsample":      HC4(up(y))[E1]              (n_fwd -> 3 at full resolution; paper)
    head "pixel_shuffle": pixel_shuffle(HC4(y)[E1])   (n_fwd -> 12 at half resolution; the
                          residual base is added to these 12 planes before the shuffle)

The residuals are added OUTSIDE the HC calls (the published listing misplaces the
brackets). "E4 on y4" in the paper can only mean the 1/4-scale input of HC1_4 (y4
does not exist before HC1_4 runs), likewise for E8.

Parameter counts (head="upsample", output="sigmoid"): every HC has the per-image bias
head and no gain head, the embedding convs have biases; this reproduces SPEC exactly
to 0.1 M: (64,32,2048) 276,049,571; (32,16,2048) 90,485,331; (16,16,1024) 16,300,035;
(8,8,256) 1,272,387. (A gain head on every HC would give 276.2 M / 1.28 M instead.)
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from hyperisp.models.registry import register_arch
from hyperisp.nn import (
    CLAMP01, GELU, EmbeddingNet, HyperConv, RefineBlock, StaticConv, cell_max_pool, global_pool, group_mean,
    pad_to_multiple, pixel_shuffle, view_boxes,
)
from hyperisp.raw.bayer import demosaic_bilinear, demosaic_bilinear_planes

# Stride of the deepest forward maps (1/16 of the packed input); 32 keeps them >= 2 px,
# which reflection padding needs.
_MULTIPLE, _MIN_SIZE = 16, 32
EMBED_STRIDE = 32  # every embedding map ends at 1/32 of the packed grid


def _prepare(packed: torch.Tensor) -> torch.Tensor:
    """Pad (N, 4, h, w) to a multiple of 16 (at least 32) and make it channels_last.

    channels_last: oneDNN's NHWC convolutions make CPU inference ~2x faster; training
    speed is the same either way.
    """
    return pad_to_multiple(packed, _MULTIPLE, _MIN_SIZE).contiguous(memory_format=torch.channels_last)


def up(x: torch.Tensor) -> torch.Tensor:
    """2x bilinear upsampling, (N, C, H, W) -> (N, C, 2H, 2W).

    align_corners=False: each output pixel depends on a fixed 2x2 neighbourhood, so
    tiles upsample exactly as the whole image; with align_corners=True the sample
    positions depend on H and W, i.e. on the whole image size.
    """
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _embedding(stages: list[tuple[int, int, int, int]]) -> EmbeddingNet:
    """stages: (cin, cout, conv stride, max-pool after or 0); GELU after each pool.

    ceil_mode pooling keeps at least one pixel on small inputs.
    """
    layers: list[nn.Module] = []
    for cin, cout, stride, pool in stages:
        layers.append(nn.Conv2d(cin, cout, 3, stride=stride, padding=1))
        if pool:
            layers += [nn.MaxPool2d(pool, ceil_mode=True), nn.GELU()]
    return EmbeddingNet(*layers)


@register_arch("hyperunet")
class HyperUNet(nn.Module):
    """HyperUNet: (N, 4, h, w) packed RGGB RAW in [0, 1] -> (N, 3, 2h, 2w) linear camera RGB.

    Args:
        n_fwd: forward-map channels at full (packed) scale; n_fwd/2 below.
        n_embed: embedding base width e.
        n_hid: MLP width at scale 1 and for the head; n_hid/2 elsewhere.
        output: "sigmoid" (paper) or "residual": bilinear demosaic + residual_scale * head,
            residual_scale initialised to 0 (an untrained model IS the bilinear demosaic,
            and training converges much faster).
        head: "upsample" (paper: HC4 at full resolution) or "pixel_shuffle" (HC4 to 12
            channels at half resolution, then pixel_shuffle(2)): no wide full-resolution
            maps (4x fewer pixels for the widest layer) and no upsampling, so it is
            cheaper and stays local for tiling. Default for our models.
        plain: the plain-conv twin (StaticConv everywhere, no embedding nets).
        pool_cell: None (paper: global max of each embedding) or a size in packed pixels,
            a multiple of 32: the mean over a grid of such cells of each cell's max
            (:func:`~hyperisp.nn.cell_max_pool`). Training crops no larger than a cell see
            the global max either way; on big photos the global max drifts (it can only
            grow with the area) while the cell statistics stay those of training.
            experiments/train_test_scale.py measures both.
        view_size: 0 (none) or a size in packed pixels, a multiple of 16: the filter view
            (:mod:`hyperisp.nn.view`). An image larger than one patch of this size takes its
            pooled embeddings from up to ``view_grid`` x ``view_grid`` such patches spread
            over it: each patch is pooled alone, as a training crop is, and each stage's
            pooled embeddings are averaged over the patches (:func:`pooling_groups`); the
            whole image is then run with them. Set to the training crop (64 packed =
            128 px), it keeps training's statistic at any photo size: +0.56 / +0.68 / +0.33
            dB on CBSD68 (clean / moderate / high, one view) over pooling each image whole
            with ``pool_cell``. An image that fits in one patch is its own view.
        view_grid: the most patches along each side of the view.
        n_refine: residual :class:`RefineBlock` s (n_fwd -> 2 n_fwd -> n_fwd, filter MLPs of
            width n_hid/2) at the packed scale before the head: depth where demosaicking
            needs it, at full resolution. They start as the identity, so a trained model
            grows into them (``hyperisp train --init``). 0: the paper's layout.
        refine_hid: the filter-MLP width of each refinement block (n_refine values); None:
            n_hid/2 for all. Narrower MLPs for later blocks keep a grown model's weights
            file under the 25 MB limit: the MLPs hold most of the parameters.
    """

    task = "isp"

    def __init__(
        self,
        n_fwd: int,
        n_embed: int,
        n_hid: int,
        output: str = "sigmoid",
        head: str = "pixel_shuffle",
        plain: bool = False,
        pool_cell: Optional[int] = None,
        n_refine: int = 0,
        refine_hid: Optional[list[int]] = None,
        view_size: int = 0,
        view_grid: int = 8,
    ) -> None:
        super().__init__()
        if output not in ("sigmoid", "residual"):
            raise ValueError(f"expected output 'sigmoid' or 'residual', got {output!r}")
        if head not in ("upsample", "pixel_shuffle"):
            raise ValueError(f"expected head 'upsample' or 'pixel_shuffle', got {head!r}")
        if n_fwd < 2 or n_fwd % 2 or n_embed < 2 or n_embed % 2 or n_hid < 2 or n_hid % 2:
            raise ValueError(f"expected even n_fwd, n_embed, n_hid >= 2, got {n_fwd}, {n_embed}, {n_hid}")
        if pool_cell is not None and (pool_cell < EMBED_STRIDE or pool_cell % EMBED_STRIDE):
            raise ValueError(f"expected pool_cell None or a positive multiple of {EMBED_STRIDE}, got {pool_cell}")
        if view_size < 0 or view_size % _MULTIPLE or view_grid < 1:
            raise ValueError(f"expected view_size a multiple of {_MULTIPLE} (0: no view) and view_grid >= 1, "
                             f"got {view_size} and {view_grid}")
        self.config = {
            "arch": "hyperunet", "n_fwd": n_fwd, "n_embed": n_embed, "n_hid": n_hid,
            "output": output, "head": head, "plain": plain,
        }
        if n_refine < 0:
            raise ValueError(f"expected n_refine >= 0, got {n_refine}")
        if refine_hid is not None and (len(refine_hid) != n_refine or any(w < 1 for w in refine_hid)):
            raise ValueError(f"expected refine_hid None or {n_refine} positive widths, got {refine_hid}")
        # Optional keys only when set: configs (and cards) of older models stay as they were.
        if pool_cell is not None:
            self.config["pool_cell"] = pool_cell
        if n_refine:
            self.config["n_refine"] = n_refine
        if refine_hid is not None:
            self.config["refine_hid"] = list(refine_hid)
        if view_size:
            self.config.update(view_size=int(view_size), view_grid=int(view_grid))
        self.pool_cell = pool_cell
        self.pool_group = 1  # set by pooling_groups(); not part of the config
        self.output, self.head, self.plain = output, head, plain
        nf, h, e = n_fwd, n_fwd // 2, n_embed
        c1, c2, c4, c8 = 16 * e, 8 * e, 4 * e, 2 * e  # pooled embedding sizes of E1, E2, E4, E8

        if plain:
            self.embed1 = self.embed2 = self.embed4 = self.embed8 = None
        else:
            self.embed1 = _embedding([(4, e, 1, 2), (e, 2 * e, 1, 2), (2 * e, 4 * e, 1, 2), (4 * e, 8 * e, 1, 4), (8 * e, c1, 1, 0)])
            self.embed2 = _embedding([(nf, e, 2, 2), (e, 2 * e, 1, 2), (2 * e, 4 * e, 1, 4), (4 * e, c2, 1, 0)])
            self.embed4 = _embedding([(h, e // 2, 1, 2), (e // 2, 2 * e, 1, 4), (2 * e, c4, 1, 0)])
            self.embed8 = _embedding([(h, e // 2, 1, 4), (e // 2, c8, 1, 0)])

        def hc(cin: int, cout: int, ce: int, width: int) -> nn.Module:
            return StaticConv(cin, cout) if plain else HyperConv(cin, cout, ce, width)

        nh, nh2 = n_hid, n_hid // 2
        self.hc0, self.hc1 = hc(4, nf, c1, nh), hc(nf, nf, c1, nh)
        self.hc1_2, self.hc1_4 = hc(nf, h, c2, nh2), hc(h, h, c4, nh2)
        self.hc1_8, self.hc1_16 = hc(h, h, c8, nh2), hc(h, h, c8, nh2)
        self.hc2_8, self.hc2_4 = hc(h, h, c8, nh2), hc(h, h, c4, nh2)
        self.hc2_2, self.hc2 = hc(h, nf, c2, nh2), hc(nf, nf, c1, nh)
        self.refine = nn.ModuleList(
            RefineBlock(hc(nf, 2 * nf, c1, w), hc(2 * nf, nf, c1, w), GELU)
            for w in (refine_hid if refine_hid is not None else [nh2] * n_refine))
        self.hc4 = hc(nf, 3 if head == "upsample" else 12, c1, nh)
        self.residual_scale = nn.Parameter(torch.zeros(())) if output == "residual" else None

    # -- stages ---------------------------------------------------------------------
    def _pool(self, key: str, maps: torch.Tensor, pooled: dict) -> Optional[torch.Tensor]:
        """Pooled embedding ``key`` of ``maps`` (cached in ``pooled``; given ones are reused)."""
        if self.plain:
            return None
        if key not in pooled:
            pooled[key] = self.pool_embedding(getattr(self, "embed" + key[1:])(maps))
        return pooled[key]

    def pool_embedding(self, e: torch.Tensor) -> torch.Tensor:
        """(N, Ce, H/32, W/32) embedding maps of a whole image -> (N, Ce) pooled vector."""
        pooled = global_pool(e, "max") if self.pool_cell is None else cell_max_pool(e, self.pool_cell // EMBED_STRIDE)
        if self.pool_group == 1:
            return pooled
        mean = group_mean(pooled, self.pool_group)
        # A batch that is one group (a filter view's patches of one image) keeps one row: the
        # HyperConvs then share its filters over the batch, one plain conv instead of a grouped one.
        return mean if mean.shape[0] == 1 else mean.repeat_interleave(self.pool_group, dim=0)

    def view_boxes(self, height: int, width: int) -> Optional[list[tuple[int, int, int, int]]]:
        """The filter view of an (unpadded) ``height`` x ``width`` packed image: (top, left, h, w) boxes.

        Boxes index the input padded as the network pads it; None when the model has no view,
        no embeddings (plain), or the image fits in one patch (its own view).
        """
        if self.plain:
            return None
        return view_boxes(height, width, self.config.get("view_size", 0), self.config.get("view_grid", 1),
                          _MULTIPLE, _MIN_SIZE)

    def view_pooled(self, x: torch.Tensor, height: int, width: int) -> dict[str, torch.Tensor]:
        """Pooled embeddings from the filter view of ``x`` (N, 4, H, W), the padded input of an h x w image.

        {"e1", "e2", "e4", "e8"} -> (N, C), each the mean over the view's patches of the
        patch's own pooled embedding (:func:`pooling_groups`); empty when the image is its
        own view. Computed once per image: tiled inference gives every tile the same.
        """
        boxes = self.view_boxes(height, width)
        if boxes is None:
            return {}
        patches = torch.stack([x[..., t : t + h, l : l + w] for t, l, h, w in boxes], dim=1)
        patches = patches.flatten(0, 1).contiguous(memory_format=torch.channels_last)  # image-major
        pooled: dict[str, torch.Tensor] = {}
        with pooling_groups(self, len(boxes)):
            self._encode(patches, pooled)
        return {key: value[:: len(boxes)] for key, value in pooled.items()}

    def _encode(self, x: torch.Tensor, pooled: dict) -> tuple[torch.Tensor, ...]:
        """Down path on padded (N, 4, H, W); fills ``pooled`` with "e1", "e2", "e4", "e8"."""
        y0 = self._stem(x, pooled)
        return (y0, *self._down(y0, pooled))

    def _stem(self, x: torch.Tensor, pooled: dict) -> torch.Tensor:
        """Full-scale stage: padded (N, 4, H, W) -> y0 (N, n_fwd, H, W); fills ``pooled["e1"]``."""
        p1 = self._pool("e1", x, pooled)
        y0 = self.hc0(x, p1, activation=CLAMP01)
        return self.hc1(y0, p1, activation=CLAMP01, residual=y0)

    def _down(self, y0: torch.Tensor, pooled: dict) -> tuple[torch.Tensor, ...]:
        """Scales 1/2 .. 1/16: y0 -> (y2, y4, y8, y16); fills "e2", "e4", "e8" (tiled inference calls the stages apart)."""
        y2 = self._y2(F.max_pool2d(y0, 2), self._pool("e2", y0, pooled))
        y4 = self._y4(y2, pooled)
        return (y2, y4, *self._deep(y4, pooled))

    def _y2(self, x2: torch.Tensor, p2: Optional[torch.Tensor]) -> torch.Tensor:
        """maxpool(y0) (N, n_fwd, H/2, W/2) -> y2 (N, n_fwd/2, H/2, W/2)."""
        return self.hc1_2(x2, p2, activation=GELU)

    def _y4(self, y2: torch.Tensor, pooled: dict) -> torch.Tensor:
        """y2 -> y4 (N, n_fwd/2, H/4, W/4); fills "e4"."""
        x4 = F.max_pool2d(y2, 2)
        return self.hc1_4(x4, self._pool("e4", x4, pooled), activation=GELU)

    def _deep(self, y4: torch.Tensor, pooled: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """y4 -> (y8, y16) at 1/8 and 1/16; fills "e8"."""
        x8 = F.max_pool2d(y4, 2)
        p8 = self._pool("e8", x8, pooled)
        y8 = self.hc1_8(x8, p8, activation=GELU)
        return y8, self.hc1_16(F.max_pool2d(y8, 2), p8, activation=GELU)

    @property
    def head_scale(self) -> int:
        """Size of the head's maps relative to the packed grid: 1 (sub-pixel planes) or 2 (full resolution)."""
        return 1 if self.head == "pixel_shuffle" else 2

    def _decode(self, x: torch.Tensor, ys: tuple[torch.Tensor, ...], pooled: dict) -> torch.Tensor:
        """Up path and head: padded input and down-path maps -> the head's maps.

        (N, 12, H, W) sub-pixel planes (head "pixel_shuffle"; shuffled in :meth:`finish_output`)
        or (N, 3, 2H, 2W) (head "upsample").
        """
        y0, y2, y4, y8, y16 = ys
        p1, p2, p4, p8 = (pooled.get(k) for k in ("e1", "e2", "e4", "e8"))
        # torch.add(a, b, alpha=0.25) is a + b / 4 bit for bit (a power of two), in one pass.
        y8 = self.hc2_8(torch.add(y8, up(y16), alpha=0.25), p8, activation=GELU, residual=y8)
        y4 = self.hc2_4(torch.add(y4, up(y8), alpha=0.25), p4, activation=GELU, residual=y4)
        y2 = self.hc2_2(torch.add(y2, up(y4), alpha=0.25), p2, activation=GELU, residual=y2.mean(1, keepdim=True))
        y = self.hc2(torch.add(y0, up(y2), alpha=0.25), p1, activation=GELU, residual=y0) + x.mean(1, keepdim=True)
        for block in self.refine:
            y = block(y, p1)
        return self.hc4(up(y) if self.head == "upsample" else y, p1)

    @staticmethod
    def _check(packed: torch.Tensor) -> None:
        if packed.ndim != 4 or packed.shape[1] != 4:
            raise ValueError(f"expected packed Bayer of shape (N, 4, h, w), got {tuple(packed.shape)}")

    def pooled_embeddings(self, packed: torch.Tensor) -> dict[str, torch.Tensor]:
        """Pooled embeddings {"e1": (N, 16e), "e2": (N, 8e), "e4": (N, 4e), "e8": (N, 2e)}.

        Runs the down path (E2/E4/E8 read forward maps, so it cannot be skipped), on the
        filter view's patches when the image is larger than one (``view_size``).
        ``forward(packed, pooled=...)`` accepts such a dict, e.g. reduced over tiles.
        Empty for ``plain`` models.
        """
        self._check(packed)
        if self.plain:
            return {}
        x = _prepare(packed)
        pooled = self.view_pooled(x, *packed.shape[-2:])
        if not pooled:
            self._encode(x, pooled)
        return pooled

    def forward(self, packed: torch.Tensor, pooled: Optional[dict[str, torch.Tensor]] = None) -> torch.Tensor:
        """(N, 4, h, w) packed RAW -> (N, 3, 2h, 2w) RGB.

        Any h, w: the input is reflect-padded to a multiple of 16 (at least 32) and the
        output cropped back. ``pooled`` (optional) overrides the pooled embeddings, which
        otherwise come from the filter view (``view_size``) or the image itself.
        """
        self._check(packed)
        h, w = packed.shape[-2:]
        x = _prepare(packed)
        pooled = dict(pooled) if pooled else self.view_pooled(x, h, w)
        s = self.head_scale
        return self.finish_output(packed, self._decode(x, self._encode(x, pooled), pooled)[..., : s * h, : s * w])

    def finish_output(self, packed: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
        """(N, 3, 2h, 2w) output from the head's maps over the UNPADDED packed input (N, 4, h, w).

        sigmoid(head), or bilinear demosaic of ``packed`` + residual_scale * head: demosaicking
        the unpadded input makes an untrained residual model equal demosaic_bilinear exactly.
        With the sub-pixel head ((N, 12, h, w) maps) both are summed before the one shuffle;
        the bilinear base is computed in the head's memory format (an add across formats is
        several times slower). Tiled inference calls it per tile.
        """
        if self.head == "upsample":
            return torch.sigmoid(head) if self.output == "sigmoid" else torch.addcmul(
                demosaic_bilinear(packed), self.residual_scale, head)
        if self.output == "sigmoid":
            return pixel_shuffle(torch.sigmoid(head), 2)
        channels_last = head.stride(1) == 1  # channels innermost, also for a cropped (strided) head
        base = demosaic_bilinear_planes(packed.contiguous(
            memory_format=torch.channels_last if channels_last else torch.contiguous_format))
        return pixel_shuffle(torch.addcmul(base, self.residual_scale, head), 2)


@contextlib.contextmanager
def pooling_groups(model: nn.Module, group: int) -> Iterator[None]:
    """Inside: ``model`` (a HyperUNet) pools each embedding as the mean over runs of ``group`` samples.

    A batch of N = k*group crops (k photos) then gets k filter sets, each from the mean of
    its photo's crops' pooled embeddings, as the cells of one photo share one filter set
    (:func:`~hyperisp.nn.group_mean`). 1: every crop its own filters, as in training, and
    nothing to do for any model. experiments/photo_pooling.py compares the two.
    """
    if group < 1:
        raise ValueError(f"expected a group of at least 1 sample, got {group}")
    if group == 1:
        yield
        return
    if not isinstance(model, HyperUNet):
        raise ValueError(f"expected a HyperUNet for grouped pooling, got {type(model).__name__}")
    outer, model.pool_group = model.pool_group, group
    try:
        yield
    finally:
        model.pool_group = outer
