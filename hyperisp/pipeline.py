"""The Python API behind the CLI: develop RAW photos and denoise sRGB photos.

    >>> import hyperisp
    >>> rgb = hyperisp.develop("photo.dng")             # (H, W, 3) float32 sRGB in [0, 1]
    >>> hyperisp.develop_file("photo.dng", "photo.jpg")
    >>> clean = hyperisp.denoise(noisy)                  # (H, W, 3) array in [0, 1]
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch

from .blend import blend_denoised, check_strength, keeps_input
from .ensemble import DEFAULT_VIEWS, check_views, self_ensemble
from .errors import HyperispError
from .io.images import (Photo, array_to_unit_float, fitting_icc_profile, format_keeping_depth, is_grey,
                        output_format, read_image, write_image)
from .io.metadata import without_location
from .pretrained import load_pretrained
from .raw import RawImage, apply_orientation, finish, from_canonical, raw_from_array, read_raw
from .raw.bad_pixels import RGGB_COLOURS, hot_pixel_mask, interpolate_bad_pixels
from .raw.bayer import pack_bayer
from .raw.colour_spaces import get_space
from .raw.exposure import auto_exposure
from .raw.opcodes import apply_rgb_corrections
from .raw.white_balance import choose_white_balance as choose_wb
from .finishing import check_finishing, finish_output
from .runtime import release_freed_memory
from .tiling import default_tile, run_tiled, supports_tiling, tile_align

PathType = Union[str, PathLike]
WhiteBalance = Union[str, Sequence[float]]


def resolve_device(device: str | torch.device = "auto", model: str | torch.nn.Module | None = None) -> torch.device:
    """'auto' picks CUDA when present, else CPU (or, for a module passed in, where its weights are);
    'cuda' without a GPU is an error."""
    if str(device) == "auto":
        weights = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
        if weights is not None:
            return weights.device
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise HyperispError(None, "--device cuda asked for, but no CUDA GPU is available")
    try:
        return torch.device(device)
    except RuntimeError:
        raise HyperispError(None, f"unknown device '{device}' (expected cpu, cuda or auto)") from None


@functools.lru_cache(maxsize=4)
def _cached_model(model: str, device: str) -> torch.nn.Module:
    return load_pretrained(model, device)


def get_model(model: str | torch.nn.Module, task: str, device: torch.device) -> torch.nn.Module:
    """A shipped model by name or card path (cached), or a module passed in, checked for its task and device."""
    net = _cached_model(str(model), str(device)) if not isinstance(model, torch.nn.Module) else model
    if getattr(net, "task", task) != task:
        raise HyperispError(None, f"model '{model}' is a {net.task} model, not a {task} model")
    weights = next(net.parameters(), None)
    if weights is not None and weights.device.type != device.type:
        raise HyperispError(None, f"the model passed in is on {weights.device}, not on {device}: "
                                  f"move it with .to('{device.type}') or pass device='{weights.device.type}'")
    return net


def _network_tile(net: torch.nn.Module, tile: int | None) -> int | None:
    """Image-pixel tile size -> the network's input pixels (packed Bayer is half size); None = whole image.

    ``tile`` None: :func:`hyperisp.tiling.default_tile` (4096 image pixels for develop, 2048 for denoise).
    """
    if tile == 0 or not supports_tiling(net):
        return None
    if tile is None:
        return default_tile(net)
    if tile < 64:
        raise HyperispError(None, f"tile size {tile}: expected 0 (whole image) or at least 64 pixels")
    align = tile_align(net)
    size = tile // 2 if net.task == "isp" else tile
    return max(align, size // align * align)


@torch.inference_mode()
def _run(net: torch.nn.Module, x: torch.Tensor, device: torch.device, tile: int | None = None,
         ensemble: int | None = None) -> np.ndarray:
    """(1, C, H, W) float32 (any strides) -> the network's output as (H', W', C') float32 numpy in [0, 1].

    Exact tiled inference (:func:`hyperisp.tiling.run_tiled`) with ``tile`` image pixels
    (None: the default, 0: whole image in one go); same pixels either way. ``ensemble``: views
    averaged (:func:`hyperisp.ensemble.self_ensemble`).
    The clip and the CHW -> HWC transpose happen here, in torch: numpy's strided transpose of a
    12 MP image alone took 0.8 s.
    """
    network_tile, views = _network_tile(net, tile), resolve_views(net.task, ensemble)
    with inference_autocast(device):
        y = network_output(net, x.to(device), network_tile, views)
    release_freed_memory()  # the network's freed maps, kept for reuse while it ran (hyperisp.runtime)
    out = torch.empty(y.shape[2], y.shape[3], y.shape[1], dtype=torch.float32)
    out.copy_(y[0].permute(1, 2, 0)).clamp_(0.0, 1.0)
    return out.numpy()


def network_output(net: torch.nn.Module, x: torch.Tensor, network_tile: int | None, views: int = 1) -> torch.Tensor:
    """The network's output as develop / denoise compute it (and ``hyperisp bench`` times it).

    Exact tiles of ``network_tile`` input pixels (None: the whole input in one go), averaged over
    ``views`` self-ensemble views (:func:`hyperisp.ensemble.self_ensemble`). (N, C, H, W) -> the
    network's output.
    """
    def run(view: torch.Tensor) -> torch.Tensor:
        return net(view) if network_tile is None else run_tiled(net, view, network_tile)

    def run_into(view: torch.Tensor, acc: torch.Tensor) -> torch.Tensor:
        return run_tiled(net, view, network_tile, into=acc)  # tile by tile: no second whole output

    return self_ensemble(run, x, views, bayer=net.task == "isp", run_into=None if network_tile is None else run_into)


def resolve_views(task: str, ensemble: int | None) -> int:
    """``ensemble`` if a task's input has that many self-ensemble views (isp 2, denoise 8), else HyperispError.

    None: the task's default (:data:`hyperisp.ensemble.DEFAULT_VIEWS`).
    """
    if ensemble is None:
        return DEFAULT_VIEWS[task]
    try:
        return check_views(ensemble, bayer=task == "isp")
    except ValueError as error:
        raise HyperispError(None, f"--ensemble {ensemble}: {error}") from None


def inference_autocast(device: torch.device | str) -> contextlib.AbstractContextManager:
    """fp16 autocast on CUDA (tensor cores, half the memory traffic); fp32 elsewhere.

    CPUs without bf16/fp16 units run half precision hundreds of times slower, so the CPU path
    stays fp32. Outputs are cast back to fp32 by the caller.
    """
    return torch.autocast("cuda", torch.float16) if torch.device(device).type == "cuda" else contextlib.nullcontext()


@dataclass
class Developed:
    """A developed photo and how it was made."""

    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1], upright, in colour_space (sRGB by default)
    white_balance: np.ndarray  # (3,) R, G, B gains applied
    white_balance_source: str
    metadata: dict = field(default_factory=dict)
    white_balance_cct: float | None = None  # K, when the camera's colour model is known
    exposure_ev: float = 0.0  # the exposure correction applied (chosen automatically with exposure="auto")
    cam_to_srgb: np.ndarray | None = None  # (3, 3) white-balanced camera RGB -> linear sRGB used
    linear: bool = False  # rgb is scene-linear (no transfer or tone curve)
    colour_space: str = "srgb"  # a name of hyperisp.raw.colour_spaces.SPACES

    def summary(self) -> dict:
        """What was done, as plain JSON-ready values (``hyperisp develop --json``)."""
        return {
            "white_balance": [round(float(g), 4) for g in self.white_balance],
            "white_balance_source": self.white_balance_source,
            "cct": None if self.white_balance_cct is None else round(float(self.white_balance_cct)),
            "exposure_ev": round(float(self.exposure_ev), 3),
            "linear": self.linear,
            "colour_space": self.colour_space,
            "lens_corrections": self.metadata.get("lens_corrections"),  # the DNG lens correction opcodes applied, if any
            "bad_pixels": self.metadata.get("bad_pixels"),  # pixels repaired by the DNG's FixBadPixels opcodes, if any
            "hot_pixels": self.metadata.get("hot_pixels"),  # hot pixels replaced (develop --hot-pixels), if asked
            "size": list(self.rgb.shape[:2]),
        }


def develop_raw(
    raw: RawImage,
    *,
    model: str | torch.nn.Module = "isp",
    device: str | torch.device = "auto",
    wb: WhiteBalance = "camera",
    exposure: float | str = 0.0,
    linear: bool = False,
    colour_space: str = "srgb",
    crop: bool = True,
    tile: int | None = None,
    ensemble: int | None = None,
    max_size: int | None = None,
    sharpen: float = 0.0,
    hot_pixels: bool = False,
) -> Developed:
    """Develop a :class:`RawImage`: network (demosaic + denoise), then analytic colour and tone.

    White balance is chosen on the raw mosaic (before the network); with the camera's
    colour model (DNG ColorMatrix/ForwardMatrix by illuminant, or LibRaw's) the
    camera -> sRGB matrix is the one for that white's colour temperature.
    ``exposure`` is EV (added to a DNG's BaselineExposure) or "auto" (:func:`~hyperisp.raw.exposure.auto_exposure`);
    ``linear=True`` returns scene-linear values with no transfer or tone curve.
    ``colour_space``: "srgb", "display-p3", "adobe-rgb" or "prophoto" (:mod:`hyperisp.raw.colour_spaces`).
    ``crop``: keep only the camera's default crop (``raw.default_crop``: DNG DefaultCrop or a
    maker note's), as raw converters do; False: the whole visible sensor image.
    ``tile``: tile size in image pixels for exact tiled inference (None: default, 0: whole image).
    ``ensemble``: network runs averaged, 1 or 2 (identity, transpose; see :mod:`hyperisp.ensemble`);
    None: 2.
    ``max_size``: scale the result down so its longer side is at most this many pixels
    (:func:`hyperisp.resize.resize_to_fit`); None: full size. ``sharpen``: then an unsharp mask
    of this amount on luma (:func:`hyperisp.sharpen.unsharp_mask`); 0: none.
    ``hot_pixels``: first replace the mosaic's hot pixels (:func:`~hyperisp.raw.bad_pixels.hot_pixel_mask`)
    by their same-colour neighbours; the count is in the result's ``metadata["hot_pixels"]``.
    """
    if not (exposure == "auto" or isinstance(exposure, (int, float))):
        raise ValueError(f"exposure must be a number of EV or 'auto', got {exposure!r}")
    space = get_space(colour_space).name  # an unknown name fails before the network runs
    check_finishing(max_size, sharpen)  # so do a bad size and amount
    dev = resolve_device(device, model)
    net = get_model(model, "isp", dev)
    if hot_pixels:  # before the white balance, which a few hundred hot pixels can pull
        raw = remove_hot_pixels(raw)
    try:
        choice = choose_wb(raw, wb)
    except ValueError as error:  # e.g. a temperature for a file without a colour matrix: the file's fault
        raise HyperispError(None, str(error)) from None
    cam_to_srgb = raw.colour.camera_to_srgb(1 / choice.gains.astype(np.float64))[0] if raw.colour is not None \
        else raw.cam_to_srgb
    cam_rgb = from_canonical(_run(net, pack_bayer(torch.from_numpy(raw.mosaic)[None, None]), dev, tile,
                                   ensemble), raw.frame)
    if raw.rgb_corrections:  # a DNG's OpcodeList3 lens corrections: after demosaicking, as the DNG spec stages them
        cam_rgb = apply_rgb_corrections(cam_rgb, raw.rgb_corrections)
    # A DNG's BaselineExposure moves the exposure zero point (DNG spec); auto measures the data instead.
    baseline = float(raw.metadata.get("baseline_exposure", 0.0))
    ev = auto_exposure(cam_rgb, choice.gains, cam_to_srgb) if exposure == "auto" else float(exposure) + baseline
    rgb = finish(cam_rgb, choice.gains, cam_to_srgb, exposure_ev=ev, tone=not linear, encode=not linear, space=space)
    if crop and raw.default_crop is not None:  # the crop is in sensor coordinates: before the orientation
        top, left, height, width = raw.default_crop
        rgb = rgb[top: top + height, left: left + width]
    rgb = finish_output(apply_orientation(rgb, raw.flip), max_size, sharpen)
    return Developed(rgb, choice.gains, choice.reason, dict(raw.metadata),
                     choice.cct, ev, np.asarray(cam_to_srgb), linear, space)


def remove_hot_pixels(raw: RawImage) -> RawImage:
    """A copy of ``raw`` with its hot pixels replaced, their count in ``metadata["hot_pixels"]``."""
    mask = hot_pixel_mask(raw.mosaic)
    mosaic = interpolate_bad_pixels(raw.mosaic, mask, RGGB_COLOURS) if mask.any() else raw.mosaic
    return replace(raw, mosaic=mosaic, metadata={**raw.metadata, "hot_pixels": int(mask.sum())})


def develop(
    source: PathType | np.ndarray | RawImage,
    *,
    model: str | torch.nn.Module = "isp",
    device: str | torch.device = "auto",
    wb: WhiteBalance = "camera",
    exposure: float | str = 0.0,
    linear: bool = False,
    colour_space: str = "srgb",
    crop: bool = True,
    cfa_phase: str = "RGGB",
    black_level: float = 0.0,
    white_level: float | None = None,
    tile: int | None = None,
    ensemble: int | None = None,
    max_size: int | None = None,
    sharpen: float = 0.0,
    hot_pixels: bool = False,
) -> np.ndarray:
    """Develop a RAW file or a Bayer array into an upright sRGB image.

    Args:
        source: a RAW file path (DNG or any Bayer format LibRaw reads), a (H, W)
            Bayer mosaic array (with ``cfa_phase``, ``black_level``, ``white_level``),
            or a :class:`RawImage`.
        model: shipped model name, model card path, or an ``isp`` module.
        device: "cpu", "cuda" or "auto".
        wb: "camera" (as shot, auto when the file has none), "auto", "daylight", a colour temperature
            ("3200K", or "5600K,-0.003" with a Duv), or R, G, B gains.
        exposure: exposure correction in EV, or "auto" (brighten, keeping highlights).
        linear: return scene-linear values (no transfer curve, no tone curve).
        colour_space: output space, "srgb", "display-p3", "adobe-rgb" or "prophoto".
        crop: apply the camera's default crop (DNG DefaultCrop, maker notes), as raw converters do.
        tile: tile size in image pixels for exact tiled inference (None: default, 0: whole image).
        ensemble: network runs averaged over views of the mosaic, 1 or 2 (identity, transpose;
            see :mod:`hyperisp.ensemble`); None: 2, better pixels for twice the network time of 1.
        max_size: longest side of the result in pixels (scaled down, never up); None: full size.
        sharpen: output sharpening after any resize, 0 (none) to 2; 0.5 is moderate.
        hot_pixels: replace hot pixels (single sites far brighter than their same-colour
            neighbours, as long exposures show) before developing.
    Returns:
        (H, W, 3) float32 in [0, 1], in ``colour_space``.
    """
    if isinstance(source, np.ndarray):
        raw = raw_from_array(source, cfa_phase=cfa_phase, black_level=black_level, white_level=white_level)
    elif isinstance(source, RawImage):
        raw = source
    else:
        raw = read_raw(source)
    return develop_raw(raw, model=model, device=device, wb=wb, exposure=exposure, linear=linear,
                       colour_space=colour_space, crop=crop, tile=tile, ensemble=ensemble, max_size=max_size,
                       sharpen=sharpen, hot_pixels=hot_pixels).rgb


def output_icc_profile(colour_space: str = "srgb", linear: bool = False) -> bytes | None:
    """The ICC profile a developed image carries: None for sRGB (write_image's standard one), else
    the space's own, linear for ``--linear``."""
    if colour_space == "srgb" and not linear:
        return None
    from .io.icc import rgb_icc_profile

    return rgb_icc_profile(colour_space, linear)


LINEAR_FORMATS = ("tiff", "png16")  # scene-linear output needs 16 bits: 8 would band the shadows


def linear_output_format(output_path: PathType | None, fmt: str | None = None) -> str:
    """The 16-bit format ("tiff" or "png16") a scene-linear image is written in.

    An explicit ``fmt`` must be 16-bit; without one a .png output is 16-bit PNG, a
    .jpg output an error, and anything else (a .tif file, a folder, no output) TIFF.
    """
    if fmt is None:
        suffix = "" if output_path is None else Path(output_path).suffix.lower()
        fmt = {".png": "png16", ".jpg": "jpeg", ".jpeg": "jpeg"}.get(suffix, "tiff")
    fmt = output_format(output_path, fmt)  # "tif", "jpg": the canonical name; an unknown name is an error
    if fmt not in LINEAR_FORMATS:
        raise HyperispError(output_path, "linear output needs 16 bits: use a .tif file or --format png16/tiff")
    return fmt


# ----------------------------------------------------------------------------- file steps
# develop_file / denoise_file and every batch engine (hyperisp.batch) run the same three steps,
# so a file developed alone and one developed in a batch come out byte-identical.

@dataclass
class Rendered:
    """A network's result, ready to encode: what :func:`write_output` writes."""

    pixels: np.ndarray  # (H, W, 3), or (H, W) grey, float32 in [0, 1], in the colour space icc_profile names
    metadata: dict  # EXIF fields carried from the input
    icc_profile: bytes | None = None  # None: sRGB
    info: dict = field(default_factory=dict)  # per-file extras (develop: Developed.summary())
    developed: Developed | None = None  # develop: the full result
    bit_depth: int = 8  # denoise: the input's, which a .png output keeps (format_keeping_depth)


def read_input(command: str, input_path: PathType) -> RawImage | Photo:
    """Decode an input: a :class:`RawImage` for "develop", a :class:`Photo` for "denoise"."""
    return read_raw(input_path) if command == "develop" else read_image(input_path)


def run_network(command: str, decoded: RawImage | Photo, **options) -> Rendered:
    """Develop a RawImage (:func:`develop_raw`) or denoise a Photo (:func:`denoise`); ``options`` go to those."""
    if command == "develop":
        developed = develop_raw(decoded, **options)
        profile = output_icc_profile(developed.colour_space, developed.linear)
        return Rendered(developed.rgb, developed.metadata, profile, developed.summary(), developed)
    # A grey photo (read as three equal planes) is denoised and written grey, as burst does.
    pixels = decoded.pixels[..., 0] if is_grey(decoded.pixels) else decoded.pixels
    result = denoise(pixels, **options)
    # denoising keeps the pixels' colour space, so the input's profile (Adobe RGB, P3, grey...) still describes them
    return Rendered(result, decoded.metadata, fitting_icc_profile(decoded.icc_profile, result),
                    bit_depth=decoded.bit_depth)


def write_output(output_path: PathType, rendered: Rendered, *, fmt: str | None = None, quality: int = 95,
                 overwrite: bool = False, strip_location: bool = False) -> Path:
    """Encode ``rendered`` and write it atomically with its EXIF (without the GPS position when
    ``strip_location``) and ICC profile."""
    fmt = format_keeping_depth(output_path, fmt, rendered.bit_depth)
    metadata = without_location(rendered.metadata) if strip_location else rendered.metadata
    return write_image(output_path, rendered.pixels, fmt=fmt, quality=quality, metadata=metadata,
                       overwrite=overwrite, icc_profile=rendered.icc_profile)


def develop_file(
    input_path: PathType,
    output_path: PathType,
    *,
    fmt: str | None = None,
    quality: int = 95,
    overwrite: bool = False,
    strip_location: bool = False,
    **options,
) -> Developed:
    """Develop ``input_path`` and write it atomically to ``output_path`` with its ICC profile and EXIF
    (less the GPS position if ``strip_location``).

    ``options`` go to :func:`develop_raw`. The profile is sRGB's or ``colour_space``'s; with
    ``linear=True`` the output must be 16-bit (:func:`linear_output_format`) and the profile is
    the space's linear one.
    """
    if options.get("linear"):
        output_format(output_path, fmt)  # an unknown extension fails here as it does without linear
        fmt = linear_output_format(output_path, fmt)
    rendered = run_network("develop", read_input("develop", input_path), **options)
    write_output(output_path, rendered, fmt=fmt, quality=quality, overwrite=overwrite, strip_location=strip_location)
    return rendered.developed


def denoise(
    image: PathType | np.ndarray,
    *,
    model: str | torch.nn.Module = "denoise",
    device: str | torch.device = "auto",
    tile: int | None = None,
    ensemble: int | None = None,
    strength: float = 1.0,
    chroma_strength: float | None = None,
    max_size: int | None = None,
    sharpen: float = 0.0,
) -> np.ndarray:
    """Denoise an sRGB photo.

    Args:
        image: a file path (PNG, JPEG, TIFF, WebP; 8 or 16 bit) or an (H, W, 3) or (H, W) array
            (uint8, uint16, or float in [0, 1], clipped: :func:`hyperisp.io.images.array_to_unit_float`).
            A grey photo (one plane, or three equal ones) comes back grey, in the same shape.
        tile: tile size in pixels for exact tiled inference (None: default, 0: whole image).
        ensemble: network runs averaged over transposed / flipped views, 1 to 8 (see
            :mod:`hyperisp.ensemble`); None: 1.
        strength: how much of the noise to remove, 0 to 1; 1: all of it.
        chroma_strength: how much of the colour noise to remove, 0 to 1; None: the same as
            ``strength`` (:func:`hyperisp.blend.blend_denoised`).
        max_size: longest side of the result in pixels (scaled down, never up); None: full size.
        sharpen: output sharpening after any resize, 0 (none) to 2.
    Returns:
        float32 sRGB in [0, 1], the input's shape: (H, W, 3) or (H, W).
    """
    check_strength(strength, chroma_strength)  # before the photo is read and the model loaded
    check_finishing(max_size, sharpen)
    pixels = read_image(image).pixels if not isinstance(image, np.ndarray) else array_to_unit_float(image, grey=True)
    dev = resolve_device(device, model)
    net = get_model(model, "denoise", dev)  # loaded even when unused below, so a bad model name is still an error
    if keeps_input(strength, chroma_strength):
        return finish_output(pixels, max_size, sharpen)
    colour = pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=2)
    denoised = _run(net, torch.from_numpy(np.ascontiguousarray(colour, dtype=np.float32)).permute(2, 0, 1)[None], dev,
                    tile, ensemble)
    if is_grey(pixels):  # the network's channels drift apart by a few levels: a grey photo must stay grey
        denoised = denoised.mean(axis=2)
        if pixels.ndim == 3:
            denoised = np.repeat(denoised[..., None], 3, axis=2)
    return finish_output(blend_denoised(pixels, denoised, strength, chroma_strength), max_size, sharpen)


def denoise_file(
    input_path: PathType,
    output_path: PathType,
    *,
    fmt: str | None = None,
    quality: int = 95,
    overwrite: bool = False,
    strip_location: bool = False,
    **options,
) -> Path:
    """Denoise ``input_path`` and write it atomically, keeping its EXIF fields (less the GPS position if
    ``strip_location``), ICC profile and (for a 16-bit PNG) its depth. ``options`` go to :func:`denoise` (model, device, tile, ensemble,
    strength, chroma_strength, max_size, sharpen)."""
    rendered = run_network("denoise", read_input("denoise", input_path), **options)
    return write_output(output_path, rendered, fmt=fmt, quality=quality, overwrite=overwrite,
                        strip_location=strip_location)
