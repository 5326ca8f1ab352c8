"""experiments/export_checkpoint.py: a run's weights as a card, in the architecture the trainer built."""
import json
import sys

import pytest
import torch

from conftest import load_experiment
from hyperisp.pretrained import file_sha256, load_pretrained
from hyperisp.train.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_export_keeps_the_weights_and_sets_config_options(tmp_path, tiny_config, monkeypatch):
    run = tmp_path / "run"
    model = train(tiny_config("denoise", iters=2, validate_every=2), run, progress=False)["model"].eval()
    export = load_experiment("export_checkpoint").main
    for name, extra in (("plain", []), ("clipping", ["--set", "clip_input=1"])):
        monkeypatch.setattr(sys, "argv", ["export_checkpoint.py", str(run), name, "--out", str(tmp_path / name),
                                          "--recipe", "hyperisp train denoise ...", "--last", *extra])
        export()
    plain = json.loads((tmp_path / "plain" / "plain.json").read_text())
    clipping = json.loads((tmp_path / "clipping" / "clipping.json").read_text())
    assert "clip_input" not in plain["config"] and clipping["config"]["clip_input"] is True
    assert plain["sha256"] == clipping["sha256"] == file_sha256(tmp_path / "clipping" / "clipping.safetensors")
    assert plain["training"]["iterations"] == 2 and plain["training"]["recipe"] == "hyperisp train denoise ..."
    x = torch.rand(1, 3, 32, 32) * 1.6 - 0.3
    with torch.no_grad():
        model.out_scale.fill_(1.0)  # two steps barely move the residual: make it count
        for card, clip in ((tmp_path / "plain" / "plain.json", False), (tmp_path / "clipping" / "clipping.json", True)):
            loaded = load_pretrained(card)
            loaded.out_scale.fill_(1.0)
            expected = model(x.clamp(0, 1) if clip else x)
            torch.testing.assert_close(loaded(x), expected, rtol=0, atol=2e-3)  # fp16 weights
