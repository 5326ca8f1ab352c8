"""Colour check of an isp model: develop synthetic ColorChecker DNGs and measure the cast on greys.

The PSNR protocol (:mod:`hyperisp.evaluate`) scores demosaicking with identity colour
(gains 1), so it cannot see a colour bias that only shows after white balance: a small
red offset in the darks becomes a magenta cast once a camera's red gain (~2x) is applied.
Here the whole ``develop`` path runs on charts from :mod:`hyperisp.raw.chart_dng` under
daylight and tungsten (strong blue gain), well exposed and 3 stops under (developed
+3 EV, so noise and dark-level errors are amplified as a photographer pushing shadows
would). Reported per chart: mean CIEDE2000 over the 24 patches and the mean chroma
error (CIELAB, D50) of the six neutral patches, beside the bilinear demosaic (an
untrained ``isp_small``: a zero residual over bilinear) in the same run.
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Sequence

import torch

from .models import create_model
from .pipeline import develop_raw
from .raw import read_raw
from .raw.chart_dng import chart_errors, write_chart_dng

# (illuminant, exposure factor); developed at +log2(1 / exposure) EV.
CHARTS: tuple[tuple[str, float], ...] = (("D65", 1.0), ("A", 1.0), ("D65", 0.125), ("A", 0.125))


def chart_level(illuminant: str, exposure: float) -> str:
    """A row label such as 'chart A -3EV'."""
    return f"chart {illuminant} {round(math.log2(exposure)):+d}EV" if exposure != 1 else f"chart {illuminant}"


def evaluate_colour(model: torch.nn.Module, model_name: str = "model",
                    charts: Sequence[tuple[str, float]] = CHARTS, bilinear: bool = True,
                    ensemble: int = 1) -> list[dict[str, object]]:
    """Develop each chart with the model (and bilinear); one row per (method, chart).

    ``ensemble``: the model's self-ensemble views (:mod:`hyperisp.ensemble`), as ``hyperisp eval`` scores it.

    Returns:
        rows {"method", "level", "mean_de2000", "neutral_chroma"}.
    """
    methods = {model_name: model}
    if bilinear:
        methods["bilinear"] = create_model("isp_small").eval()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for illuminant, exposure in charts:
            raw = read_raw(write_chart_dng(Path(tmp) / "chart.dng", illuminant, "correct", exposure))
            for name, net in methods.items():
                developed = develop_raw(raw, model=net, device="cpu", exposure=-math.log2(exposure), linear=True,
                                        ensemble=ensemble if name == model_name else 1)
                mean_de, neutral = chart_errors(developed.rgb)
                rows.append({"method": name, "level": chart_level(illuminant, exposure),
                             "mean_de2000": mean_de, "neutral_chroma": neutral})
    return rows
