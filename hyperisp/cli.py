"""``hyperisp`` command line: a thin Typer layer over :mod:`hyperisp.pipeline`.

Bad input ends with one line naming the file and the reason, and a non-zero
exit code; a list of files keeps going past a bad one.
"""
from __future__ import annotations

import functools
import inspect
import json
import math
import tempfile
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import List, Optional, Tuple, get_type_hints

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


@app.callback()
def _process_settings() -> None:
    """Process-wide settings for every command (the app's ``help`` above is what users see)."""
    from .runtime import keep_freed_memory

    keep_freed_memory()  # 2x faster CPU inference: large feature maps reuse freed memory


class OutputFormat(str, Enum):
    jpeg = "jpeg"
    png = "png"
    png16 = "png16"
    tiff = "tiff"


class ColourSpace(str, Enum):  # hyperisp.raw.colour_spaces.SPACES
    srgb = "srgb"
    display_p3 = "display-p3"
    adobe_rgb = "adobe-rgb"
    prophoto = "prophoto"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


OutputOpt = typer.Option(
    None, "-o", "--output", help="Output file, or a folder (required folder when several inputs are given)."
)
FormatOpt = typer.Option(None, "--format", "-f", help="Output format; default: from the output's extension.")
QualityOpt = typer.Option(95, "--quality", "-q", min=1, max=100, help="JPEG quality.")
StripLocationOpt = typer.Option(False, "--strip-location", help="Leave the GPS position out of the output's EXIF "
                                "(kept by default), for photos to share.")
DeviceOpt = typer.Option(Device.auto, "--device", help="Where the network runs: auto picks CUDA when present.")
OverwriteOpt = typer.Option(False, "--overwrite", help="Replace outputs that already exist.")
StrengthOpt = typer.Option(1.0, "--strength", "-s", min=0.0, max=1.0,
                           help="How much of the noise to remove: 1 all of it, 0.8 leaves a fifth as fine grain "
                                "(a blend with the input, like a raw editor's amount slider).")
MaxSizeOpt = typer.Option(None, "--max-size", min=1,
                          help="Scale the output down so its longer side is at most this many pixels "
                               "(Lanczos; never enlarged), as for web or mail.")
SharpenOpt = typer.Option(0.0, "--sharpen", min=0.0, max=2.0,
                          help="Output sharpening after any --max-size: an unsharp mask on luma, radius 1 px; "
                               "0 none, 0.5 moderate, up to 2.")
ChromaStrengthOpt = typer.Option(None, "--chroma-strength", min=0.0, max=1.0,
                                 help="How much of the colour noise to remove, 0 to 1 (default: as --strength); "
                                      "e.g. -s 0.7 --chroma-strength 1 keeps some grey grain but no colour blotches.")
TileOpt = typer.Option(None, "--tile", min=0, help="Tile size in pixels for exact tiled inference "
                       "(bounded memory, same pixels); 0 = whole image at once. Default 4096 (develop), 2048 (denoise).")
EnsembleOpt = typer.Option(None, "--ensemble", min=1, max=8,
                           help="Average the network over this many transposed / flipped views (self-ensemble): "
                                "develop 1-2, denoise 1-8 (default 1). Better pixels, one network run per view.")


def _cuda_available() -> bool:
    import torch  # lazily: --help and argument errors need no torch

    return torch.cuda.is_available()


def _fail(error: Exception) -> None:
    err.print(f"[red]error:[/red] {error}", soft_wrap=True)


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


class Engine(str, Enum):
    local = "local"
    ray = "ray"


RecursiveOpt = typer.Option(False, "--recursive", "-r", help="Also take raws/images in sub-folders of folder inputs.")
JobsOpt = typer.Option(1, "--jobs", "-j", min=1, help="Worker processes (capped by available memory).")
EngineOpt = typer.Option(Engine.local, "--engine", help="local (this machine) or ray (needs the optional ray extra).")
AddressOpt = typer.Option(None, "--address", help="Ray cluster address (auto, ray://host:10001); default: start a local one.")
QuietOpt = typer.Option(False, "--quiet", help="Print only failures and the summary.")
JsonOpt = typer.Option(False, "--json", help="Print the batch summary as one JSON object (per-file list under 'files').")
FailuresOpt = typer.Option(None, "--failures", help="Write the failed files with their reasons to this .json or .csv file.")


