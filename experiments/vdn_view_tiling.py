"""Time and peak RSS of HyperVDN (untrained denoise_small) whole-image vs exact tiled inference.

One mode per process so that peak RSS is that mode's own:

    for m in none whole tiled1024 tiled512 globalpool; do
        PYTHONPATH=. /usr/bin/time -v python experiments/vdn_view_tiling.py $m 1224 1632 3 2>&1 \\
            | grep -E "identity|Maximum resident"
    done

Modes: none (baseline RSS: torch + model + input), whole (``model(x)``: filter view, then the
whole image), tiledT (``run_tiled(model, x, T)``), globalpool (``view_size=0``: each layer
pools its own input over the whole image, the behaviour before the filter view).
Prints each repetition's seconds and whether the output equals the input (the untrained
model's out_scale is 0: it must return its input).
"""
from __future__ import annotations

import sys
import time

import torch

from hyperisp.models import create_model
from hyperisp.tiling import run_tiled


def main(mode: str, height: int, width: int, reps: int) -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = create_model("denoise_small", **({"view_size": 0} if mode == "globalpool" else {})).eval()
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(1))
    times = []
    y = x
    with torch.no_grad():
        for _ in range(reps):
            start = time.perf_counter()
            if mode.startswith("tiled"):
                y = run_tiled(model, x, int(mode[len("tiled"):]))
            elif mode != "none":
                y = model(x)
            times.append(time.perf_counter() - start)
    print(f"{mode} {height}x{width}: " + ", ".join(f"{t:.2f}" for t in times) + f" s, identity={torch.equal(y, x)}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
