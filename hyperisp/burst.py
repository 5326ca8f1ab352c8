"""Burst denoising: several noisy photos of the same scene -> one clean photo.

    >>> import hyperisp.burst
    >>> clean = hyperisp.burst.burst_denoise(["f1.png", "f2.png", "f3.png"])   # (H, W, 3) or (H, W)
    >>> hyperisp.burst.burst_denoise_file(["f1.png", "f2.png"], "out.png")

The shipped ``burst`` model is a Gated-KPN (paper B, :mod:`hyperisp.models.kpn`) for
grey 8-frame bursts. The first frame is the reference: the result is aligned with it.
Frames are linearised (sRGB curve), denoised, and gamma-encoded again. Colour bursts
go through the grey model one channel at a time; grey bursts (all channels equal, or
(H, W) arrays) once, and come back grey. Bursts shorter than the model's frame count
are cycled (f1 f2 f3 f1 f2 f3 f1 f2) to fill it (so when T does not divide 8 some frames
count once more than others); large images are processed in tiles.
"""
from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import NamedTuple, Sequence, Union

import numpy as np
import torch

from .blend import blend_denoised, check_strength, keeps_input
from .data.unprocess import linear_to_srgb, srgb_to_linear
from .errors import HyperispError
from .io.atomic import check_output_path
from .io.metadata import without_location
from .io.images import (array_to_unit_float, fitting_icc_profile, format_keeping_depth, is_grey, output_format,
                        read_image, write_image)
from .pipeline import get_model, resolve_device
from .finishing import check_finishing, finish_output

PathType = Union[str, PathLike]
Frame = Union[PathType, np.ndarray]
MIN_FRAMES = 2
TILE = 512  # output pixels per tile side
TILE_MARGIN = 64  # context pixels around each tile: more than the U-Net's reach (~50 px), multiple of 8


def _frame_name(frame: Frame, index: int) -> str:
    return str(frame) if not isinstance(frame, np.ndarray) else f"frame {index + 1}"


class Burst(NamedTuple):
    """A burst read by :func:`read_burst`."""

    stack: np.ndarray  # (T, H, W) for a grey burst or (T, H, W, 3) for colour, float32 sRGB in [0, 1]
    metadata: list[dict]  # each file's EXIF dict ({} for arrays)
    icc_profile: bytes | None  # the first frame's embedded profile (None for an array or none embedded)
    bit_depth: int  # the first frame's precision: 8 or 16 (16 for a uint16 or float array)


def read_burst(frames: Sequence[Frame], max_frames: int = 8) -> Burst:
    """Read and check a burst: 2..max_frames frames of one size.

    Returns:
        a :class:`Burst`: the stack, each frame's EXIF and the first frame's ICC profile.
    Raises:
        HyperispError: too few/many frames, an unreadable frame, or a frame whose size
            differs from the first one (naming the first offending frame).
    """
    frames = list(frames)
    if len(frames) < MIN_FRAMES:
        what = "no frames given" if not frames else "only one frame given"
        raise HyperispError(None, f"{what}: a burst needs {MIN_FRAMES} to {max_frames} frames of the same scene")
    if len(frames) > max_frames:
        raise HyperispError(None, f"{len(frames)} frames given: the burst model takes at most {max_frames}")
    pixels, metadata, profiles, depths = [], [], [], []
    for i, frame in enumerate(frames):
        if isinstance(frame, np.ndarray):
            pixels.append(array_to_unit_float(frame, _frame_name(frame, i), grey=True))
            metadata.append({})
            profiles.append(None)
            depths.append(8 if frame.dtype == np.uint8 else 16)
        else:
            photo = read_image(frame)
            pixels.append(photo.pixels)
            metadata.append(photo.metadata)
            profiles.append(photo.icc_profile)
            depths.append(photo.bit_depth)
        if pixels[-1].shape[:2] != pixels[0].shape[:2]:
            h, w = pixels[-1].shape[:2]
            h0, w0 = pixels[0].shape[:2]
            raise HyperispError(_frame_name(frame, i), f"frame is {w}x{h} but the first frame is {w0}x{h0}: "
                                "all frames of a burst must have the same size")
    if not all(is_grey(p) for p in pixels):
        stack = np.stack([p if p.ndim == 3 else np.repeat(p[..., None], 3, 2) for p in pixels])
    else:
        stack = np.stack([p if p.ndim == 2 else p[..., 0] for p in pixels])
    return Burst(stack, metadata, profiles[0], depths[0])


@torch.inference_mode()
def _denoise_grey(net: torch.nn.Module, burst: torch.Tensor, tile: int, margin: int) -> torch.Tensor:
    """(T, H, W) linear burst -> (H, W), tile by tile with ``margin`` px of context."""
    t, h, w = burst.shape
    order = [i % t for i in range(net.frames)]  # cycle short bursts; frame 0 stays the reference
    burst = burst[order][None]
    if h <= tile + 2 * margin and w <= tile + 2 * margin:
        return net(burst)[0, 0]
    out = torch.empty(h, w, dtype=burst.dtype, device=burst.device)
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            y0, x0 = max(y - margin, 0), max(x - margin, 0)
            y1, x1 = min(y + tile + margin, h), min(x + tile + margin, w)
            result = net(burst[..., y0:y1, x0:x1])[0, 0]
            out[y: y + tile, x: x + tile] = result[y - y0: y - y0 + tile, x - x0: x - x0 + tile]
    return out


