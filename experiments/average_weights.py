"""Average the weights of model cards that share an architecture (a "model soup", Wortsman et al. 2022).

Two short runs from one parent that trade one test for another (runs/dn21: L1 on the realistic
mix, better on real noise; runs/dn22: MSE, better on strong AWGN) stay in one loss basin, so
their mean is a model too, often with the better half of each. The card keeps the first
card's training record, with the inputs and weights listed. A HyperVDN that differs from the
first card's only in its D-Net widths is widened to it first (same function,
:mod:`hyperisp.train.widen`), so a run that widened its start can be averaged with that start.

    PYTHONPATH=. python experiments/average_weights.py runs/dn21/card/denoise.json \
        runs/dn22/card/denoise.json --name denoise --out runs/soup [--weights 0.5 0.5]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from hyperisp.models import create_model
from hyperisp.pretrained import get_card, load_pretrained, save_pretrained
from hyperisp.train.widen import can_widen, widen_hypervdn


def average_state(models: list[torch.nn.Module], weights: list[float]) -> dict[str, torch.Tensor]:
    """sum_i w_i * state_i for models of one architecture (weights normalised to sum 1)."""
    configs = [m.config for m in models]
    if any(c != configs[0] for c in configs):
        raise ValueError("expected models of one architecture, got different configs")
    total = sum(weights)
    states = [m.state_dict() for m in models]
    return {k: sum(w / total * s[k].float() for w, s in zip(weights, states)) for k in states[0]}


def as_architecture_of(model: torch.nn.Module, reference: torch.nn.Module) -> torch.nn.Module:
    """``model``, widened to ``reference``'s D-Net widths and filter-MLP width (``n_hid``) when those are
    all their configs differ in."""
    if model.config == reference.config or not can_widen(reference, model):
        return model
    return widen_hypervdn(create_model(reference.config), model).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cards", nargs="+", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--weights", nargs="*", type=float, default=None, help="one per card (default: equal)")
    args = parser.parse_args()
    weights = args.weights or [1.0] * len(args.cards)
    if len(weights) != len(args.cards):
        parser.error(f"expected {len(args.cards)} weights, got {len(weights)}")
    models = [load_pretrained(card) for card in args.cards]
    models = [as_architecture_of(m, models[0]) for m in models]
    cards = [get_card(card) for card in args.cards]
    model = models[0]
    model.load_state_dict(average_state(models, weights))
    parts = ", ".join(f"{w:g} x {c}" for w, c in zip(weights, args.cards))
    # Each averaged model's own recipe and start, so the card tells how every part was made.
    sources = [{"card": str(path), "recipe": card.training.get("recipe", ""),
                "started_from": card.training.get("started_from", "")} for path, card in zip(args.cards, cards)]
    training = {**cards[0].training, "averaged": parts, "sources": sources}
    save_pretrained(model, args.name, trained=True, directory=args.out, training=training,
                    description=f"weight average of {parts}")
    print(f"wrote {args.out / args.name}.json: {parts}")


if __name__ == "__main__":
    main()
