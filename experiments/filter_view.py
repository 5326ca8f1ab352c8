"""Which filter view? CBSD68 isp scores of one model under several views (issue 4, item 2).

The isp models predict their filters from a filter view (``HyperUNet(view_size=..., view_grid=...)``,
:mod:`hyperisp.nn.view`): up to grid x grid patches of view_size packed pixels spread over the
photo, each pooled alone as a training crop is. This scores the same weights with other
views, and with none (each image pooled whole, cell maxima of ``pool_cell``), on the isp
protocol of ``hyperisp eval isp`` (one self-ensemble view, no baselines).

    PYTHONPATH=. python experiments/filter_view.py --view 0:1 --view 64:1 --view 64:3 --view 64:8 --view 96:8 [--model isp]

Writes experiments/results/filter_view_isp.json.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from hyperisp.evaluate import evaluate_isp
from hyperisp.models import reconfigured
from hyperisp.pretrained import load_pretrained

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="isp")
    parser.add_argument("--data", type=Path, default=SHARED / "val" / "cbsd68")
    parser.add_argument("--view", action="append", required=True, help="SIZE:GRID in packed px (0:1 = no view)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "filter_view_isp.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = load_pretrained(args.model)
    rows = []
    for spec in args.view:
        size, grid = (int(v) for v in spec.split(":"))
        model = reconfigured(base, view_size=size, view_grid=grid)
        table, _ = evaluate_isp(model, args.data, baselines=())
        psnr = {row["level"]: round(float(row["psnr"]), 3) for row in table}
        rows.append({"view_size": size, "view_grid": grid, "psnr": psnr})
        print(f"view {size}:{grid}  " + "  ".join(f"{k} {v:.2f}" for k, v in psnr.items()), flush=True)
    command = "PYTHONPATH=. python experiments/filter_view.py " + " ".join(f"--view {v}" for v in args.view)
    if args.model != "isp":
        command += f" --model {args.model}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = os.path.relpath(args.data, Path(__file__).resolve().parents[1])
    args.out.write_text(json.dumps({"command": command, "model": args.model, "data": data,
                                    "config": base.config, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
