"""The weights registry: cards, hashes, and clear errors for broken files."""
from __future__ import annotations

import json

import pytest
import torch

from hyperisp import HyperispError, create_model, load_pretrained
from hyperisp.pretrained import (MAX_WEIGHTS_BYTES, file_sha256, get_card, list_pretrained, save_pretrained,
                                 weights_dir)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = create_model("hyperunet_8_8_256")
    save_pretrained(model, "tiny", trained=False, description="test model", directory=tmp_path)
    return model, tmp_path


def test_save_then_load_gives_the_same_outputs(saved):
    model, directory = saved
    loaded = load_pretrained("tiny", directory=directory)
    x = torch.rand(1, 4, 20, 24)
    with torch.no_grad():
        # fp16 storage: the outputs agree to fp16 weight precision, not bit-exactly
        assert torch.allclose(model.eval()(x), loaded(x), atol=2e-2)
    card = get_card("tiny", directory)
    assert card.sha256 == file_sha256(directory / "tiny.safetensors")
    assert card.config == model.config and card.params == sum(p.numel() for p in model.parameters())


def test_missing_weights_file(saved):
    _, directory = saved
    (directory / "tiny.safetensors").unlink()
    with pytest.raises(HyperispError, match="missing"):
        load_pretrained("tiny", directory=directory)


def test_corrupt_weights_file(saved):
    _, directory = saved
    path = directory / "tiny.safetensors"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(HyperispError, match="sha256 does not match"):
        load_pretrained("tiny", directory=directory)


def test_weights_that_do_not_fit_the_card(saved):
    _, directory = saved
    card = json.loads((directory / "tiny.json").read_text())
    card["config"] = create_model("hyperunet_16_16_1024").config
    (directory / "tiny.json").write_text(json.dumps(card))
    with pytest.raises(HyperispError, match="do not fit"):
        load_pretrained("tiny", directory=directory)


def test_unknown_model_names_the_shipped_ones(saved):
    _, directory = saved
    with pytest.raises(HyperispError, match="shipped models: tiny"):
        load_pretrained("nope", directory=directory)


def test_int8_storage_keeps_the_outputs_at_half_the_size(saved, tmp_path):
    model, directory = saved
    card = save_pretrained(model, "tiny8", trained=False, description="t", directory=tmp_path / "q", dtype="int8")
    assert card.dtype == "int8" and get_card("tiny", directory).dtype == "float16"
    size8, size16 = ((d / f"{n}.safetensors").stat().st_size for d, n in ((tmp_path / "q", "tiny8"), (directory, "tiny")))
    assert size8 < 0.6 * size16
    loaded = load_pretrained("tiny8", directory=tmp_path / "q")
    x = torch.rand(1, 4, 20, 24)
    with torch.no_grad():
        out, reference = loaded(x), model.eval()(x)
    assert torch.allclose(out, reference, atol=5e-2) and not torch.equal(out, reference)


def test_a_file_over_the_limit_is_stored_in_int8(tmp_path, monkeypatch):
    import hyperisp.pretrained as pretrained

    model = create_model("hyperunet_8_8_256")
    fp16 = save_pretrained(model, "a", trained=False, description="t", directory=tmp_path)
    monkeypatch.setattr(pretrained, "MAX_WEIGHTS_BYTES", (tmp_path / "a.safetensors").stat().st_size - 1)
    auto = save_pretrained(model, "b", trained=False, description="t", directory=tmp_path)
    forced = save_pretrained(model, "c", trained=False, description="t", directory=tmp_path, dtype="float16")
    assert (fp16.dtype, auto.dtype, forced.dtype) == ("float16", "int8", "float16")
    assert auto.sha256 == file_sha256(tmp_path / "b.safetensors")
    with pytest.raises(ValueError, match="expected dtype"):
        save_pretrained(model, "d", trained=False, description="t", directory=tmp_path, dtype="bfloat16")


def test_shipped_weights_match_their_cards():
    cards = list_pretrained()
    assert {"isp", "denoise"} <= {c.name for c in cards}
    for card in cards:
        path = weights_dir() / card.file
        assert path.stat().st_size <= MAX_WEIGHTS_BYTES, f"{path} is over 25 MB"
        assert file_sha256(path) == card.sha256
        assert card.training.get("data") is not None, "a card must say what it was trained on"
        load_pretrained(card.name)  # builds and loads without error
