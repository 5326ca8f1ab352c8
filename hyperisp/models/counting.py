"""Parameter and FLOP counting (SPEC §1: report forward path AND filter prediction).

FLOPs are counted by running the model on ``torch.device("meta")`` under a dispatch
mode that sees every aten op: nothing is computed or allocated, so counting a
276 M-parameter model at 12.6 MP is instant. Counted: convolutions (plain, grouped,
transposed, and hyper convs applied with predicted weights) and matrix products
(linear layers). Ignored: elementwise ops (activations, adds, bias adds, padding,
pooling, interpolation, the filter normalisation). 1 multiply-accumulate = 2 FLOPs.

Ops inside modules marked :class:`hyperisp.nn.FilterPrediction` (embedding nets,
filter MLPs, bias/gain heads) are booked as filter prediction, the rest as forward.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Mapping, NamedTuple, Sequence, Union

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

from hyperisp.errors import HyperispError
from hyperisp.nn import FilterPrediction

aten = torch.ops.aten


class FlopCount(NamedTuple):
    """FLOPs of one forward call (1 MAC = 2 FLOPs).

    forward: the forward path (convs applied to the image maps).
    filter_prediction: embedding nets + MLPs + bias/gain heads.
    total: forward + filter_prediction.
    mlp: the matrix-product part of filter_prediction (MLPs and heads); it does not
        depend on the image size, unlike the embedding convs.
    """

    forward: int
    filter_prediction: int
    total: int
    mlp: int


def count_params(model: nn.Module) -> int:
    """Number of parameters (shared ones once); works on meta-device models."""
    return sum(p.numel() for p in model.parameters())


def _conv_flops(args: Sequence[Any], out: torch.Tensor) -> int:
    x, weight, transposed = args[0], args[1], args[6]
    per_element = math.prod(weight.shape[1:])  # (Cin/g)*k*k MACs per output element
    # A transposed conv scatters each INPUT element over (Cout/g)*k*k outputs.
    return 2 * (x.numel() if transposed else out.numel()) * per_element


def _mm_flops(a: torch.Tensor, b: torch.Tensor) -> int:
    return 2 * a.numel() * b.shape[-1]  # (.., M, K) @ (.., K, N)


class _Counter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.depth = 0  # > 0 while inside a FilterPrediction module
        self.conv = [0, 0]  # [forward, filter prediction]
        self.mm = [0, 0]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        slot = 1 if self.depth > 0 else 0
        if func is aten.convolution.default:
            self.conv[slot] += _conv_flops(args, out)
        elif func in (aten.mm.default, aten.bmm.default):
            self.mm[slot] += _mm_flops(args[0], args[1])
        elif func in (aten.addmm.default, aten.baddbmm.default):
            self.mm[slot] += _mm_flops(args[1], args[2])
        return out


def _meta_state(model: nn.Module) -> dict[str, torch.Tensor]:
    named = itertools.chain(
        model.named_parameters(remove_duplicate=False), model.named_buffers(remove_duplicate=False)
    )
    return {name: torch.empty_like(t, device="meta") for name, t in named}


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> FlopCount:
    """FLOPs of ``model(torch.empty(input_shape))``, counted on the meta device.

    The model itself is not modified or copied: its parameters are swapped for meta
    tensors only for the counting call (``torch.func.functional_call``).

    Args:
        model: any module whose forward takes one tensor, e.g. a HyperUNet with
            input_shape (1, 4, h, w) or a VDN with (1, 3, H, W).
        input_shape: shape of that tensor.
    Returns:
        FlopCount(forward, filter_prediction, total, mlp).
    """
    if not input_shape or any(int(s) < 1 for s in input_shape):
        raise ValueError(f"expected a non-empty shape of positive sizes, got {tuple(input_shape)}")
    counter = _Counter()

    def enter(*_: Any) -> None:
        counter.depth += 1

    def leave(*_: Any) -> None:
        counter.depth -= 1

    handles = []
    for module in model.modules():
        if isinstance(module, FilterPrediction):
            handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    try:
        x = torch.empty(tuple(int(s) for s in input_shape), device="meta")
        with torch.no_grad(), counter:
            torch.func.functional_call(model, _meta_state(model), (x,))
    finally:
        for h in handles:
            h.remove()
    forward = counter.conv[0] + counter.mm[0]
    prediction = counter.conv[1] + counter.mm[1]
    return FlopCount(forward, prediction, forward + prediction, counter.mm[1])


def flops_per_param(model: nn.Module, input_shape: Sequence[int]) -> float:
    """Total FLOPs / parameters (SPEC Eq. 1/2: 2*H*W for a plain conv, far less for HyperConvs)."""
    return count_flops(model, input_shape).total / count_params(model)


def input_shape_for(task: str, megapixels: float) -> tuple[int, int, int, int]:
    """Input shape whose OUTPUT has about ``megapixels`` MP at 3:2 aspect (12.6 MP ~ 4350x2900).

    "isp": packed Bayer (1, 4, H/2, W/2); "denoise": (1, 3, H, W); "burst": (1, 8, H, W).
    """
    if megapixels <= 0:
        raise ValueError(f"expected megapixels > 0, got {megapixels}")
    h = max(2, 2 * round(math.sqrt(megapixels * 1e6 / 1.5) / 2))
    w = max(2, 2 * round(1.5 * h / 2))
    if task == "isp":
        return (1, 4, h // 2, w // 2)
    if task == "denoise":
        return (1, 3, h, w)
    if task == "burst":  # an 8-frame grey burst
        return (1, 8, h, w)
    raise ValueError(f"expected task 'isp', 'denoise' or 'burst', got {task!r}")


def model_cost(model: Union[str, Mapping[str, Any]], megapixels: float = 12.6) -> dict[str, Any]:
    """Params and FLOPs of a config name, config dict or shipped model name (for ``hyperisp info``).

    The model is built on the meta device: no memory, no weights read.
    Returns a JSON-serialisable dict: name, arch, task, input_shape, megapixels, params,
    flops_forward, flops_filter_prediction, flops_mlp, flops_total, flops_per_param.

    Raises:
        HyperispError: unknown name or invalid config.
    """
    from hyperisp.models.registry import MODEL_CONFIGS, create_model  # noqa: PLC0415 (import cycle)

    config: Any = model
    if isinstance(model, str) and model not in MODEL_CONFIGS:
        from hyperisp.pretrained import get_card  # noqa: PLC0415 (heavy, optional)

        try:
            config = get_card(model).config
        except HyperispError:
            raise HyperispError(
                model, f"neither an architecture config ({', '.join(sorted(MODEL_CONFIGS))}) nor a shipped model"
            ) from None
    try:
        with torch.device("meta"):
            net = create_model(config)
        shape = input_shape_for(net.task, megapixels)
    except (TypeError, ValueError) as err:
        raise HyperispError(model if isinstance(model, str) else None, str(err)) from None
    flops, params = count_flops(net, shape), count_params(net)
    return {
        "name": model if isinstance(model, str) else None,
        "arch": net.config["arch"],
        "task": net.task,
        "input_shape": list(shape),
        "megapixels": megapixels,
        "params": params,
        "flops_forward": flops.forward,
        "flops_filter_prediction": flops.filter_prediction,
        "flops_mlp": flops.mlp,
        "flops_total": flops.total,
        "flops_per_param": flops.total / params,
    }
