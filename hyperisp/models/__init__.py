"""Models: HyperUNet (RAW -> RGB), VDN / HyperVDN (sRGB denoising), registry, counting."""
from hyperisp.models.registry import (
    MODEL_CONFIGS, create_model, get_config, list_archs, list_configs, reconfigured,
    register_arch,
)
from hyperisp.models.hyperunet import HyperUNet, pooling_groups
from hyperisp.models.vdn import VDN, HyperVDN
from hyperisp.models.kpn import KPN, GatedKPN, HyperGatedKPN
from hyperisp.models.counting import FlopCount, count_flops, count_params, flops_per_param, model_cost

__all__ = [
    "MODEL_CONFIGS",
    "FlopCount",
    "GatedKPN",
    "HyperUNet",
    "HyperGatedKPN",
    "HyperVDN",
    "KPN",
    "VDN",
    "count_flops",
    "count_params",
    "create_model",
    "flops_per_param",
    "get_config",
    "list_archs",
    "list_configs",
    "model_cost",
    "pooling_groups",
    "reconfigured",
    "register_arch",
]
