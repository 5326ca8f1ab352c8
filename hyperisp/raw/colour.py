"""The analytic colour and tone pipeline that runs after the network.

The network returns linear *camera* RGB (demosaicked, denoised). :func:`finish`
turns it into display sRGB: white balance, highlight clip, camera -> sRGB
matrix, exposure, sRGB transfer curve, gentle tone curve. All numpy float32,
images are (H, W, 3). The sRGB curves and the tone curve also accept torch
tensors (same formulas), so training losses can use the exact same transforms.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence, Union

import numpy as np
import torch

from .colour_spaces import RGBSpace, get_space, linear_srgb_to
from .colour_spaces import encode as encode_in  # finish() has a parameter named encode

if TYPE_CHECKING:
    from .reader import RawImage

WhiteBalanceMode = Union[str, Sequence[float]]

# Linear sRGB (D65) -> CIE XYZ, the constants dcraw/LibRaw use (``xyz_rgb``).
SRGB_TO_XYZ = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_MIN_GAIN, _MAX_GAIN = 0.2, 8.0  # plausible white-balance gains relative to green
TONE_STRENGTH = 0.25
HIGHLIGHT_FADE_START = 0.9  # raw level (white = 1) above which clipped-channel colour fades to white


def normalise_gains(gains: Sequence[float]) -> np.ndarray | None:
    """(3,) R, G, B gains scaled so G = 1; None unless finite and each in [0.2, 8]."""
    gains = np.asarray(gains, dtype=np.float64).ravel()[:3]
    if gains.shape != (3,) or not np.all(np.isfinite(gains)) or gains[1] <= 0:
        return None
    gains = gains / gains[1]
    if np.any(gains < _MIN_GAIN) or np.any(gains > _MAX_GAIN):
        return None
    return gains.astype(np.float32)


def camera_to_srgb_matrix(xyz_to_camera: np.ndarray) -> np.ndarray:
    """(3, 3) white-balanced camera RGB -> linear sRGB, from a DNG ColorMatrix (XYZ -> camera).

    Same construction as LibRaw's ``cam_xyz_coeff``: camera response to sRGB
    primaries, rows normalised so sRGB white maps to camera (1, 1, 1), inverted.
    So white-balanced camera white (1, 1, 1) maps to sRGB white.
    """
    cam_from_srgb = np.asarray(xyz_to_camera, dtype=np.float64) @ SRGB_TO_XYZ
    cam_from_srgb /= cam_from_srgb.sum(axis=1, keepdims=True)
    return np.linalg.inv(cam_from_srgb).astype(np.float32)


def _camera_planes(image: np.ndarray, max_samples: int = 1 << 20) -> np.ndarray:
    """(N, 3) camera RGB samples from an (H, W, 3) image or an (H, W) canonical RGGB mosaic.

    2x2 blocks become one sample (less noise; same scale for both inputs), and big
    images are subsampled on a regular grid to at most ~``max_samples`` samples.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 3 and min(image.shape[:2]) >= 2:
        h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
        step = max(1, int(np.sqrt(h * w / 4 / max_samples)))
        blocks = [image[dy:h:2 * step, dx:w:2 * step] for dy in range(2) for dx in range(2)]
        return (sum(b.astype(np.float64) for b in blocks) / 4).reshape(-1, 3)
    if image.ndim == 2 and image.shape[0] % 2 == 0 and image.shape[1] % 2 == 0 and image.size:
        step = max(1, int(np.sqrt(image.size / 4 / max_samples)))
        r, b = image[0::2 * step, 0::2 * step], image[1::2 * step, 1::2 * step]
        g = 0.5 * (image[0::2 * step, 1::2 * step].astype(np.float64) + image[1::2 * step, 0::2 * step])
        return np.stack([r, g, b], axis=-1).reshape(-1, 3).astype(np.float64)
    raise ValueError(f"expected an (H, W, 3) image or an even-sized (H, W) RGGB mosaic, got {image.shape}")


def auto_white_balance(image: np.ndarray, p: float = 6.0, max_samples: int = 1 << 20) -> np.ndarray:
    """Estimate white-balance gains with shades-of-grey (Minkowski p-norm grey world).

    Args:
        image: (H, W, 3) linear camera RGB, or an (H, W) canonical RGGB mosaic, in [0, 1].
        p: Minkowski norm; 1 is grey world, large p tends to white patch. 6 is the
            usual robust choice (Finlayson & Trezzi 2004).
        max_samples: big images are subsampled on a regular grid to about this many 2x2 blocks.
    Returns:
        (3,) float32 R, G, B gains with G = 1, clamped to [0.2, 8].

    Clipped pixels (any channel > 0.98) are excluded because their colour is
    wrong, and very dark ones (brightest channel < 2 % of the image's 99th
    percentile) because they are mostly noise.
    """
    rgb = _camera_planes(image, max_samples)
    peak = rgb.max(axis=1)
    valid = (peak <= 0.98) & (peak >= 0.02 * max(float(np.percentile(peak, 99)), 1e-6)) & np.all(rgb >= 0, axis=1)
    if valid.sum() < 16:  # almost all clipped or black: use what there is
        valid = np.ones(len(rgb), dtype=bool)
    norms = np.mean(np.clip(rgb[valid], 0, None) ** p, axis=0) ** (1.0 / p)
    if not np.all(norms > 0):
        return np.ones(3, dtype=np.float32)
    gains = norms[1] / norms
    return np.clip(gains, _MIN_GAIN, _MAX_GAIN).astype(np.float32)


