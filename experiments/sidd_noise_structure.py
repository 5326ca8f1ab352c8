"""What in the real SIDD pair's noise a denoiser fails on: level, channel or spatial correlation.

Measures, on ../shared/datasets/val/sidd_pair (noisy.png, gt.png):

1. the noise's statistics (std per channel, correlation between channels, correlation of
   horizontal neighbours) beside those of our synthetic camera noise at a similar level
   (``srgb_realistic_noise`` camera mode at shot 1.2e-2 on the first CBSD68 images);
2. each model's PSNR on the ground truth plus: the real noise; white Gaussian noise with the
   pair's channel covariance; the same blurred to a similar neighbour correlation; the blurred
   noise made signal dependent (``signal_dependent_noise``: shot-like, clipped at black);
3. the noisy crop's mean offset to its ground truth (the camera's, not noise: a denoiser keeps
   the mean), and each model's PSNR on the real noise once its output's offset is removed.

    PYTHONPATH=. python experiments/sidd_noise_structure.py --model denoise [--model CARD ...]

Writes experiments/results/sidd_noise_structure.{json,md}.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from hyperisp.data import blur_noise, signal_dependent_noise, srgb_realistic_noise
from hyperisp.evaluate import load_eval_images, without_mean_offset
from hyperisp.metrics import psnr
from hyperisp.pretrained import load_pretrained
from hyperisp.train.datasets import read_rgb8

MEAN_FIXED = "real noise, each output's mean offset to the ground truth removed"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "val"


def noise_stats(noise: torch.Tensor) -> dict[str, list[float]]:
    """(1, 3, H, W) noise -> std per channel (/255), R-G / R-B / G-B and lag-1 correlations."""
    flat = noise[0].flatten(1)
    corr = torch.corrcoef(flat)
    lag1 = [torch.corrcoef(torch.stack([noise[0, c, :, :-1].flatten(), noise[0, c, :, 1:].flatten()]))[0, 1]
            for c in range(3)]
    return {"std_255": [round(float(v) * 255, 1) for v in flat.std(dim=1)],
            "channel_corr_rg_rb_gb": [round(float(corr[i, j]), 2) for i, j in ((0, 1), (0, 2), (1, 2))],
            "neighbour_corr_rgb": [round(float(v), 2) for v in lag1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=None, help="shipped name or card path (repeatable)")
    parser.add_argument("--sidd", type=Path, default=SHARED / "sidd_pair")
    parser.add_argument("--cbsd68", type=Path, default=SHARED / "cbsd68")
    parser.add_argument("--blur", type=float, default=0.6, help="blur sigma (px) of the correlated case")
    parser.add_argument("--out", type=Path, default=Path("experiments/results"))
    args = parser.parse_args()
    torch.manual_seed(0)
    noisy, clean = (read_rgb8(args.sidd / f).float()[None] / 255 for f in ("noisy.png", "gt.png"))
    real = noisy - clean
    offset = real.mean(dim=(2, 3), keepdim=True)
    centred = real - offset
    cholesky = torch.linalg.cholesky(torch.cov(centred[0].flatten(1)))
    white = torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    blurred = torch.einsum("ij,njhw->nihw", cholesky, blur_noise(white, args.blur))
    cases = {
        "real noise": noisy,
        "Gaussian, pair's channel covariance, white": clean + torch.einsum("ij,njhw->nihw", cholesky, white),
        f"same, blurred (sigma {args.blur} px)": clean + blurred,
        **{f"same, signal dependent (gamma {g})": clean + signal_dependent_noise(clean, blurred, g)
           for g in (1.0, 1.5)},
    }
    photo = load_eval_images(args.cbsd68, 1)[0][1]
    synthetic = srgb_realistic_noise(photo, torch.Generator().manual_seed(2), mode_probs=(1, 0, 0),
                                     shot_range=(1.2e-2, 1.2e-2), luma_mix_prob=0.0) - photo
    stats = {"sidd pair": {**noise_stats(real), "mean_255": [round(float(v) * 255, 1) for v in offset.flatten()]},
             **{name: noise_stats(x - clean) for name, x in list(cases.items())[1:]},
             "synthetic camera noise, shot 1.2e-2, no channel mix (CBSD68 image 1)": noise_stats(synthetic)}
    models = args.model or ["denoise"]
    scores = {name: {"noisy input": round(float(psnr(x.clamp(0, 1), clean)), 2)} for name, x in cases.items()}
    scores[MEAN_FIXED] = {"noisy input": round(float(psnr(without_mean_offset(noisy, clean), clean)), 2)}
    with torch.no_grad():
        for model in models:
            net = load_pretrained(model, "cpu")
            for name, x in cases.items():
                out = net(x).clamp(0, 1)
                scores[name][model] = round(float(psnr(out, clean)), 2)
                if name == "real noise":  # the noisy crop is darker than its ground truth: how much that costs
                    scores[MEAN_FIXED][model] = round(float(psnr(without_mean_offset(out, clean), clean)), 2)
    result = {"noise_stats": stats, "psnr": scores, "command": "PYTHONPATH=. python experiments/sidd_noise_structure.py "
              + " ".join(f"--model {m}" for m in models)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sidd_noise_structure.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = ["# The SIDD pair's noise against what the denoiser trained on", "", f"`{result['command']}`", "",
             "| noise | std (/255) R, G, B | channel corr R-G, R-B, G-B | neighbour corr R, G, B |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['std_255']} | {v['channel_corr_rg_rb_gb']} | {v['neighbour_corr_rgb']} |" for k, v in stats.items()]
    lines += ["", f"The noisy crop's mean minus its ground truth's, R, G, B: {stats['sidd pair']['mean_255']} (/255).",
              "", "PSNR (dB) against the pair's ground truth:", "",
              "| input | noisy | " + " | ".join(models) + " |", "|---|---|" + "---|" * len(models)]
    lines += [f"| {k} | {v['noisy input']} | " + " | ".join(str(v[m]) for m in models) + " |" for k, v in scores.items()]
    (args.out / "sidd_noise_structure.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
