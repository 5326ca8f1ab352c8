"""The command line through Typer's CliRunner: success paths and one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from hyperisp.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error:")]


def test_develop_writes_a_jpeg_beside_the_input(small_dng: Path):
    result = run("develop", small_dng)
    assert result.exit_code == 0, result.output
    out = small_dng.with_suffix(".jpg")
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == (96, 64)
        assert im.info.get("icc_profile")


@pytest.mark.parametrize("name, fmt", [("out.png", "PNG"), ("out.tif", "TIFF")])
def test_develop_format_from_extension(small_dng: Path, tmp_path: Path, name: str, fmt: str):
    result = run("develop", small_dng, "-o", tmp_path / name)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / name) as im:
        assert im.format == fmt


def test_develop_sample(tmp_path: Path):
    result = run("develop", "--sample", "-o", tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "hyperisp_sample.jpg").is_file()


def test_existing_output_is_kept_without_overwrite(small_dng: Path, tmp_path: Path):
    out = tmp_path / "out.jpg"
    out.write_bytes(b"precious")
    result = run("develop", small_dng, "-o", out)
    assert result.exit_code != 0
    assert len(error_lines(result)) == 1 and "already exists" in result.output
    assert out.read_bytes() == b"precious"
    assert run("develop", small_dng, "-o", out, "--overwrite").exit_code == 0
    assert out.read_bytes() != b"precious"


@pytest.mark.parametrize("content, reason", [(b"", "empty"), (b"hello, I am text\n" * 20, "")])
def test_bad_raw_gives_one_line_and_no_output(tmp_path: Path, content: bytes, reason: str):
    bad = tmp_path / "bad.dng"
    bad.write_bytes(content)
    result = run("develop", bad)
    assert result.exit_code != 0
    lines = error_lines(result)
    assert len(lines) == 1 and str(bad) in lines[0] and reason in lines[0]
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.dng"]


def test_truncated_dng(small_dng: Path, tmp_path: Path):
    cut = tmp_path / "cut.dng"
    cut.write_bytes(small_dng.read_bytes()[:3000])
    result = run("develop", cut, "-o", tmp_path / "cut.jpg")
    assert result.exit_code != 0 and len(error_lines(result)) == 1
    assert not (tmp_path / "cut.jpg").exists()


def test_unwritable_output_folder(small_dng: Path, tmp_path: Path):
    result = run("develop", small_dng, "-o", tmp_path / "no" / "such" / "out.jpg")
    assert result.exit_code != 0 and len(error_lines(result)) == 1
    assert "Traceback" not in result.output


def test_batch_goes_on_past_a_bad_file(small_dng: Path, tmp_path: Path):
    bad = tmp_path / "bad.dng"
    bad.write_text("not a raw")
    outdir = tmp_path / "out"
    outdir.mkdir()
    result = run("develop", bad, small_dng, "-o", outdir)
    assert result.exit_code == 1
    assert (outdir / "small.jpg").is_file() and not (outdir / "bad.jpg").exists()
    assert "1 of 2" in result.output


def test_bad_white_balance_option(small_dng: Path):
    result = run("develop", small_dng, "--wb", "1,2")
    assert result.exit_code == 2 and "--wb" in result.output


def test_develop_with_explicit_gains(small_dng: Path, tmp_path: Path):
    out = tmp_path / "gains.png"
    assert run("develop", small_dng, "-o", out, "--wb", "2,1,1.5").exit_code == 0
    assert out.is_file()


def test_denoise_png(small_png: Path):
    result = run("denoise", small_png)
    assert result.exit_code == 0, result.output
    with Image.open(small_png.with_name("noisy_denoised.png")) as im:
        assert im.size == (56, 40)


def test_denoise_strength_zero_keeps_the_input_and_out_of_range_is_refused(small_png: Path, tmp_path: Path):
    kept = tmp_path / "kept.png"
    assert run("denoise", small_png, "--strength", "0", "-o", kept).exit_code == 0
    with Image.open(small_png) as a, Image.open(kept) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
    result = run("denoise", small_png, "--strength", "1.5", "-o", tmp_path / "x.png")
    assert result.exit_code == 2 and "--strength" in result.output and not (tmp_path / "x.png").exists()


def test_denoise_bad_image(tmp_path: Path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = run("denoise", bad)
    assert result.exit_code != 0 and len(error_lines(result)) == 1 and str(bad) in result.output


def test_info_reports_spec_param_count():
    result = run("info", "hyperunet_8_8_256", "--megapixels", "1", "--json")
    assert result.exit_code == 0, result.output
    cost = json.loads(result.output)
    assert round(cost["params"] / 1e6, 1) == 1.3
    assert cost["flops_total"] == cost["flops_forward"] + cost["flops_filter_prediction"]


def test_info_unknown_model():
    result = run("info", "no_such_model")
    assert result.exit_code != 0 and "no_such_model" in result.output


def test_models_lists_shipped_cards():
    result = run("models", "--json")
    assert result.exit_code == 0
    names = {card["name"] for card in json.loads(result.output)}
    assert {"isp", "denoise"} <= names
    from hyperisp.pretrained import get_card

    table = run("models")  # the table shows each model's PSNR by test level, read from its card
    isp_clean = next(m for m in get_card("isp").metrics if m["name"] == "isp clean psnr")
    assert table.exit_code == 0 and f"{isp_clean['value']:.2f}" in table.output and "moderate" in table.output


def test_help_texts():
    for command in ("develop", "denoise", "info", "models"):
        result = run(command, "--help")
        assert result.exit_code == 0 and "Usage" in result.output


def test_denoise_keeps_a_16_bit_pngs_depth_unless_told(tmp_path: Path):
    from hyperisp.io.images import read_image, write_image

    pixels = np.clip(0.5 + np.random.default_rng(2).normal(0, 0.1, (24, 32, 3)), 0, 1)
    deep = write_image(tmp_path / "deep.png", pixels, fmt="png16")
    assert run("denoise", deep).exit_code == 0
    assert read_image(tmp_path / "deep_denoised.png").bit_depth == 16
    assert run("denoise", deep, "-f", "png", "-o", tmp_path / "asked8.png").exit_code == 0
    assert read_image(tmp_path / "asked8.png").bit_depth == 8
    shallow = write_image(tmp_path / "shallow.png", pixels)
    assert run("denoise", shallow).exit_code == 0
    assert read_image(tmp_path / "shallow_denoised.png").bit_depth == 8


def test_denoise_writes_a_grey_photo_grey(tmp_path: Path):
    y, x = np.mgrid[0:40, 0:56]
    grey = np.clip(0.5 + 0.3 * np.sin(x / 5) + np.random.default_rng(4).normal(0, 0.08, x.shape), 0, 1)
    Image.fromarray(np.round(grey * 255).astype(np.uint8), "L").save(tmp_path / "bw.png")
    Image.fromarray(np.round(grey * 65535).astype(np.uint16)).save(tmp_path / "bw16.png")
    assert run("denoise", tmp_path / "bw.png", tmp_path / "bw16.png").exit_code == 0
    with Image.open(tmp_path / "bw_denoised.png") as im, Image.open(tmp_path / "bw16_denoised.png") as deep:
        assert im.mode == "L" and deep.mode == "I;16"


def test_denoise_takes_webp_and_writes_png(tmp_path: Path):
    pixels = np.clip(0.5 + np.random.default_rng(5).normal(0, 0.1, (24, 32, 3)), 0, 1)
    Image.fromarray(np.round(pixels * 255).astype(np.uint8)).save(tmp_path / "phone.webp", quality=90)
    result = run("denoise", tmp_path)  # a folder: the WebP is found
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "phone_denoised.png") as im:
        assert im.size == (32, 24)
