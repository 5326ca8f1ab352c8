"""``hyperisp`` command line: a thin Typer layer over :mod:`hyperisp.pipeline`.

Bad input ends with one line naming the file and the reason, and a non-zero
exit code; a list of files keeps going past a bad one.
"""
from __future__ import annotations

import json
import math
import tempfile
from enum import Enum
from pathlib import Path
from typing import Callable, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from .errors import HyperispError

app = typer.Typer(
    help="Develop camera RAW photos and denoise sRGB photos with small, fast HyperConv networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False)
out = Console(highlight=False)

EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "png16": ".png", "tiff": ".tif"}


class OutputFormat(str, Enum):
    jpeg = "jpeg"
    png = "png"
    png16 = "png16"
    tiff = "tiff"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


OutputOpt = typer.Option(
    None, "-o", "--output", help="Output file, or a folder (required folder when several inputs are given)."
)
FormatOpt = typer.Option(None, "--format", "-f", help="Output format; default: from the output's extension.")
QualityOpt = typer.Option(95, "--quality", "-q", min=1, max=100, help="JPEG quality.")
DeviceOpt = typer.Option(Device.auto, "--device", help="Where the network runs: auto picks CUDA when present.")
OverwriteOpt = typer.Option(False, "--overwrite", help="Replace outputs that already exist.")
TileOpt = typer.Option(None, "--tile", min=0, help="Tile size in pixels for exact tiled inference "
                       "(bounded memory, same pixels); 0 = whole image at once. Default 4096.")


def _fail(error: Exception) -> None:
    err.print(f"[red]error:[/red] {error}", soft_wrap=True)


def _output_path(source: Path, output: Optional[Path], fmt: Optional[OutputFormat], default: str, many: bool,
                 suffix: str = "") -> Path:
    ext = EXTENSIONS[fmt.value] if fmt else default
    name = f"{source.stem}{suffix}{ext}"
    if output is None:
        return source.with_name(name)
    if many or output.is_dir():
        return output / name
    return output


def _warn_if_untrained(model: str) -> None:
    from .pretrained import get_card

    if Path(model).suffix not in ("", ".json"):
        return
    try:
        card = get_card(model)
    except HyperispError:
        return  # the real load reports it per file
    if not card.trained:
        err.print(f"[yellow]note:[/yellow] model '{card.name}' is not trained yet: {card.description}", soft_wrap=True)


def _process_all(inputs: List[Path], output: Optional[Path], job: Callable[[Path], Path], verb: str) -> None:
    if len(inputs) > 1 and output is not None and output.exists() and not output.is_dir():
        _fail(HyperispError(output, "with several inputs, -o must be a folder"))
        raise typer.Exit(2)
    failures = 0
    for source in inputs:
        try:
            written = job(source)
            err.print(f"{verb} {source} -> {written}", soft_wrap=True)
        except HyperispError as error:
            failures += 1
            _fail(error)
        except Exception as error:  # a bug, not bad input: still one line, and the batch goes on
            failures += 1
            _fail(HyperispError(source, f"unexpected {type(error).__name__}: {error}"))
    if failures:
        err.print(f"{failures} of {len(inputs)} file(s) failed")
        raise typer.Exit(1)


@app.command()
def develop(
    inputs: List[Path] = typer.Argument(None, help="RAW files: DNG or any Bayer format LibRaw reads."),
    output: Optional[Path] = OutputOpt,
    fmt: Optional[OutputFormat] = FormatOpt,
    quality: int = QualityOpt,
    model: str = typer.Option("isp", "--model", "-m", help="Shipped model name or model card path."),
    device: Device = DeviceOpt,
    wb: str = typer.Option("camera", "--wb", help="White balance: camera, auto, daylight, or R,G,B gains."),
    exposure: float = typer.Option(0.0, "--exposure", help="Exposure correction in EV."),
    overwrite: bool = OverwriteOpt,
    sample: bool = typer.Option(False, "--sample", help="Develop the built-in synthetic sample raw (a DNG)."),
    tile: Optional[int] = TileOpt,
) -> None:
    """Develop RAW photos to JPEG, PNG or 16-bit TIFF (default: INPUT.jpg beside the input)."""
    from .pipeline import develop_file
    from .raw.sample import write_sample_dng

    try:
        white_balance = _parse_wb(wb)
    except HyperispError as error:
        _fail(error)
        raise typer.Exit(2)
    inputs = list(inputs or [])
    if not inputs and not sample:
        _fail(HyperispError(None, "no input: give RAW files, or --sample for the built-in sample"))
        raise typer.Exit(2)
    _warn_if_untrained(model)

    def job(source: Path) -> Path:
        target = _output_path(source, output, fmt, ".jpg", len(inputs) > 1)
        develop_file(source, target, fmt=fmt and fmt.value, quality=quality, overwrite=overwrite,
                     model=model, device=device.value, wb=white_balance, exposure=exposure, tile=tile)
        return target

    with tempfile.TemporaryDirectory() as tmp:
        if sample:
            sample_path = write_sample_dng(Path(tmp) / "hyperisp_sample.dng")
            inputs.append(sample_path)
            output = output or Path.cwd()
        _process_all(inputs, output, job, "developed")


