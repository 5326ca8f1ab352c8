"""Shipped weights: safetensors files with JSON model cards, verified on load.

A model card (``weights/<name>.json``) holds everything needed to rebuild and
judge a model: the architecture config (for :func:`hyperisp.models.create_model`),
what it was trained on, its metrics with the command that produced them, and
the sha256 of its weights file. Cards are written by :func:`save_pretrained`,
never by hand. Nothing is ever downloaded.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from .errors import HyperispError
from .models import create_model
from .quantize import dequantize_state, quantize_state

CARD_VERSION = 1
MAX_WEIGHTS_BYTES = 25_000_000  # per weights file (the project's limit for what git carries)


@dataclass
class ModelCard:
    """The JSON card that sits beside each weights file."""

    name: str
    task: str  # "isp" | "denoise" | "burst"
    config: dict[str, Any]
    file: str
    sha256: str
    trained: bool
    description: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    params: int = 0
    dtype: str = "float16"  # or "int8": matrices in 8 bits with a scale per row (hyperisp.quantize)
    card_version: int = CARD_VERSION

    @classmethod
    def from_json(cls, path: Path) -> "ModelCard":
        try:
            data = json.loads(path.read_text())
            return cls(**data)
        except (OSError, ValueError, TypeError) as err:
            raise HyperispError(path, f"unreadable model card ({err})") from None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def weights_dir() -> Path:
    """Where shipped weights live: $HYPERISP_WEIGHTS, the checkout's weights/, or the wheel's copy."""
    if env := os.environ.get("HYPERISP_WEIGHTS"):
        return Path(env)
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "weights", package / "_weights"):
        if candidate.is_dir():
            return candidate
    return package.parent / "weights"


def list_pretrained(directory: Path | None = None) -> list[ModelCard]:
    """All model cards in the weights folder, sorted by name."""
    directory = directory or weights_dir()
    return [ModelCard.from_json(p) for p in sorted(directory.glob("*.json"))]


def _card_path(name_or_path: str | Path, directory: Path | None) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".json":
        return path
    return (directory or weights_dir()) / f"{name_or_path}.json"


def get_card(name_or_path: str | Path, directory: Path | None = None) -> ModelCard:
    """The card of a shipped model (by name) or of a card file (by path)."""
    path = _card_path(name_or_path, directory)
    if not path.is_file():
        known = ", ".join(c.name for c in list_pretrained(path.parent)) if path.parent.is_dir() else ""
        known = known or "none"
        raise HyperispError(path, f"no such model card (shipped models: {known})")
    return ModelCard.from_json(path)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_pretrained(
    name_or_path: str | Path, device: str | torch.device = "cpu", directory: Path | None = None
) -> torch.nn.Module:
    """Build the card's architecture, load and verify its weights, and return it in eval mode (fp32).

    Raises:
        HyperispError: the card or weights file is missing, the file's sha256 does
            not match the card (corrupt or replaced), or the tensors do not fit
            the card's architecture.
    """
    card_path = _card_path(name_or_path, directory)
    card = get_card(card_path)
    weights_path = card_path.parent / card.file
    if not weights_path.is_file():
        raise HyperispError(weights_path, f"weights file of model '{card.name}' is missing")
    if file_sha256(weights_path) != card.sha256:
        raise HyperispError(weights_path, "sha256 does not match its model card (corrupt or replaced file)")
    try:
        state = dequantize_state(load_file(str(weights_path)))
    except (SafetensorError, OSError, ValueError) as err:
        raise HyperispError(weights_path, f"not a readable safetensors file ({err})") from None
    model = create_model(card.config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{label} {keys[:3]}{'...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        )
        raise HyperispError(weights_path, f"weights do not fit the card's architecture ({detail})")
    model.load_state_dict(state)
    return model.eval().to(device)


def save_pretrained(
    model: torch.nn.Module,
    name: str,
    *,
    trained: bool,
    description: str,
    training: dict[str, Any] | None = None,
    metrics: list[dict[str, Any]] | None = None,
    directory: Path | None = None,
    dtype: str | None = None,
) -> ModelCard:
    """Write ``<name>.safetensors`` and its card. The card's hash and config come from the files themselves.

    ``dtype``: "float16", "int8" (:mod:`hyperisp.quantize`), or None for float16 when that
    file fits in :data:`MAX_WEIGHTS_BYTES` and int8 otherwise.
    """
    if dtype not in (None, "float16", "int8"):
        raise ValueError(f"expected dtype 'float16', 'int8' or None, got {dtype!r}")
    directory = directory or weights_dir()
    directory.mkdir(parents=True, exist_ok=True)
    weights_path = directory / f"{name}.safetensors"
    state = model.state_dict()
    half = None if dtype == "int8" else save({k: v.detach().to("cpu", torch.float16).contiguous()
                                              for k, v in state.items()})
    if dtype is None:
        dtype = "float16" if len(half) <= MAX_WEIGHTS_BYTES else "int8"
    weights_path.write_bytes(half if dtype == "float16" else save(quantize_state(state)))
    card = ModelCard(
        name=name,
        task=model.task,
        config=dict(model.config),
        file=weights_path.name,
        sha256=file_sha256(weights_path),
        trained=trained,
        description=description,
        training=training or {},
        metrics=metrics or [],
        params=sum(p.numel() for p in model.parameters()),
        dtype=dtype,
    )
    (directory / f"{name}.json").write_text(card.to_json())
    return card


def update_card_metrics(name_or_path: str | Path, metrics: list[dict[str, Any]],
                        directory: Path | None = None) -> Path:
    """Record metrics in a card (e.g. those measured by ``hyperisp eval --write-card``).

    A metric replaces the card's metric of the same name; others are kept, so evaluations of
    different protocols (e.g. both burst noise forms) add up. The weights are unchanged, so
    the sha256 stays valid. Returns the card path.
    """
    path = _card_path(name_or_path, directory)
    card = get_card(path)
    names = {m["name"] for m in metrics}
    card.metrics = [m for m in card.metrics if m.get("name") not in names] + list(metrics)
    path.write_text(card.to_json())
    return path
