"""Evaluation protocols with the classical baselines run on the same inputs, in the same process.

isp: clean sRGB (cropped to even size) -> inverse sRGB gamma -> RGGB mosaic -> raw
noise of variance ``shot * x + read`` with ln(read) = 2.18 ln(shot) + 1.20 (Brooks'
relation without jitter) at shot in {0 clean, 1e-3 moderate, 1e-2 high}, clipped to
[0, 1], fixed seed per image and level -> method -> clip [0, 1] -> sRGB gamma ->
PSNR / SSIM / MS-SSIM against the clean image, 8-pixel border excluded.

denoise: AWGN sigma in {15, 25, 50}/255 added in float (not clipped, not quantized:
the usual CBSD68 convention) with a fixed seed -> method -> clip [0, 1] -> metrics
(no border). OpenCV NLM needs uint8, so it gets the noisy image clipped and rounded.
Optionally the SIDD pair (noisy.png, gt.png): PSNR of the noisy input and of each method.

Timing: CPU seconds (process time, all threads) and wall seconds per megapixel of
output, of the method call only (for LibRaw: reading the DNG and demosaicking).
Baselines are optional extras; a missing package skips its baseline with a note.
"""
from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .data import add_awgn, add_raw_noise, linear_to_srgb, srgb_to_linear
from .errors import HyperispError
from .metrics import ms_ssim, psnr, ssim
from .raw.bayer import demosaic_bilinear, mosaic_rgb, pack_bayer
from .train.datasets import list_images, read_rgb8

ISP_LEVELS = {"clean": 0.0, "moderate": 1e-3, "high": 1e-2}
DENOISE_SIGMAS = (15, 25, 50)
ISP_BORDER = 8
Method = Callable[[torch.Tensor], torch.Tensor]


def read_variance(shot: float) -> float:
    """Read-noise variance paired with a shot-noise level (Brooks' fit, no jitter); 0 for 0."""
    return 0.0 if shot == 0 else math.exp(2.18 * math.log(shot) + 1.20)


def stable_seed(name: str, level: int = 0) -> int:
    """A fixed seed per (image name, level), independent of --limit, method order and Python's hash salt."""
    return (sum(ord(c) * 31 ** i for i, c in enumerate(name)) + 1009 * level) % (2**31)


def load_eval_images(folder: str | Path, limit: Optional[int] = None) -> list[tuple[str, torch.Tensor]]:
    """(name, (1, 3, H, W) float sRGB in [0, 1]) of the folder's images, sorted, cropped to even size."""
    images = []
    for path in list_images([folder])[:limit]:
        x = read_rgb8(path).float()[None] / 255.0
        h, w = x.shape[-2:]
        images.append((path.name, x[..., : h - h % 2, : w - w % 2]))
    return images


# --- isp methods: (1, 1, H, W) linear RGGB mosaic -> (1, 3, H, W) linear RGB -------------------

def model_method(model: torch.nn.Module, task: str) -> Method:
    @torch.no_grad()
    def run(x: torch.Tensor) -> torch.Tensor:
        return model(pack_bayer(x) if task == "isp" else x)
    return run


def bilinear_method(mosaic: torch.Tensor) -> torch.Tensor:
    return demosaic_bilinear(pack_bayer(mosaic))


def menon_method(mosaic: torch.Tensor) -> torch.Tensor:
    """Menon et al. 2007 (DDFAPD) via colour-demosaicing (optional extra 'baselines')."""
    from colour_demosaicing import demosaicing_CFA_Bayer_Menon2007

    rgb = demosaicing_CFA_Bayer_Menon2007(mosaic[0, 0].double().numpy(), "RGGB")
    return torch.from_numpy(np.ascontiguousarray(rgb)).float().permute(2, 0, 1)[None]


def _menon_factory() -> Method:
    import colour_demosaicing  # noqa: F401  (fail here, before the loop, when it is missing)

    return menon_method


def libraw_method(tmp: Path) -> Method:
    """LibRaw's AHD via rawpy on the mosaic written as a 16-bit DNG with identity colour.

    output_color=raw, unit white balance, linear gamma and no auto-brightening keep
    LibRaw's output in the mosaic's own linear space, so it is comparable pixel for pixel.
    adjust_maximum_thr=0 matters: by default LibRaw rescales the image so that its
    brightest pixel is white whenever that pixel exceeds 75 % of the white level,
    which a noisy mosaic often does (a 1.33x gain was seen: -13 dB).
    """
    import rawpy

    from .raw.dng import write_dng

    def run(mosaic: torch.Tensor) -> torch.Tensor:
        path = tmp / "eval.dng"
        values = np.round(mosaic[0, 0].clamp(0, 1).numpy() * 65535).astype(np.uint16)
        write_dng(path, values, white_level=65535, as_shot_neutral=(1.0, 1.0, 1.0), color_matrix=np.eye(3))
        start = time.process_time(), time.perf_counter()
        with rawpy.imread(str(path)) as raw:
            rgb = raw.postprocess(demosaic_algorithm=rawpy.DemosaicAlgorithm.AHD, output_color=rawpy.ColorSpace.raw,
                                  gamma=(1, 1), no_auto_bright=True, user_wb=[1.0, 1.0, 1.0, 1.0], output_bps=16,
                                  user_flip=0, adjust_maximum_thr=0.0)
        run.timing = (time.process_time() - start[0], time.perf_counter() - start[1])
        return torch.from_numpy(rgb.astype(np.float32) / 65535).permute(2, 0, 1)[None]
    return run