def _parse_wb(value: str):
    if value in ("camera", "auto", "daylight"):
        return value
    try:
        gains = [float(v) for v in value.split(",")]
    except ValueError:
        gains = []
    if len(gains) != 3 or not all(math.isfinite(g) and g > 0 for g in gains):
        raise HyperispError(None, f"--wb '{value}': expected camera, auto, daylight, or three positive gains R,G,B")
    return gains


@app.command()
def denoise(
    inputs: List[Path] = typer.Argument(..., help="sRGB photos: PNG, JPEG or TIFF, 8 or 16 bit."),
    output: Optional[Path] = OutputOpt,
    fmt: Optional[OutputFormat] = FormatOpt,
    quality: int = QualityOpt,
    model: str = typer.Option("denoise", "--model", "-m", help="Shipped model name or model card path."),
    device: Device = DeviceOpt,
    overwrite: bool = OverwriteOpt,
    tile: Optional[int] = TileOpt,
) -> None:
    """Denoise sRGB photos (default: INPUT_denoised with the input's format, beside the input)."""
    from .pipeline import denoise_file

    _warn_if_untrained(model)

    def job(source: Path) -> Path:
        default_ext = source.suffix.lower() if source.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif", ".tiff") else ".png"
        target = _output_path(source, output, fmt, default_ext, len(inputs) > 1, suffix="_denoised")
        return denoise_file(source, target, fmt=fmt and fmt.value, quality=quality, overwrite=overwrite,
                            model=model, device=device.value, tile=tile)

    _process_all(inputs, output, job, "denoised")


@app.command()
def models(as_json: bool = typer.Option(False, "--json", help="Print the model cards as JSON.")) -> None:
    """List the shipped models with their cards."""
    from dataclasses import asdict

    from .pretrained import list_pretrained

    cards = list_pretrained()
    if as_json:
        print(json.dumps([asdict(c) for c in cards], indent=2))
        return
    table = Table(title="shipped models (weights/)")
    for column in ("name", "task", "architecture", "params", "trained", "metrics"):
        table.add_column(column)
    for card in cards:
        metrics = ", ".join(f"{m['name']} {m['value']:.2f}" for m in card.metrics[:4]) or "-"
        table.add_row(card.name, card.task, card.config.get("arch", "?"), f"{card.params / 1e6:.2f} M",
                      "yes" if card.trained else "[yellow]no[/yellow]", metrics)
    out.print(table)


@app.command()
def info(
    model: str = typer.Argument(..., help="Architecture config name (see --list) or shipped model name."),
    megapixels: float = typer.Option(12.6, "--megapixels", "--mp", min=0.01, help="Output size for FLOPs."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Params and FLOPs (forward path + filter prediction; 1 MAC = 2 FLOPs) of a model at a given size."""
    from .models.counting import model_cost

    try:
        cost = model_cost(model, megapixels)
    except HyperispError as error:
        _fail(error)
        raise typer.Exit(2)
    if as_json:
        print(json.dumps(cost, indent=2))
        return
    table = Table(title=f"{model} at {megapixels:g} MP (input {cost['input_shape']})")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("params", f"{cost['params'] / 1e6:.1f} M")
    table.add_row("FLOPs, forward path", f"{cost['flops_forward'] / 1e12:.3f} T")
    table.add_row("FLOPs, filter prediction", f"{cost['flops_filter_prediction'] / 1e9:.3f} G")
    table.add_row("FLOPs, total", f"{cost['flops_total'] / 1e12:.3f} T")
    table.add_row("FLOPs / param", f"{cost['flops_per_param']:.0f}")
    out.print(table)


@app.command()
def bench(
    model: str = typer.Option("isp", "--model", "-m", help="Shipped model to time (an isp or denoise model)."),
    megapixels: float = typer.Option(12.0, "--megapixels", "--mp", min=0.01, help="Output size in megapixels."),
    device: Device = typer.Option(Device.cpu, "--device", help="Where the network runs."),
    tile: Optional[int] = TileOpt,
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads (default: torch's)."),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="Also time the baselines."),
    isolate: bool = typer.Option(True, "--isolate/--no-isolate", help="Each case in a fresh process (clean peak RSS)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Seconds per megapixel, GFLOP/s against the matmul peak and peak memory, with baselines, in one run."""
    from .bench import run_bench
    from .pipeline import resolve_device

    try:
        dev = resolve_device(device.value).type
        report = run_bench(model, megapixels, dev, tile, threads, baselines, isolate)
    except (HyperispError, ValueError) as error:
        _fail(error)
        raise typer.Exit(2)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    peak = report["matmul_peak_gflops"]
    title = (f"{model} at {report['megapixels']:.1f} MP on {report['device']}, {report['threads']} threads"
             + (f"; fp32 matmul peak {peak:.0f} GFLOP/s" if peak else ""))
    table = Table(title=title)
    for column in ("case", "s", "s / MP", "MP / s", "GFLOP/s", "% of peak", "peak RSS", "note"):
        table.add_column(column, justify="left" if column in ("case", "note") else "right")
    for case in report["cases"]:
        gflops, frac = case["gflop_per_s"], case["peak_fraction"]
        table.add_row(case["name"], f"{case['seconds']:.2f}", f"{case['s_per_mp']:.3f}", f"{case['mp_per_s']:.2f}",
                      f"{gflops:.1f}" if gflops else "-", f"{100 * frac:.0f} %" if frac else "-",
                      f"{case['peak_rss_mb'] / 1024:.2f} GB", case["note"])
    out.print(table)


if __name__ == "__main__":
    app()
