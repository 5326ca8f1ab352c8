"""Unprocessing: clean sRGB photos -> realistic linear RAW (Brooks et al. 2019).

"Unprocessing Images for Learned Raw Denoising" (CVPR 2019) inverts a simple
camera ISP step by step, drawing the camera parameters at random per image:

    sRGB --inverse tone curve--> --sRGB->linear--> linear sRGB --rgb2cam-->
    camera RGB --invert WB and brightening (highlight-safe)--> x exposure
    --clip [0, 1]--> clean camera RGB ("clean_cam", the training target)
    --RGGB CFA--> mosaic

:func:`process` is the forward ISP with the same metadata; applied to
``clean_cam`` it gives back the input photo except where something was
clipped (saturated colours outside the camera gamut, over-exposed highlights).

Differences from the reference TensorFlow code (google-research/unprocessing):
exact piecewise sRGB curves instead of a 2.2 power, batched per-sample
parameters, an explicit ``torch.Generator`` for determinism, and an extra
exposure factor (see :func:`random_metadata`). Everything is canonical RGGB,
like the rest of hyperisp; see :func:`random_phase_crop` for how the other
three CFA phases are covered.
"""
from __future__ import annotations

import torch

from ..raw.bayer import demosaic_bilinear, mosaic_rgb, pack_bayer
from ..raw.colour import SRGB_TO_XYZ

# XYZ -> camera matrices of the four cameras used by the reference implementation.
XYZ2CAMS = torch.tensor([
    [[1.0234, -0.2969, -0.2266], [-0.5625, 1.6328, -0.0469], [-0.0703, 0.2188, 0.6406]],
    [[0.4913, -0.0541, -0.0202], [-0.6130, 1.3513, 0.2906], [-0.1564, 0.2151, 0.7183]],
    [[0.8380, -0.2630, -0.0639], [-0.2887, 1.0725, 0.2496], [-0.0627, 0.1427, 0.5438]],
    [[0.6596, -0.2079, -0.0562], [-0.4782, 1.3016, 0.1933], [-0.0970, 0.1581, 0.5181]],
])
# Linear level above which the white-balance inversion fades out (Brooks: 0.9).
_HIGHLIGHT_INFLECTION = 0.9


