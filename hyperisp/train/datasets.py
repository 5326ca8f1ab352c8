"""Synthetic training batches from folders of clean sRGB photos.

The photos are decoded once and kept in RAM as uint8 (the train folders hold a
few hundred images, ~0.5 GB at most). Every batch is drawn from one
``torch.Generator`` so a run is reproducible and resumes exactly.

isp:     random photo crop -> flips + 1-px phase offsets -> unprocess (random camera)
         -> raw noise (20 % clean) -> ADC quantization -> packed RGGB input;
         target = clean linear camera RGB (N, 3, H, W), plus the camera parameters
         that develop it (the loss compares developed images).
denoise: random crop + flips -> srgb_realistic_noise -> noisy input; target = clean sRGB.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ..data import (add_raw_noise, quantize, random_bits, random_metadata, random_noise_levels, random_phase_crop,
                    srgb_realistic_noise, srgb_to_linear, unprocess)
from ..errors import HyperispError
from ..io.images import PHOTO_EXTENSIONS, list_photos
from ..raw.bayer import mosaic_rgb, pack_bayer

def list_images(folders: Sequence[str | Path]) -> list[Path]:
    """All photos (:data:`~hyperisp.io.images.PHOTO_EXTENSIONS`) under the folders (recursive), sorted
    for reproducibility."""
    paths: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise HyperispError(folder, "not a folder of training photos")
        paths += list_photos(folder)
    if not paths:
        raise HyperispError(folders[0] if folders else None, f"no images ({', '.join(PHOTO_EXTENSIONS)}) found")
    return paths


def read_rgb8(path: Path) -> torch.Tensor:
    """Decode a photo with Pillow -> (3, H, W) uint8 (lossless WebP included)."""
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as error:
        raise HyperispError(path, f"unreadable image ({error})") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


class ImageCache:
    """Photos decoded once and held as (3, H, W) uint8 tensors; images smaller than ``min_size`` are skipped."""

    def __init__(self, paths: Sequence[Path], min_size: int = 0) -> None:
        self.paths, self.images = [], []
        for path in paths:
            image = read_rgb8(path)
            if min(image.shape[-2:]) >= min_size:
                self.paths.append(path)
                self.images.append(image)
        if not self.images:
            raise HyperispError(paths[0] if paths else None, f"no image is at least {min_size} px on each side")

    def __len__(self) -> int:
        return len(self.images)

    def random_crops(self, n: int, size: int, generator: torch.Generator, group: int = 1) -> torch.Tensor:
        """(n, 3, size, size) float crops in [0, 1] from random images, with random flips and offsets.

        A (size + 2)-pixel window is cut first; :func:`random_phase_crop` then flips it
        and picks the final offset, so both CFA phases of the scene occur. ``group``: each
        run of that many consecutive crops comes from one image (at independent positions),
        like the cells of one photo; n must be a multiple of it.
        """
        if group < 1 or n % group:
            raise ValueError(f"expected a number of crops that is a multiple of the group {group}, got {n}")
        picks = torch.randint(len(self.images), (n // group,), generator=generator).tolist()
        windows = []
        for index in picks:
            image = self.images[index]
            h, w = image.shape[-2:]
            window = min(size + 2, h, w)
            for _ in range(group):
                top = int(torch.randint(h - window + 1, (1,), generator=generator))
                left = int(torch.randint(w - window + 1, (1,), generator=generator))
                windows.append(image[:, top:top + window, left:left + window])
        batch = torch.stack(windows).float() / 255.0
        return random_phase_crop(batch, generator, (size, size))


def split_holdout(paths: Sequence[Path], n_val: int, seed: int) -> tuple[list[Path], list[Path]]:
    """(train, validation) split: ``n_val`` images chosen with ``seed``, never trained on."""
    paths = list(paths)
    if n_val <= 0:
        return paths, []
    if n_val >= len(paths):
        raise HyperispError(None, f"cannot hold out {n_val} of {len(paths)} images for validation")
    order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed)).tolist()
    held = set(order[:n_val])
    return [p for i, p in enumerate(paths) if i not in held], [p for i, p in enumerate(paths) if i in held]


def identity_camera(metadata: dict[str, torch.Tensor], keep: torch.Tensor) -> dict[str, torch.Tensor]:
    """Camera parameters with the samples where ``keep`` is False set to the identity camera
    (gains 1, exposure 1, cam2rgb = I), for mosaics made straight from linear sRGB."""
    out = {}
    for key in ("red_gain", "blue_gain", "rgb_gain", "exposure"):
        out[key] = torch.where(keep, metadata[key], torch.ones_like(metadata[key]))
    eye = torch.eye(3).expand_as(metadata["cam2rgb"])
    out["cam2rgb"] = torch.where(keep[:, None, None], metadata["cam2rgb"], eye)
    return out


def per_group(values: torch.Tensor, group: int) -> torch.Tensor:
    """Per-photo values (n, ...) -> per-crop (n * group, ...), each repeated for its photo's crops."""
    return values.repeat_interleave(group, dim=0)


