"""Burst-denoising evaluation (paper B Table 1 protocol, SPEC §6), re-runnable on any folder of photos.

Protocol: each photo (sorted by name, ``limit`` first) is greyed (Rec. 709 luma of its
sRGB values) and turned into an 8-frame burst exactly like the training data
(:func:`hyperisp.data.burst.synthesize_bursts`: centre crop ``size`` x ``size``, random
small/rare large shifts, read/shot noise levels drawn from the SPEC ranges), with a fixed
seed per image so every method sees the same bursts. Each method maps the linear burst
to a linear reference frame; the result is gamma-encoded (sRGB curve), clipped to [0, 1]
and scored by PSNR against the clean grey sRGB crop.

Methods: "single frame" (the noisy reference frame itself), "mean of frames" (unaligned
average), and any burst model. Per model, :func:`largest_layer` measures the widest
full-resolution activation (channels x H x W) and :func:`peak_memory_mb` the peak
extra resident memory of one CPU forward pass.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Mapping, Optional

import numpy as np
import torch

from .data.burst import load_grey, synthesize_bursts
from .data.unprocess import linear_to_srgb
from .errors import HyperispError
from .evaluate import stable_seed
from .io.images import list_photos
from .metrics import ms_ssim, psnr, ssim

EVAL_SIZE = 256
EVAL_FRAMES = 8
Method = Callable[[torch.Tensor], torch.Tensor]  # (1, T, H, W) linear -> (1, 1, H, W) linear




def make_test_bursts(folder: str | Path, limit: Optional[int] = None, size: int = EVAL_SIZE,
                     frames: int = EVAL_FRAMES, shot_variance: bool = False
                     ) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """(name, synthesize_bursts output for that photo) for the folder's photos, fixed seed per photo."""
    paths = list_photos(folder)[:limit]
    if not paths:
        raise HyperispError(folder, "no PNG, JPEG, TIFF or WebP photos found")
    bursts = []
    for path in paths:
        grey = torch.from_numpy(load_grey(path))
        if min(grey.shape) < size + 32:
            raise HyperispError(path, f"photo is smaller than the {size + 32} px the {size} px test bursts need")
        g = torch.Generator().manual_seed(stable_seed(path.name))
        bursts.append((path.name, synthesize_bursts(grey[None], frames, size, g, shot_variance)))
    return bursts


def baseline_methods() -> dict[str, Method]:
    return {"single frame": lambda b: b[:, :1], "mean of frames": lambda b: b.mean(1, keepdim=True)}


def evaluate_burst(methods: Mapping[str, Method], data: str | Path, limit: Optional[int] = None,
                   size: int = EVAL_SIZE, shot_variance: bool = False) -> list[dict]:
    """Mean PSNR (after the sRGB gamma) of each method over the test bursts of ``data``.

    ``shot_variance`` picks Mildenhall's noise form (see :mod:`hyperisp.data.burst`).
    Returns rows {"method", "images", "psnr", "ssim", "ms_ssim", "wall_s_per_mp"}.
    """
    bursts = make_test_bursts(data, limit, size, shot_variance=shot_variance)
    rows = []
    for name, method in methods.items():
        scores, seconds = {"psnr": [], "ssim": [], "ms_ssim": []}, 0.0
        for _, b in bursts:
            start = time.perf_counter()
            with torch.inference_mode():
                out = method(b["noisy"])
            seconds += time.perf_counter() - start
            x, y = linear_to_srgb(out).clamp(0, 1), linear_to_srgb(b["clean"]).clamp(0, 1)
            for key, metric in (("psnr", psnr), ("ssim", ssim), ("ms_ssim", ms_ssim)):
                scores[key].append(float(metric(x, y)))
        rows.append({"method": name, "images": len(bursts), **{k: float(np.mean(v)) for k, v in scores.items()},
                     "wall_s_per_mp": seconds / (len(bursts) * size * size / 1e6)})
    return rows


def run_burst_eval(data: str | Path, model: str | torch.nn.Module = "burst", limit: Optional[int] = None,
                   shot_variance: bool = False, size: int = EVAL_SIZE) -> tuple[list[dict], list[str]]:
    """``hyperisp eval burst``: the model and the baselines on the test bursts of ``data``.

    Rows carry the keys of the other ``hyperisp eval`` tasks (method, level, images, psnr,
    ssim, ms_ssim, cpu_s_per_mp, wall_s_per_mp).
    """
    from .pretrained import load_pretrained  # noqa: PLC0415

    net = load_pretrained(model) if not isinstance(model, torch.nn.Module) else model.eval()
    name = Path(model).stem if isinstance(model, str) else type(model).__name__
    level = "mildenhall" if shot_variance else "spec"
    start = time.process_time()
    rows = evaluate_burst({**baseline_methods(), name: net}, data, limit, size, shot_variance)
    cpu = time.process_time() - start
    total_wall = sum(r["wall_s_per_mp"] for r in rows) or 1.0
    for r in rows:  # CPU time shared out in proportion to each method's wall time
        r.update(level=level, cpu_s_per_mp=cpu * r["wall_s_per_mp"] / total_wall)
    notes = [f"8-frame grey bursts from {size}px centre crops, fixed seed per photo, noise form {level} "
             "(see hyperisp/data/burst.py); PSNR after the sRGB gamma"]
    return rows, notes


def largest_layer(model: torch.nn.Module, size: int = 64) -> int:
    """Channels of the widest full-resolution activation of one forward pass on a size x size burst.

    Counts every module output and the model's final combination inputs (e.g. KPN's
    T*k*k kernel maps, Gated-KPN's M-channel multiplier and F * X).
    """
    widest = [0]

    def hook(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.ndim == 4 and output.shape[-2:] == (size, size):
            widest[0] = max(widest[0], output.shape[1])

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.inference_mode():
            model(torch.rand(1, model.frames, size, size))
    finally:
        for h in handles:
            h.remove()
    return widest[0]


_PEAK_SCRIPT = """
import json, sys, torch
from hyperisp.models import create_model
torch.set_num_threads(1)
config, size = json.loads(sys.argv[1]), int(sys.argv[2])
model = create_model(config).eval()
x = torch.rand(1, model.frames, size, size)
with torch.inference_mode():
    model(x[..., :16, :16])  # warm-up: allocator and kernels

def status_kb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])

# Reset the high-water mark (Linux clear_refs 5): ru_maxrss would keep the peak of the imports.
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status_kb("VmRSS:")
with torch.inference_mode():
    model(x)
print(json.dumps((status_kb("VmHWM:") - before) / 1024))
"""


def peak_memory_mb(config: Mapping, size: int = 512) -> float:
    """Peak extra resident memory (MB, Linux VmHWM after a reset) of one CPU forward pass on a size x size burst.

    Measured in a fresh process, with the high-water mark reset after the warm-up, so earlier
    allocations (imports, the warm-up itself) neither hide it nor count.
    """
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, json.dumps(dict(config)), str(size)],
                            capture_output=True, text=True, cwd=root, check=True,
                            env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    return float(result.stdout.strip().splitlines()[-1])
