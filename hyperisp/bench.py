"""``hyperisp bench``: speed and memory of a model against baselines, measured in one run.

Every case runs in a fresh process (spawn), so its peak RSS is its own:

    isp:      network only (exact tiled inference) | end to end (DNG -> JPEG: decode, network,
              colour, encode) | plain-conv twin of equal FLOPs (network only) | rawpy postprocess
    denoise:  network only | end to end (PNG -> PNG) | plain VDN of equal FLOPs | OpenCV NLM

Reported per case: seconds, seconds per output megapixel, peak RSS (and on CUDA the peak of
the GPU memory torch allocated); for networks the
achieved GFLOP/s (model FLOPs from :func:`hyperisp.models.counting.count_flops`, i.e. the
useful work, not the tiles' halo overhead) against the machine's fp32 matmul peak,
measured in the same run. On CUDA: megapixels per second.
"""
from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` fp32 GFLOP/s of a (size x size) @ (size x size) matmul on the CPU."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def synthetic_mosaic(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A 14-bit RGGB test mosaic (smooth gradients + texture + noise), (height, width) uint16."""
    rng = np.random.default_rng(seed)
    yy = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    xx = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    scene = 0.15 + 0.5 * yy * xx + 0.1 * np.sin(xx * 40) * np.cos(yy * 25)
    noise = rng.standard_normal((height, width), dtype=np.float32) * 0.01
    return (np.clip(scene + noise, 0, 1) * (16383 - 512) + 512).astype(np.uint16)


def _output_size(megapixels: float) -> tuple[int, int]:
    from hyperisp.models.counting import input_shape_for

    shape = input_shape_for("denoise", megapixels)
    return shape[2], shape[3]


# -- cases (each runs in its own process) ----------------------------------------------------------
def _time(fn: Callable[[], Any], device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _setup_process(threads: int, keep_memory: bool) -> None:
    """Per-case process settings, as the CLI makes them (see :mod:`hyperisp.runtime`)."""
    from hyperisp.runtime import keep_freed_memory

    torch.set_num_threads(threads)
    if keep_memory:
        keep_freed_memory()


def _network_case(config: Any, shape: tuple[int, ...], device: str, tile: Optional[int], threads: int,
                  keep_memory: bool = True, repeats: int = 3, views: int = 1) -> dict:
    """Warm network runs: the median of ``repeats`` timed runs after an untimed one ("runs": each of them).

    ``views``: self-ensemble views per run (:mod:`hyperisp.ensemble`), as the pipeline runs them.
    """
    from hyperisp.models import create_model
    from hyperisp.pipeline import _network_tile, inference_autocast, network_output
    from hyperisp.pretrained import load_pretrained

    _setup_process(threads, keep_memory)
    torch.manual_seed(0)
    net = load_pretrained(config, device) if isinstance(config, str) else create_model(config).eval().to(device)
    x = torch.rand(shape, device=device)
    net_tile = _network_tile(net, tile)

    def run() -> None:
        with torch.inference_mode(), inference_autocast(device):
            network_output(net, x, net_tile, views)

    # Warm up at the timed shapes: oneDNN builds its kernels per input shape on first use,
    # and a batch of photos runs warm after the first one.
    run()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()  # the timed runs' peak, not an earlier case's in this process
    runs = [_time(run, device) for _ in range(repeats)]
    result = {"seconds": float(np.median(runs)), "runs": runs, "peak_rss_mb": _peak_rss_mb()}
    if device == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def _file_case(command: str, src: str, out: str, model: str, tile: Optional[int], threads: int,
               keep_memory: bool = True, views: int = 1) -> dict:
    """One cold ``develop_file`` / ``denoise_file`` call (``command``: "develop" or "denoise")."""
    from hyperisp import pipeline

    _setup_process(threads, keep_memory)
    start = time.perf_counter()
    getattr(pipeline, f"{command}_file")(src, out, model=model, device="cpu", tile=tile, ensemble=views,
                                         overwrite=True)
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": _peak_rss_mb()}


def _rawpy_case(dng: str) -> dict:
    import rawpy

    start = time.perf_counter()
    with rawpy.imread(dng) as raw:
        raw.postprocess()
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": _peak_rss_mb()}


def _nlm_case(png: str) -> dict:
    import cv2

    image = cv2.imread(png)
    start = time.perf_counter()
    cv2.fastNlMeansDenoisingColored(image, None, 5, 5, 7, 21)
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": _peak_rss_mb()}


def _in_process(fn: Callable[..., dict], *args: Any) -> dict:
    """Run one case in a fresh spawned process: clean peak RSS, no shared caches."""
    with futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


# -- the benchmark ---------------------------------------------------------------------------------
def equal_flops_twin(config: dict, shape: tuple[int, ...]) -> dict:
    """The plain-conv twin config whose FLOPs at ``shape`` are closest to ``config``'s.

    isp: HyperUNet with plain=True, width n_fwd; denoise: plain VDN, width base_channels.
    A plain net's FLOPs are a quadratic in its width (conv FLOPs ~ Cin*Cout): fit it on
    three widths, solve, and check the neighbours of the solution.
    """
    from hyperisp.models import count_flops, create_model

    if config["arch"] == "hyperunet":
        step, twin = 2, lambda n: {**config, "plain": True, "n_fwd": n}
    else:
        step, twin = 1, lambda n: {"arch": "vdn", "base_channels": n, "snet_channels": n}

    def flops(cfg: dict) -> int:
        with torch.device("meta"):
            return count_flops(create_model(cfg), shape).total

    target = flops(config)
    widths = [8, 16, 32]
    a, b, c = np.polyfit(widths, [flops(twin(n)) for n in widths], 2)
    roots = [r.real for r in np.roots([a, b, c - target]) if abs(r.imag) < 1e-9 and r.real > 0]
    guess = max(step, int(round(max(roots, default=step) / step)) * step)
    candidates = [twin(n) for n in (guess - step, guess, guess + step) if n >= step]
    return min(candidates, key=lambda cfg: abs(flops(cfg) - target))


def run_bench(
    model: str = "isp",
    megapixels: float = 12.0,
    device: str = "cpu",
    tile: Optional[int] = None,
    threads: Optional[int] = None,
    baselines: bool = True,
    isolate: bool = True,
    keep_memory: bool = True,
    repeats: int = 5,
    ensemble: int | None = None,
) -> dict:
    """Benchmark a shipped model (``isp`` or ``denoise`` task) at ``megapixels`` output size.

    Returns a JSON-serialisable dict: model, task, megapixels, device, threads, matmul_peak_gflops,
    cases (list of {name, seconds, s_per_mp, mp_per_s, gflop_per_s, peak_fraction, peak_rss_mb, flops,
    note}). ``isolate``: each case in a fresh process (clean peak RSS); otherwise in this process
    (peak RSS is then the process's running maximum). ``keep_memory``: the CLI's allocator setting
    (:func:`hyperisp.runtime.keep_freed_memory`); False times glibc's default. ``repeats``: network
    cases report the median of this many warm runs (single runs on a shared 2-core machine varied
    by up to 1.5x, most often the first), end-to-end cases are one cold call each. ``ensemble``:
    self-ensemble views of the model's network and end-to-end cases (:mod:`hyperisp.ensemble`; None:
    the task's default); the network's FLOPs count every view, the plain twin runs one.
    """
    if repeats < 1:
        raise ValueError(f"expected repeats >= 1, got {repeats}")
    from hyperisp.models import count_flops
    from hyperisp.models.counting import input_shape_for
    from hyperisp.pipeline import resolve_views
    from hyperisp.pretrained import get_card, load_pretrained

    threads = threads or torch.get_num_threads()
    card = get_card(model)
    task = card.task
    if task not in ("isp", "denoise"):
        raise ValueError(f"expected an isp or denoise model, got task {task!r}")
    views = resolve_views(task, ensemble)
    shape = input_shape_for(task, megapixels)
    height, width = _output_size(megapixels)
    out_mp = height * width / 1e6
    peak = matmul_peak_gflops() if device == "cpu" else None
    net = load_pretrained(model, "cpu")
    model_flops = count_flops(net, shape).total
    run_case = _in_process if isolate else (lambda fn, *args: fn(*args))
    cases: list[dict] = []

    def add(name: str, result: dict, flops: Optional[int] = None, note: str = "") -> None:
        row = {"name": name, **result, "s_per_mp": result["seconds"] / out_mp, "mp_per_s": out_mp / result["seconds"],
               "flops": flops, "gflop_per_s": None, "peak_fraction": None, "note": note}
        if flops:
            row["gflop_per_s"] = flops / result["seconds"] / 1e9
            row["peak_fraction"] = row["gflop_per_s"] / peak if peak else None
        cases.append(row)

    how = "exact tiled inference" + (f", {views} views" if views > 1 else "")
    add(f"{model}: network", run_case(_network_case, model, shape, device, tile, threads, keep_memory, repeats, views),
        views * model_flops,
        how if device == "cpu" else f"{how}, fp16 autocast")
    if baselines:
        from hyperisp.models import create_model

        twin = equal_flops_twin(card.config, shape)
        with torch.device("meta"):
            twin_flops = count_flops(create_model(twin), shape).total
        twin_name = f"plain-conv twin ({twin.get('n_fwd', twin.get('base_channels'))} ch)"
        add(twin_name, run_case(_network_case, twin, shape, device, tile, threads, keep_memory, repeats), twin_flops,
            f"equal FLOPs ({twin_flops / model_flops:.2f}x of one view)")
    if device == "cpu":
        with tempfile.TemporaryDirectory() as tmp:
            if task == "isp":
                from hyperisp.raw.dng import write_dng

                dng = str(Path(tmp) / "bench.dng")
                write_dng(dng, synthetic_mosaic(height, width), black_level=512, white_level=16383)
                add(f"{model}: end to end",
                    run_case(_file_case, "develop", dng, str(Path(tmp) / "o.jpg"), model, tile, threads, keep_memory,
                             views),
                    note="read DNG, network, colour, write JPEG")
                if baselines:
                    add("rawpy postprocess", run_case(_rawpy_case, dng), note="LibRaw AHD, no encode")
            else:
                from hyperisp.io.images import write_image

                png = str(Path(tmp) / "bench.png")
                rgb = synthetic_mosaic(height, 3 * width).reshape(height, width, 3).astype(np.float32) / 16383
                write_image(png, rgb, fmt="png")
                add(f"{model}: end to end",
                    run_case(_file_case, "denoise", png, str(Path(tmp) / "o.png"), model, tile, threads, keep_memory,
                             views),
                    note="read PNG, network, write PNG")
                if baselines:
                    try:
                        import cv2  # noqa: F401
                    except ImportError:
                        pass  # optional extra "bench"
                    else:
                        add("OpenCV NLM", run_case(_nlm_case, png), note="fastNlMeansDenoisingColored h=5")
    return {
        "model": model, "task": task, "megapixels": out_mp, "output_size": [height, width], "device": device,
        "threads": threads, "keep_memory": keep_memory, "repeats": repeats, "ensemble": views,
        "matmul_peak_gflops": peak, "cases": cases,
    }