def choose_white_balance(raw: "RawImage", mode: WhiteBalanceMode = "camera") -> tuple[np.ndarray, str]:
    """Pick white-balance gains for a raw image: ``(gains, reason)``.

    See :func:`hyperisp.raw.white_balance.choose_white_balance` (which also gives the
    white's colour temperature): "camera" (as shot; auto when the file has none or an
    implausible one), "auto", "daylight", a temperature ("5600K"), or 3 R, G, B gains.
    """
    from .white_balance import choose_white_balance as choose  # that module builds on this one

    choice = choose(raw, mode)
    return choice.gains, choice.reason


def _is_torch(x) -> bool:
    return isinstance(x, torch.Tensor)


def linear_to_srgb(x):
    """Linear light -> sRGB-encoded values (IEC 61966-2-1 piecewise curve).

    Negative inputs map to 0. Works on numpy arrays (float32 out) and torch
    tensors (gradient-safe: the power is never evaluated near 0).
    """
    if _is_torch(x):  # the one torch implementation lives with the training-data synthesis
        from ..data.unprocess import linear_to_srgb as linear_to_srgb_torch

        return linear_to_srgb_torch(x.clamp(min=0.0))
    x = np.asarray(x, dtype=np.float32)
    shape, x = x.shape, x.reshape(-1)
    # In place on one buffer: this runs on every output pixel, so memory traffic matters.
    y = np.maximum(x, np.float32(0.0031308))
    np.power(y, np.float32(1 / 2.4), out=y)
    y *= np.float32(1.055)
    y -= np.float32(0.055)
    np.copyto(y, np.maximum(x, np.float32(0.0)) * np.float32(12.92), where=x <= np.float32(0.0031308))
    return y.reshape(shape)


def srgb_to_linear(x):
    """sRGB-encoded values -> linear light (exact inverse of :func:`linear_to_srgb`; negatives -> 0)."""
    if _is_torch(x):
        from ..data.unprocess import srgb_to_linear as srgb_to_linear_torch

        return srgb_to_linear_torch(x.clamp(min=0.0))
    x = np.asarray(x, dtype=np.float32)
    shape, x = x.shape, x.reshape(-1)
    y = np.maximum(x, np.float32(0.04045))
    y += np.float32(0.055)
    y *= np.float32(1 / 1.055)
    np.power(y, np.float32(2.4), out=y)
    np.copyto(y, np.maximum(x, np.float32(0.0)) * np.float32(1 / 12.92), where=x <= np.float32(0.04045))
    return y.reshape(shape)


def apply_tone_curve(x, strength: float = TONE_STRENGTH):
    """Gentle S curve on sRGB-encoded values in [0, 1].

    ``y = (1 - s) * x + s * smoothstep(x)`` with smoothstep ``3x^2 - 2x^3``:
    0 -> 0, 1 -> 1, 0.5 -> 0.5, slope ``1 - s`` at both ends (a soft toe and
    shoulder) and ``1 + s/2`` in the mid-tones (a little contrast, as a film
    print curve gives). Monotonic for 0 <= s < 1 since its slope is >= 1 - s.
    Inputs are clipped to [0, 1]. Works on numpy arrays and torch tensors.
    """
    if not 0.0 <= strength < 1.0:
        raise ValueError(f"tone strength must be in [0, 1), got {strength}")
    if _is_torch(x):
        x = x.clamp(0.0, 1.0)
        return x + strength * (x * x * (3.0 - 2.0 * x) - x)
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    bend = x * x
    bend *= np.float32(3.0) - np.float32(2.0) * x
    bend -= x
    bend *= np.float32(strength)
    return x + bend


