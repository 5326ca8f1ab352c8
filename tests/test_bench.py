"""``hyperisp bench`` at a tiny size: the report's shape and the equal-FLOPs twin."""
from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from hyperisp.bench import equal_flops_twin, matmul_peak_gflops
from hyperisp.cli import app
from hyperisp.models import count_flops, create_model, get_config
from hyperisp.models.counting import input_shape_for
from hyperisp.pretrained import get_card


@pytest.mark.parametrize("config, task", [("isp_small", "isp"), ("denoise_small", "denoise")])
def test_equal_flops_twin_is_plain_and_close_in_flops(config, task):
    shape = input_shape_for(task, 1.0)
    twin = equal_flops_twin(get_config(config), shape)
    with torch.device("meta"):
        target = count_flops(create_model(config), shape).total
        got = count_flops(create_model(twin), shape).total
        assert count_flops(create_model(twin), shape).filter_prediction == 0  # no predicted filters
    assert twin["arch"] in ("hyperunet", "vdn") and twin.get("plain", True)
    assert abs(got / target - 1) < 0.15


def test_matmul_peak_is_positive():
    assert matmul_peak_gflops(size=256, repeats=2) > 0


def test_bench_cli_json_at_a_tiny_size():
    result = CliRunner().invoke(app, ["bench", "--mp", "0.02", "--no-baselines", "--no-isolate", "--repeats", "3",
                                      "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    names = [c["name"] for c in report["cases"]]
    assert names == ["isp: network", "isp: end to end"]
    network = report["cases"][0]
    assert network["seconds"] > 0 and network["gflop_per_s"] > 0 and network["peak_rss_mb"] > 50
    assert 0 < network["peak_fraction"] < 5
    assert len(network["runs"]) == report["repeats"] == 3 and network["seconds"] == sorted(network["runs"])[1]
    assert report["matmul_peak_gflops"] > 0
    # develop's default is one view; --ensemble 2 runs both views and counts both views' FLOPs
    with torch.device("meta"):
        one_view = count_flops(create_model(get_card("isp").config), input_shape_for("isp", 0.02)).total
    assert report["ensemble"] == 1 and "views" not in network["note"] and network["flops"] == one_view
    both = CliRunner().invoke(app, ["bench", "--mp", "0.02", "--no-baselines", "--no-isolate", "--repeats", "1",
                                    "--ensemble", "2", "--json"])
    assert both.exit_code == 0, both.output
    two_views = json.loads(both.output)["cases"][0]
    assert "2 views" in two_views["note"] and two_views["flops"] == 2 * one_view