def _between(low: float, high: float = math.inf):
    """A Typer callback for numbers strictly between ``low`` and ``high`` (Typer's ``min`` and ``max``
    admit the bounds themselves)."""
    def check(value: Optional[float]) -> Optional[float]:
        if value is not None and not low < value < high:  # NaN fails too
            raise typer.BadParameter(f"must be above {low:g}" + (f" and below {high:g}" if high < math.inf else "")
                                     + f", got {value:g}")
        return value

    return check


def _name_opt(default: str) -> typer.Option:
    return typer.Option(default, "--name", help="Output name pattern: {stem} {name} {in_ext} {ext} {parent}; "
                                                "its extension picks the format unless --format is given.")


def _model_opt(default: str) -> typer.Option:
    return typer.Option(default, "--model", "-m", help="Shipped model name or model card path.")


@dataclass
class BatchOptions:
    """The options develop and denoise share, declared once (see :func:`_with_batch_options`)."""

    output: Optional[Path] = OutputOpt
    fmt: Optional[OutputFormat] = FormatOpt
    quality: int = QualityOpt
    strip_location: bool = StripLocationOpt
    device: Device = DeviceOpt
    overwrite: bool = OverwriteOpt
    recursive: bool = RecursiveOpt
    jobs: int = JobsOpt
    engine: Engine = EngineOpt
    address: Optional[str] = AddressOpt
    quiet: bool = QuietOpt
    as_json: bool = JsonOpt
    failures: Optional[Path] = FailuresOpt
    tile: Optional[int] = TileOpt
    ensemble: Optional[int] = EnsembleOpt
    max_size: Optional[int] = MaxSizeOpt
    sharpen: float = SharpenOpt


def _with_batch_options(command):
    """Give a command the :class:`BatchOptions` fields as Typer options, in place of its ``batch`` parameter.

    Typer reads options from the function's signature, so the fields are spliced into it;
    the command receives them back as one ``batch: BatchOptions``.
    """
    hints = get_type_hints(BatchOptions)
    shared = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
              for f in fields(BatchOptions)]
    own = list(inspect.signature(command).parameters.values())
    at = [p.name for p in own].index("batch")
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]

    @functools.wraps(command)
    def with_options(**kwargs):
        batch = BatchOptions(**{f.name: kwargs.pop(f.name) for f in fields(BatchOptions)})
        return command(batch=batch, **kwargs)

    with_options.__signature__ = inspect.Signature(own[:at] + shared + own[at + 1:])
    return with_options


def _run_batch(command: str, inputs: List[str], name: str, batch: BatchOptions, model: str, options: dict,
               verbose: bool = False) -> None:
    """Plan, run and report a batch; exit 1 when any file failed, 2 for bad options."""
    import time

    from .batch import JobSpec, cap_jobs, estimate_megapixels, run_batch
    from .batch_plan import FORMAT_EXTENSIONS, IMAGE_EXTENSIONS, RAW_EXTENSIONS, clean_stale_temp_files, plan_batch
    from .batch_report import BatchReporter, summarize, summary_line, write_failures

    develop = command == "develop"
    output, fmt, engine, jobs = batch.output, batch.fmt, batch.engine, batch.jobs
    try:
        items = plan_batch(inputs, extensions=RAW_EXTENSIONS if develop else IMAGE_EXTENSIONS, pattern=name,
                           ext=FORMAT_EXTENSIONS[fmt.value] if fmt else ("jpg" if develop else None),
                           output=output, recursive=batch.recursive, overwrite=batch.overwrite)
    except HyperispError as error:
        _fail(error)
        raise typer.Exit(2)
    todo = [i for i in items if i.status == "todo"]
    if removed := clean_stale_temp_files(i.target for i in items if i.target is not None):
        err.print(f"removed {removed} stale temporary file(s) left by an interrupted run", soft_wrap=True)
    if engine == Engine.local and jobs > 1 and len(todo) > 1:
        if batch.device.value != "cpu" and _cuda_available():
            # each worker would hold its own CUDA context and model on the one GPU, which runs one network at a time
            jobs, note = 1, f"--jobs {jobs} capped to 1 on the GPU: one worker decodes ahead and encodes behind it"
        else:
            jobs, note = cap_jobs(jobs, estimate_megapixels(todo, command), command)
        if note:
            err.print(f"[yellow]note:[/yellow] {note}", soft_wrap=True)
    spec = JobSpec(command, model=model, device=batch.device.value, fmt=fmt and fmt.value, quality=batch.quality,
                   overwrite=batch.overwrite, strip_location=batch.strip_location, options={**options, "tile": batch.tile, "ensemble": batch.ensemble,
                                                               "max_size": batch.max_size, "sharpen": batch.sharpen})
    verb = "developed" if develop else "denoised"
    start = time.perf_counter()
    with BatchReporter(err, len(items), verb, quiet=batch.quiet) as reporter:
        try:
            results = run_batch(items, spec, engine=engine.value, jobs=jobs, address=batch.address, on_result=reporter)
        except HyperispError as error:
            _fail(error)
            raise typer.Exit(2)
        except KeyboardInterrupt:
            err.print("interrupted: finished files are kept; run the same command again to resume")
            raise typer.Exit(130)
    summary = summarize(results, command=command, engine=engine.value, jobs=jobs, seconds=time.perf_counter() - start)
    if verbose:
        for result in results:
            if result.status == "done" and "white_balance" in result.info:
                err.print(_describe_colour(result.input, result.info), soft_wrap=True)
    if len(items) > 1 or summary["counts"]["skipped"]:
        err.print(summary_line(summary, verb), soft_wrap=True)
    if batch.as_json:
        print(json.dumps(summary, indent=2))
    if batch.failures is not None:
        try:
            write_failures(batch.failures, results)
        except HyperispError as error:
            _fail(error)
            raise typer.Exit(2)
    if summary["counts"]["failed"]:
        raise typer.Exit(1)


