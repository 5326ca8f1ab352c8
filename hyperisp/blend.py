"""How much of the removed noise to leave: the strength and chroma-strength of ``denoise`` and ``burst``.

Raw editors give noise reduction an amount, often split into luminance and colour: a little
grey grain left keeps texture that a full-strength denoiser flattens and reads as film grain,
while colour blotches rarely look like anything but noise. The blend works on the difference
the network made, in the photo's own encoding (sRGB values), so strength 0 gives the input
back and 1 the network's output, exactly.

    >>> out = blend_denoised(noisy, denoised, strength=0.7, chroma_strength=1.0)  # grain kept, colour noise removed
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .errors import HyperispError
from .raw.colour_spaces import LUMA_WEIGHTS  # on the encoded values: luma Y'


def check_strength(strength: float, chroma_strength: Optional[float] = None) -> None:
    """Raise :class:`HyperispError` unless both amounts are in [0, 1] (``chroma_strength`` may be None)."""
    for name, value in (("strength", strength), ("chroma strength", chroma_strength)):
        if value is not None and not 0 <= value <= 1:
            raise HyperispError(None, f"{name} {value}: expected a value from 0 (keep the noise) to 1 (remove it all)")


def keeps_input(strength: float, chroma_strength: Optional[float] = None) -> bool:
    """Whether the blend is the input itself, so the network need not run."""
    return strength == 0 and not chroma_strength


def blend_denoised(noisy: np.ndarray, denoised: np.ndarray, strength: float = 1.0,
                   chroma_strength: Optional[float] = None) -> np.ndarray:
    """Put back part of the noise the network removed.

    ``noisy + strength * dY + chroma_strength * (d - dY)``, where ``d = denoised - noisy`` and
    ``dY`` is its luma (:data:`LUMA_WEIGHTS`) on all three channels: ``strength`` sets how much
    of the luminance noise goes, ``chroma_strength`` (None: the same as ``strength``) how much
    of the colour noise. Equal amounts blend the whole pixel: ``noisy + strength * d``.

    Args:
        noisy: (H, W, 3) or (H, W) float32, the network's input (grey images have no chroma).
        denoised: the network's output, same shape; overwritten and returned.
        strength, chroma_strength: amounts from 0 (keep the noise) to 1 (remove it all).
    Returns:
        ``denoised`` holding the blend, clipped to [0, 1].
    """
    check_strength(strength, chroma_strength)
    if noisy.shape != denoised.shape:
        raise ValueError(f"expected the noisy and denoised images to have one shape, got {noisy.shape} and "
                         f"{denoised.shape}")
    chroma = strength if chroma_strength is None or noisy.ndim == 2 else chroma_strength
    if strength == 1 and chroma == 1:
        return denoised
    denoised -= noisy
    if chroma != strength:  # d * chroma + dY * (strength - chroma) on every channel
        luma = denoised @ LUMA_WEIGHTS
        denoised *= chroma
        denoised += ((strength - chroma) * luma)[..., None]
    else:
        denoised *= strength
    denoised += noisy
    return np.clip(denoised, 0.0, 1.0, out=denoised)  # the luma/chroma split can step outside [0, 1]
