"""Layers: HyperConvolution (prediction and application), its plain twin, padding and shuffle helpers,
a residual block that starts as the identity, the filter view (a fixed-size sample of a photo),
and oneDNN fast paths for CPU inference (conv + activation fused, 2x2 average pool)."""
from hyperisp.nn.fused import CLAMP01, GELU, Activation, activate, avg_pool2x2, conv2d_act, leaky_relu
from hyperisp.nn.hyperconv import (
    EmbeddingNet,
    FilterMLP,
    FilterPrediction,
    FilterPredictionLinear,
    HyperConv,
    HyperFilters,
    StaticConv,
    cell_max_pool,
    global_pool,
    group_mean,
    hyper_conv2d,
    normalize_filters,
    predict_filters,
)
from hyperisp.nn.hyperconv_embed import HyperConvEmbed, conv_embedding, fixed_filters, repeat_filters, shared_filters
from hyperisp.nn.padding import pad_to_multiple, padded_length, reflect_conv2d, reflect_pad
from hyperisp.nn.refine import RefineBlock
from hyperisp.nn.shuffle import pixel_shuffle
from hyperisp.nn.view import view_boxes

__all__ = [
    "CLAMP01",
    "GELU",
    "Activation",
    "activate",
    "avg_pool2x2",
    "conv2d_act",
    "leaky_relu",
    "EmbeddingNet",
    "FilterMLP",
    "FilterPrediction",
    "FilterPredictionLinear",
    "HyperConv",
    "HyperConvEmbed",
    "HyperFilters",
    "RefineBlock",
    "StaticConv",
    "conv_embedding",
    "cell_max_pool",
    "fixed_filters",
    "global_pool",
    "group_mean",
    "hyper_conv2d",
    "normalize_filters",
    "pad_to_multiple",
    "padded_length",
    "pixel_shuffle",
    "predict_filters",
    "reflect_conv2d",
    "reflect_pad",
    "repeat_filters",
    "shared_filters",
    "view_boxes",
]
