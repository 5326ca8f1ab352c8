"""Widen a trained HyperVDN's D-Net without changing what it computes (net2net for HyperConvs).

A plain conv grows with zero weights on its new inputs, but a HyperConv cannot: every
predicted 3x3 filter slice is L1-normalised (:func:`~hyperisp.nn.normalize_filters`), so a
zero slice has an infinite gradient and a nonzero one always contributes. Instead, each new
channel comes in a PAIR of copies of an existing channel k: their producers get channel k's
filter rows (so both copies equal channel k), and their consumers get channel k's filter rows
once with a plus and once with a minus sign. Normalisation is odd (n(-r) = -n(r)), so the two
contributions cancel exactly and the widened network starts with the trained one's output.
The gradients of the two copies are opposite, which breaks the symmetry as training starts.

Plain parts (the filter embeddings' first convs, the transposed up-convs) read new channels
with zero weights; the S-Net (only used by the VDN loss) is copied unchanged.

The filter MLPs' hidden layers (``n_hid``) widen the plain way, because their output is
not normalised until after the last layer: new hidden units get fresh random inputs and
zero weights into the units and outputs that were there (:func:`widen_filter_mlp`).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from ..models import create_model
from ..models.vdn import DNet, HyperVDN
from ..nn import FilterMLP, HyperConvEmbed


class ChannelMap(NamedTuple):
    """How a widened tensor's channels relate to the trained one's, one entry per new channel:
    ``source`` channel it equals, ``sign`` its consumers apply, and whether it is a ``new`` copy."""

    source: list[int]
    sign: list[float]
    new: list[bool]

    def __add__(self, other: "ChannelMap") -> "ChannelMap":  # channel concatenation
        return ChannelMap(self.source + other.source, self.sign + other.sign, self.new + other.new)

    def shifted(self, offset: int) -> "ChannelMap":
        return ChannelMap([k + offset for k in self.source], self.sign, self.new)


def widen_channel_map(old: int, new: int) -> ChannelMap:
    """Channels 0..old-1 kept, then (new - old) / 2 pairs of copies (+1, -1) of channels 0, 1, ..."""
    extra = new - old
    if extra < 0 or extra % 2 or extra // 2 > old:
        raise ValueError(f"can widen {old} channels to {old}..{3 * old} in steps of 2, not to {new}")
    pairs = extra // 2
    return ChannelMap(list(range(old)) + [k for k in range(pairs) for _ in (0, 1)],
                      [1.0] * old + [1.0, -1.0] * pairs, [False] * old + [True] * extra)


def _copy_inputs(source: torch.Tensor, channels: ChannelMap, dim: int) -> torch.Tensor:
    """A plain conv weight with its input axis ``dim`` widened: kept channels copied, new ones zero."""
    out = source.index_select(dim, torch.tensor(channels.source))
    mask = torch.tensor([0.0 if n else 1.0 for n in channels.new])
    return out * mask.view([-1 if d == dim else 1 for d in range(out.ndim)])


def copy_same_shapes(source: nn.Module, target: nn.Module) -> None:
    """Load into ``target`` every tensor of ``source`` whose shape it has under the same name."""
    expected = target.state_dict()
    target.load_state_dict({k: v for k, v in source.state_dict().items() if expected[k].shape == v.shape},
                           strict=False)


@torch.no_grad()
def widen_hyperconv_embed(source: HyperConvEmbed, target: HyperConvEmbed, inputs: ChannelMap,
                          outputs: ChannelMap) -> None:
    """Fill ``target`` (Cin', Cout') from ``source`` (Cin, Cout): input channel j reads source input
    ``inputs.source[j]`` times ``inputs.sign[j]``; output channel o copies ``outputs.source[o]``."""
    hs, ht = source.hyper, target.hyper
    if (ht.in_channels, ht.out_channels) != (len(inputs.source), len(outputs.source)):
        raise ValueError(f"expected maps of {ht.in_channels} inputs and {ht.out_channels} outputs, "
                         f"got {len(inputs.source)} and {len(outputs.source)}")
    copy_same_shapes(source, target)  # the filter MLP's hidden layers and the deeper embedding convs
    cin, cout, f = hs.in_channels, hs.out_channels, hs.kernel_size
    rows_in, rows_out = torch.tensor(inputs.source), torch.tensor(outputs.source)
    signs = torch.tensor(inputs.sign)

    def remap(t: torch.Tensor) -> torch.Tensor:  # (Cout, Cin, ...) -> (Cout', Cin', ...), signed by input
        return t[rows_out][:, rows_in] * signs.view(1, -1, *[1] * (t.ndim - 2))

    last_s, last_t = hs.mlp[-1], ht.mlp[-1]
    last_t.weight.copy_(remap(last_s.weight.reshape(cout, cin, f * f, -1)).reshape(last_t.weight.shape))
    last_t.bias.copy_(remap(last_s.bias.reshape(cout, cin, f * f)).reshape(last_t.bias.shape))
    ht.const.copy_(remap(hs.const[0])[None])
    for head_s, head_t in ((hs.bias_head, ht.bias_head), (hs.gain_head, ht.gain_head)):
        if head_s is not None:
            head_t.weight.copy_(head_s.weight[rows_out])
            head_t.bias.copy_(head_s.bias[rows_out])
    # The embedding reads the input too: zero weights on the copies keep its pooled vector.
    target.embed[0].weight.copy_(_copy_inputs(source.embed[0].weight, inputs, dim=1))


@torch.no_grad()
def widen_dnet(source: DNet, target: DNet, old_widths: list[int], new_widths: list[int]) -> None:
    """Fill ``target``, a D-Net with ``new_widths[l]`` channels at level l, from ``source`` with ``old_widths[l]``."""
    if len(source.refine) or len(target.refine):
        raise ValueError("widening a D-Net with refinement blocks is not supported")
    maps = [widen_channel_map(o, n) for o, n in zip(old_widths, new_widths)]
    prev = widen_channel_map(3, 3)
    for level, (convs_s, convs_t) in enumerate(zip(source.down, target.down)):
        widen_hyperconv_embed(convs_s[0], convs_t[0], prev, maps[level])
        widen_hyperconv_embed(convs_s[1], convs_t[1], maps[level], maps[level])
        prev = maps[level]
    for j, (up_s, up_t) in enumerate(zip(source.up, target.up)):
        level = len(new_widths) - 2 - j
        here = maps[level]
        # ConvTranspose2d weight (Cin, Cout, 2, 2): new inputs read with zero, outputs copied.
        up_t.weight.copy_(_copy_inputs(up_s.weight, prev, dim=0)[:, torch.tensor(here.source)])
        up_t.bias.copy_(up_s.bias[torch.tensor(here.source)])
        concat = here + here.shifted(old_widths[level])  # the block reads [upsampled, skip]
        widen_hyperconv_embed(source.up_blocks[j][0], target.up_blocks[j][0], concat, here)
        widen_hyperconv_embed(source.up_blocks[j][1], target.up_blocks[j][1], here, here)
        prev = here
    out = target.last.hyper.out_channels
    widen_hyperconv_embed(source.last, target.last, prev, widen_channel_map(out, out))


@torch.no_grad()
def widen_filter_mlp(source: FilterMLP, target: FilterMLP) -> None:
    """Fill ``target`` (hidden width h') from ``source`` (h <= h'), same in and out features.

    The first h hidden units and the outputs keep their weights; the new units keep
    ``target``'s random inputs, and every weight from a new unit to an old unit or to the
    output is zero, so the output is unchanged. Its gradient is not zero (the new units are
    active), so training starts using them at once.
    """
    (first_s, mid_s, last_s), (first_t, mid_t, last_t) = (
        [m for m in mlp if isinstance(m, nn.Linear)] for mlp in (source, target))
    h, h_new = first_s.out_features, first_t.out_features
    if h_new < h or (first_s.in_features, last_s.out_features) != (first_t.in_features, last_t.out_features):
        raise ValueError(f"can widen an MLP's hidden layers from {h} units to {h} or more with the same inputs "
                         f"and outputs, not ({first_s.in_features}, {h}, {last_s.out_features}) to "
                         f"({first_t.in_features}, {h_new}, {last_t.out_features})")
    first_t.weight[:h] = first_s.weight
    first_t.bias[:h] = first_s.bias
    mid_t.weight[:h, :h] = mid_s.weight
    mid_t.weight[:h, h:] = 0
    mid_t.bias[:h] = mid_s.bias
    last_t.weight[:, :h] = last_s.weight
    last_t.weight[:, h:] = 0
    last_t.bias.copy_(last_s.bias)


def widen_hidden(target: nn.Module, source: nn.Module) -> nn.Module:
    """``target`` filled from ``source``, a model of the same architecture but narrower filter MLPs
    (a smaller ``n_hid``): every tensor of the same shape is copied, every FilterMLP widened. Returns ``target``."""
    mlps = dict(source.named_modules())
    copy_same_shapes(source, target)
    for name, module in target.named_modules():
        if isinstance(module, FilterMLP):
            widen_filter_mlp(mlps[name], module)
    return target


def can_widen(target: nn.Module, source: nn.Module) -> bool:
    """True when both are HyperVDNs whose configs differ at most in the D-Net ``widths`` and ``n_hid``."""

    def rest(model: nn.Module) -> dict:
        return {k: v for k, v in model.config.items() if k not in ("widths", "n_hid")}

    return (isinstance(target, HyperVDN) and isinstance(source, HyperVDN) and rest(target) == rest(source)
            and target.config["n_hid"] >= source.config["n_hid"])


def widen_hypervdn(target: HyperVDN, source: HyperVDN) -> HyperVDN:
    """``target`` (a HyperVDN whose config differs from ``source``'s only in D-Net ``widths`` and a
    larger ``n_hid``) filled from ``source`` so that it computes the same output. Returns ``target``."""
    if not can_widen(target, source):
        raise ValueError("widening changes only the D-Net widths and n_hid of a HyperVDN; the models differ elsewhere")
    if target.config["n_hid"] != source.config["n_hid"]:
        source = widen_hidden(create_model({**source.config, "n_hid": target.config["n_hid"]}), source)
    old = source.config.get("widths") or _default_widths(source.config)
    new = target.config.get("widths") or _default_widths(target.config)
    target.snet.load_state_dict(source.snet.state_dict())
    target.out_scale.data.copy_(source.out_scale.data)
    widen_dnet(source.dnet, target.dnet, list(old), list(new))
    return target


def _default_widths(config: dict) -> list[int]:
    return [int(config["base_channels"] * 2**i * config["ratio"]) for i in range(config["depth"])]
