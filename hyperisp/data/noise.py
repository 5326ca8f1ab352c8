"""Synthetic sensor noise for training: RAW (heteroscedastic Gaussian) and sRGB.

RAW noise follows Brooks et al. 2019: a Poisson-Gaussian sensor modelled as a
Gaussian of variance ``shot * x + read`` on the linear signal x in [0, 1], with
(shot, read) drawn from a log-log linear fit to real cameras.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .unprocess import process_mosaic, unprocess


def _device(generator: torch.Generator | None) -> torch.device | None:
    return generator.device if generator is not None else None


def _per_sample(value: float | torch.Tensor, like: torch.Tensor, name: str) -> torch.Tensor:
    """A scalar or (N,) tensor -> (N, 1, ..., 1) broadcastable against ``like``."""
    value = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if value.ndim == 0:
        value = value.expand(like.shape[0])
    if value.shape != (like.shape[0],):
        raise ValueError(f"expected {name} as a scalar or of shape ({like.shape[0]},), got {tuple(value.shape)}")
    return value.view(-1, *([1] * (like.ndim - 1)))


def random_noise_levels(n: int, generator: torch.Generator | None = None,
                        shot_range: tuple[float, float] = (1e-4, 1.2e-2)) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (shot, read) noise levels as in Brooks et al.

    ln(shot) ~ U(ln lo, ln hi); ln(read) = 2.18 ln(shot) + 1.20 + N(0, 0.26).
    Both are variances: the noise of a pixel at linear level x has variance shot * x + read.

    Returns:
        shot (n,), read (n,), float32 on the CPU.
    """
    low, high = shot_range
    if not 0 < low <= high:
        raise ValueError(f"expected 0 < shot_range[0] <= shot_range[1], got {shot_range}")
    u = torch.rand(n, generator=generator, device=_device(generator)).cpu()
    log_shot = math.log(low) + (math.log(high) - math.log(low)) * u
    jitter = torch.randn(n, generator=generator, device=_device(generator)).cpu()
    log_read = 2.18 * log_shot + 1.20 + 0.26 * jitter
    return log_shot.exp(), log_read.exp()


def add_raw_noise(mosaic: torch.Tensor, shot: float | torch.Tensor, read: float | torch.Tensor,
                  generator: torch.Generator | None = None, clip: bool = True) -> torch.Tensor:
    """Heteroscedastic Gaussian noise of variance ``shot * x + read``.

    Clipping to [0, 1] (default) matches our raw reader: a real sensor's values
    can go below the black level, but LibRaw and ``raw/`` clip them at 0, so the
    network must learn the resulting slight upward bias in the darks.

    Args:
        mosaic: (N, 1, H, W) clean linear mosaic (any (N, ...) shape works).
        shot, read: scalars or (N,) variances, e.g. from :func:`random_noise_levels`.
        generator: randomness.
        clip: clip the result to [0, 1].
    Returns:
        noisy mosaic, same shape as ``mosaic``.
    """
    shot = _per_sample(shot, mosaic, "shot")
    read = _per_sample(read, mosaic, "read")
    variance = shot * mosaic.clamp(min=0.0) + read
    noise = torch.randn(mosaic.shape, generator=generator, device=_device(generator)).to(mosaic)
    noisy = mosaic + variance.sqrt() * noise
    return noisy.clamp(0.0, 1.0) if clip else noisy


def random_bits(n: int, generator: torch.Generator | None = None, low: int = 10, high: int = 14) -> torch.Tensor:
    """(n,) int64 ADC bit depths drawn uniformly from {low, ..., high} (CPU)."""
    if not 1 <= low <= high <= 24:
        raise ValueError(f"expected 1 <= low <= high <= 24 bits, got ({low}, {high})")
    return torch.randint(low, high + 1, (n,), generator=generator, device=_device(generator)).cpu()


def quantize(mosaic: torch.Tensor, bits: int | torch.Tensor) -> torch.Tensor:
    """Clip to [0, 1] and round to the 2**bits levels of an ADC (0 and 1 included).

    Args:
        mosaic: (N, 1, H, W) (any (N, ...) shape works).
        bits: an int or (N,) per-sample bit depths, e.g. from :func:`random_bits`.
    Returns:
        same shape; each sample has at most 2**bits distinct values.
    """
    levels = _per_sample(2.0 ** torch.as_tensor(bits, dtype=torch.float64) - 1.0, mosaic, "bits")
    return torch.round(mosaic.clamp(0.0, 1.0) * levels) / levels