def burst_denoise(
    frames: Sequence[Frame],
    *,
    model: str | torch.nn.Module = "burst",
    device: str | torch.device = "auto",
    tile: int = TILE,
    strength: float = 1.0,
    chroma_strength: float | None = None,
    max_size: int | None = None,
    sharpen: float = 0.0,
) -> np.ndarray:
    """Denoise a burst of 2-8 frames of the same scene into one image aligned with the first frame.

    Args:
        frames: file paths (PNG, JPEG, TIFF, WebP) or arrays (H, W) / (H, W, 3) of uint8,
            uint16 or float in [0, 1]; all of one size; the first is the reference.
        model: shipped model name, model card path, or a ``burst`` module.
        device: "cpu", "cuda" or "auto".
        tile: tile side in pixels for large images (memory bound).
        strength, chroma_strength: how much of the noise (and of the colour noise; None: the same)
            to remove, 0 to 1, blended with the first frame (:func:`hyperisp.blend.blend_denoised`).
        max_size: longest side of the result in pixels (scaled down, never up); None: full size.
        sharpen: output sharpening after any resize, 0 (none) to 2.
    Returns:
        float32 sRGB in [0, 1]: (H, W) for a grey burst, (H, W, 3) for colour.
    """
    check_strength(strength, chroma_strength)  # before the frames are read
    check_finishing(max_size, sharpen)
    dev = resolve_device(device, model)
    net = get_model(model, "burst", dev)
    return _denoise_stack(net, read_burst(frames, max_frames=net.frames).stack, dev, tile, strength, chroma_strength,
                          max_size, sharpen)


def _denoise_stack(net: torch.nn.Module, stack: np.ndarray, dev: torch.device, tile: int = TILE,
                   strength: float = 1.0, chroma_strength: float | None = None,
                   max_size: int | None = None, sharpen: float = 0.0) -> np.ndarray:
    """(T, H, W) or (T, H, W, 3) sRGB -> (H, W) or (H, W, 3) sRGB, through the linear grey model,
    blended with the first frame by ``strength`` and ``chroma_strength``, then finished
    (:func:`hyperisp.finishing.finish_output`)."""
    reference = stack[0].copy()
    if keeps_input(strength, chroma_strength):
        return finish_output(reference, max_size, sharpen)
    linear = srgb_to_linear(torch.from_numpy(stack).to(dev))
    if linear.ndim == 3:
        result = _denoise_grey(net, linear, tile, TILE_MARGIN)
    else:  # colour: each channel through the grey model
        result = torch.stack([_denoise_grey(net, linear[..., c], tile, TILE_MARGIN) for c in range(3)], dim=-1)
    clean = linear_to_srgb(result).clamp(0.0, 1.0).float().cpu().numpy()
    return finish_output(blend_denoised(reference, clean, strength, chroma_strength), max_size, sharpen)


def burst_denoise_file(
    frames: Sequence[PathType],
    output_path: PathType,
    *,
    fmt: str | None = None,
    quality: int = 95,
    overwrite: bool = False,
    model: str | torch.nn.Module = "burst",
    device: str | torch.device = "auto",
    strength: float = 1.0,
    chroma_strength: float | None = None,
    max_size: int | None = None,
    sharpen: float = 0.0,
    strip_location: bool = False,
) -> Path:
    """Denoise a burst of image files and write the result atomically, with the first frame's EXIF
    (less the GPS position if ``strip_location``) and ICC profile.

    The profile is kept when it fits the result (RGB for a colour burst, grey for a grey one), as
    ``denoise`` keeps its input's: the pixels stay in the frames' colour space. ``strength``,
    ``chroma_strength``, ``max_size`` and ``sharpen`` as for :func:`burst_denoise`.
    """
    check_strength(strength, chroma_strength)
    check_finishing(max_size, sharpen)
    output_format(output_path, fmt)  # a bad extension or an existing output fails before the slow part
    check_output_path(Path(output_path), overwrite=overwrite)
    dev = resolve_device(device, model)
    net = get_model(model, "burst", dev)
    burst = read_burst(frames, max_frames=net.frames)
    clean = _denoise_stack(net, burst.stack, dev, strength=strength, chroma_strength=chroma_strength,
                           max_size=max_size, sharpen=sharpen)
    fmt = format_keeping_depth(output_path, fmt, burst.bit_depth)
    metadata = without_location(burst.metadata[0]) if strip_location else burst.metadata[0]
    return write_image(output_path, clean, fmt=fmt, quality=quality, metadata=metadata, overwrite=overwrite,
                       icc_profile=fitting_icc_profile(burst.icc_profile, clean))
