"""Model registry (timm style): architectures by name, named configs as plain data.

    @register_arch("hyperunet")
    class HyperUNet(nn.Module): ...

    model = create_model("isp_small")                      # a named config
    model = create_model("isp_small", n_hid=512)           # with overrides
    clone = create_model(model.config)                     # same architecture

Every model built here carries ``model.config`` (a JSON-serialisable dict with
"arch") and ``model.task`` ("isp", "denoise" or "burst").
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Union

import torch.nn as nn

_ARCHS: dict[str, Callable[..., nn.Module]] = {}

_PAPER_UNET = {"arch": "hyperunet", "output": "sigmoid", "head": "upsample", "plain": False}
# The isp models' filter view: patches of the training crop (128 px = 64 packed px).
_VIEW = {"view_size": 64, "view_grid": 8}

MODEL_CONFIGS: dict[str, dict[str, Any]] = {
    # Paper A layouts (upsample head, sigmoid output): their param counts match SPEC §3.
    "hyperunet_64_32_2048": {**_PAPER_UNET, "n_fwd": 64, "n_embed": 32, "n_hid": 2048},
    "hyperunet_32_16_2048": {**_PAPER_UNET, "n_fwd": 32, "n_embed": 16, "n_hid": 2048},
    "hyperunet_16_16_1024": {**_PAPER_UNET, "n_fwd": 16, "n_embed": 16, "n_hid": 1024},
    "hyperunet_8_8_256": {**_PAPER_UNET, "n_fwd": 8, "n_embed": 8, "n_hid": 256},
    # Paper A's "no HC (96)" baseline: same layout, plain convs, 96 forward maps.
    "plainunet_96": {**_PAPER_UNET, "n_fwd": 96, "n_embed": 8, "n_hid": 256, "plain": True},
    # Our default ISP: residual over bilinear demosaic, sub-pixel head, filters predicted from
    # a view of up to 8 x 8 training-size patches (128 px) pooled as training crops are, so
    # photos of any size see training's statistic (see hyperunet.py and nn/view.py).
    "isp_small": {
        "arch": "hyperunet", "n_fwd": 16, "n_embed": 8, "n_hid": 256,
        "output": "residual", "head": "pixel_shuffle", "plain": False, "pool_cell": 128, **_VIEW,
    },
    # isp_small with two full-resolution refinement blocks (grown from a trained isp_small).
    "isp_refine2": {
        "arch": "hyperunet", "n_fwd": 16, "n_embed": 8, "n_hid": 256,
        "output": "residual", "head": "pixel_shuffle", "plain": False, "pool_cell": 128, **_VIEW, "n_refine": 2,
    },
    # isp_refine2 with two more blocks (grown from a trained isp_refine2).
    "isp_refine4": {
        "arch": "hyperunet", "n_fwd": 16, "n_embed": 8, "n_hid": 256,
        "output": "residual", "head": "pixel_shuffle", "plain": False, "pool_cell": 128, **_VIEW, "n_refine": 4,
    },
    # isp_refine4 with two more blocks (grown from a trained isp_refine4).
    "isp_refine6": {
        "arch": "hyperunet", "n_fwd": 16, "n_embed": 8, "n_hid": 256,
        "output": "residual", "head": "pixel_shuffle", "plain": False, "pool_cell": 128, **_VIEW, "n_refine": 6,
    },
    # isp_refine6 with two more blocks whose filter MLPs are half as wide (so the fp16
    # weights stay under 25 MB), grown from a trained isp_refine6.
    "isp_refine8": {
        "arch": "hyperunet", "n_fwd": 16, "n_embed": 8, "n_hid": 256,
        "output": "residual", "head": "pixel_shuffle", "plain": False, "pool_cell": 128, **_VIEW, "n_refine": 8,
        "refine_hid": [128] * 6 + [64] * 2,
    },
    # isp_refine8 with a ninth block (MLP width 64), grown from a trained isp_refine8 (session 11,
    # runs/isp14). Not shipped: its fp16 file is 25.4 MB (24.2 MiB), over the 25 MB limit.
    "isp_refine9": {
        "arch": "hyperunet", "n_fwd": 16, "n_embed": 8, "n_hid": 256,
        "output": "residual", "head": "pixel_shuffle", "plain": False, "pool_cell": 128, **_VIEW, "n_refine": 9,
        "refine_hid": [128] * 6 + [64] * 3,
    },
    # isp_refine8 with a ninth block whose filter MLP is 32 wide (fp16 weights about 24.8 MB),
    # grown from a trained isp_refine8 (session 12, runs/isp15). Shipped as `isp` since session 12.
    "isp_refine9_32": {
        "arch": "hyperunet", "n_fwd": 16, "n_embed": 8, "n_hid": 256,
        "output": "residual", "head": "pixel_shuffle", "plain": False, "pool_cell": 128, **_VIEW, "n_refine": 9,
        "refine_hid": [128] * 6 + [64] * 2 + [32],
    },
    # Plain-conv twin of isp_small for ablations.
    "plainunet_small": {
        "arch": "hyperunet", "n_fwd": 16, "n_embed": 8, "n_hid": 256,
        "output": "residual", "head": "pixel_shuffle", "plain": True,
    },
    # SPEC §5 denoisers.
    "vdn": {"arch": "vdn", "base_channels": 64, "depth": 4, "snet_channels": 64, "snet_layers": 5, "slope": 0.2},
    "hypervdn_c3": {"arch": "hypervdn", "ratio": 1 / 3, "n_hid": 64},
    "hypervdn_c2": {"arch": "hypervdn", "ratio": 1 / 2, "n_hid": 64},
    # Small HyperVDN for CPU use: the c/3 drop-in of a VDN with base 24 (maps 8/16/32/64),
    # embeddings 8/16/32 (the embedding convs would otherwise cost as much as the forward path).
    "denoise_small": {
        "arch": "hypervdn", "ratio": 1 / 3, "n_hid": 64, "base_channels": 24, "depth": 4,
        "snet_channels": 24, "embed_channels": [8, 16, 32],
    },
    # denoise_small with two full-resolution refinement blocks (grown from a trained denoise_small).
    "denoise_refine2": {
        "arch": "hypervdn", "ratio": 1 / 3, "n_hid": 64, "base_channels": 24, "depth": 4,
        "snet_channels": 24, "embed_channels": [8, 16, 32], "n_refine": 2,
    },
    # denoise_small with 16 full-resolution channels instead of 8, widened from a trained
    # denoise_small without changing its output (hyperisp.train.widen).
    "denoise_wide_top": {
        "arch": "hypervdn", "ratio": 1 / 3, "n_hid": 64, "base_channels": 24, "depth": 4,
        "snet_channels": 24, "embed_channels": [8, 16, 32], "widths": [16, 16, 32, 64],
    },
    # denoise_wide_top widened again at full and half resolution (hyperisp.train.widen; session 16).
    "denoise_wide2": {
        "arch": "hypervdn", "ratio": 1 / 3, "n_hid": 64, "base_channels": 24, "depth": 4,
        "snet_channels": 24, "embed_channels": [8, 16, 32], "widths": [24, 32, 32, 64],
    },
    # denoise_wide2 plus four plain refinement blocks (64 -> 128 -> 64) at D-Net's 1/8 scale, starting
    # as the identity: grown from a trained denoise_wide2 (session 27's runs/dn54, not shipped).
    "denoise_wide2_bottom4": {
        "arch": "hypervdn", "ratio": 1 / 3, "n_hid": 64, "base_channels": 24, "depth": 4,
        "snet_channels": 24, "embed_channels": [8, 16, 32], "widths": [24, 32, 32, 64], "n_bottom": 4,
    },
    # denoise_wide2 with filter MLPs twice as wide (paper A's lever: parameters at no per-pixel cost),
    # grown from a trained denoise_wide2 without changing its output (hyperisp.train.widen; session 29).
    "denoise_wide2_hid128": {
        "arch": "hypervdn", "ratio": 1 / 3, "n_hid": 128, "base_channels": 24, "depth": 4,
        "snet_channels": 24, "embed_channels": [8, 16, 32], "widths": [24, 32, 32, 64],
    },
    # SPEC §6 burst denoisers (8-frame grey bursts; narrow U-Net for CPU, see kpn.py).
    "kpn": {"arch": "kpn", "frames": 8, "kernel_size": 5},
    "gated_kpn_128": {"arch": "gated_kpn", "frames": 8, "hidden": 128, "kernel_size": 5},
    "gated_kpn_64": {"arch": "gated_kpn", "frames": 8, "hidden": 64, "kernel_size": 5},
    "hyper_gated_kpn_64": {"arch": "hyper_gated_kpn", "frames": 8, "hidden": 64, "kernel_size": 5, "n_hid": 64},
}


def register_arch(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Class decorator: make an architecture buildable as ``{"arch": name, ...}``."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _ARCHS and _ARCHS[name] is not builder:
            raise ValueError(f"architecture {name!r} is already registered")
        _ARCHS[name] = builder
        return builder

    return decorator


def _ensure_registered() -> None:
    # The architectures register themselves on import; importing the package does it.
    import hyperisp.models  # noqa: F401


def list_configs() -> list[str]:
    """Names of the built-in model configs, sorted."""
    return sorted(MODEL_CONFIGS)


def list_archs() -> list[str]:
    """Names of the registered architectures, sorted."""
    _ensure_registered()
    return sorted(_ARCHS)


def get_config(name: str) -> dict[str, Any]:
    """A copy of the named config (a dict with "arch" and the constructor arguments)."""
    if name not in MODEL_CONFIGS:
        raise ValueError(f"unknown model config {name!r}; expected one of {list_configs()}")
    return dict(MODEL_CONFIGS[name])


def create_model(name_or_config: Union[str, Mapping[str, Any]], **overrides: Any) -> nn.Module:
    """Build a model from a config name or a config dict (e.g. another model's ``.config``).

    Args:
        name_or_config: a key of :data:`MODEL_CONFIGS`, or a mapping with "arch" and
            the architecture's constructor arguments.
        **overrides: constructor arguments replacing those of the config.
    Returns:
        The model (on the current default device, in training mode), with ``.config``
        and ``.task`` set.
    """
    _ensure_registered()
    if isinstance(name_or_config, str):
        config = get_config(name_or_config)
    elif isinstance(name_or_config, Mapping):
        config = dict(name_or_config)
    else:
        raise TypeError(f"expected a config name or a dict, got {type(name_or_config).__name__}")
    config.update(overrides)
    arch = config.pop("arch", None)
    if arch not in _ARCHS:
        raise ValueError(f"unknown or missing architecture {arch!r}; expected one of {sorted(_ARCHS)}")
    return _ARCHS[arch](**config)


def reconfigured(model: nn.Module, **overrides: Any) -> nn.Module:
    """``model``'s architecture with config ``overrides`` (e.g. pooling settings), holding its weights, in eval mode.

    The overrides must leave every parameter's shape as it was (state_dict is loaded strictly).
    """
    twin = create_model(model.config, **overrides).eval()
    twin.load_state_dict(model.state_dict())
    return twin
