"""Training data synthesis: unprocessing sRGB photos to RAW, and synthetic noise."""
from .noise import (
    add_awgn,
    add_raw_noise,
    blur_noise,
    quantize,
    random_bits,
    random_noise_levels,
    mix_noise_channels,
    scale_noise_channels,
    signal_dependent_noise,
    srgb_realistic_noise,
)
from .unprocess import (
    inverse_tone_curve,
    linear_to_srgb,
    process,
    process_mosaic,
    random_ccm,
    random_exposure,
    random_gains,
    random_metadata,
    random_phase_crop,
    srgb_to_linear,
    tone_curve,
    unprocess,
)

__all__ = [
    "add_awgn", "add_raw_noise", "blur_noise", "quantize", "random_bits", "random_noise_levels", "mix_noise_channels",
    "scale_noise_channels", "signal_dependent_noise", "srgb_realistic_noise",
    "inverse_tone_curve", "linear_to_srgb", "process", "process_mosaic", "random_ccm", "random_exposure",
    "random_gains", "random_metadata", "random_phase_crop", "srgb_to_linear", "tone_curve", "unprocess",
]