class IspSampler:
    """Batches of (packed noisy RAW (N, 4, c/2, c/2), clean linear camera RGB (N, 3, c, c),
    camera parameters): the last is a dict for :func:`hyperisp.data.process` (red_gain,
    blue_gain, rgb_gain, exposure (N,), cam2rgb (N, 3, 3)) that develops the target.

    Args:
        cache: the photos.
        crop: full-resolution crop size c (even).
        batch: N.
        shot_range: range of the shot-noise variance (log-uniform, Brooks et al.).
        clean_fraction: share of samples without noise (the "clean" eval level).
        protocol_fraction: share of samples built like the eval protocol (linear sRGB as
            camera RGB: no random colour matrix, gains or tone curve), so the network also
            sees the identity-colour mosaics it is scored on.
        group: runs of this many crops are one "photo": crops of one image, with one camera,
            noise level and bit depth (to score filters shared per photo: experiments/photo_pooling.py).
    """

    def __init__(self, cache: ImageCache, crop: int = 128, batch: int = 8,
                 shot_range: tuple[float, float] = (1e-4, 1.2e-2), clean_fraction: float = 0.2,
                 protocol_fraction: float = 0.25, group: int = 1) -> None:
        if crop % 2:
            raise ValueError(f"expected an even crop size, got {crop}")
        if group < 1 or batch % group:
            raise ValueError(f"expected a batch ({batch}) that is a multiple of the group ({group})")
        self.cache, self.crop, self.batch, self.group = cache, crop, batch, group
        self.shot_range, self.clean_fraction, self.protocol_fraction = shot_range, clean_fraction, protocol_fraction

    def sample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        g, photos = self.group, self.batch // self.group
        srgb = self.cache.random_crops(self.batch, self.crop, generator, g)
        camera = {k: per_group(v, g) for k, v in random_metadata(photos, generator).items()}
        mosaic, metadata = unprocess(srgb, metadata=camera)
        target = metadata["clean_cam"]
        # Draw every random number for every sample, whatever its mode: a fixed stream per seed.
        protocol = per_group(torch.rand(photos, generator=generator) < self.protocol_fraction, g)
        if protocol.any():
            linear = srgb_to_linear(srgb).clamp(0.0, 1.0)
            target = torch.where(protocol[:, None, None, None], linear, target)
            mosaic = mosaic_rgb(target)
        shot, read = (per_group(v, g) for v in random_noise_levels(photos, generator, self.shot_range))
        clean = per_group(torch.rand(photos, generator=generator) < self.clean_fraction, g)
        shot, read = shot.masked_fill(clean, 0.0), read.masked_fill(clean, 0.0)
        noisy = quantize(add_raw_noise(mosaic, shot, read, generator), per_group(random_bits(photos, generator), g))
        return pack_bayer(noisy), target, identity_camera(metadata, ~protocol)


class DenoiseSampler:
    """Batches of (noisy sRGB (N, 3, c, c), clean sRGB (N, 3, c, c)) with :func:`srgb_realistic_noise`.

    ``noise``: keyword arguments of :func:`srgb_realistic_noise` (e.g. ``phone_sigma_max``,
    ``mode_probs``, ``blur_prob``); its defaults otherwise. ``mark_white``: batches carry a third
    element, {"white_awgn": (N,) bool}, the samples with plain white AWGN only (for distillation).
    """

    def __init__(self, cache: ImageCache, crop: int = 128, batch: int = 8, mark_white: bool = False,
                 **noise) -> None:
        self.cache, self.crop, self.batch, self.mark_white, self.noise = cache, crop, batch, mark_white, noise

    def sample(self, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        clean = self.cache.random_crops(self.batch, self.crop, generator)
        noisy, white = srgb_realistic_noise(clean, generator, return_white=True, **self.noise)
        return (noisy, clean, {"white_awgn": white}) if self.mark_white else (noisy, clean)


def make_sampler(task: str, data: Sequence[str | Path], crop: int, batch: int, val_images: int = 0,
                 seed: int = 0, **options) -> tuple[object, object | None]:
    """(training sampler, validation sampler or None) for a task and its data folders.

    The data layout is detected: a ZRR folder (huawei_raw/ + canon/), a SIDD-Medium
    folder (Data/*/NOISY_SRGB_*.PNG), or folders of clean photos (synthetic data).
    ``val_images`` files are held out of training for validation (chosen with ``seed``).
    """
    from .real_data import SiddSampler, ZrrSampler, is_sidd, is_zrr, sidd_pairs, zrr_pairs

    roots = [Path(d) for d in data]
    if len(roots) == 1 and is_zrr(roots[0]):
        if task != "isp":
            raise HyperispError(roots[0], "a ZRR folder trains the isp task")
        train_pairs, val_pairs = split_holdout(zrr_pairs(roots[0]), val_images, seed)
        return ZrrSampler(train_pairs, crop, batch), (ZrrSampler(val_pairs, crop, len(val_pairs)) if val_pairs else None)
    if len(roots) == 1 and is_sidd(roots[0]):
        if task != "denoise":
            raise HyperispError(roots[0], "a SIDD folder trains the denoise task")
        train_pairs, val_pairs = split_holdout(sidd_pairs(roots[0]), val_images, seed)
        return SiddSampler(train_pairs, crop, batch), (SiddSampler(val_pairs, crop, len(val_pairs)) if val_pairs else None)
    train_paths, val_paths = split_holdout(list_images(roots), val_images, seed)
    build = {"isp": IspSampler, "denoise": DenoiseSampler}.get(task)
    if build is None:
        raise HyperispError(None, f"unknown task {task!r}; expected isp or denoise")
    train_sampler = build(ImageCache(train_paths, crop + 2), crop, batch, **options)
    val_sampler = build(ImageCache(val_paths, crop + 2), crop, len(val_paths), **options) if val_paths else None
    return train_sampler, val_sampler
