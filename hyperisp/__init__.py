"""hyperisp: camera RAW to sRGB and photo denoising with HyperConvolution networks."""
from .burst import burst_denoise, burst_denoise_file
from .errors import HyperispError
from .models import create_model, list_configs
from .pipeline import denoise, denoise_file, develop, develop_file, develop_raw
from .pretrained import list_pretrained, load_pretrained
from .raw import RawImage, read_raw

__version__ = "0.1.0"

__all__ = [
    "HyperispError",
    "RawImage",
    "burst_denoise",
    "burst_denoise_file",
    "create_model",
    "denoise",
    "denoise_file",
    "develop",
    "develop_file",
    "develop_raw",
    "list_configs",
    "list_pretrained",
    "load_pretrained",
    "read_raw",
]