# --- denoise baselines: (1, 3, H, W) noisy sRGB -> (1, 3, H, W) ----------------------------------

NLM_H_PER_SIGMA = 0.6


def nlm_method(sigma255: float, h_per_sigma: float = NLM_H_PER_SIGMA) -> Method:
    """OpenCV fastNlMeansDenoisingColored, h = hColor = 0.6 sigma (8-bit units), windows 7 / 21.

    Why 0.6: of 0.4, 0.6, 0.8 and 1.0 sigma it scored best at every sigma (15, 25, 50) on
    the first 3 CBSD68 images (h = sigma is 2-3 dB worse), so the baseline is not handicapped.
    Real (spatially correlated) noise needs more: the SIDD pair uses h = 1.0 x its measured std
    (22.7 dB there, against 20.2 dB at 0.6).
    """
    import cv2

    h = h_per_sigma * float(sigma255)

    def run(noisy: torch.Tensor) -> torch.Tensor:
        image = np.round(noisy[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        out = cv2.fastNlMeansDenoisingColored(image, None, h, h, 7, 21)
        return torch.from_numpy(out).float().permute(2, 0, 1)[None] / 255
    return run


def bm3d_method(sigma: float) -> Method:
    """BM3D (package bm3d, colour version) with the true sigma on the [0, 1] scale."""
    import bm3d

    def run(noisy: torch.Tensor) -> torch.Tensor:
        out = bm3d.bm3d_rgb(noisy[0].permute(1, 2, 0).double().numpy(), sigma)
        return torch.from_numpy(np.ascontiguousarray(out)).float().permute(2, 0, 1)[None]
    return run


# --- bookkeeping ------------------------------------------------------------------------------

class Scores:
    """Per (method, level) sums of PSNR, SSIM, MS-SSIM, CPU and wall seconds, megapixels."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, float]] = {}

    def add(self, method: str, level: str, pred: torch.Tensor, clean: torch.Tensor, border: int,
            cpu_s: float, wall_s: float) -> None:
        row = self.rows.setdefault((method, level), {"n": 0, "psnr": 0.0, "ssim": 0.0, "ms_ssim": 0.0,
                                                     "cpu_s": 0.0, "wall_s": 0.0, "mp": 0.0})
        row["n"] += 1
        row["psnr"] += float(psnr(pred, clean, border=border))
        row["ssim"] += float(ssim(pred, clean, border=border))
        row["ms_ssim"] += float(ms_ssim(pred, clean, border=border))
        row["cpu_s"] += cpu_s
        row["wall_s"] += wall_s
        row["mp"] += pred.shape[-2] * pred.shape[-1] / 1e6

    def table(self) -> list[dict[str, object]]:
        """One dict per (method, level): means and s/MP."""
        return [{"method": m, "level": lv, "images": r["n"], "psnr": r["psnr"] / r["n"], "ssim": r["ssim"] / r["n"],
                 "ms_ssim": r["ms_ssim"] / r["n"], "cpu_s_per_mp": r["cpu_s"] / r["mp"],
                 "wall_s_per_mp": r["wall_s"] / r["mp"]} for (m, lv), r in self.rows.items()]


def _timed(method: Method, x: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    out = method(x)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if hasattr(method, "timing"):  # the method timed its own core (LibRaw: without writing the DNG)
        cpu, wall = method.timing
    return out.float().clamp(0, 1), cpu, wall


def _baselines(names: Sequence[str], factories: dict[str, Callable[[], Method]], notes: list[str]
               ) -> dict[str, Method]:
    methods = {}
    for name in names:
        if name not in factories:
            raise HyperispError(None, f"unknown baseline {name!r}; expected some of {sorted(factories)}")
        try:
            methods[name] = factories[name]()
        except ImportError as error:
            notes.append(f"baseline {name} skipped: {error.name} is not installed (pip install hyperisp[baselines])")
    return methods


def protocol_mosaic(name: str, clean: torch.Tensor, index: int, shot: float) -> torch.Tensor:
    """The isp protocol's input for image ``name`` at level ``index``: (1, 3, H, W) clean sRGB ->
    (1, 1, H, W) linear RGGB mosaic with raw noise at ``shot`` (none at 0), seeded per image and level."""
    mosaic = mosaic_rgb(srgb_to_linear(clean))
    if shot <= 0:
        return mosaic
    return add_raw_noise(mosaic, shot, read_variance(shot), torch.Generator().manual_seed(stable_seed(name, index)))


def protocol_awgn(name: str, clean: torch.Tensor, index: int, sigma: float) -> torch.Tensor:
    """The denoise protocol's input for image ``name`` at level ``index``: AWGN of ``sigma`` (8-bit levels).

    (1, 3, H, W) -> (1, 3, H, W), not clipped (the CBSD68 convention), seeded per image and level."""
    return add_awgn(clean, sigma / 255, torch.Generator().manual_seed(stable_seed(name, index)))


def evaluate_isp(model: Optional[torch.nn.Module], folder: str | Path, limit: Optional[int] = None,
                 baselines: Sequence[str] = ("bilinear", "menon", "libraw"), model_name: str = "model",
                 levels: dict[str, float] = ISP_LEVELS) -> tuple[list[dict[str, object]], list[str]]:
    """Run the isp protocol; returns (rows of means per method and level, notes)."""
    notes: list[str] = []
    scores = Scores()
    with tempfile.TemporaryDirectory() as tmp:
        factories = {"bilinear": lambda: bilinear_method, "menon": _menon_factory,
                     "libraw": lambda: libraw_method(Path(tmp))}
        methods = ({model_name: model_method(model, "isp")} if model is not None else {})
        methods.update(_baselines(baselines, factories, notes))
        for name, clean in load_eval_images(folder, limit):
            for index, (level, shot) in enumerate(levels.items()):
                noisy = protocol_mosaic(name, clean, index, shot)
                for method_name, method in methods.items():
                    pred, cpu, wall = _timed(method, noisy)
                    scores.add(method_name, level, linear_to_srgb(pred), clean, ISP_BORDER, cpu, wall)
    return scores.table(), notes


def without_mean_offset(image: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) ``image`` less its per-channel mean offset to ``clean``, clipped to [0, 1].

    The SIDD pair's noisy crop is 6 to 10 levels darker than its ground truth: the camera's
    shift, not noise, which a denoiser (keeping the mean) carries into its output and which then
    dominates the pair's PSNR. Scored without it, the pair measures what the noise removal did."""
    return (image - (image - clean).mean(dim=(2, 3), keepdim=True)).clamp(0, 1)


def evaluate_denoise(model: Optional[torch.nn.Module], folder: Optional[str | Path], limit: Optional[int] = None,
                     baselines: Sequence[str] = ("nlm", "bm3d"), bm3d_limit: int = 3, model_name: str = "model",
                     sigmas: Sequence[int] = DENOISE_SIGMAS, sidd: Optional[str | Path] = None
                     ) -> tuple[list[dict[str, object]], list[str]]:
    """AWGN on a folder (and/or the SIDD pair); BM3D only on the first ``bm3d_limit`` images."""
    notes: list[str] = []
    scores = Scores()
    images = load_eval_images(folder, limit) if folder else []
    for index, sigma in enumerate(sigmas):
        factories = {"nlm": lambda: nlm_method(sigma), "bm3d": lambda: bm3d_method(sigma / 255)}
        methods = ({model_name: model_method(model, "denoise")} if model is not None else {})
        methods.update(_baselines(baselines, factories, notes if index == 0 else []))
        for i, (name, clean) in enumerate(images):
            noisy = protocol_awgn(name, clean, index, sigma)
            scores.add("noisy", f"sigma{sigma}", noisy.clamp(0, 1), clean, 0, 0.0, 0.0)
            for method_name, method in methods.items():
                if method_name == "bm3d" and i >= bm3d_limit:
                    continue
                pred, cpu, wall = _timed(method, noisy)
                scores.add(method_name, f"sigma{sigma}", pred, clean, 0, cpu, wall)
    if images and "bm3d" in baselines and len(images) > bm3d_limit:
        notes.append(f"bm3d ran on the first {bm3d_limit} images only (slow); compare it with the others on those")
    if sidd is not None:
        noisy_path, gt_path = Path(sidd) / "noisy.png", Path(sidd) / "gt.png"
        noisy, clean = read_rgb8(noisy_path).float()[None] / 255, read_rgb8(gt_path).float()[None] / 255
        scores.add("noisy", "sidd", noisy, clean, 0, 0.0, 0.0)
        scores.add("noisy", "sidd_mean_fixed", without_mean_offset(noisy, clean), clean, 0, 0.0, 0.0)
        methods = ({model_name: model_method(model, "denoise")} if model is not None else {})
        # Real noise has no single sigma: the baselines get the pair's measured noise level.
        measured = float((noisy - clean).std()) * 255
        methods.update(_baselines(baselines, {"nlm": lambda: nlm_method(measured, 1.0),
                                              "bm3d": lambda: bm3d_method(measured / 255)}, []))
        for method_name, method in methods.items():
            pred, cpu, wall = _timed(method, noisy)
            scores.add(method_name, "sidd", pred, clean, 0, cpu, wall)
            scores.add(method_name, "sidd_mean_fixed", without_mean_offset(pred, clean), clean, 0, cpu, wall)
        notes.append(f"sidd: baselines given the pair's measured noise std {measured:.1f}/255")
    return scores.table(), notes
