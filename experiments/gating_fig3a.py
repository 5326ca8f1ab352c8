"""Paper B, Fig. 3a at CPU scale: a GDL vs an MLP of at least equal FLOPs, emulating a random hypernetwork layer.

Target (fixed, random): a hypernetwork layer on its own input z ~ N(0, I_d),

    H(z)_j = sum_i W(z)_ij z_i,   W(z) = reshape(B relu(A z))   (A: h x d, B: (d*n_j) x h)

Emulators, trained on (z, H(z)) pairs with Adagrad, a cosine learning-rate schedule and
L2 weight decay (SPEC §6), scored by relative error = MSE / mean(H(z)^2) on fresh inputs:

- GDL with hidden size n_k = s * d * n_j: y = ((z @ v) * a(z)) @ u, the multiplier
  a(z) = B' relu(A' z) predicted by a net of the SAME shape as the target's hypernetwork
  (h hidden units). s = 1 is the smallest n_k for which the GDL can be exact (Theorem 3.1).
- MLP z -> w -> w -> n_j (ReLU) with the smallest width w whose FLOPs are >= the GDL's.

Scale-down vs the paper: d = 32 instead of 128, n_j = 4, h = 32, 200k training samples
(paper: 5M), 4 epochs, one seed per point; see the table written beside the plot.

    PYTHONPATH=. python experiments/gating_fig3a.py [--samples 200000] [--epochs 4]
Writes experiments/results/gating_fig3a.{md,csv,png}.
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

from hyperisp.nn.gating import GatedDoubleLayer

RESULTS = Path(__file__).resolve().parent / "results"


class RandomHypernetworkLayer(nn.Module):
    """The fixed target: z (N, d) -> (N, n_j) through predicted weights W(z) (N, d, n_j)."""

    def __init__(self, d: int, n_out: int, hidden: int) -> None:
        super().__init__()
        self.d, self.n_out = d, n_out
        self.net = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, d * n_out))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        weight = self.net(z).view(-1, self.d, self.n_out)
        return torch.einsum("ni,nij->nj", z, weight)


class GDLEmulator(nn.Module):
    def __init__(self, d: int, n_out: int, hidden: int, n_k: int) -> None:
        super().__init__()
        self.predict = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, n_k))
        self.gdl = GatedDoubleLayer(d, n_k, n_out)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.gdl(z, self.predict(z))

    def macs(self) -> int:
        d, n_k = self.gdl.v.shape
        hidden = self.predict[0].out_features
        return d * hidden + hidden * n_k + d * n_k + n_k * self.gdl.u.shape[1] + n_k


def mlp(d: int, width: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, n_out))


def mlp_width_for(macs: int, d: int, n_out: int) -> int:
    """Smallest w with d*w + w*w + w*n_out >= macs."""
    b = d + n_out
    return math.ceil((-b + math.sqrt(b * b + 4 * macs)) / 2)


def train(model: nn.Module, target: nn.Module, samples: int, epochs: int, batch: int, lr: float, seed: int,
          d: int) -> float:
    """Fit model to target on ``samples`` fixed inputs; return relative error on 20k fresh inputs."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(samples, d, generator=g)
    with torch.no_grad():
        y = target(z)
    steps = epochs * (samples // batch)
    opt = torch.optim.Adagrad(model.parameters(), lr=lr, weight_decay=1e-6)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(epochs):
        order = torch.randperm(samples, generator=g)
        for k in range(samples // batch):
            idx = order[k * batch: (k + 1) * batch]
            loss = (model(z[idx]) - y[idx]).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    z_test = torch.randn(20000, d, generator=g)
    with torch.no_grad():
        h = target(z_test)
        return float((model(z_test) - h).square().mean() / h.square().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--scales", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    d, n_out, hidden = 32, 4, 32
    torch.manual_seed(0)
    target = RandomHypernetworkLayer(d, n_out, hidden).requires_grad_(False)
    rows = []
    for s in args.scales:
        n_k = max(1, round(s * d * n_out))
        torch.manual_seed(1)
        gdl = GDLEmulator(d, n_out, hidden, n_k)
        width = mlp_width_for(gdl.macs(), d, n_out)
        net = mlp(d, width, n_out)
        mlp_macs = d * width + width * width + width * n_out
        t0 = time.time()
        err_gdl = train(gdl, target, args.samples, args.epochs, args.batch, args.lr, 2, d)
        err_mlp = train(net, target, args.samples, args.epochs, args.batch, args.lr, 2, d)
        rows.append({"s": s, "n_k": n_k, "gdl_macs": gdl.macs(), "gdl_rel_err": err_gdl, "mlp_width": width,
                     "mlp_macs": mlp_macs, "mlp_rel_err": err_mlp, "seconds": round(time.time() - t0, 1)})
        print(rows[-1], flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "gating_fig3a.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    scale = (f"d={d}, n_j={n_out}, hypernetwork hidden {hidden}; {args.samples} training samples (paper: 5M "
             f"of length 128), {args.epochs} epochs, batch {args.batch}, Adagrad lr {args.lr} + cosine, "
             "weight decay 1e-6, one seed; relative error on 20k fresh inputs")
    lines = ["# Fig. 3a (scaled down): GDL vs MLP of >= FLOPs emulating a random hypernetwork layer", "",
             f"Scale: {scale}.", "",
             "Command: `PYTHONPATH=. python experiments/gating_fig3a.py " + " ".join(sys.argv[1:]) + "`", "",
             "| s | n_k | GDL MACs | GDL rel. error | MLP width | MLP MACs | MLP rel. error |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['s']:g} | {r['n_k']} | {r['gdl_macs']} | {r['gdl_rel_err']:.4f} | {r['mlp_width']} | "
              f"{r['mlp_macs']} | {r['mlp_rel_err']:.4f} |" for r in rows]
    (args.out / "gating_fig3a.md").write_text("\n".join(lines) + "\n")

    import matplotlib  # noqa: PLC0415 (optional: the `experiments` extra)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ss = [r["s"] for r in rows]
    ax.plot(ss, [r["gdl_rel_err"] for r in rows], "o-", label="gated double layer")
    ax.plot(ss, [r["mlp_rel_err"] for r in rows], "s--", label="MLP, >= FLOPs")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("hidden size scale s (n_k = s * n_i * n_j)")
    ax.set_ylabel("relative error")
    ax.set_title("Emulating a random hypernetwork layer\n"
                 f"(CPU scale: d={d}, {args.samples // 1000}k samples, {args.epochs} epochs)", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "gating_fig3a.png", dpi=120)
    print(f"wrote {args.out}/gating_fig3a.{{md,csv,png}}")


if __name__ == "__main__":
    main()
