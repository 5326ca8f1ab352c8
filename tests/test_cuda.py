"""The CUDA path: exact tiles in fp32, fp16 autocast close to the CPU's fp32, training steps.

Skipped without a GPU (CI has none). `experiments/device_check.sh` runs them on a lent GPU;
they need no rawpy (Bayer arrays go straight into develop()).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hyperisp
from hyperisp.bench import run_bench, synthetic_mosaic
from hyperisp.models import create_model
from hyperisp.tiling import run_tiled

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TOL = 1e-4  # issue 4's exactness bound, on [0, 1] outputs
# fp16 autocast against the CPU's fp32 on developed / denoised photos in [0, 1]: about
# 10 bits of mantissa in every conv, so differences of a few 1e-3 and well under 1/255 on average.
FP16_MAX, FP16_MEAN = 2e-2, 2e-3


@pytest.fixture
def no_tf32():
    """fp32 convs and matmuls on CUDA default to TF32 (10-bit mantissa): not the fp32 the bound is for."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize("config, channels", [("isp_refine2", 4), ("vdn", 3)])
def test_tiles_equal_whole_image_on_cuda_in_fp32(no_tf32, config, channels):
    torch.manual_seed(0)
    small = {"n_fwd": 8, "n_embed": 4, "n_hid": 32} if channels == 4 else {"base_channels": 8, "snet_channels": 8}
    model = create_model(config, **small).eval().cuda()
    with torch.no_grad():
        for block in getattr(model, "refine", []):
            block.scale.fill_(0.5)  # refinement blocks start as the identity: make them count
        if channels == 3:
            model.dnet.last.weight.normal_(0, 0.1)  # VDN's D-Net starts at zero: make it count
    x = torch.rand(1, channels, 301, 283, generator=torch.Generator().manual_seed(1)).cuda()
    with torch.no_grad():
        whole = model(x)
    tiled = run_tiled(model, x, tile=64 if channels == 4 else 32)
    assert tiled.is_cuda and tiled.shape == whole.shape
    assert (tiled - whole).abs().max().item() < TOL


def _close_in_fp16(cuda: np.ndarray, cpu: np.ndarray) -> None:
    diff = np.abs(cuda.astype(np.float64) - cpu)
    assert cuda.shape == cpu.shape and cuda.dtype == np.float32
    assert diff.max() < FP16_MAX and diff.mean() < FP16_MEAN, (diff.max(), diff.mean())


def test_develop_on_cuda_matches_the_cpu():
    """Shipped isp, fp16 autocast, tiled (odd size, 128-pixel tiles) and whole, against the CPU."""
    mosaic = synthetic_mosaic(331, 457, seed=2)
    options = dict(cfa_phase="GRBG", black_level=512, white_level=16383)
    cpu = hyperisp.develop(mosaic, device="cpu", tile=0, **options)
    for tile in (0, 128):
        _close_in_fp16(hyperisp.develop(mosaic, device="cuda", tile=tile, **options), cpu)


def test_denoise_on_cuda_matches_the_cpu():
    rng = np.random.default_rng(3)
    image = np.clip(0.5 + 0.2 * np.sin(np.arange(237)[:, None, None] / 9) + rng.normal(0, 0.08, (237, 301, 3)), 0, 1)
    cpu = hyperisp.denoise(image.astype(np.float32), device="cpu", tile=0)
    for tile in (0, 64):
        _close_in_fp16(hyperisp.denoise(image.astype(np.float32), device="cuda", tile=tile), cpu)


@pytest.mark.parametrize("task", ["isp", "denoise"])
def test_training_steps_run_on_cuda(tiny_config, tmp_path, task):
    from hyperisp.train.trainer import TrainConfig, train

    config = tiny_config(task, iters=4, validate_every=2, checkpoint_every=2)
    result = train(config, tmp_path / task, device="cuda", progress=False)
    assert result["iteration"] == 4 and np.isfinite(result["last_loss"]) and np.isfinite(result["val_psnr"])
    resumed = train(TrainConfig(iters=6), tmp_path / task, resume=True, device="cuda", progress=False)
    assert resumed["iteration"] == 6


def test_bench_reports_throughput_and_gpu_memory_on_cuda():
    report = run_bench("isp", megapixels=0.5, device="cuda", baselines=False, isolate=False, repeats=1)
    (case,) = report["cases"]
    assert report["device"] == "cuda" and report["matmul_peak_gflops"] is None
    assert case["mp_per_s"] > 0 and case["peak_fraction"] is None and 0 < case["peak_gpu_mb"] < 140 * 1024
