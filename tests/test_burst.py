"""`hyperisp burst` and hyperisp.burst.burst_denoise: shipped model, grey/colour, tiling, errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from hyperisp.burst import burst_denoise, read_burst
from hyperisp.cli import app
from hyperisp.data.unprocess import linear_to_srgb, srgb_to_linear
from hyperisp.errors import HyperispError
from hyperisp.io.images import write_image
from hyperisp.models import create_model
from hyperisp.pretrained import get_card


def _clean(shape):
    h, w = shape[:2]
    base = np.linspace(0.2, 0.8, w, dtype=np.float32)[None, :].repeat(h, 0)
    if len(shape) == 3:
        base = np.stack([base, base[::-1] * 0.5, np.full_like(base, 0.3)], -1)
    return base


def _frames(n, shape, seed=0):
    rng = np.random.default_rng(seed)
    base = _clean(shape)
    return [np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1).astype(np.float32) for _ in range(n)]


def _untrained():
    return create_model("gated_kpn_128").eval()  # its gate starts as the (pointwise) frame mean


def _linear_mean(frames):
    """What the untrained model returns: the mean of the burst cycled to 8 frames, in linear space."""
    frames = [frames[i % len(frames)] for i in range(8)]
    stack = srgb_to_linear(torch.from_numpy(np.stack(frames)))
    return linear_to_srgb(stack.mean(0)).clamp(0, 1).numpy()


def test_shipped_burst_model_is_small_honest_and_gated():
    card = get_card("burst")
    assert card.task == "burst" and card.config["arch"] == "gated_kpn"
    assert card.trained is bool(card.metrics)  # a trained model ships with measured metrics
    size = (Path(__file__).resolve().parents[1] / "weights" / card.file).stat().st_size
    assert size <= 25_000_000


@pytest.mark.parametrize("n", [2, 3, 8])
def test_untrained_model_averages_a_grey_burst(n):
    frames = _frames(n, (24, 40))
    out = burst_denoise(frames, model=_untrained(), device="cpu")
    assert out.shape == (24, 40) and out.dtype == np.float32
    np.testing.assert_allclose(out, _linear_mean(frames), atol=1e-4)
    assert out.std(0).mean() < frames[0].std(0).mean()  # noise went down


def test_shipped_model_denoises_a_burst():
    frames = _frames(8, (48, 64))
    out = burst_denoise(frames, device="cpu")
    error = np.sqrt(((out - _clean((48, 64))) ** 2).mean())
    assert error < 0.6 * np.sqrt(((frames[0] - _clean((48, 64))) ** 2).mean())


def test_colour_burst_goes_channel_by_channel():
    frames = _frames(3, (20, 30, 3))
    out = burst_denoise(frames, model=_untrained(), device="cpu")
    assert out.shape == (20, 30, 3)
    np.testing.assert_allclose(out, _linear_mean(frames), atol=1e-4)


def test_burst_strength_blends_with_the_first_frame():
    frames = _frames(3, (20, 30, 3))
    half = burst_denoise(frames, model=_untrained(), device="cpu", strength=0.5)
    np.testing.assert_allclose(half, frames[0] + 0.5 * (_linear_mean(frames) - frames[0]), atol=1e-4)
    assert np.array_equal(burst_denoise(frames, model=_untrained(), device="cpu", strength=0, chroma_strength=0),
                          frames[0])
    with pytest.raises(HyperispError, match="chroma strength 2"):
        burst_denoise(frames, model=_untrained(), device="cpu", chroma_strength=2)


def test_tiles_are_stitched_in_place():
    torch.manual_seed(0)
    net = create_model("gated_kpn_64", widths=[8, 8]).eval()  # starts as the (pointwise) frame mean
    frames = _frames(4, (70, 90))
    whole = burst_denoise(frames, model=net, device="cpu", tile=512)
    tiled = burst_denoise(frames, model=net, device="cpu", tile=16)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_bad_bursts_are_one_clear_error(tmp_path: Path):
    with pytest.raises(HyperispError, match="no frames"):
        read_burst([])
    with pytest.raises(HyperispError, match="only one frame"):
        read_burst(_frames(1, (8, 8)))
    with pytest.raises(HyperispError, match="at most 8"):
        read_burst(_frames(9, (8, 8)))
    a = write_image(tmp_path / "a.png", _frames(1, (16, 16))[0])
    b = write_image(tmp_path / "b.png", _frames(1, (16, 16))[0])
    c = write_image(tmp_path / "c.png", _frames(1, (16, 20))[0])
    with pytest.raises(HyperispError, match="20x16 but the first frame is 16x16") as info:
        read_burst([a, b, c, c])
    assert str(info.value).startswith(str(c))
    with pytest.raises(HyperispError, match="frame 2"):
        read_burst([np.zeros((4, 4), np.float32), np.zeros((5, 4), np.float32)])


def test_grey_files_stay_grey_and_colour_is_detected(tmp_path: Path):
    grey = [write_image(tmp_path / f"g{i}.png", f) for i, f in enumerate(_frames(2, (8, 8)))]
    colour = [write_image(tmp_path / f"c{i}.png", f) for i, f in enumerate(_frames(2, (8, 8, 3)))]
    assert read_burst(grey)[0].shape == (2, 8, 8)
    assert read_burst(colour)[0].shape == (2, 8, 8, 3)


def test_burst_keeps_the_first_frames_icc_profile_where_it_fits(tmp_path: Path):
    """The pixels stay in the frames' colour space, as denoise's do; an RGB profile cannot tag a grey result."""
    from hyperisp.burst import burst_denoise_file
    from hyperisp.io.images import read_image
    from hyperisp.io.icc import linear_srgb_icc_profile

    rgb_profile = linear_srgb_icc_profile()
    grey_profile = rgb_profile[:16] + b"GRAY" + rgb_profile[20:]  # the header's data colour space is what is checked
    cases = [((24, 32, 3), rgb_profile, rgb_profile), ((24, 32), grey_profile, grey_profile), ((24, 32), rgb_profile, None)]
    for i, (shape, profile, kept) in enumerate(cases):
        frames = []
        for j, frame in enumerate(_frames(3, shape)):
            frames.append(tmp_path / f"case{i}_{j}.png")
            Image.fromarray(np.round(frame * 255).astype(np.uint8)).save(frames[-1], icc_profile=profile)
        out = burst_denoise_file(frames, tmp_path / f"case{i}_out.png", model=_untrained(), device="cpu")
        assert read_burst(frames).icc_profile == profile
        with Image.open(out) as im:
            assert im.mode == ("RGB" if len(shape) == 3 else "L") and im.info.get("icc_profile") == kept, i
        assert read_image(out).pixels.shape == (24, 32, 3)


def test_cli_burst(tmp_path: Path):
    paths = [write_image(tmp_path / f"f{i}.png", f) for i, f in enumerate(_frames(3, (24, 32, 3)))]
    runner = CliRunner()
    result = runner.invoke(app, ["burst", *map(str, paths)])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "f0_burst.png") as im:
        assert im.size == (32, 24) and im.mode == "RGB"
    out = tmp_path / "out.tif"
    assert runner.invoke(app, ["burst", *map(str, paths), "-o", str(out)]).exit_code == 0 and out.is_file()
    deep = [write_image(tmp_path / f"deep{i}.png", f, fmt="png16") for i, f in enumerate(_frames(2, (24, 32)))]
    assert runner.invoke(app, ["burst", *map(str, deep)]).exit_code == 0
    with Image.open(tmp_path / "deep0_burst.png") as im:  # a 16-bit burst stays 16-bit, grey stays grey
        assert im.mode == "I;16" and im.size == (32, 24)
    kept = tmp_path / "kept.png"
    assert runner.invoke(app, ["burst", *map(str, paths), "-s", "0", "--chroma-strength", "0", "-o", str(kept)]).exit_code == 0
    with Image.open(paths[0]) as a, Image.open(kept) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
    refused = runner.invoke(app, ["burst", *map(str, paths), "--chroma-strength", "1.5", "-o", str(tmp_path / "x.png")])
    assert refused.exit_code == 2 and "--chroma-strength" in refused.output and not (tmp_path / "x.png").exists()
    odd = write_image(tmp_path / "odd.png", _frames(1, (10, 10))[0])
    result = runner.invoke(app, ["burst", str(paths[0]), str(odd), "-o", str(tmp_path / "odd_out.png")])
    assert result.exit_code == 1 and f"error: {odd}" in result.output
    result = runner.invoke(app, ["burst", *map(str, paths), "-o", str(out)])
    assert result.exit_code == 1 and "already exists" in result.output  # kept unless --overwrite
    result = runner.invoke(app, ["burst"])
    assert result.exit_code == 1 and "no frames given" in result.output


def test_burst_keeps_the_first_frames_place_unless_told_not_to(tmp_path: Path):
    from hyperisp.io.images import read_image

    place = {"gps_latitude": 35.6586, "gps_longitude": 139.7454}
    paths = [write_image(tmp_path / f"f{i}.jpg", f, metadata=place) for i, f in enumerate(_frames(3, (24, 32, 3)))]
    runner = CliRunner()
    for flag, kept in (([], True), (["--strip-location"], False)):
        out = tmp_path / f"out{len(flag)}.jpg"
        assert runner.invoke(app, ["burst", *map(str, paths), "-o", str(out), *flag]).exit_code == 0
        metadata = read_image(out).metadata
        assert ("gps_latitude" in metadata) == kept and metadata.get("gps_longitude", 139.7454) == pytest.approx(139.7454)