def finish(
    cam_rgb: np.ndarray,
    wb: Sequence[float],
    cam_to_srgb: np.ndarray,
    *,
    exposure_ev: float = 0.0,
    tone: bool = True,
    encode: bool = True,
    space: RGBSpace | str = "srgb",
) -> np.ndarray:
    """Linear camera RGB -> display sRGB (or another output space).

    Args:
        cam_rgb: (H, W, 3) linear camera RGB, black at 0, sensor white at 1.
        wb: (3,) R, G, B white-balance gains.
        cam_to_srgb: (3, 3) white-balanced camera RGB -> linear sRGB.
        exposure_ev: exposure correction in stops (applied in linear light).
        tone: apply :func:`apply_tone_curve` after the transfer curve.
        encode: False gives scene-linear values (no transfer curve, no tone curve).
        space: output colour space (:mod:`hyperisp.raw.colour_spaces`): its gamut is what gets
            clipped, and its curve encodes the values.
    Returns:
        (H, W, 3) float32 encoded (or linear, ``encode=False``) in [0, 1], in ``space``.
    """
    space = get_space(space)
    cam_rgb = np.asarray(cam_rgb, dtype=np.float32)
    if cam_rgb.ndim != 3 or cam_rgb.shape[2] != 3:
        raise ValueError(f"expected camera RGB of shape (H, W, 3), got {cam_rgb.shape}")
    wb = np.asarray(wb, dtype=np.float32).ravel()
    matrix = np.asarray(cam_to_srgb, dtype=np.float32)
    if wb.shape != (3,) or matrix.shape != (3, 3):
        raise ValueError(f"expected wb (3,) and cam_to_srgb (3, 3), got {wb.shape} and {matrix.shape}")
    to_space = None if space.name == "srgb" else linear_srgb_to(space)
    out = np.empty(cam_rgb.shape, dtype=np.float32)
    rows = max(1, (1 << 18) // max(1, cam_rgb.shape[1]))  # ~256k pixels at a time bounds the temporaries
    for top in range(0, cam_rgb.shape[0], rows):
        out[top : top + rows] = _finish_rows(cam_rgb[top : top + rows], wb, matrix, exposure_ev, tone,
                                             space if encode else None, to_space)
    return out


def _matmul(pixels: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(..., 3) pixels times a (3, 3) matrix; torch's matmul is ~50x faster than numpy's here."""
    return (torch.from_numpy(pixels.reshape(-1, 3)) @ torch.from_numpy(matrix.T.copy())).numpy().reshape(pixels.shape)


def _tone_in_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear sRGB of any range -> the linear sRGB that sRGB output with the tone curve shows.

    The curve extended beyond [0, 1] (odd below 0, its end slope above 1), so a wide-gamut
    output can carry sRGB's look on colours that sRGB itself would clip.
    """
    magnitude = linear_to_srgb(np.abs(linear))
    toned = apply_tone_curve(magnitude)
    over = magnitude > 1
    toned[over] = 1 + (1 - TONE_STRENGTH) * (magnitude[over] - 1)
    return np.copysign(srgb_to_linear(toned), linear)


def _finish_rows(cam_rgb: np.ndarray, wb: np.ndarray, matrix: np.ndarray, exposure_ev: float, tone: bool,
                 space: RGBSpace | None, to_space: np.ndarray | None = None):
    # Clip at 1 *after* the gains: a clipped pixel is (1, 1, 1) in the raw; with gains like
    # (2, 1, 1.5) it would become (2, 1, 1.5) and turn magenta. Clipped at 1 it stays (1, 1, 1),
    # which the matrix maps to white (its rows sum to 1).
    linear = np.minimum(cam_rgb * wb, np.float32(1.0))
    # Where any channel nears the sensor clip its true colour is lost (a clipped green
    # under gains > 1 reads magenta, a clipped red under a gain < 1 cyan): fade such
    # pixels to their brightest balanced channel, fully at the clip. Row chunks with no
    # such pixel pay one max(); others ~10 elementwise passes (channel slices: numpy's
    # max(axis=-1) and boolean indexing are several times slower here).
    start = np.float32(HIGHLIGHT_FADE_START)
    if cam_rgb.max() > start:
        fade = np.maximum(cam_rgb[..., 0], cam_rgb[..., 1])
        np.maximum(fade, cam_rgb[..., 2], out=fade)
        fade -= start
        fade *= np.float32(1.0) / (np.float32(1.0) - start)
        np.clip(fade, 0.0, 1.0, out=fade)
        brightest = np.maximum(linear[..., 0], linear[..., 1])
        np.maximum(brightest, linear[..., 2], out=brightest)
        for k in range(3):
            channel = linear[..., k]
            channel += fade * (brightest - channel)
    linear = _matmul(linear, matrix)  # linear sRGB
    if to_space is not None and space is not None and tone:
        # sRGB's tone curve first, then the output space: a colour inside sRGB looks the same in
        # every space, and only what sRGB would clip differs.
        if exposure_ev:
            linear *= np.float32(2.0 ** exposure_ev)
        linear = _matmul(_tone_in_srgb(linear), to_space)
        return encode_in(np.clip(linear, 0.0, 1.0, out=linear), space)
    if to_space is not None:  # no tone curve: the output space's gamut is the one clipped below
        linear = _matmul(linear, to_space)
    np.clip(linear, 0.0, 1.0, out=linear)
    if exposure_ev:
        linear *= np.float32(2.0 ** exposure_ev)
        np.clip(linear, 0.0, 1.0, out=linear)
    if space is None:
        return linear
    encoded = encode_in(linear, space)
    return apply_tone_curve(encoded) if tone else encoded