def add_awgn(image: torch.Tensor, sigma: float | torch.Tensor, generator: torch.Generator | None = None,
             clip: bool = False) -> torch.Tensor:
    """Additive white Gaussian noise with per-sample standard deviation.

    Args:
        image: (N, C, H, W).
        sigma: scalar or (N,) standard deviations (on the image's [0, 1] scale).
        generator: randomness.
        clip: clip the result to [0, 1].
    Returns:
        (N, C, H, W).
    """
    sigma = _per_sample(sigma, image, "sigma")
    noise = torch.randn(image.shape, generator=generator, device=_device(generator)).to(image)
    noisy = image + sigma * noise
    return noisy.clamp(0.0, 1.0) if clip else noisy


def _rms(x: torch.Tensor) -> torch.Tensor:
    """(N, ...) -> (N, 1, ..., 1) root mean square per sample."""
    return x.square().mean(dim=tuple(range(1, x.ndim)), keepdim=True).sqrt()


def mix_noise_channels(noise: torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
    """Pull each sample's noise channels towards their mean, keeping its overall energy.

    ``(1 - beta) * n + beta * mean_c(n)``, rescaled per sample to the input's RMS. beta = 0
    leaves the noise as is; beta = 1 makes it pure luminance noise (equal in R, G, B).

    Why: a CCM makes simulated camera noise anti-correlated across channels (negative
    off-diagonals), while a phone's own processing leaves it positively correlated (the
    SIDD pair: +0.3 to +0.5 between channels). A denoiser that has only seen the former
    keeps the latter as texture.

    Args:
        noise: (N, 3, H, W).
        beta: scalar or (N,) in [0, 1].
    Returns:
        (N, 3, H, W).
    """
    if noise.ndim != 4 or noise.shape[1] != 3:
        raise ValueError(f"expected noise of shape (N, 3, H, W), got {tuple(noise.shape)}")
    beta = _per_sample(beta, noise, "beta")
    mixed = torch.lerp(noise, noise.mean(dim=1, keepdim=True).expand_as(noise), beta)
    return mixed * (_rms(noise) / _rms(mixed).clamp(min=1e-12))


def scale_noise_channels(noise: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
    """Scale each sample's noise channels by its own gains, keeping its overall energy.

    ``gains[:, c] * n[:, c]``, rescaled per sample to the input's RMS.

    Why: a camera's white balance amplifies red and blue over green before its processing,
    so real sRGB noise is weaker in green (the SIDD pair: std 43 / 31 / 41 levels in R, G, B,
    experiments/sidd_noise_structure.py), while Gaussian "phone" noise starts out equal in every channel.

    Args:
        noise: (N, 3, H, W).
        gains: (N, 3) positive gains.
    Returns:
        (N, 3, H, W).
    """
    if noise.ndim != 4 or noise.shape[1] != 3:
        raise ValueError(f"expected noise of shape (N, 3, H, W), got {tuple(noise.shape)}")
    if gains.shape != (noise.shape[0], 3) or not bool((gains > 0).all()):
        raise ValueError(f"expected positive gains of shape ({noise.shape[0]}, 3), got {tuple(gains.shape)}")
    scaled = noise * gains.to(noise)[:, :, None, None]
    return scaled * (_rms(noise) / _rms(scaled).clamp(min=1e-12))


def blur_noise(noise: torch.Tensor, sigma_px: float | torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Spatially correlate noise with a per-sample Gaussian blur, keeping each sample's RMS.

    Why: real sRGB noise has been through demosaicking, denoising and sharpening, and its
    neighbouring pixels are correlated (the SIDD pair: +0.26 to +0.52 at one pixel). At
    SIDD's level a denoiser trained on white and bilinear-demosaicked noise removes 7.9 dB
    of white Gaussian noise with the pair's channel covariance but 3.5 dB of the same noise
    blurred to a similar correlation.

    Args:
        noise: (N, C, H, W).
        sigma_px: scalar or (N,) blur standard deviations in pixels; 0 leaves a sample as is.
        radius: kernel radius (the kernel is (2 radius + 1)^2, reflection padded).
    Returns:
        (N, C, H, W).
    """
    if noise.ndim != 4:
        raise ValueError(f"expected noise of shape (N, C, H, W), got {tuple(noise.shape)}")
    n, c, h, w = noise.shape
    sigma = _per_sample(sigma_px, noise, "sigma_px").view(n, 1, 1).clamp(min=1e-3)
    taps = torch.arange(-radius, radius + 1, dtype=noise.dtype, device=noise.device)
    g = torch.exp(-0.5 * (taps[None, None, :] / sigma) ** 2)  # (N, 1, k): sigma 1e-3 gives a delta
    g = g / g.sum(dim=-1, keepdim=True)
    kernels = (g.transpose(1, 2) * g).repeat_interleave(c, dim=0)[:, None]  # (N*C, 1, k, k)
    padded = F.pad(noise.reshape(1, n * c, h, w), (radius,) * 4, mode="reflect")
    blurred = F.conv2d(padded, kernels, groups=n * c).view(n, c, h, w)
    return blurred * (_rms(noise) / _rms(blurred).clamp(min=1e-12))


def signal_dependent_noise(clean_srgb: torch.Tensor, noise: torch.Tensor, gamma: float | torch.Tensor,
                           floor: float = 0.02) -> torch.Tensor:
    """Make noise follow the signal as a camera's does, keeping each sample's RMS.

    The noise is added in a partly linearised space y = x ** gamma with a standard deviation
    proportional to sqrt(y + floor) (shot noise), clipped to [0, 1] and mapped back. Why:
    real phone noise in sRGB is not additive. Its level changes with brightness, it is
    skewed, it clips at black, and the curve's concavity makes the noisy image darker on
    average. Measured, not yet useful: on the SIDD pair's ground truth this stand-in (gamma 1)
    ranked the shipped model of session 20 above a candidate as the real noise did, where the
    additive stand-ins ranked them the other way; but a finish trained with half the phone
    noise made this way (runs/dn36, ``--phone-signal-dependent 0.5``) gained 1.1 dB on the
    stand-in and lost 0.9 dB on the real pair (``experiments/sidd_noise_structure.py``;
    docs/model_history.md, session 21). The option stays for experiments.

    Args:
        clean_srgb: (N, C, H, W) in [0, 1].
        noise: (N, C, H, W) zero-mean noise; its per-sample RMS is the result's.
        gamma: scalar or (N,) exponents >= 1 (1: shot-like noise added in sRGB itself).
        floor: the level's offset under the square root (noise in black, relative to white).
    Returns:
        (N, C, H, W) noise: ``noisy - clean_srgb``, with ``noisy`` in [0, 1].
    """
    if clean_srgb.shape != noise.shape or clean_srgb.ndim != 4:
        raise ValueError(f"expected clean_srgb and noise of one shape (N, C, H, W), got "
                         f"{tuple(clean_srgb.shape)} and {tuple(noise.shape)}")
    g = _per_sample(gamma, noise, "gamma")
    if bool((g < 1).any()):
        raise ValueError("expected gamma >= 1")
    y = clean_srgb.clamp(0, 1) ** g
    shot = (y + floor).sqrt()
    shot = shot / _rms(shot).clamp(min=1e-12)

    def apply(n: torch.Tensor) -> torch.Tensor:
        return (y + n * shot).clamp(0, 1) ** (1 / g) - clean_srgb

    first = apply(noise)  # the curve changes the level: one rescale brings the RMS back
    return apply(noise * (_rms(noise) / _rms(first).clamp(min=1e-12)))


def srgb_realistic_noise(clean_srgb: torch.Tensor, generator: torch.Generator | None = None,
                         sigma_awgn_max: float = 50 / 255,
                         mode_probs: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3),
                         shot_range: tuple[float, float] = (1e-4, 1.2e-2),
                         luma_mix_prob: float = 0.5, luma_mix_max: float = 1.0,
                         blur_prob: float = 0.5, blur_sigma_range: tuple[float, float] = (0.4, 1.2),
                         phone_sigma_max: float | None = None, phone_channel_gain_max: float = 1.0,
                         phone_signal_prob: float = 0.0, phone_gamma_range: tuple[float, float] = (1.0, 2.0),
                         unclipped_prob: float = 0.0,
                         return_white: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Noisy sRGB training inputs: camera-like noise, AWGN, or both, per sample.

    Camera-like ("realistic") noise: unprocess the clean photo (no exposure change,
    so brightness is kept), add raw noise with random (shot, read) levels, quantize
    to 10-14 bits, and run the simple ISP back (bilinear demosaic, white balance,
    CCM, sRGB curve, tone curve). The noise is then signal dependent, colour
    correlated (CCM) and spatially correlated (demosaicking). To keep the input
    aligned with the clean target we add only the *difference* the noise makes,
    ``ISP(noisy raw) - ISP(clean raw)``, to the clean photo: bilinear-demosaicking
    artefacts and the clipping of out-of-gamut colours cancel instead of becoming
    "noise" the denoiser would be taught to remove.

    With probability ``luma_mix_prob`` a sample's camera noise then has its channels
    pulled together (:func:`mix_noise_channels`, beta ~ U(0, luma_mix_max)), so both
    signs of cross-channel correlation occur, as in real phone noise.

    AWGN: sigma ~ U(0, sigma_awgn_max) per sample (the classic synthetic benchmark). With
    probability ``blur_prob`` it is spatially correlated (:func:`blur_noise`, sigma
    ~ U(blur_sigma_range) px) and its channels mixed (beta ~ U(0, luma_mix_max)): strong,
    correlated "phone" noise that the simple ISP's noise does not reach. With
    ``phone_sigma_max`` given, a blurred sample's level is ``phone_sigma_max * u`` instead of
    ``sigma_awgn_max * u`` (the same uniform draw u): phone noise can be stronger than the
    AWGN benchmark's range without changing that range.
    With ``phone_channel_gain_max`` > 1, a blurred sample's red and blue noise is then
    scaled over its green by gains ~ U(1, phone_channel_gain_max) each
    (:func:`scale_noise_channels`), as a camera's white balance does. With
    ``phone_signal_prob`` > 0, that share of blurred samples is then made signal dependent
    (:func:`signal_dependent_noise`, gamma ~ U(``phone_gamma_range``)): shot-like, skewed
    and clipped at black, as real phone noise is after the camera's curve.

    Mixture: each sample is "realistic", "AWGN" or "both" (the sum of the two
    noises) with probabilities ``mode_probs``. All random numbers are drawn for
    every sample whatever its mode, so a seed gives the same stream for any mix.

    Clipping: every sample is clipped to [0, 1] as a saved photo is, except, with
    probability ``unclipped_prob``, a plain white AWGN sample (mode AWGN, not blurred):
    the AWGN benchmarks (CBSD68) add their noise in float without clipping, and at
    sigma 50 a model trained only on clipped inputs lost 1.3 dB to values outside [0, 1]
    (``experiments/clipping_check.py``). Its draw is made only when ``unclipped_prob`` > 0,
    so the stream of a seed without it is unchanged.

    Args:
        clean_srgb: (N, 3, H, W) in [0, 1], H and W even.
        generator: randomness.
        sigma_awgn_max: upper bound of the AWGN standard deviation.
        mode_probs: probabilities of (realistic, AWGN, both); need not be normalized.
        shot_range: range of the raw shot-noise level, see :func:`random_noise_levels`.
        luma_mix_prob: share of samples whose camera noise gets its channels mixed.
        luma_mix_max: upper bound of the mixing weight beta.
        blur_prob: share of samples whose Gaussian noise is blurred and channel-mixed.
        blur_sigma_range: range of the blur's standard deviation in pixels.
        phone_sigma_max: upper bound of the blurred samples' noise level (None: ``sigma_awgn_max``).
        phone_channel_gain_max: upper bound of the blurred samples' red and blue gains over green.
        phone_signal_prob: share of blurred samples whose level follows the signal.
        phone_gamma_range: range of those samples' gamma (:func:`signal_dependent_noise`).
        unclipped_prob: share of plain white AWGN samples left unclipped.
        return_white: also return which samples carry plain white AWGN only (CBSD68's noise).
    Returns:
        (N, 3, H, W) noisy sRGB, clipped to [0, 1] but for the unclipped AWGN samples;
        with ``return_white``, also an (N,) bool tensor: the plain white AWGN samples.
    """
    if clean_srgb.ndim != 4 or clean_srgb.shape[1] != 3:
        raise ValueError(f"expected clean_srgb of shape (N, 3, H, W), got {tuple(clean_srgb.shape)}")
    probs = torch.as_tensor(mode_probs, dtype=torch.float64)
    if probs.shape != (3,) or (probs < 0).any() or probs.sum() <= 0:
        raise ValueError(f"expected 3 non-negative mode probabilities, got {mode_probs}")
    if phone_channel_gain_max < 1:
        raise ValueError(f"expected phone_channel_gain_max >= 1, got {phone_channel_gain_max}")
    if not 0 <= unclipped_prob <= 1:
        raise ValueError(f"expected 0 <= unclipped_prob <= 1, got {unclipped_prob}")
    if not 0 <= phone_signal_prob <= 1:
        raise ValueError(f"expected 0 <= phone_signal_prob <= 1, got {phone_signal_prob}")
    n = clean_srgb.shape[0]
    modes = torch.multinomial(probs.float().to(_device(generator) or "cpu"), n, replacement=True,
                              generator=generator).cpu()
    mosaic, metadata = unprocess(clean_srgb, generator, exposure_log2_range=None)
    shot, read = random_noise_levels(n, generator, shot_range)
    noisy_mosaic = quantize(add_raw_noise(mosaic, shot, read, generator), random_bits(n, generator))
    camera_noise = process_mosaic(noisy_mosaic, metadata) - process_mosaic(mosaic, metadata)
    draws = torch.rand(n, 2, generator=generator, device=_device(generator)).cpu()
    beta = torch.where(draws[:, 0] < luma_mix_prob, luma_mix_max * draws[:, 1], torch.zeros(n))
    camera_noise = mix_noise_channels(camera_noise, beta)
    level = torch.rand(n, generator=generator, device=_device(generator)).cpu()  # u: the level in [0, 1)
    unit_noise = add_awgn(torch.zeros_like(clean_srgb), level, generator)
    white_noise = sigma_awgn_max * unit_noise
    draws = torch.rand(n, 3, generator=generator, device=_device(generator)).cpu()
    low, high = blur_sigma_range
    phone_max = sigma_awgn_max if phone_sigma_max is None else phone_sigma_max
    coloured = blur_noise(phone_max * unit_noise, low + (high - low) * draws[:, 1])
    coloured = mix_noise_channels(coloured, luma_mix_max * draws[:, 2])
    if phone_channel_gain_max > 1:  # drawn only when asked, so a seed's stream without it is unchanged
        red_blue = 1 + (phone_channel_gain_max - 1) * torch.rand(n, 2, generator=generator,
                                                                   device=_device(generator)).cpu()
        gains = torch.stack([red_blue[:, 0], torch.ones(n), red_blue[:, 1]], dim=1)
        coloured = scale_noise_channels(coloured, gains.to(coloured.device))
    if phone_signal_prob > 0:  # drawn only when asked, as the gains are
        draws_sd = torch.rand(n, 2, generator=generator, device=_device(generator)).cpu()
        gamma = phone_gamma_range[0] + (phone_gamma_range[1] - phone_gamma_range[0]) * draws_sd[:, 1]
        shaped = signal_dependent_noise(clean_srgb, coloured, gamma.to(coloured.device))
        coloured = torch.where((draws_sd[:, 0] < phone_signal_prob)[:, None, None, None].to(coloured.device),
                               shaped, coloured)
    blurred = (draws[:, 0] < blur_prob)[:, None, None, None].to(clean_srgb.device)
    white_noise = torch.where(blurred, coloured, white_noise)
    use_camera = (modes != 1).to(clean_srgb)[:, None, None, None]
    use_white = (modes != 0).to(clean_srgb)[:, None, None, None]
    noisy = clean_srgb + use_camera * camera_noise + use_white * white_noise
    white = ((modes == 1) & ~blurred.view(n).cpu()).to(clean_srgb.device)
    if unclipped_prob > 0:
        keep = torch.rand(n, generator=generator, device=_device(generator)).cpu() < unclipped_prob
        keep = (keep.to(white.device) & white)[:, None, None, None]
        noisy = torch.where(keep, noisy, noisy.clamp(0.0, 1.0))
    else:
        noisy = noisy.clamp(0.0, 1.0)
    return (noisy, white) if return_white else noisy
