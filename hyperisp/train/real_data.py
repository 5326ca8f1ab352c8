"""Loaders for the papers' real data, so owners can reproduce them.

ZRR (Zurich RAW to RGB, Ignatov et al. 2020): ``huawei_raw/<i>.png`` (448x448
16-bit PNG, 10-bit Bayer, RGGB with R at (0, 0)) and ``canon/<i>.jpg`` (448x448
sRGB). PyNET packs the raw as (B, Gb, R, Gr) = raw[1::2,1::2], raw[0::2,1::2],
raw[0::2,0::2], raw[1::2,0::2] scaled by 1/(4*255) (SPEC §3). Our networks take
canonical (R, Gr, Gb, B) (``raw/bayer.py``); :func:`pynet_pack` gives PyNET's order.
Note that the Canon target is a whole-ISP result (white balance, colour, tone), so
the paper's sigmoid-output configs (hyperunet_*) fit it, not the residual isp_small.

SIDD-Medium sRGB: ``Data/<scene>/NOISY_SRGB_010.PNG`` with ``GT_SRGB_010.PNG``
(and ``_011``), 8-bit sRGB pairs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import HyperispError
from ..raw.bayer import pack_bayer
from .datasets import read_rgb8

ZRR_SCALE = 4 * 255  # PyNET: 10-bit values scaled by 1/(4*255)


def is_zrr(root: Path) -> bool:
    return (root / "huawei_raw").is_dir() and (root / "canon").is_dir()


def is_sidd(root: Path) -> bool:
    return (root / "Data").is_dir()


def zrr_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """(raw png, canon jpg) pairs of a ZRR folder, sorted by number; unpaired files are skipped."""
    root = Path(root)
    if not is_zrr(root):
        raise HyperispError(root, "not a ZRR folder (expected huawei_raw/ and canon/)")
    pairs = []
    for raw in sorted((root / "huawei_raw").glob("*.png"), key=lambda p: (len(p.stem), p.stem)):
        jpg = root / "canon" / f"{raw.stem}.jpg"
        if jpg.is_file():
            pairs.append((raw, jpg))
    if not pairs:
        raise HyperispError(root, "no huawei_raw/<i>.png with a matching canon/<i>.jpg")
    return pairs


def read_zrr_raw(path: Path) -> np.ndarray:
    """(H, W) float32 raw mosaic of a ZRR PNG, scaled by 1/(4*255) as in PyNET."""
    try:
        with Image.open(path) as image:
            raw = np.asarray(image).astype(np.float32)
    except OSError as error:
        raise HyperispError(path, f"unreadable raw PNG ({error})") from None
    if raw.ndim != 2 or raw.shape[0] % 2 or raw.shape[1] % 2:
        raise HyperispError(path, f"expected a single-channel Bayer PNG of even size, got shape {raw.shape}")
    return raw / ZRR_SCALE


def pynet_pack(raw: np.ndarray) -> np.ndarray:
    """PyNET's packing: (H, W) -> (4, H/2, W/2) in channel order (B, Gb, R, Gr)."""
    return np.stack([raw[1::2, 1::2], raw[0::2, 1::2], raw[0::2, 0::2], raw[1::2, 0::2]])


class ZrrSampler:
    """Random aligned crops of ZRR pairs: (packed (N, 4, c/2, c/2) canonical RGGB, sRGB (N, 3, c, c))."""

    target_is_srgb = True  # the Canon JPEG: the trainer compares it to the output as it is

    def __init__(self, pairs: Sequence[tuple[Path, Path]], crop: int = 448, batch: int = 8) -> None:
        if crop % 2:
            raise ValueError(f"expected an even crop size, got {crop}")
        self.crop, self.batch = crop, batch
        self.raws = [torch.from_numpy(read_zrr_raw(r))[None] for r, _ in pairs]
        self.targets = [read_rgb8(j) for _, j in pairs]
        for (raw_path, _), raw, target in zip(pairs, self.raws, self.targets):
            if raw.shape[-2:] != target.shape[-2:] or min(raw.shape[-2:]) < crop:
                raise HyperispError(raw_path, f"raw {tuple(raw.shape[-2:])} and JPEG {tuple(target.shape[-2:])} "
                                              f"must match and be at least {crop} px")

    def sample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        picks = torch.randint(len(self.raws), (self.batch,), generator=generator).tolist()
        inputs, targets = [], []
        for i in picks:
            h, w = self.raws[i].shape[-2:]
            # Even offsets keep the CFA phase (R at (0, 0)).
            top = 2 * int(torch.randint((h - self.crop) // 2 + 1, (1,), generator=generator))
            left = 2 * int(torch.randint((w - self.crop) // 2 + 1, (1,), generator=generator))
            inputs.append(self.raws[i][:, top:top + self.crop, left:left + self.crop])
            targets.append(self.targets[i][:, top:top + self.crop, left:left + self.crop])
        return pack_bayer(torch.stack(inputs)), torch.stack(targets).float() / 255.0


def sidd_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """(noisy, ground truth) PNG pairs of a SIDD-Medium sRGB folder (``Data/<scene>/...``)."""
    root = Path(root)
    if not is_sidd(root):
        raise HyperispError(root, "not a SIDD-Medium folder (expected Data/<scene>/NOISY_SRGB_*.PNG)")
    pairs = []
    for noisy in sorted((root / "Data").glob("*/NOISY_SRGB_*.PNG")):
        gt = noisy.with_name(noisy.name.replace("NOISY", "GT"))
        if gt.is_file():
            pairs.append((noisy, gt))
    if not pairs:
        raise HyperispError(root, "no NOISY_SRGB_*.PNG with a matching GT_SRGB_*.PNG under Data/")
    return pairs


class SiddSampler:
    """Random aligned crops with flips of SIDD pairs: (noisy (N, 3, c, c), clean (N, 3, c, c)) in [0, 1]."""

    def __init__(self, pairs: Sequence[tuple[Path, Path]], crop: int = 128, batch: int = 8) -> None:
        self.crop, self.batch = crop, batch
        self.pairs = [(read_rgb8(n), read_rgb8(g)) for n, g in pairs]
        for (path, _), (noisy, gt) in zip(pairs, self.pairs):
            if noisy.shape != gt.shape or min(noisy.shape[-2:]) < crop:
                raise HyperispError(path, f"noisy {tuple(noisy.shape)} and GT {tuple(gt.shape)} must match "
                                          f"and be at least {crop} px")

    def sample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        picks = torch.randint(len(self.pairs), (self.batch,), generator=generator).tolist()
        noisy_crops, clean_crops = [], []
        for i in picks:
            noisy, gt = self.pairs[i]
            h, w = noisy.shape[-2:]
            top = int(torch.randint(h - self.crop + 1, (1,), generator=generator))
            left = int(torch.randint(w - self.crop + 1, (1,), generator=generator))
            flips = [d for d, f in zip((-1, -2), torch.rand(2, generator=generator) < 0.5) if f]
            pair = torch.stack([noisy, gt])[..., top:top + self.crop, left:left + self.crop]
            pair = pair.flip(flips) if flips else pair
            noisy_crops.append(pair[0])
            clean_crops.append(pair[1])
        return torch.stack(noisy_crops).float() / 255.0, torch.stack(clean_crops).float() / 255.0
