"""Paper B, Table 1 at a chosen scale: single frame, KPN, Gated-128, Gated-64 on synthetic grey bursts.

Trains each model (Adam, L1 loss after the sRGB gamma, random crops of the grey training
photos made into 8-frame bursts by :func:`hyperisp.data.burst.synthesize_bursts`), then
scores all methods with the protocol of :mod:`hyperisp.evaluate_burst` (the same as
``hyperisp eval burst``) and measures each model's largest layer and peak CPU memory.

    PYTHONPATH=. python experiments/burst_table1.py --steps 20000 --batch 16     # the real run (GPU advised)
    PYTHONPATH=. python experiments/burst_table1.py --steps 50 --limit 4 --out /tmp/t1   # smoke test

The scale (steps, batch, crop, training photos, test photos) is written beside the
table. Paper: trained to convergence, tested on McMaster; here: --data (default CBSD68, grey).
Writes OUT/burst_table1.{md,json,png} and OUT/burst_<model>.pt checkpoints.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import torch

from hyperisp.data.burst import load_grey, synthesize_bursts
from hyperisp.data.unprocess import linear_to_srgb
from hyperisp.evaluate_burst import baseline_methods, evaluate_burst, largest_layer, peak_memory_mb
from hyperisp.io.images import list_photos
from hyperisp.models import create_model
from hyperisp.pretrained import load_pretrained, save_pretrained

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
RESULTS = Path(__file__).resolve().parent / "results"
MODELS = ("kpn", "gated_kpn_128", "gated_kpn_64")


def random_crops(images: list[torch.Tensor], n: int, size: int, rng: random.Random) -> torch.Tensor:
    """(n, size, size) random crops (with random flips) of randomly chosen grey photos."""
    crops = []
    for _ in range(n):
        img = images[rng.randrange(len(images))]
        h, w = img.shape
        y, x = rng.randrange(h - size + 1), rng.randrange(w - size + 1)
        crop = img[y: y + size, x: x + size]
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        crops.append(crop)
    return torch.stack(crops)


def train(model: torch.nn.Module, images: list[torch.Tensor], steps: int, batch: int, size: int, lr: float,
          shot_variance: bool | None, device: torch.device, seed: int = 0) -> list[float]:
    """Adam + cosine, L1 after gamma. ``shot_variance`` None: the two noise forms on alternate steps."""
    rng, g = random.Random(seed), torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    model.train()
    for step in range(steps):
        form = step % 2 == 1 if shot_variance is None else shot_variance
        b = synthesize_bursts(random_crops(images, batch, size + 32, rng), model.frames, size, g, form)
        out = model(b["noisy"].to(device))
        target = linear_to_srgb(b["clean"].to(device)).clamp(0, 1)
        # gamma of a clamped output: negative linear values would make no gradient otherwise
        loss = (linear_to_srgb(out.clamp(min=0)) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % max(1, steps // 10) == 0:
            print(f"  step {step}/{steps} loss {sum(losses[-50:]) / len(losses[-50:]):.4f}", flush=True)
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, nargs="+",
                        default=[SHARED / "train" / "bsds432", SHARED / "train" / "sun_hays80"])
    parser.add_argument("--data", type=Path, default=SHARED / "val" / "cbsd68")
    parser.add_argument("--limit", type=int, default=None, help="first N test photos")
    parser.add_argument("--train-limit", type=int, default=None, help="first N training photos per folder")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--shot-variance", action="store_true", help="Mildenhall's noise form (see data/burst.py)")
    parser.add_argument("--mixed-noise", action="store_true",
                        help="train on both noise forms (alternate steps); --shot-variance then picks the test form")
    parser.add_argument("--init", default=None, help="start from this shipped model's weights (one --models entry)")
    parser.add_argument("--export-card", type=Path, default=None,
                        help="also write the (single) trained model as weights + card 'burst' in this folder")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (1 is fastest on a busy 2-core machine)")
    parser.add_argument("--score-only", action="store_true",
                        help="no training: load OUT/burst_<model>.pt of an earlier run (its train time and loss "
                             "from OUT/burst_table1.json), re-measure and re-score")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)

    paths = [p for folder in args.train for p in list_photos(folder)[: args.train_limit]]
    images = [torch.from_numpy(load_grey(p)) for p in paths]
    images = [im for im in images if min(im.shape) >= args.size + 32]
    if not images:
        raise SystemExit(f"no training photos of at least {args.size + 32} px in {[str(t) for t in args.train]}")
    print(f"{len(images)} training photos", flush=True)
    methods, info = dict(baseline_methods()), {}
    earlier = json.loads((args.out / "burst_table1.json").read_text())["models"] if args.score_only else {}
    if (args.init or args.export_card) and len(args.models) != 1:
        raise SystemExit("--init and --export-card take one --models entry")
    for name in args.models:
        torch.manual_seed(0)
        model = create_model(name).to(device)
        if args.init:
            model.load_state_dict(load_pretrained(args.init).state_dict())
        if args.score_only:
            model.load_state_dict(torch.load(args.out / f"burst_{name}.pt", map_location=device))
            train_s, final_loss = earlier[name]["train_s"], earlier[name]["final_loss"]
        else:
            start = time.time()
            losses = train(model, images, args.steps, args.batch, args.size, args.lr,
                           None if args.mixed_noise else args.shot_variance, device)
            train_s, final_loss = round(time.time() - start, 1), sum(losses[-50:]) / len(losses[-50:])
        model.eval().cpu()
        torch.save(model.state_dict(), args.out / f"burst_{name}.pt")
        methods[name] = model
        info[name] = {"largest_layer": f"{largest_layer(model)}xHxW", "peak_mb_512px": round(peak_memory_mb(model.config), 1),
                      "params": sum(p.numel() for p in model.parameters()), "train_s": train_s, "final_loss": final_loss}
        print(name, info[name], flush=True)
    rows = evaluate_burst(methods, args.data, args.limit, shot_variance=args.shot_variance)
    scale = (f"{args.steps} steps x batch {args.batch} of {args.size}px 8-frame crops from {len(images)} grey "
             f"training photos ({', '.join(p.name for p in args.train)}), Adam lr {args.lr} + cosine, L1 after gamma; "
             f"{'both noise forms (alternate steps), ' if args.mixed_noise else ''}"
             f"{'from ' + args.init + ', ' if args.init else ''}"
             f"test: {rows[0]['images']} photos of {args.data.name} (grey, 256px centre crops), noise form "
             f"{'Mildenhall (variance)' if args.shot_variance else 'SPEC §6 (std)'}; device {device}")
    command = "PYTHONPATH=. python experiments/burst_table1.py " + " ".join(sys.argv[1:])
    if args.export_card:
        card = save_pretrained(methods[args.models[0]], "burst", trained=True, directory=args.export_card,
                               description=f"{args.models[0]} burst denoiser: 8-frame grey bursts, {scale.split(';')[0]}",
                               training={"data": [os.path.relpath(t, REPO) for t in args.train], "iterations": args.steps,
                                         "recipe": command, "scale": scale,
                                         "started_from": args.init or "random initialisation"})
        print(f"wrote {args.export_card / card.file} and its card", flush=True)
    lines = ["# Table 1 (scaled down): burst denoising, 8 grey frames", "", f"Scale: {scale}.", "",
             f"Command: `{command}`" + (" (scores the weights of the training run with the same options "
                                         "minus --score-only)" if args.score_only else ""), "",
             "| method | largest layer | peak MB (512x512, CPU) | params | test PSNR (dB) |", "|---|---|---|---|---|"]
    for r in rows:
        i = info.get(r["method"], {"largest_layer": "1xHxW", "peak_mb_512px": "-", "params": 0})
        lines.append(f"| {r['method']} | {i['largest_layer']} | {i['peak_mb_512px']} | {i['params']} | {r['psnr']:.2f} |")
    (args.out / "burst_table1.md").write_text("\n".join(lines) + "\n")
    (args.out / "burst_table1.json").write_text(json.dumps({"scale": scale, "rows": rows, "models": info}, indent=2))

    import matplotlib  # noqa: PLC0415 (optional: the `experiments` extra)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.bar([r["method"] for r in rows], [r["psnr"] for r in rows], color="tab:blue")
    for k, r in enumerate(rows):
        ax.text(k, r["psnr"] + 0.2, f"{r['psnr']:.2f}", ha="center", fontsize=8)
    ax.set_ylabel("test PSNR (dB)")
    ax.set_title(f"Burst denoising ({args.steps} steps x {args.batch}, {rows[0]['images']} test photos)", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "burst_table1.png", dpi=120)
    print((args.out / "burst_table1.md").read_text())


if __name__ == "__main__":
    main()
