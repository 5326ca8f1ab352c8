"""Write a training run's best weights (RUN/best.pt) as a model card + safetensors, for evaluation.

``hyperisp train --export`` does this at the end of a run when held-out PSNR improves; this
script does it for a run stopped early or scored first with ``hyperisp eval --model CARD``
before it replaces a shipped model (copy the two files into weights/ only if it wins).

    PYTHONPATH=. python experiments/export_checkpoint.py runs/dn2 denoise --out runs/dn2/card \
        --recipe "hyperisp train denoise --data ... --out runs/dn2 ..." [--set pool_cell=128]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from hyperisp.models import reconfigured
from hyperisp.pretrained import save_pretrained
from hyperisp.train.trainer import TrainConfig, best_validation, build_model, scored_weights, training_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("name")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--recipe", required=True, help="the command(s) that trained the run")
    parser.add_argument("--init", default=None, help="what the run started from, for the card")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides KEY=INT (e.g. pool_cell=128)")
    parser.add_argument("--last", action="store_true", help="the last checkpoint instead of the best validated weights")
    parser.add_argument("--dtype", choices=["float16", "int8"], default=None,
                        help="storage (default: float16 if the file fits in 25 MB, else int8)")
    args = parser.parse_args()
    config = TrainConfig(**json.loads((args.run / "config.json").read_text()))
    model = build_model(config)  # the run's architecture, as the trainer built it (its weights come below)
    if args.set:
        model = reconfigured(model, **{k: int(v) for k, v in (s.split("=") for s in args.set)})
    arch_name = config.model or model.config["arch"]
    log = [json.loads(line) for line in (args.run / "log.jsonl").read_text().splitlines()]
    validated = [e for e in log if e.get("val_psnr") is not None]
    if args.last:
        state = torch.load(args.run / "checkpoint.pt", map_location="cpu", weights_only=False)
        model.load_state_dict(scored_weights(state))  # the moving average's when the run kept one
        best = [e for e in validated if e["iteration"] == state["iteration"]][-1]
    else:
        model.load_state_dict(torch.load(args.run / "best.pt", map_location="cpu"))
        best = best_validation(validated, config)
    training = training_record(config, best["iteration"], args.recipe, best["val_psnr"], args.init)
    card = save_pretrained(model.eval(), args.name, trained=True, directory=args.out, training=training, dtype=args.dtype,
                           description=f"{arch_name} trained on {', '.join(Path(d).name for d in config.data)} "
                                       f"({'last' if args.last else 'best'} held-out PSNR at iteration {best['iteration']})")
    print(f"wrote {args.out / card.file} ({card.dtype}) and its card "
          f"({best['val_psnr']:.2f} dB held out at {best['iteration']})")


if __name__ == "__main__":
    main()
