"""Where a network's time goes on this CPU (isp or denoise), and what share of the matmul peak is reachable.

Issue 4 asks for >= 40 % of the fp32 matmul peak. This script measures, in one process:

- the matmul peak (as ``hyperisp bench`` does) and the elementwise bandwidth (an add of two
  16-channel maps of the network input's size);
- the whole network at the given size (exact tiled inference with the pipeline's default tile,
  as ``hyperisp bench``), as it runs (activations and residual adds fused into the convolutions,
  :mod:`hyperisp.nn.fused`) and with fusion off;
- every convolution the network ran, replayed alone with the same shapes, strides and memory
  format: their summed time is what the network would take if every other op (activations,
  adds, pools, upsampling, pixel shuffle, the bilinear base) were free.

The second gives the ceiling that fusing the elementwise work could reach.

    PYTHONPATH=. python experiments/roofline.py [--megapixels 12] [--threads 2] [--model isp|denoise]

Writes experiments/results/roofline_<model>.json (and prints a summary).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from hyperisp.bench import matmul_peak_gflops
from hyperisp.models import count_flops
from hyperisp.models.counting import input_shape_for
from hyperisp.nn.fused import fusion_disabled
from hyperisp.pipeline import _network_tile
from hyperisp.pretrained import load_pretrained
from hyperisp.runtime import keep_freed_memory
from hyperisp.tiling import run_tiled


class RecordConvs(TorchFunctionMode):
    """Records (input shape, memory format, weight shape, stride, padding, groups) of each conv2d."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        if func is F.conv2d or func is torch.conv2d:
            x, w = args[0], args[1]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            stride = args[3] if len(args) > 3 else kwargs.get("stride", 1)
            padding = args[4] if len(args) > 4 else kwargs.get("padding", 0)
            groups = args[6] if len(args) > 6 else kwargs.get("groups", 1)
            self.calls.append((tuple(x.shape), x.is_contiguous(memory_format=torch.channels_last), tuple(w.shape),
                               bias is not None, stride, padding, groups))
        return func(*args, **kwargs)


def best_time(fn, repeats: int = 3) -> float:  # noqa: ANN001
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def conv_flops(call: tuple) -> int:
    (n, _, h, w), _, (cout, cin_g, kh, kw), _, stride, _, _ = call
    stride = stride if isinstance(stride, int) else stride[0]
    return 2 * n * cout * cin_g * kh * kw * (h // stride) * (w // stride)


def replay(call: tuple) -> float:
    shape, channels_last, wshape, has_bias, stride, padding, groups = call
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.rand(shape).contiguous(memory_format=fmt)
    w = torch.rand(wshape).contiguous(memory_format=fmt)
    b = torch.rand(wshape[0]) if has_bias else None
    return best_time(lambda: F.conv2d(x, w, b, stride, padding, 1, groups), repeats=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="isp")
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="experiments/results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()

    peak = matmul_peak_gflops()
    net = load_pretrained(args.model, "cpu")
    shape = input_shape_for(net.task, args.megapixels)
    tile = _network_tile(net, None)
    flops = count_flops(net, shape).total
    x = torch.rand(shape)
    stem = torch.rand(1, 16, *shape[-2:]).contiguous(memory_format=torch.channels_last)
    other, out = torch.rand_like(stem), torch.empty_like(stem)
    add_s = best_time(lambda: torch.add(stem, other, out=out))
    bandwidth = 3 * stem.numel() * 4 / add_s / 1e9

    with torch.inference_mode():
        network_s = best_time(lambda: run_tiled(net, x, tile))
        with fusion_disabled():
            unfused_s = best_time(lambda: run_tiled(net, x, tile))
            recorder = RecordConvs()
            with recorder:
                run_tiled(net, x, tile)
        conv_s = sum(replay(call) for call in recorder.calls)
    conv_flop = sum(conv_flops(call) for call in recorder.calls)
    result = {
        "model": args.model, "megapixels": args.megapixels, "threads": args.threads,
        "input_shape": list(shape), "matmul_peak_gflops": peak, "elementwise_add_gb_per_s": bandwidth,
        "model_flops": flops, "network_seconds": network_s, "network_peak_fraction": flops / network_s / 1e9 / peak,
        "unfused_network_seconds": unfused_s, "unfused_peak_fraction": flops / unfused_s / 1e9 / peak,
        "conv_calls": len(recorder.calls), "conv_flops_run": conv_flop, "conv_seconds_alone": conv_s,
        "conv_gflop_per_s": conv_flop / conv_s / 1e9,
        "ceiling_peak_fraction_if_elementwise_free": flops / conv_s / 1e9 / peak,
        "conv_share_of_network_time": conv_s / network_s,
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = Path(args.out) / f"roofline_{args.model}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"matmul peak {peak:.0f} GFLOP/s; elementwise add {bandwidth:.1f} GB/s")
    print(f"network {network_s:.2f} s = {flops / network_s / 1e9:.1f} GFLOP/s "
          f"({100 * result['network_peak_fraction']:.0f} % of peak); unfused {unfused_s:.2f} s")
    print(f"its {len(recorder.calls)} convolutions alone: {conv_s:.2f} s ({100 * conv_s / network_s:.0f} % of the "
          f"network's time), {result['conv_gflop_per_s']:.0f} GFLOP/s; with everything else free the network "
          f"would reach {100 * result['ceiling_peak_fraction_if_elementwise_free']:.0f} % of peak")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
