"""Training: data samplers (synthetic and real), losses, and the trainer loop."""
from .datasets import DenoiseSampler, ImageCache, IspSampler, list_images, make_sampler
from .losses import estimate_sigma_map, l1_loss, mse_msssim_loss, vdn_loss
from .real_data import SiddSampler, ZrrSampler, pynet_pack, sidd_pairs, zrr_pairs
from .trainer import TrainConfig, train

__all__ = [
    "DenoiseSampler", "ImageCache", "IspSampler", "SiddSampler", "TrainConfig", "ZrrSampler",
    "estimate_sigma_map", "l1_loss", "list_images", "make_sampler", "mse_msssim_loss", "pynet_pack",
    "sidd_pairs", "train", "vdn_loss", "zrr_pairs",
]
