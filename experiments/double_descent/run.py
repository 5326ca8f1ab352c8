"""Paper A's central claim, measured at this machine's scale: validation error against parameter count.

HyperUNets with n_fwd = n_embed = 8 at several MLP widths n_hid (parameters grow with
n_hid, FLOPs at 12 MP barely move) and plain-conv UNets of the same layout at several
widths n_fwd = n_embed (parameters and FLOPs grow together) are trained on the same synthetic RAW
data (``hyperisp train isp``'s sampler, same seed, same step budget), then scored with the
isp protocol of ``hyperisp eval isp`` on the first --limit CBSD68 images. Every model is
the shipped design (residual over bilinear, pixel-shuffle head), so the result can pick
the shipped size. Validation error = 1 - MS-SSIM, averaged over the clean and moderate
levels (the PSNR per level is in the table too).

    PYTHONPATH=. python experiments/double_descent/run.py --steps 1500 --crop 64 --threads 1
    PYTHONPATH=. python experiments/double_descent/run.py --steps 5 --limit 2 --out /tmp/dd   # smoke test

Writes OUT/double_descent.{json,md,png}; the scale (steps, batch, crop, images) is in all three.
Runs resume: models already in OUT/double_descent.json are not trained again.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from hyperisp.evaluate import evaluate_isp
from hyperisp.models.counting import count_params, model_cost
from hyperisp.train.trainer import TrainConfig, train

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets"
HERE = Path(__file__).resolve().parent
RUNS = HERE.parents[1] / "runs" / "double_descent"  # checkpoints of the runs (git-ignored)
BASE = {"arch": "hyperunet", "n_embed": 8, "output": "residual", "head": "pixel_shuffle"}
HYPER_N_HID = (16, 64, 256, 1024)
PLAIN_WIDTHS = (8, 16, 32)  # n_fwd = n_embed
LEVELS = {"clean": 0.0, "moderate": 1e-3}


def model_configs() -> dict[str, dict]:
    configs = {f"hyper n_hid={h}": {**BASE, "n_fwd": 8, "n_hid": h, "plain": False} for h in HYPER_N_HID}
    configs.update({f"plain width={w}": {**BASE, "n_fwd": w, "n_embed": w, "n_hid": 256, "plain": True}
                    for w in PLAIN_WIDTHS})
    return configs


def run_one(name: str, config: dict, args: argparse.Namespace) -> dict:
    overrides = {k: v for k, v in config.items() if k != "arch"}
    train_config = TrainConfig(task="isp", model="isp_small", model_overrides=overrides, data=[str(d) for d in args.train],
                               crop=args.crop, batch=args.batch, iters=args.steps, lr=args.lr, warmup=min(200, args.steps),
                               val_images=0, validate_every=10**9, checkpoint_every=10**9, seed=args.seed)
    start = time.time()
    result = train(train_config, RUNS / name.replace(" ", "_").replace("=", ""), progress=False)
    minutes = (time.time() - start) / 60
    model = result["model"].eval()
    with torch.no_grad():
        rows, _ = evaluate_isp(model, args.data, args.limit, baselines=(), model_name=name, levels=LEVELS)
    cost = model_cost(config, 12.0)
    by_level = {r["level"]: r for r in rows}
    return {"name": name, "kind": "plain" if config["plain"] else "hyper", "config": config,
            "params": count_params(model), "gflops_12mp": cost["flops_total"] / 1e9,
            "val_error": sum(1 - by_level[lv]["ms_ssim"] for lv in LEVELS) / len(LEVELS),
            "psnr": {lv: by_level[lv]["psnr"] for lv in LEVELS}, "train_minutes": minutes,
            "last_loss": result["last_loss"]}


def write_outputs(results: list[dict], args: argparse.Namespace) -> None:
    scale = (f"{args.steps} steps of batch {args.batch}, {args.crop}x{args.crop} crops, lr {args.lr}, seed {args.seed}, "
             f"loss {TrainConfig(task='isp').loss} on developed images (the isp default), "
             f"1 CPU thread; scored on the first {args.limit} images of {args.data.name}")
    (args.out / "double_descent.json").write_text(json.dumps({"scale": scale, "results": results}, indent=2) + "\n")
    lines = ["# Validation error against parameter count (paper A's claim, scaled down)", "",
             f"Scale: {scale}.", "", "Command: `PYTHONPATH=. python experiments/double_descent/run.py "
             f"--steps {args.steps} --crop {args.crop} --batch {args.batch} --limit {args.limit} --threads 1`", "",
             "| model | params | GFLOP at 12 MP | 1 - MS-SSIM | PSNR clean | PSNR moderate | train min |",
             "|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r["kind"], r["params"])):
        lines.append(f"| {r['name']} | {r['params'] / 1e6:.3f} M | {r['gflops_12mp']:.0f} | {r['val_error']:.4f} | "
                     f"{r['psnr']['clean']:.2f} | {r['psnr']['moderate']:.2f} | {r['train_minutes']:.1f} |")
    (args.out / "double_descent.md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, (ax, ax_flops) = plt.subplots(1, 2, figsize=(11, 4.2))
    for kind, marker in (("hyper", "o-"), ("plain", "s--")):
        rows = sorted((r for r in results if r["kind"] == kind), key=lambda r: r["params"])
        if not rows:
            continue
        label = "HyperUNet (8, 8, n_hid)" if kind == "hyper" else "plain UNet (width = n_fwd = n_embed)"
        ax.plot([r["params"] for r in rows], [r["val_error"] for r in rows], marker, label=label)
        ax_flops.plot([r["gflops_12mp"] for r in rows], [r["val_error"] for r in rows], marker, label=label)
        for r in rows:
            ax.annotate(r["name"].split(" ")[1], (r["params"], r["val_error"]), fontsize=7)
    for axis, xlabel in ((ax, "parameters"), (ax_flops, "GFLOP per 12 MP photo")):
        axis.set_xscale("log")
        axis.set_xlabel(xlabel)
        axis.set_ylabel("validation error, 1 - MS-SSIM")
        axis.grid(alpha=0.3)
        axis.legend()
    fig.suptitle(f"isp validation error vs size ({args.steps} steps, crop {args.crop}, batch {args.batch})", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out / "double_descent.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, nargs="+",
                        default=[SHARED / "train" / d for d in ("bsds432", "sun_hays80", "urban100")])
    parser.add_argument("--data", type=Path, default=SHARED / "val" / "cbsd68")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", help="model names to run (default: all)")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    saved = args.out / "double_descent.json"
    results = json.loads(saved.read_text())["results"] if saved.is_file() else []
    done = {r["name"] for r in results}
    for name, config in model_configs().items():
        if name in done or (args.only and name not in args.only):
            continue
        results.append(run_one(name, config, args))
        r = results[-1]
        print(f"{name}: {r['params'] / 1e6:.3f} M params, {r['gflops_12mp']:.0f} GFLOP, "
              f"1-MS-SSIM {r['val_error']:.4f}, PSNR {r['psnr']}, {r['train_minutes']:.1f} min", flush=True)
        write_outputs(results, args)
    write_outputs(results, args)


if __name__ == "__main__":
    main()
