"""One code path for single files and batches: the linear-format check, the shared read/network/write steps."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hyperisp.cli import app
from hyperisp.errors import HyperispError
from hyperisp.io.images import read_image
from hyperisp.pipeline import develop_file, linear_output_format

runner = CliRunner()


@pytest.mark.parametrize("output, fmt, expected", [
    (None, None, "tiff"), ("outdir", None, "tiff"), ("a.TIF", None, "tiff"), ("a.png", None, "png16"),
    ("a.png", "tif", "tiff"), ("a.jpg", "png16", "png16"),
])
def test_linear_output_format_picks_16_bits(output, fmt, expected):
    assert linear_output_format(output, fmt) == expected


@pytest.mark.parametrize("output, fmt", [("a.jpg", None), ("a.JPEG", None), ("a.tif", "png"), (None, "jpeg")])
def test_linear_output_format_refuses_8_bits(output, fmt):
    with pytest.raises(HyperispError, match="linear output needs 16 bits"):
        linear_output_format(output, fmt)


def test_cli_and_api_share_the_linear_check(small_dng: Path, tmp_path: Path):
    for args in (["--format", "jpeg"], ["-o", str(tmp_path / "a.jpg")]):
        result = runner.invoke(app, ["develop", str(small_dng), "--linear", *args])
        assert result.exit_code == 2 and "linear output needs 16 bits" in result.output, result.output
    assert not list(tmp_path.glob("a.*"))
    with pytest.raises(HyperispError, match="linear output needs 16 bits"):
        develop_file(small_dng, tmp_path / "b.png", fmt="png", linear=True, device="cpu")
    with pytest.raises(HyperispError, match="unknown image extension"):
        develop_file(small_dng, tmp_path / "b.raw", linear=True, device="cpu")
    develop_file(small_dng, tmp_path / "c.png", linear=True, device="cpu")  # .png: 16-bit PNG, as in the CLI
    assert read_image(tmp_path / "c.png").bit_depth == 16


def test_develop_and_denoise_take_the_same_batch_options():
    import typer.main

    commands = typer.main.get_command(app).commands
    flags = {name: {p.name: (tuple(p.opts), p.help, p.default) for p in commands[name].params}
             for name in ("develop", "denoise")}
    shared = ["output", "fmt", "quality", "device", "overwrite", "recursive", "jobs", "engine", "address", "quiet",
              "as_json", "failures", "tile"]
    for option in shared:
        assert flags["develop"][option] == flags["denoise"][option]
    assert flags["develop"]["jobs"] == (("--jobs", "-j"), "Worker processes (capped by available memory).", 1)
    assert flags["develop"]["model"][2] == "isp" and flags["denoise"]["model"][2] == "denoise"
    assert "linear" in flags["develop"] and "linear" not in flags["denoise"]


def test_batch_and_single_file_give_the_same_bytes(small_dng: Path, small_png: Path, tmp_path: Path):
    """The batch engine runs pipeline.read_input / run_network / write_output, as develop_file and denoise_file do."""
    from hyperisp.pipeline import denoise_file

    batch_out = tmp_path / "batch"
    batch_out.mkdir()
    for args in (["develop", small_dng, "-o", batch_out / "a.jpg"],
                 ["develop", small_dng, "-o", batch_out / "lin.png", "--linear", "--wb", "auto"],
                 ["denoise", small_png, "-o", batch_out / "n.png"]):
        result = runner.invoke(app, [str(a) for a in args] + ["--device", "cpu"])
        assert result.exit_code == 0, result.output
    develop_file(small_dng, tmp_path / "a.jpg", device="cpu")
    develop_file(small_dng, tmp_path / "lin.png", linear=True, wb="auto", device="cpu")
    denoise_file(small_png, tmp_path / "n.png", device="cpu")
    for name in ("a.jpg", "lin.png", "n.png"):
        assert (batch_out / name).read_bytes() == (tmp_path / name).read_bytes(), name


def test_denoise_keeps_the_input_icc_profile_alone_and_in_a_batch(small_png: Path, tmp_path: Path):
    """A wide-gamut (here: linear sRGB) RGB profile still describes the denoised pixels; a grey one is dropped."""
    import io

    from PIL import Image, ImageCms

    from hyperisp.io.icc import linear_srgb_icc_profile
    from hyperisp.io.metadata import srgb_icc_profile
    from hyperisp.pipeline import denoise_file

    profile = linear_srgb_icc_profile()
    tagged = tmp_path / "in" / "tagged.png"
    tagged.parent.mkdir()
    Image.open(small_png).save(tagged, icc_profile=profile)
    grey = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    grey = grey[:16] + b"GRAY" + grey[20:]  # the header's data colour space is all that is checked
    grey_tagged = tmp_path / "in" / "grey.png"
    Image.open(small_png).save(grey_tagged, icc_profile=grey)
    result = runner.invoke(app, ["denoise", str(tmp_path / "in"), "-o", str(tmp_path / "batch"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    denoise_file(tagged, tmp_path / "alone.png", device="cpu")
    for path in (tmp_path / "batch" / "tagged_denoised.png", tmp_path / "alone.png"):
        assert read_image(path).icc_profile == profile, path
    assert read_image(tmp_path / "batch" / "grey_denoised.png").icc_profile == srgb_icc_profile()
    assert (tmp_path / "batch" / "tagged_denoised.png").read_bytes() == (tmp_path / "alone.png").read_bytes()
    assert "Linear" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile)))
