"""Camera raw: reading (LibRaw), CFA phase and geometry, colour pipeline, DNG writing, a synthetic sample."""
from .bayer import PACKED_CHANNELS, demosaic_bilinear, mosaic_rgb, pack_bayer, unpack_bayer
from .colour import (
    apply_tone_curve,
    auto_white_balance,
    camera_to_srgb_matrix,
    choose_white_balance,
    finish,
    linear_to_srgb,
    srgb_to_linear,
)
from .camera_colour import CameraColour
from .dng import write_dng
from .phase import BAYER_PHASES, SensorFrame, apply_orientation, from_canonical, phase_from_rawpy, to_canonical
from .reader import RawImage, raw_from_array, read_raw
from .sample import sample_scene_srgb, write_sample_dng
from .white_balance import WhiteBalance, estimate_white_balance

__all__ = [
    "BAYER_PHASES",
    "CameraColour",
    "PACKED_CHANNELS",
    "RawImage",
    "SensorFrame",
    "apply_orientation",
    "apply_tone_curve",
    "auto_white_balance",
    "camera_to_srgb_matrix",
    "choose_white_balance",
    "demosaic_bilinear",
    "finish",
    "from_canonical",
    "linear_to_srgb",
    "mosaic_rgb",
    "pack_bayer",
    "phase_from_rawpy",
    "raw_from_array",
    "read_raw",
    "sample_scene_srgb",
    "srgb_to_linear",
    "to_canonical",
    "unpack_bayer",
    "write_dng",
    "write_sample_dng",
    "WhiteBalance",
    "estimate_white_balance",
]
