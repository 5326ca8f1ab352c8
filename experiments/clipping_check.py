"""How much a denoiser loses to AWGN values outside [0, 1]: the CBSD68 benchmark's noise is not clipped.

``hyperisp eval denoise`` adds AWGN in float and does not clip it (the usual CBSD68
convention), while a saved noisy photo is always in [0, 1]. For each model and sigma this
scores, on the same noisy images as the eval (same seeds):

- the model on the unclipped noisy image (what ``hyperisp eval`` scores);
- the model on the same image clipped to [0, 1] first;

and the share of noisy values outside [0, 1]. A large gap means the model never learned
unclipped inputs (``--unclipped-awgn`` in ``hyperisp train denoise``). A model whose config
has ``clip_input`` (:mod:`hyperisp.models.vdn`) clips them itself: its two columns are equal.

    PYTHONPATH=. python experiments/clipping_check.py --model denoise [--model CARD ...] [--limit 12]

Writes experiments/results/clipping_check.{json,md}.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from hyperisp.evaluate import DENOISE_SIGMAS, load_eval_images, protocol_awgn
from hyperisp.metrics import psnr
from hyperisp.pretrained import load_pretrained

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "val"


def clipping_rows(model: torch.nn.Module, images: list[tuple[str, torch.Tensor]],
                  sigmas: tuple[int, ...] = DENOISE_SIGMAS) -> list[dict[str, float]]:
    """Mean PSNR of ``model`` on unclipped and clipped AWGN inputs, per sigma (8-bit levels)."""
    rows = []
    for index, sigma in enumerate(sigmas):
        unclipped = clipped = outside = 0.0
        for name, clean in images:
            noisy = protocol_awgn(name, clean, index, sigma)  # the eval's own input
            outside += float(((noisy < 0) | (noisy > 1)).float().mean())
            with torch.no_grad():
                unclipped += float(psnr(model(noisy).clamp(0, 1), clean))
                clipped += float(psnr(model(noisy.clamp(0, 1)).clamp(0, 1), clean))
        n = len(images)
        rows.append({"sigma": sigma, "images": n, "psnr_unclipped_input": round(unclipped / n, 3),
                     "psnr_clipped_input": round(clipped / n, 3), "share_outside_0_1": round(outside / n, 4)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=None, help="shipped name or card path (repeatable)")
    parser.add_argument("--data", type=Path, default=SHARED / "cbsd68")
    parser.add_argument("--limit", type=int, default=12, help="first N images (0: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("experiments/results"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = load_eval_images(args.data, args.limit or None)
    models = args.model or ["denoise"]
    results = {}
    for name in models:
        results[name] = clipping_rows(load_pretrained(name).eval(), images)
        for row in results[name]:
            print(name, json.dumps(row), flush=True)
    command = "PYTHONPATH=. python experiments/clipping_check.py " + " ".join(
        f"--model {m}" for m in models) + f" --limit {args.limit}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "clipping_check.json").write_text(json.dumps({"command": command, "models": results}, indent=1) + "\n")
    lines = [f"`{command}`", "", "| model | sigma | images | unclipped input (eval) | clipped input | values outside [0, 1] |",
             "|---|---|---|---|---|---|"]
    for name, rows in results.items():
        lines += [f"| {name} | {r['sigma']} | {r['images']} | {r['psnr_unclipped_input']:.2f} | "
                  f"{r['psnr_clipped_input']:.2f} | {100 * r['share_outside_0_1']:.1f} % |" for r in rows]
    (args.out / "clipping_check.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