@app.command()
@_with_batch_options
def develop(
    inputs: List[str] = typer.Argument(None, help="RAW files, folders or globs: DNG or any Bayer format LibRaw reads."),
    model: str = _model_opt("isp"),
    wb: str = typer.Option("camera", "--wb", help="White balance: camera, auto, daylight, a colour temperature (3200K; with a tint as Duv: 5600K,-0.003), or R,G,B gains."),
    exposure: str = typer.Option("0", "--exposure", help="Exposure correction in EV, or 'auto' (brighten, keeping highlights)."),
    linear: bool = typer.Option(False, "--linear", help="Scene-linear 16-bit output (no transfer or tone curve); default .tif."),
    colour_space: ColourSpace = typer.Option(
        ColourSpace.srgb, "--colour-space", "--color-space",
        help="Output colour space, tagged with its ICC profile: wide gamuts keep the saturated colours sRGB "
             "clips (for 16-bit files to edit; an 8-bit JPEG in prophoto may band)."),
    no_crop: bool = typer.Option(False, "--no-crop", help="Keep the whole sensor image, not the camera's default "
                                 "crop (DNG DefaultCrop or the maker note's, which raw converters apply)."),
    hot_pixels: bool = typer.Option(False, "--hot-pixels", help="Replace hot pixels (single sites 8x brighter than "
                                    "their same-colour neighbours, as long exposures show) first."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print the white balance (gains, why, CCT) and exposure used."),
    sample: bool = typer.Option(False, "--sample", help="Develop the built-in synthetic sample raw (a DNG)."),
    name: str = _name_opt("{stem}.{ext}"),
    batch: BatchOptions = None,
) -> None:
    """Develop RAW photos to JPEG, PNG or 16-bit TIFF (default: INPUT.jpg beside the input).

    Folders and globs are expanded; with -o OUTDIR the input tree is mirrored there. Existing
    outputs are skipped (rerun to resume), bad files are reported and the rest goes on.
    """
    from .pipeline import resolve_views
    from .raw.sample import write_sample_dng

    try:
        white_balance = _parse_wb(wb)
        exposure_ev = _parse_exposure(exposure)
        resolve_views("isp", batch.ensemble)  # a mosaic has 2 views: fail once, not once per file
    except HyperispError as error:
        _fail(error)
        raise typer.Exit(2)
    inputs = list(inputs or [])
    if not inputs and not sample:
        _fail(HyperispError(None, "no input: give RAW files, or --sample for the built-in sample"))
        raise typer.Exit(2)
    _warn_if_untrained(model)

    if linear:
        from .pipeline import linear_output_format

        try:
            batch.fmt = OutputFormat(linear_output_format(batch.output, batch.fmt and batch.fmt.value))
        except HyperispError as error:
            _fail(error)
            raise typer.Exit(2)
    with tempfile.TemporaryDirectory() as tmp:
        if sample:
            sample_path = write_sample_dng(Path(tmp) / "hyperisp_sample.dng")
            inputs.append(str(sample_path))
            batch.output = batch.output or Path.cwd()
        _run_batch("develop", inputs, name, batch, model, dict(wb=white_balance, exposure=exposure_ev, linear=linear,
                                                              colour_space=colour_space.value, crop=not no_crop,
                                                              hot_pixels=hot_pixels),
                   verbose=verbose)


def _describe_colour(source: str, info: dict) -> str:
    gains = ", ".join(f"{g:.3f}" for g in info["white_balance"])
    cct = f", {info['cct']} K" if info.get("cct") else ""
    space = info.get("colour_space", "srgb")
    output = f"; {'linear ' if info.get('linear') else ''}{space}" if info.get("linear") or space != "srgb" else ""
    shading = f"; lens corrections {info['lens_corrections']}" if info.get("lens_corrections") else ""
    for key, what in (("bad_pixels", "bad pixels repaired"), ("hot_pixels", "hot pixels replaced")):
        if info.get(key) is not None:
            shading += f"; {info[key]} {what}"
    return (f"{source}: white balance R,G,B = {gains} ({info['white_balance_source']}{cct}); "
            f"exposure {info['exposure_ev']:+.2f} EV{output}{shading}")


def _parse_wb(value: str):
    from .raw.white_balance import parse_temperature

    if value in ("camera", "auto", "daylight"):
        return value
    try:
        if parse_temperature(value) is not None:
            return value
    except ValueError as error:
        raise HyperispError(None, f"--wb: {error}") from None
    try:
        gains = [float(v) for v in value.split(",")]
    except ValueError:
        gains = []
    if len(gains) != 3 or not all(math.isfinite(g) and g > 0 for g in gains):
        raise HyperispError(None, f"--wb '{value}': expected camera, auto, daylight, a temperature such as 5600K, "
                                  "or three positive gains R,G,B")
    return gains


def _parse_exposure(value: str):
    if value.strip().lower() == "auto":
        return "auto"
    try:
        ev = float(value)
    except ValueError:
        ev = float("nan")
    if not math.isfinite(ev) or abs(ev) > 16:
        raise HyperispError(None, f"--exposure '{value}': expected a number of EV (-16..16) or 'auto'")
    return ev


@app.command()
@_with_batch_options
def denoise(
    inputs: List[str] = typer.Argument(..., help="sRGB photos, folders or globs: PNG, JPEG, TIFF (8 or 16 bit) or WebP."),
    model: str = _model_opt("denoise"),
    name: str = _name_opt("{stem}_denoised.{ext}"),
    strength: float = StrengthOpt,
    chroma_strength: Optional[float] = ChromaStrengthOpt,
    batch: BatchOptions = None,
) -> None:
    """Denoise sRGB photos (default: INPUT_denoised with the input's format, beside the input).

    Folders, globs, -o OUTDIR, resume and failure handling work as for develop.
    """
    _warn_if_untrained(model)
    _run_batch("denoise", inputs, name, batch, model, {"strength": strength, "chroma_strength": chroma_strength})


@app.command()
def burst(
    frames: List[Path] = typer.Argument(None, help="2 to 8 photos of the same scene (PNG, JPEG, TIFF, WebP); the first is the reference."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file (default: FIRST_burst beside the first frame)."),
    fmt: Optional[OutputFormat] = FormatOpt,
    quality: int = QualityOpt,
    strip_location: bool = StripLocationOpt,
    model: str = typer.Option("burst", "--model", "-m", help="Shipped model name or model card path."),
    device: Device = DeviceOpt,
    overwrite: bool = OverwriteOpt,
    strength: float = StrengthOpt,
    chroma_strength: Optional[float] = ChromaStrengthOpt,
    max_size: Optional[int] = MaxSizeOpt,
    sharpen: float = SharpenOpt,
) -> None:
    """Denoise a burst of frames of one scene into a single photo aligned with the first frame."""
    from .batch_plan import FORMAT_EXTENSIONS, image_output_ext, output_name
    from .burst import burst_denoise_file

    frames = list(frames or [])
    _warn_if_untrained(model)
    try:
        if not frames:
            raise HyperispError(None, "no frames given: a burst needs 2 to 8 frames of the same scene")
        first = frames[0]
        ext = FORMAT_EXTENSIONS[fmt.value] if fmt else image_output_ext(first)
        target = output or first.with_name(output_name("{stem}_burst.{ext}", first, ext))
        burst_denoise_file(frames, target, fmt=fmt and fmt.value, quality=quality, overwrite=overwrite,
                           model=model, device=device.value, strength=strength, chroma_strength=chroma_strength,
                           max_size=max_size, sharpen=sharpen, strip_location=strip_location)
    except HyperispError as error:
        _fail(error)
        raise typer.Exit(1)
    err.print(f"denoised burst of {len(frames)} frames -> {target}", soft_wrap=True)


@app.command()
def models(as_json: bool = typer.Option(False, "--json", help="Print the model cards as JSON.")) -> None:
    """List the shipped models with their cards."""
    from dataclasses import asdict

    from .pretrained import list_pretrained

    cards = list_pretrained()
    if as_json:
        print(json.dumps([asdict(c) for c in cards], indent=2))
        return
    table = Table(title="shipped models (weights/); all metrics: hyperisp models --json")
    for column in ("name", "task", "architecture", "params", "trained", "PSNR (dB) by test level"):
        table.add_column(column)
    for card in cards:
        psnr = [f"{m.get('level', '?')} {m['value']:.2f}" for m in card.metrics if m["name"].endswith(" psnr")]
        table.add_row(card.name, card.task, card.config.get("arch", "?"), f"{card.params / 1e6:.2f} M",
                      "yes" if card.trained else "[yellow]no[/yellow]", ", ".join(psnr) or "-")
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
    table = Table(title=f"{model} at {megapixels:g} MP")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("input shape", " x ".join(str(n) for n in cost["input_shape"]))
    table.add_row("params", f"{cost['params'] / 1e6:.1f} M")
    table.add_row("FLOPs, forward path", f"{cost['flops_forward'] / 1e12:.3f} T")
    table.add_row("FLOPs, filter prediction", f"{cost['flops_filter_prediction'] / 1e9:.3f} G")
    table.add_row("FLOPs, total", f"{cost['flops_total'] / 1e12:.3f} T")
    table.add_row("FLOPs / param", f"{cost['flops_per_param']:.0f}")
    out.print(table)


@app.command("train")
def train_command(
    task: str = typer.Argument(..., help="isp, denoise or burst."),
    data: List[Path] = typer.Option(..., "--data", help="Training data: photo folders, a ZRR folder or a SIDD-Medium folder."),
    out_dir: Path = typer.Option(..., "--out", help="Run folder (config, checkpoint, log)."),
    model_config: Optional[str] = typer.Option(None, "--model", help="Model config name (default: the --init model's architecture, else isp_small / denoise_small)."),
    init: Optional[str] = typer.Option(None, "--init", help="Start from a shipped model (name or card path)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its checkpoint."),
    iters: Optional[int] = typer.Option(None, "--iters", min=1, help="Schedule length in iterations (default 3000)."),
    stop_at: Optional[int] = typer.Option(None, "--stop-at", min=1, help="Stop (with a checkpoint) at this iteration."),
    crop: int = typer.Option(128, "--crop", min=16, help="Full-resolution crop size (even)."),
    batch: int = typer.Option(8, "--batch", min=1),
    lr: float = typer.Option(1e-3, "--lr", callback=_between(0)),
    warmup: int = typer.Option(200, "--warmup", min=1, help="Linear warm-up iterations (then cosine decay)."),
    loss: Optional[str] = typer.Option(None, "--loss", help="l1 (isp default), mse, mse_msssim (paper A), or vdn (denoise default)."),
    loss_space: str = typer.Option("developed", "--loss-space", help="isp: compare developed images (developed), camera RGB in sRGB gamma (srgb) or linear."),
    seed: int = typer.Option(0, "--seed"),
    validate_every: int = typer.Option(500, "--validate-every", min=1),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", min=1),
    val_images: int = typer.Option(8, "--val-images", min=0, help="Photos held out of training for validation."),
    max_neutral_chroma: Optional[float] = typer.Option(
        None, "--max-neutral-chroma", min=0.0,
        help="isp: keep a checkpoint as best only if the colour charts' worst neutral chroma error is at most this."),
    phone_noise_max: Optional[float] = typer.Option(
        None, "--phone-noise-max", min=0.0,
        help="denoise: upper bound (8-bit levels) of the blurred phone-like noise; default the AWGN bound, 50."),
    phone_channel_gain: Optional[float] = typer.Option(
        None, "--phone-channel-gain", min=1.0,
        help="denoise: upper bound of the phone-like noise's red and blue gains over green; default 1 (equal)."),
    phone_signal_dependent: Optional[float] = typer.Option(
        None, "--phone-signal-dependent", min=0.0, max=1.0,
        help="denoise: share of the phone-like noise whose level follows the signal, as after a camera's curve "
             "(default 0: additive)."),
    noise_modes: Optional[Tuple[float, float, float]] = typer.Option(
        None, "--noise-modes",
        help="denoise: weights of camera-like, AWGN and both-noise samples (default 1 1 1)."),
    blur_prob: Optional[float] = typer.Option(
        None, "--blur-prob", min=0.0, max=1.0,
        help="denoise: share of AWGN samples blurred and channel-mixed like phone noise (default 0.5)."),
    unclipped_awgn: Optional[float] = typer.Option(
        None, "--unclipped-awgn", min=0.0, max=1.0,
        help="denoise: share of white AWGN samples left unclipped, as CBSD68 adds its noise (default 0)."),
    distill_from: Optional[str] = typer.Option(
        None, "--distill-from",
        help="denoise: also pull the outputs towards this model's (name or card) on all but white-AWGN samples."),
    distill_weight: float = typer.Option(1.0, "--distill-weight", callback=_between(0), help="Weight of --distill-from's term."),
    distill_views: int = typer.Option(
        1, "--distill-views", min=1, max=8,
        help="denoise: average the --distill-from teacher over this many flipped / transposed views (self-ensemble)."),
    distill_white: bool = typer.Option(
        False, "--distill-white", help="denoise: distil the white-AWGN samples too (for a teacher better there)."),
    distill_white_from: Optional[str] = typer.Option(
        None, "--distill-white-from",
        help="denoise: distil the white-AWGN samples from this model instead (name or card; e.g. a white-noise "
             "specialist), over --distill-views views."),
    grown_lr_scale: float = typer.Option(
        1.0, "--grown-lr-scale", callback=_between(0),
        help="With --init and a larger --model: lr multiplier of the parameters the init lacks (new blocks)."),
    ema: Optional[float] = typer.Option(
        None, "--ema", callback=_between(0, 1),
        help="Validate, keep and export an exponential moving average of the weights with this decay "
             "(e.g. 0.999, about the last 1000 iterations)."),
    device: Device = DeviceOpt,
    export: Optional[str] = typer.Option(None, "--export", help="Write weights + card as this shipped model if validation beats it."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads (1 is far faster on a busy machine)."),
) -> None:
    """Train an isp or denoise model (synthetic RAW / noise from clean photos, or ZRR / SIDD pairs)."""
    import sys

    import torch

    from .train.trainer import TrainConfig, export_if_better, train

    if threads:
        torch.set_num_threads(threads)
    try:
        config = TrainConfig(task=task, model=model_config or "", data=[str(d) for d in data], crop=crop, batch=batch,
                             lr=lr, warmup=warmup, iters=iters or (0 if resume else 3000), seed=seed, loss=loss or "",
                             loss_space=loss_space,
                             validate_every=validate_every, checkpoint_every=checkpoint_every,
                             val_images=val_images, init=init, max_neutral_chroma=max_neutral_chroma,
                             phone_noise_max=phone_noise_max, phone_channel_gain=phone_channel_gain,
                             phone_signal_dependent=phone_signal_dependent,
                             noise_modes=None if noise_modes is None else list(noise_modes), blur_prob=blur_prob,
                             unclipped_awgn=unclipped_awgn, distill_from=distill_from,
                             distill_weight=distill_weight, distill_views=distill_views,
                             distill_white=distill_white, distill_white_from=distill_white_from,
                             grown_lr_scale=grown_lr_scale,
                             ema=ema)
        result = train(config, out_dir, resume=resume, device=device.value, stop_at=stop_at)
        err.print(f"trained to iteration {result['iteration']}: loss {result['last_loss']:.4f}, "
                  f"best held-out PSNR {result['best_val_psnr']:.2f} dB, {result['it_per_s']:.2f} it/s")
        if export:
            command = "hyperisp " + " ".join(sys.argv[1:])
            done, new, shipped = export_if_better(result, export, command)
            shipped_text = "none" if shipped is None else f"{shipped:.2f} dB"
            verdict = "exported" if done else "not exported (no improvement)"
            err.print(f"held-out PSNR: new {new:.2f} dB, shipped '{export}' {shipped_text}: {verdict}")
    except HyperispError as error:
        _fail(error)
        raise typer.Exit(2)


@app.command("eval")
def eval_command(
    task: str = typer.Argument(..., help="isp, denoise or burst."),
    data: Optional[Path] = typer.Option(None, "--data", help="Folder of clean validation photos (e.g. val/cbsd68)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Shipped model name or card path (default: the task's)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N images."),
    baselines: Optional[str] = typer.Option(None, "--baselines", help="Comma list (isp: bilinear,menon,libraw; denoise: nlm,bm3d); 'none' for none."),
    sidd: Optional[Path] = typer.Option(None, "--sidd", help="denoise: folder with the SIDD pair noisy.png + gt.png."),
    bm3d_limit: int = typer.Option(3, "--bm3d-limit", min=0, help="denoise: run BM3D on this many images only (slow)."),
    noise: str = typer.Option("spec", "--noise", help="burst: noise form, 'spec' (SPEC §6 shot std) or 'mildenhall' (shot variance, paper B's Table 1)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    write_card: bool = typer.Option(False, "--write-card", help="Write the model's metrics and this command into its card."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for the network."),
    ensemble: Optional[int] = EnsembleOpt,
) -> None:
    """Score a model and the classical baselines on the same inputs (PSNR, SSIM, MS-SSIM, s/MP)."""
    import sys

    import torch

    from .evaluate import evaluate_denoise, evaluate_isp
    from .evaluate_burst import run_burst_eval
    from .ensemble import SelfEnsemble
    from .evaluate_colour import evaluate_colour
    from .pipeline import resolve_views
    from .pretrained import load_pretrained, update_card_metrics

    if task not in ("isp", "denoise", "burst"):
        _fail(HyperispError(None, f"unknown task {task!r}; expected isp, denoise or burst"))
        raise typer.Exit(2)
    if data is None and sidd is None:
        _fail(HyperispError(None, "give --data (and for denoise optionally --sidd)"))
        raise typer.Exit(2)
    if threads:
        torch.set_num_threads(threads)
    model = model or task
    default = {"isp": "bilinear,menon,libraw", "denoise": "nlm,bm3d", "burst": ""}[task]
    names = [b for b in (baselines or default).split(",") if b and b != "none"]
    colour_rows: list[dict] = []
    try:
        net = load_pretrained(model)
        name = Path(model).stem
        if task == "burst" and ensemble not in (None, 1):
            raise HyperispError(None, f"--ensemble {ensemble}: burst models have no self-ensemble views")
        views = resolve_views(task, ensemble)  # burst: 1 (its DEFAULT_VIEWS; others were refused above)
        scored = SelfEnsemble(net, views, bayer=task == "isp") if views > 1 else net
        with torch.no_grad():
            if task == "isp":
                rows, notes = evaluate_isp(scored, data, limit, names, model_name=name)
                colour_rows = evaluate_colour(net, name, bilinear="bilinear" in names, ensemble=views)
            elif task == "burst":  # its baselines (single frame, frame mean) always run
                if noise not in ("spec", "mildenhall"):
                    raise HyperispError(None, f"unknown noise form {noise!r}; expected spec or mildenhall")
                rows, notes = run_burst_eval(data, model, limit, shot_variance=noise == "mildenhall")
            else:
                rows, notes = evaluate_denoise(scored, data, limit, names, bm3d_limit, model_name=name, sidd=sidd)
    except HyperispError as error:
        _fail(error)
        raise typer.Exit(2)
    command = "hyperisp " + " ".join(sys.argv[1:])
    if as_json:
        print(json.dumps({"command": command, "ensemble": views, "rows": rows, "colour": colour_rows, "notes": notes},
                         indent=2))
    else:
        table = Table(title=f"eval {task} on {data or sidd}" + (f" (first {limit})" if limit else ""))
        for column in ("method", "level", "images", "PSNR", "SSIM", "MS-SSIM", "CPU s/MP", "wall s/MP"):
            table.add_column(column, justify="left" if column in ("method", "level") else "right")
        for r in rows:
            table.add_row(r["method"], r["level"], str(r["images"]), f"{r['psnr']:.2f}", f"{r['ssim']:.4f}",
                          f"{r['ms_ssim']:.4f}", f"{r['cpu_s_per_mp']:.2f}", f"{r['wall_s_per_mp']:.2f}")
        out.print(table)
        if colour_rows:
            table = Table(title="colour: synthetic ColorChecker DNGs developed (CIELAB D50)")
            for column in ("method", "chart", "mean dE2000", "neutral chroma error"):
                table.add_column(column, justify="left" if column in ("method", "chart") else "right")
            for r in colour_rows:
                table.add_row(r["method"], r["level"], f"{r['mean_de2000']:.2f}", f"{r['neutral_chroma']:.2f}")
            out.print(table)
        for note in notes:
            err.print(f"note: {note}", soft_wrap=True)
    if write_card:
        dataset = str(data) if data else str(sidd)
        views_note = f" ({views} views)" if views > 1 else ""  # a self-ensemble's scores beside the plain ones
        metrics = [{"name": f"{task} {r['level']} {key}{views_note}", "value": round(float(r[key]), 4), "level": r["level"],
                    "data": dataset, "images": r["images"], "command": command}
                   for r in rows if r["method"] == name for key in ("psnr", "ssim", "ms_ssim", "cpu_s_per_mp")]
        metrics += [{"name": f"{task} {r['level']} {key}{views_note}", "value": round(float(r[key]), 4), "level": r["level"],
                     "data": "synthetic ColorChecker DNG (hyperisp.raw.chart_dng)", "command": command}
                    for r in colour_rows if r["method"] == name for key in ("mean_de2000", "neutral_chroma")]
        path = update_card_metrics(model, metrics)
        err.print(f"wrote {len(metrics)} metrics to {path}")


@app.command()
def bench(
    model: str = typer.Option("isp", "--model", "-m", help="Shipped model to time (an isp or denoise model)."),
    megapixels: float = typer.Option(12.0, "--megapixels", "--mp", min=0.01, help="Output size in megapixels."),
    device: Device = typer.Option(Device.cpu, "--device", help="Where the network runs."),
    tile: Optional[int] = TileOpt,
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads (default: torch's)."),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="Also time the baselines."),
    isolate: bool = typer.Option(True, "--isolate/--no-isolate", help="Each case in a fresh process (clean peak RSS)."),
    keep_memory: bool = typer.Option(True, "--keep-memory/--no-keep-memory",
                                     help="Reuse freed memory as every hyperisp command does (see hyperisp/runtime.py); "
                                          "--no-keep-memory times glibc's default allocator."),
    repeats: int = typer.Option(5, "--repeats", min=1, help="Warm runs per network case; the median is reported."),
    ensemble: Optional[int] = EnsembleOpt,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Seconds per megapixel, GFLOP/s against the matmul peak and peak memory, with baselines, in one run."""
    from .bench import run_bench
    from .pipeline import resolve_device

    try:
        dev = resolve_device(device.value).type
        report = run_bench(model, megapixels, dev, tile, threads, baselines, isolate, keep_memory, repeats, ensemble)
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
    gpu = report["device"] == "cuda"  # then also the peak GPU memory torch allocated
    columns = ["case", "s", "s / MP", "MP / s", "GFLOP/s", "% of peak", "peak RSS"] + ["peak GPU"] * gpu + ["note"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("case", "note") else "right")
    for case in report["cases"]:
        gflops, frac, gpu_mb = case["gflop_per_s"], case["peak_fraction"], case.get("peak_gpu_mb")
        cells = [case["name"], f"{case['seconds']:.2f}", f"{case['s_per_mp']:.3f}", f"{case['mp_per_s']:.2f}",
                 f"{gflops:.1f}" if gflops else "-", f"{100 * frac:.0f} %" if frac else "-",
                 f"{case['peak_rss_mb'] / 1024:.2f} GB"]
        if gpu:
            cells.append(f"{gpu_mb / 1024:.2f} GB" if gpu_mb else "-")
        table.add_row(*cells, case["note"])
    out.print(table)


if __name__ == "__main__":
    app()