def _check_rgb(x: torch.Tensor, name: str = "image") -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected {name} of shape (N, 3, H, W), got {tuple(x.shape)}")


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    """(n,) float32 samples of U(low, high) drawn on the generator's device."""
    device = generator.device if generator is not None else None
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def _normal(n: int, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else None
    return torch.randn(n, generator=generator, device=device)


# --- tone and transfer curves (elementwise, any shape) ---------------------------------------

def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """Exact sRGB decoding (IEC 61966-2-1), elementwise on any shape; not clipped."""
    # Clamp inside pow so neither branch makes NaNs (torch.where evaluates both).
    curve = ((x.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4
    return torch.where(x <= 0.04045, x / 12.92, curve)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """Exact sRGB encoding, inverse of :func:`srgb_to_linear`; any shape, not clipped."""
    curve = 1.055 * x.clamp(min=0.0031308) ** (1 / 2.4) - 0.055
    return torch.where(x <= 0.0031308, 12.92 * x, curve)


def tone_curve(x: torch.Tensor) -> torch.Tensor:
    """Global tone curve of Brooks' ISP: smoothstep 3x^2 - 2x^3 on x clipped to [0, 1]."""
    x = x.clamp(0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def inverse_tone_curve(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`tone_curve` on [0, 1]: 0.5 - sin(asin(1 - 2x) / 3).

    One Newton step on ``tone_curve(y) = x`` follows the closed form: float32 asin/sin
    differ by CPU and library (CI once saw a 1e-5 round-trip error), the polynomial
    step does not, so the result is accurate to float rounding everywhere.
    """
    x = x.clamp(0.0, 1.0)
    y = 0.5 - torch.sin(torch.asin(1.0 - 2.0 * x) / 3.0)
    slope = (6.0 * y * (1.0 - y)).clamp_min(1e-3)  # flat at 0 and 1, where no step is needed
    return (y - (tone_curve(y) - x) / slope).clamp(0.0, 1.0)


# --- random camera parameters ----------------------------------------------------------------

def random_ccm(n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random colour matrices as in Brooks et al.

    xyz2cam is a uniformly weighted random convex combination of :data:`XYZ2CAMS`;
    rgb2cam = xyz2cam @ SRGB_TO_XYZ with each row scaled to sum 1, so linear sRGB white
    (1, 1, 1) maps to camera (1, 1, 1) before white balance.

    Returns:
        rgb2cam (n, 3, 3) and its inverse cam2rgb (n, 3, 3); both have unit row sums.
    """
    device = generator.device if generator is not None else None
    weights = torch.rand(n, len(XYZ2CAMS), generator=generator, device=device).cpu() + 1e-8
    weights = weights / weights.sum(dim=1, keepdim=True)
    xyz2cam = torch.einsum("nk,kij->nij", weights, XYZ2CAMS)
    rgb2cam = xyz2cam @ torch.from_numpy(SRGB_TO_XYZ).to(xyz2cam)
    rgb2cam = rgb2cam / rgb2cam.sum(dim=-1, keepdim=True)
    # Invert in float64: the matrices are well conditioned but the round trip test is tight.
    cam2rgb = torch.linalg.inv(rgb2cam.double()).float()
    return rgb2cam, cam2rgb


def random_gains(n: int, generator: torch.Generator | None = None,
                 red_range: tuple[float, float] = (1.2, 2.8), blue_range: tuple[float, float] = (1.2, 3.0)
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random brightening and white-balance gains, after Brooks et al. with wider WB ranges.

    rgb_gain = 1 / N(0.8, 0.1), with the normal clipped to [0.5, 1.0]; red_gain ~ U(red_range);
    blue_gain ~ U(blue_range). Why clip: at 0.5 (-3 sigma) a rare draw near 0 cannot blow an
    image up; at 1.0 (+2 sigma; 2.3 % of draws) rgb_gain stays >= 1, so the forward ISP
    only brightens and a sensor-saturated white still comes out white instead of a
    dimmed magenta-grey. Darker images come from the exposure factor instead.

    Why wider than Brooks' red U(1.9, 2.4), blue U(1.5, 1.9) (daylight only): tungsten
    light needs red ~1.3 and blue ~2.7, and some cameras need red ~2.6 in daylight (the
    colour-check charts of :mod:`hyperisp.evaluate_colour` use 2.57 / 1.39 and 1.27 / 2.66).
    A model that never saw such raws drifted towards a cast on them while its PSNR rose.

    Returns:
        rgb_gain, red_gain, blue_gain, each (n,) float32 on the CPU.
    """
    rgb_gain = 1.0 / (0.8 + 0.1 * _normal(n, generator)).clamp(0.5, 1.0)
    red_gain = _uniform(n, *red_range, generator)
    blue_gain = _uniform(n, *blue_range, generator)
    return rgb_gain.cpu(), red_gain.cpu(), blue_gain.cpu()


def random_exposure(n: int, generator: torch.Generator | None = None,
                    log2_range: tuple[float, float] = (-1.0, 0.5)) -> torch.Tensor:
    """Random linear exposure factor 2**U(log2_range), (n,) float32 on the CPU.

    Why: Brooks' rgb_gain only darkens (mean 1/1.25); real raws are also under-exposed
    by a stop or more (higher relative noise) and over-exposed, with highlights that
    clip per sensor channel before white balance (the source of magenta highlights).
    """
    low, high = log2_range
    return 2.0 ** _uniform(n, low, high, generator).cpu()


def random_metadata(n: int, generator: torch.Generator | None = None,
                    exposure_log2_range: tuple[float, float] | None = (-1.0, 0.5)) -> dict[str, torch.Tensor]:
    """Draw all per-image camera parameters used by :func:`unprocess`.

    Args:
        n: number of images.
        generator: source of randomness (None: torch's global generator).
        exposure_log2_range: range of log2 of the exposure factor; None for exposure 1.
    Returns:
        dict of CPU float32 tensors: rgb2cam, cam2rgb (n, 3, 3); rgb_gain, red_gain,
        blue_gain, exposure (n,).
    """
    rgb2cam, cam2rgb = random_ccm(n, generator)
    rgb_gain, red_gain, blue_gain = random_gains(n, generator)
    if exposure_log2_range is None:
        exposure = torch.ones(n)
    else:
        exposure = random_exposure(n, generator, exposure_log2_range)
    return {"rgb2cam": rgb2cam, "cam2rgb": cam2rgb, "rgb_gain": rgb_gain, "red_gain": red_gain,
            "blue_gain": blue_gain, "exposure": exposure}


# --- the individual steps --------------------------------------------------------------------

def apply_ccm(image: torch.Tensor, ccm: torch.Tensor) -> torch.Tensor:
    """Per-sample 3x3 colour matrix: (N, 3, H, W) x (N, 3, 3) -> (N, 3, H, W)."""
    _check_rgb(image)
    if ccm.shape != (image.shape[0], 3, 3):
        raise ValueError(f"expected ccm of shape ({image.shape[0]}, 3, 3), got {tuple(ccm.shape)}")
    return torch.einsum("nij,njhw->nihw", ccm.to(image), image)


def _wb_gains(metadata: dict[str, torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """(N, 3, 1, 1) forward gains (red, 1, blue) * rgb_gain / exposure."""
    red, blue = metadata["red_gain"], metadata["blue_gain"]
    gains = torch.stack([red, torch.ones_like(red), blue], dim=1)
    gains = gains * (metadata["rgb_gain"] / metadata["exposure"])[:, None]
    return gains.to(like)[:, :, None, None]


def safe_invert_gains(image: torch.Tensor, rgb_gain: torch.Tensor, red_gain: torch.Tensor,
                      blue_gain: torch.Tensor) -> torch.Tensor:
    """Undo white balance and brightening without dimming highlights (Brooks et al.).

    Plain division by the gains (all > 1) would turn white (1, 1, 1) into a dim
    green-tinted grey, so a clipped highlight could never be reached again. Above a
    linear grey level of 0.9 the inverse gains fade smoothly to 1.

    Args:
        image: (N, 3, H, W) linear camera RGB.
        rgb_gain, red_gain, blue_gain: (N,).
    Returns:
        (N, 3, H, W).
    """
    _check_rgb(image)
    gains = torch.stack([1.0 / red_gain, torch.ones_like(red_gain), 1.0 / blue_gain], dim=1)
    gains = (gains / rgb_gain[:, None]).to(image)[:, :, None, None]
    grey = image.mean(dim=1, keepdim=True)
    mask = ((grey - _HIGHLIGHT_INFLECTION).clamp(min=0.0) / (1.0 - _HIGHLIGHT_INFLECTION)) ** 2
    safe_gains = torch.maximum(mask + (1.0 - mask) * gains, gains)
    return image * safe_gains


def unprocess(srgb: torch.Tensor, generator: torch.Generator | None = None,
              metadata: dict[str, torch.Tensor] | None = None,
              exposure_log2_range: tuple[float, float] | None = (-1.0, 0.5),
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Turn clean sRGB photos into clean linear RGGB raw mosaics.

    Args:
        srgb: (N, 3, H, W) in [0, 1], H and W even.
        generator: randomness for the metadata (ignored when ``metadata`` is given).
        metadata: camera parameters as from :func:`random_metadata`; drawn when None.
        exposure_log2_range: passed to :func:`random_metadata` when drawing.
    Returns:
        mosaic (N, 1, H, W) linear in [0, 1], canonical RGGB; and the metadata dict
        (rgb2cam, cam2rgb (N, 3, 3); rgb_gain, red_gain, blue_gain, exposure (N,),
        on the CPU) plus ``clean_cam`` (N, 3, H, W): the noise-free full-colour
        sensor image whose CFA samples are the mosaic (the demosaicking target).
    """
    _check_rgb(srgb, "srgb")
    if metadata is None:
        metadata = random_metadata(srgb.shape[0], generator, exposure_log2_range)
    image = srgb_to_linear(inverse_tone_curve(srgb))
    image = apply_ccm(image, metadata["rgb2cam"])
    image = safe_invert_gains(image, metadata["rgb_gain"], metadata["red_gain"], metadata["blue_gain"])
    # Exposure scales the light reaching the sensor; each channel then saturates on its own.
    image = (image * metadata["exposure"].to(image)[:, None, None, None]).clamp(0.0, 1.0)
    metadata = {**metadata, "clean_cam": image}
    return mosaic_rgb(image), metadata


def process(cam_rgb: torch.Tensor, metadata: dict[str, torch.Tensor]) -> torch.Tensor:
    """Forward ISP matching :func:`unprocess`: camera RGB -> sRGB.

    White balance and brightening (undoing the exposure factor too), clip, cam2rgb,
    clip, sRGB encoding, tone curve. Undoing an exposure > 1 darkens, so highlights
    clipped by the over-exposure come back grey (level rgb_gain / exposure), not white,
    as when a camera's exposure is pulled back in post; all else round-trips exactly.

    Args:
        cam_rgb: (N, 3, H, W) linear camera RGB (e.g. ``metadata["clean_cam"]`` or a
            demosaicked mosaic).
        metadata: as returned by :func:`unprocess`.
    Returns:
        (N, 3, H, W) sRGB in [0, 1].
    """
    _check_rgb(cam_rgb, "cam_rgb")
    image = (cam_rgb * _wb_gains(metadata, cam_rgb)).clamp(0.0, 1.0)
    image = apply_ccm(image, metadata["cam2rgb"]).clamp(0.0, 1.0)
    return tone_curve(linear_to_srgb(image))


def process_mosaic(mosaic: torch.Tensor, metadata: dict[str, torch.Tensor]) -> torch.Tensor:
    """Simple full ISP: bilinear demosaic, then :func:`process`.

    Args:
        mosaic: (N, 1, H, W) linear RGGB, H and W even.
        metadata: as returned by :func:`unprocess`.
    Returns:
        (N, 3, H, W) sRGB in [0, 1].
    """
    # White balance is per colour plane, so it commutes with bilinear demosaicking.
    return process(demosaic_bilinear(pack_bayer(mosaic)), metadata)


def random_phase_crop(srgb: torch.Tensor, generator: torch.Generator | None = None,
                      size: tuple[int, int] | None = None) -> torch.Tensor:
    """Random flips and a random crop, so the RGGB CFA lands on every scene phase.

    Why: the network always sees canonical RGGB; a sensor with another phase is
    flipped into RGGB by ``raw/phase.py``. So, relative to the scene, the data differ
    in (a) which scene pixel each colour samples -- a 1-pixel offset of the crop, and
    (b) mirrored content -- the flips. Both are drawn here per image: horizontal and
    vertical flip with probability 1/2 each, then a crop at a uniformly random offset
    (both offset parities occur whenever the crop is at least 1 pixel smaller).

    Args:
        srgb: (N, 3, H, W) photos (any values).
        generator: randomness.
        size: (h, w) of the crop, even; default the largest even size < (H, W).
    Returns:
        (N, 3, h, w).
    """
    _check_rgb(srgb, "srgb")
    n, _, height, width = srgb.shape
    h, w = size if size is not None else (((height - 1) // 2) * 2, ((width - 1) // 2) * 2)
    if h % 2 or w % 2 or not (2 <= h <= height and 2 <= w <= width):
        raise ValueError(f"crop size must be even and within the image {(height, width)}, got {(h, w)}")
    device = generator.device if generator is not None else None
    draws = torch.rand(n, 4, generator=generator, device=device).cpu()
    crops = []
    for i in range(n):
        image = srgb[i]
        if draws[i, 0] < 0.5:
            image = image.flip(-1)
        if draws[i, 1] < 0.5:
            image = image.flip(-2)
        top = int(draws[i, 2] * (height - h + 1))
        left = int(draws[i, 3] * (width - w + 1))
        crops.append(image[:, top:top + h, left:left + w])
    return torch.stack(crops)
