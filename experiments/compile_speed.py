"""Does torch.compile pay on this CPU? Eager against compiled whole-image forward at one fixed shape.

    PYTHONPATH=. python experiments/compile_speed.py --model isp --size 1024 --threads 2 \
        --json experiments/results/compile_speed.json

Times the shipped model's forward on a fixed (1, C, size, size) input, eager and under
``torch.compile(dynamic=False)`` (inductor, C++ codegen: needs a C++ compiler), reports the
one-off compile time, the steady-state seconds per output megapixel and the largest output
difference. Fixed shape because tiled inference runs a handful of tile shapes, each compiled once.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from hyperisp.pretrained import load_pretrained
from hyperisp.runtime import keep_freed_memory


def best_of(fn, repeats: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="isp")
    parser.add_argument("--size", type=int, default=1024, help="input side in network pixels")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the CLI runs
    net = load_pretrained(args.model, "cpu")
    channels = 4 if net.task == "isp" else 3
    x = torch.rand(1, channels, args.size, args.size, generator=torch.Generator().manual_seed(0))
    out_mp = args.size**2 * (4 if net.task == "isp" else 1) / 1e6
    with torch.inference_mode():
        reference = net(x)
        eager = best_of(lambda: net(x), args.repeats)
        compiled_net = torch.compile(net, dynamic=False)
        start = time.perf_counter()
        compiled_out = compiled_net(x)
        compile_seconds = time.perf_counter() - start
        compiled = best_of(lambda: compiled_net(x), args.repeats)
    result = {
        "model": args.model, "input": list(x.shape), "threads": args.threads, "torch": torch.__version__,
        "eager_s_per_mp": eager / out_mp, "compiled_s_per_mp": compiled / out_mp, "speedup": eager / compiled,
        "compile_seconds": compile_seconds, "max_abs_diff": float((compiled_out - reference).abs().max()),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
