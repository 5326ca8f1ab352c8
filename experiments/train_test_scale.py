"""Train/test scale of the isp model (issue 4, item 2): does the global max pool drift with image size?

HyperUNet's filters come from a global MAX pool of embeddings over the whole image; the
model trains on 128 px crops but develops 12-50 MP photos, where a max over a larger area
can only grow. To isolate that effect, each CBSD68 image (isp protocol of ``hyperisp eval
isp``: clean and moderate noise) is developed with the pooled embeddings taken from
  * a 128 x 128 centre crop of itself (the training scale),
  * the image itself (481 x 321, whole-image inference, as ``eval`` does),
  * a 4 x 4 collage of CBSD68 images that contains it (~2.5 MP),
  * an 8 x 8 collage (~9.8 MP, a 10 MP photo),
while the convolutions always run on the image alone, so only the pooled statistics change.
Collages of different photos are harder than one photo of the same size (more varied
content), so this is a pessimistic stand-in for a 10 MP photo. The three pooling designs are
run with the same weights: the paper's global max, the mean of per-cell maxima over
cells of --pool-cell packed pixels (``HyperUNet(pool_cell=...)``), and the filter view
(``HyperUNet(view_size=...)``: training-size patches spread over the area, each pooled
alone, averaged); models trained on crops no larger than a cell cannot tell them apart.

    PYTHONPATH=. python experiments/train_test_scale.py --model isp --threads 2

Writes experiments/results/train_test_scale.{md,json}.
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import torch

from hyperisp.data import linear_to_srgb
from hyperisp.evaluate import ISP_BORDER, ISP_LEVELS, load_eval_images, protocol_mosaic
from hyperisp.metrics import psnr
from hyperisp.models import reconfigured
from hyperisp.pretrained import load_pretrained
from hyperisp.raw.bayer import pack_bayer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
RESULTS = Path(__file__).resolve().parent / "results"
LEVELS = {k: v for k, v in ISP_LEVELS.items() if k in ("clean", "moderate")}


def collage(tiles: list[torch.Tensor], side: int) -> torch.Tensor:
    """side x side grid of equally sized (1, C, h, w) tensors -> (1, C, side*h, side*w)."""
    rows = [torch.cat(tiles[r * side:(r + 1) * side], dim=-1) for r in range(side)]
    return torch.cat(rows, dim=-2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="isp")
    parser.add_argument("--data", type=Path, default=SHARED / "val" / "cbsd68")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--pool-cell", type=int, default=128, help="cell size (packed px) of the cell-max design")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_pretrained(args.model).eval()
    images = load_eval_images(args.data, 64)
    # One orientation and size for the collages (CBSD68 mixes 481x321 and 321x481).
    images = [(n, c if c.shape[-1] > c.shape[-2] else c.transpose(-1, -2)) for n, c in images]
    h, w = min(c.shape[-2] for _, c in images) // 2 * 2, min(c.shape[-1] for _, c in images) // 2 * 2
    images = [(n, c[..., :h, :w]) for n, c in images]
    results: dict[str, dict[str, float]] = {}
    view = {"view_size": model.config.get("view_size", 64), "view_grid": model.config.get("view_grid", 8)}
    designs = {
        "global max": reconfigured(model, pool_cell=None, view_size=0),
        f"cell max ({args.pool_cell} packed px = {2 * args.pool_cell} px cells)": reconfigured(
            model, pool_cell=args.pool_cell, view_size=0),
        f"filter view (up to {view['view_grid']}x{view['view_grid']} patches of {2 * view['view_size']} px)": reconfigured(
            model, pool_cell=model.config.get("pool_cell"), **view),
    }
    with torch.no_grad():
        for (design, model), (index, (level, shot)) in itertools.product(designs.items(), enumerate(LEVELS.items())):
            packed = [pack_bayer(protocol_mosaic(n, c, index, shot)) for n, c in images]
            pools = {"128 px crop (training scale)": [], "whole image (0.15 MP)": [], "4x4 collage (2.5 MP)": [],
                     "8x8 collage (9.8 MP)": []}
            ph, pw = packed[0].shape[-2:]
            for p in packed:
                top, left = (ph - 64) // 2, (pw - 64) // 2
                pools["128 px crop (training scale)"].append(model.pooled_embeddings(p[..., top:top + 64, left:left + 64]))
                pools["whole image (0.15 MP)"].append(model.pooled_embeddings(p))
            for side, key in ((4, "4x4 collage (2.5 MP)"), (8, "8x8 collage (9.8 MP)")):
                for start in range(0, len(packed), side * side):
                    pooled = model.pooled_embeddings(collage(packed[start:start + side * side], side))
                    pools[key] += [pooled] * side * side
            for key, pooled_list in pools.items():
                scores = [float(psnr(linear_to_srgb(model(p, pooled=q).clamp(0, 1)), c, border=ISP_BORDER))
                          for p, q, (_, c) in zip(packed, pooled_list, images)]
                results.setdefault(f"{design}: {key}", {})[level] = sum(scores) / len(scores)
                print(f"{design}, {level:9} pooled from {key:30} {sum(scores) / len(scores):.2f} dB", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    command = f"PYTHONPATH=. python experiments/train_test_scale.py --model {args.model} --pool-cell {args.pool_cell}"
    (args.out / "train_test_scale.json").write_text(json.dumps(
        {"command": command, "model": args.model, "images": len(images), "size": [h, w], "psnr": results}, indent=2) + "\n")
    lines = ["# isp: quality against the area the filters are pooled from", "",
             f"Model `{args.model}`; {len(images)} CBSD68 images ({w}x{h}), isp protocol; the convolutions run on "
             "each image alone, only the pooled embeddings come from the stated area.", "", f"Command: `{command}`", "",
             "| pooling design: pooled from | " + " | ".join(f"PSNR {lv}" for lv in LEVELS) + " |", "|---|" + "---|" * len(LEVELS)]
    for key, by_level in results.items():
        lines.append(f"| {key} | " + " | ".join(f"{by_level[lv]:.2f}" for lv in LEVELS) + " |")
    (args.out / "train_test_scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
