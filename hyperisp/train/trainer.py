"""The training loop: seeded, resumable exactly, with progress, validation and checkpoints.

``out/`` holds ``config.json`` (the :class:`TrainConfig`), ``checkpoint.pt`` (model,
optimizer, scheduler, data-generator and torch RNG states, iteration, and with ``ema`` the
weights' moving average), ``log.jsonl`` (one line per log/validation event) and ``best.pt``
(the weights with the best validation PSNR, the average's with ``ema``; for isp runs with
``max_neutral_chroma``, among those that pass the colour-chart gate). Resuming loads
``checkpoint.pt`` and continues the same random stream, so 3 + 3 iterations give
bit-identical weights to 6 in one go on the CPU (on CUDA, cuDNN's backward passes are not
deterministic: the same stream, weights equal to rounding).
"""
from __future__ import annotations

import copy
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..data import linear_to_srgb, process
from ..errors import HyperispError
from ..metrics import psnr
from ..models import create_model, pooling_groups
from .datasets import make_sampler
from .losses import IMAGE_LOSSES, vdn_loss
from .widen import can_widen, widen_hypervdn


@dataclass
class TrainConfig:
    """Everything that defines a run (saved as ``out/config.json``)."""

    task: str = "isp"  # "isp" | "denoise"
    model: str = ""  # model config name; default: the init's architecture, else isp_small / denoise_small
    data: list[str] = field(default_factory=list)
    crop: int = 128  # full-resolution crop (the isp input is crop/2 packed)
    batch: int = 8
    lr: float = 1e-3
    warmup: int = 200  # linear warm-up iterations
    min_lr_ratio: float = 0.05  # cosine decay ends at lr * min_lr_ratio
    iters: int = 3000  # schedule length
    seed: int = 0
    loss: str = ""  # "mse_msssim" | "l1" | "mse" | "vdn"; default l1 (isp, see docs/training.md), vdn (denoise)
    loss_space: str = "developed"  # isp: compare developed images ("developed"), sRGB gamma ("srgb") or linear
    vdn_eps2: float = 5e-5  # VDN's prior variance around the clean image: 5e-5 synthetic, 1e-6 SIDD (Yue et al.)
    grad_clip: float = 1.0
    validate_every: int = 500
    checkpoint_every: int = 500
    val_images: int = 8  # photos held out of training for validation
    init: Optional[str] = None  # shipped model name or card path to start from
    model_overrides: dict[str, Any] = field(default_factory=dict)  # constructor arguments over the config
    # lr multiplier of the parameters a grown model adds to its init's (grow_model): at a fine-tuning lr, new
    # blocks barely move
    grown_lr_scale: float = 1.0
    # decay of an exponential moving average of the weights (e.g. 0.999: about the last 1000 steps), which is
    # then what is validated, kept as best.pt and exported; None: the weights themselves
    ema: Optional[float] = None
    # isp: a validation only becomes best.pt if the colour charts' worst neutral chroma error
    # (hyperisp.evaluate_colour) is at most this. Held-out PSNR can keep rising while greys
    # drift into a cast under strong white balance; None: PSNR alone decides.
    max_neutral_chroma: Optional[float] = None
    # denoise: upper bound, in 8-bit levels, of the blurred "phone" noise (srgb_realistic_noise's
    # phone_sigma_max); None: the AWGN bound (50). Real phone noise is stronger than most samples.
    phone_noise_max: Optional[float] = None
    # denoise: upper bound of the phone noise's red and blue gains over green (srgb_realistic_noise's
    # phone_channel_gain_max); None: 1, equal channels. Real sRGB noise is weakest in green.
    phone_channel_gain: Optional[float] = None
    # denoise: share of the phone noise made signal dependent (srgb_realistic_noise's phone_signal_prob:
    # shot-like, skewed, clipped at black, as after a camera's curve); None: 0, additive.
    phone_signal_dependent: Optional[float] = None
    # denoise: the noise mixture (srgb_realistic_noise's mode_probs and blur_prob); None: its defaults,
    # (1/3, 1/3, 1/3) and 0.5, under which only 1/6 of samples carry plain white AWGN (CBSD68's noise).
    noise_modes: Optional[list[float]] = None  # probabilities of (camera-like, AWGN, both)
    blur_prob: Optional[float] = None  # share of AWGN samples blurred and channel-mixed ("phone" noise)
    # denoise: share of plain white AWGN samples left unclipped, as CBSD68 adds its noise; None: 0 (all clipped)
    unclipped_awgn: Optional[float] = None
    # denoise: a model (shipped name or card path) whose outputs the run is also pulled towards, with
    # weight distill_weight, on every sample but the plain white AWGN ones: a run can then learn more
    # of CBSD68's noise without forgetting what its start did on the rest (learning without forgetting).
    distill_from: Optional[str] = None
    # 1.0 held the real pair in an L1 finish (runs/dn37; 0.5 did not); an MSE step needed 2.0 (runs/dn43)
    distill_weight: float = 1.0
    # denoise: the teacher averaged over this many flipped / transposed views (hyperisp.ensemble), which
    # scores above the teacher alone (+0.25 dB on CBSD68 with 8 views): a target the student can learn from.
    distill_views: int = 1
    # denoise: distil the white AWGN samples too (sensible when the teacher, e.g. an ensemble, beats the student there)
    distill_white: bool = False
    # denoise: distil the white AWGN samples from this model instead (a white-noise specialist, e.g.
    # runs/dn58), averaged over distill_views views like distill_from
    distill_white_from: Optional[str] = None

    def __post_init__(self) -> None:
        if self.task not in ("isp", "denoise"):
            raise HyperispError(None, f"unknown task {self.task!r}; expected isp or denoise")
        if not self.init:  # with an init, no model means the init's own architecture
            self.model = self.model or {"isp": "isp_small", "denoise": "denoise_small"}[self.task]
        self.loss = self.loss or {"isp": "l1", "denoise": "vdn"}[self.task]
        if self.loss not in (*IMAGE_LOSSES, "vdn") or (self.loss == "vdn" and self.task != "denoise"):
            raise HyperispError(None, f"loss {self.loss!r} does not fit task {self.task!r}")
        for name in ("lr", "distill_weight", "grown_lr_scale"):  # a negative lr would climb the loss without a word
            if not getattr(self, name) > 0:  # NaN fails too
                raise HyperispError(None, f"{name} must be positive, got {getattr(self, name)}")
        if self.loss_space not in ("developed", "srgb", "linear"):
            raise HyperispError(None, f"unknown loss_space {self.loss_space!r}; expected developed, srgb or linear")
        if self.max_neutral_chroma is not None and self.task != "isp":
            raise HyperispError(None, "max_neutral_chroma (the colour-chart gate) applies to the isp task only")
        noise = {"phone_noise_max": self.phone_noise_max, "phone_channel_gain": self.phone_channel_gain,
                 "phone_signal_dependent": self.phone_signal_dependent,
                 "noise_modes": self.noise_modes, "blur_prob": self.blur_prob, "unclipped_awgn": self.unclipped_awgn}
        given = [name for name, value in noise.items() if value is not None]
        if given and self.task != "denoise":
            raise HyperispError(None, f"{given[0]} (the synthetic noise) applies to the denoise task only")
        if self.noise_modes is not None and (len(self.noise_modes) != 3 or min(self.noise_modes) < 0
                                             or sum(self.noise_modes) <= 0):
            raise HyperispError(None, f"noise_modes needs 3 non-negative weights, not all 0; got {self.noise_modes}")
        if self.phone_channel_gain is not None and self.phone_channel_gain < 1:
            raise HyperispError(None, f"phone_channel_gain must be at least 1, got {self.phone_channel_gain}")
        if self.phone_signal_dependent is not None and not 0 <= self.phone_signal_dependent <= 1:
            raise HyperispError(None, f"phone_signal_dependent must lie in [0, 1], got {self.phone_signal_dependent}")
        if self.blur_prob is not None and not 0 <= self.blur_prob <= 1:
            raise HyperispError(None, f"blur_prob must lie in [0, 1], got {self.blur_prob}")
        if self.distill_from is not None and (self.task != "denoise" or self.loss == "vdn"):
            raise HyperispError(None, "distill_from applies to the denoise task with an image loss (l1, mse, "
                                      f"mse_msssim), not task {self.task!r} with loss {self.loss!r}")
        if self.distill_from is None and (self.distill_views != 1 or self.distill_white or self.distill_white_from):
            raise HyperispError(None, "distill_views, distill_white and distill_white_from need distill_from "
                                      "(the teacher)")
        if self.distill_white and self.distill_white_from:
            raise HyperispError(None, "distill_white (from distill_from) and distill_white_from name two teachers "
                                      "for the white AWGN samples; give one")
        if not 1 <= self.distill_views <= 8:
            raise HyperispError(None, f"distill_views must be 1 to 8 (an image's views), got {self.distill_views}")
        if self.unclipped_awgn is not None and not 0 <= self.unclipped_awgn <= 1:
            raise HyperispError(None, f"unclipped_awgn must lie in [0, 1], got {self.unclipped_awgn}")
        if self.ema is not None and not 0 < self.ema < 1:
            raise HyperispError(None, f"ema (the moving average's decay) must lie in (0, 1), got {self.ema}")

    def noise_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~hyperisp.data.srgb_realistic_noise` this config sets (denoise)."""
        options: dict[str, Any] = {}
        if self.phone_noise_max is not None:
            options["phone_sigma_max"] = self.phone_noise_max / 255
        if self.phone_channel_gain is not None:
            options["phone_channel_gain_max"] = self.phone_channel_gain
        if self.phone_signal_dependent is not None:
            options["phone_signal_prob"] = self.phone_signal_dependent
        if self.noise_modes is not None:
            options["mode_probs"] = tuple(self.noise_modes)
        if self.blur_prob is not None:
            options["blur_prob"] = self.blur_prob
        if self.unclipped_awgn is not None:
            options["unclipped_prob"] = self.unclipped_awgn
        return options

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def lr_factor(step: int, config: TrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to ``min_lr_ratio`` at ``iters``."""
    if step < config.warmup:
        return (step + 1) / config.warmup
    progress = min(1.0, (step - config.warmup) / max(1, config.iters - config.warmup))
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise HyperispError(None, "--device cuda: no CUDA device is available")
    return torch.device(device)


def build_model(config: TrainConfig) -> torch.nn.Module:
    """The model, seeded with ``config.seed``; from ``config.init`` weights when given.

    With an init, the architecture is the init's unless ``config.model`` names another
    (``model_overrides`` apply on top). If that is a larger architecture (e.g. isp_refine2
    from a trained isp_small), the init's tensors are copied into it and the rest keep
    their initialisation (:func:`grow_model`).
    """
    torch.manual_seed(config.seed)
    if not config.init:
        return create_model(config.model, **config.model_overrides)
    from ..pretrained import load_pretrained

    source = load_pretrained(config.init).train()
    if not config.model and not config.model_overrides:
        return source
    overrides = dict(config.model_overrides)
    if config.model and getattr(source, "clip_input", False):
        overrides.setdefault("clip_input", True)  # a grown denoiser keeps its init's input range
    target = create_model(config.model or source.config, **overrides)
    return source if target.config == source.config else grow_model(target, source, config.init)


def grow_model(target: torch.nn.Module, source: torch.nn.Module, source_name: str = "init") -> torch.nn.Module:
    """``target`` with every tensor of ``source`` copied in: all must exist in ``target`` with the same shape.

    Meant for architectures whose extra parts start as the identity (HyperUNet's refinement
    blocks), so the grown model starts with the trained model's output. A HyperVDN that
    differs only in its D-Net widths is widened instead (:func:`~hyperisp.train.widen.widen_hypervdn`),
    with the same guarantee. The names of the parameters ``source`` lacks are left in
    ``target.grown_parameters`` (for :attr:`TrainConfig.grown_lr_scale`).
    """
    state, expected = source.state_dict(), target.state_dict()
    misfit = sorted(k for k in state if k not in expected or expected[k].shape != state[k].shape)
    if misfit and can_widen(target, source):
        return widen_hypervdn(target, source).train()
    if misfit:
        raise HyperispError(None, f"--init {source_name} ({source.config}) does not fit model {target.config}: "
                                  f"{len(misfit)} tensors missing or of another shape, e.g. {misfit[:3]}")
    target.load_state_dict(state, strict=False)
    target.grown_parameters = frozenset(name for name, _ in target.named_parameters() if name not in state)
    return target.train()


def parameter_groups(model: torch.nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """Adam's parameter groups: one, or a second at ``lr * grown_lr_scale`` for what :func:`grow_model` added."""
    grown = getattr(model, "grown_parameters", frozenset()) if config.grown_lr_scale != 1 else frozenset()
    named = list(model.named_parameters())
    groups = [{"params": [p for name, p in named if name not in grown]}]
    if grown:
        groups.append({"params": [p for name, p in named if name in grown], "lr": config.lr * config.grown_lr_scale})
    return groups


def compute_loss(model: torch.nn.Module, inputs: torch.Tensor, target: torch.Tensor, config: TrainConfig,
                 linear_target: bool = True, camera: Optional[dict[str, torch.Tensor]] = None,
                 teacher: Optional[torch.nn.Module] = None, white_awgn: Optional[torch.Tensor] = None,
                 white_teacher: Optional[torch.nn.Module] = None) -> torch.Tensor:
    """The config's loss on one batch. ``linear_target``: isp targets are linear camera RGB
    (synthetic data); False for sRGB targets (ZRR), which are compared as they are.
    ``camera``: the batch's camera parameters (from the isp sampler) for ``loss_space="developed"``.
    ``teacher`` (denoise): adds ``config.distill_weight`` times the same loss against the teacher's
    output on the samples that are not plain white AWGN (``white_awgn``, (N,) bool), or on all of
    them with ``config.distill_white``; ``white_teacher`` is the teacher of the white AWGN samples."""
    if config.loss == "vdn":
        dnet_out, snet_out = model.forward_vdn(inputs)
        return vdn_loss(dnet_out, snet_out, inputs, target, eps2=config.vdn_eps2)
    pred = model(inputs)
    distilled = 0.0
    if teacher is not None:
        everything = white_awgn is None or config.distill_white or white_teacher is not None
        rest = torch.ones(len(inputs), dtype=torch.bool, device=inputs.device) if everything else ~white_awgn
        if bool(rest.any()):
            with torch.no_grad():
                if white_teacher is None or white_awgn is None:
                    taught = teacher(inputs[rest])
                else:  # as with distill_white, but the white AWGN samples' targets are white_teacher's
                    taught = torch.empty_like(pred)
                    for chosen, source in ((~white_awgn, teacher), (white_awgn, white_teacher)):
                        if bool(chosen.any()):
                            taught[chosen] = source(inputs[chosen])
            distilled = config.distill_weight * IMAGE_LOSSES[config.loss](pred[rest], taught)
    if config.task == "isp" and linear_target and config.loss_space == "developed" and camera is not None:
        # Compare what the user sees: white balance (x2 on red) and the colour matrix amplify
        # chroma errors that camera-RGB losses barely notice (a model trained in camera RGB
        # left a red offset in the darks that became a magenta cast once developed).
        pred, target = process(pred, camera), process(target, camera)
    elif config.task == "isp" and linear_target and config.loss_space in ("srgb", "developed"):
        # sRGB gamma spends capacity where the metric (and the eye) sees errors: the darks.
        pred, target = linear_to_srgb(pred), linear_to_srgb(target)
    return IMAGE_LOSSES[config.loss](pred, target) + distilled


@torch.no_grad()
def validate(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor], task: str, device: torch.device,
             chunk: int = 4, linear_target: bool = True, pool_group: int = 1) -> float:
    """Mean PSNR (dB) on a fixed validation batch; linear isp targets compared in sRGB gamma.
    ``pool_group`` (isp): runs of this many crops share filters, as one photo's cells do (a batch
    from ``IspSampler(group=...)``; experiments/photo_pooling.py)."""
    was_training = model.training
    model.eval()
    values = []
    inputs, targets = batch[:2]
    chunk = max(chunk // pool_group, 1) * pool_group
    for i in range(0, len(inputs), chunk):
        with pooling_groups(model, pool_group):
            pred = model(inputs[i:i + chunk].to(device)).float().cpu().clamp(0, 1)
        target = targets[i:i + chunk]
        if task == "isp" and linear_target:
            pred, target = linear_to_srgb(pred), linear_to_srgb(target.clamp(0, 1))
        values.append(psnr(pred, target))
    model.train(was_training)
    return float(torch.cat(values).mean())


def worst_neutral_chroma(model: torch.nn.Module) -> float:
    """The largest neutral-patch chroma error over :data:`hyperisp.evaluate_colour.CHARTS` (CIELAB units)."""
    from ..evaluate_colour import evaluate_colour

    was_training = model.training
    on_cpu = next(model.parameters()).device.type == "cpu"
    try:  # the charts develop on the CPU
        rows = evaluate_colour((model if on_cpu else copy.deepcopy(model).cpu()).eval(), bilinear=False)
    finally:
        model.train(was_training)
    return max(float(row["neutral_chroma"]) for row in rows)


class _Progress:
    """Rich progress bar on a TTY, plain log lines otherwise."""

    def __init__(self, total: int, start: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.tty = enabled and sys.stderr.isatty()
        self.t0, self.start, self.last_line = time.time(), start, 0.0
        if self.tty:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("loss {task.fields[loss]:.4f}  {task.fields[speed]:.2f} it/s  "
                                           "val {task.fields[val]}"), TimeRemainingColumn())
            self.bar.start()
            self.task = self.bar.add_task("train", total=total, completed=start, loss=float("nan"), speed=0.0, val="-")

    def speed(self, step: int) -> float:
        return (step - self.start) / max(1e-9, time.time() - self.t0)

    def update(self, step: int, loss: float, val: Optional[float] = None) -> None:
        if not self.enabled:
            return
        speed = self.speed(step)
        if self.tty:
            fields = {"val": f"{val:.2f} dB"} if val is not None else {}
            self.bar.update(self.task, completed=step, loss=loss, speed=speed, **fields)
        elif val is not None or time.time() - self.last_line > 10 or step == self.total:
            self.last_line = time.time()
            eta = (self.total - step) / speed if speed > 0 else float("nan")
            extra = f"  val {val:.2f} dB" if val is not None else ""
            print(f"iter {step}/{self.total}  loss {loss:.4f}  {speed:.2f} it/s  ETA {eta:.0f} s{extra}",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            self.bar.stop()


def _save_checkpoint(path: Path, step: int, model, optimizer, scheduler, generator, best: float,
                     averaged: Optional[AveragedModel]) -> None:
    state = {"iteration": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
             "torch_rng": torch.get_rng_state(), "best_val_psnr": best}
    if averaged is not None:
        state["ema"] = averaged.state_dict()
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a crash never leaves a half-written checkpoint


def moving_average(model: torch.nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of ``model``'s weights and buffers (``update_parameters`` after each step)."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def scored_weights(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights a run validates, from its ``checkpoint.pt``: the moving average's with ``ema``, else the model's."""
    if "ema" not in checkpoint:
        return checkpoint["model"]
    return {k.removeprefix("module."): v for k, v in checkpoint["ema"].items() if k.startswith("module.")}


def train(config: TrainConfig, out: str | Path, resume: bool = False, device: str = "auto",
          stop_at: Optional[int] = None, progress: bool = True,
          on_validate: Optional[Callable[[int, float], None]] = None) -> dict[str, Any]:
    """Train (or resume) a run in ``out``.

    Args:
        config: the run (ignored when resuming: ``out/config.json`` is used, except ``iters``).
        out: run folder.
        resume: continue from ``out/checkpoint.pt``.
        device: "auto", "cpu" or "cuda".
        stop_at: stop after this iteration (a checkpoint is written), e.g. to split a run.
        progress: show progress (rich on a TTY, plain lines otherwise).
    Returns:
        dict with iteration, last_loss, val_psnr (last), best_val_psnr, it_per_s, model (on CPU; with
        ``config.ema`` the moving average).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out / "checkpoint.pt"
    if resume:
        if not checkpoint_path.is_file():
            raise HyperispError(checkpoint_path, "no checkpoint to resume from")
        saved = TrainConfig(**json.loads((out / "config.json").read_text()))
        saved.iters = config.iters or saved.iters
        config = saved
    dev = resolve_device(device)
    model = build_model(config).to(dev)
    if getattr(model, "clip_input", False) and config.unclipped_awgn:
        raise HyperispError(None, f"--unclipped-awgn {config.unclipped_awgn}: this model clips its input to [0, 1] "
                                  "(config clip_input), so it would never see the unclipped samples")
    (out / "config.json").write_text(config.to_json())  # once the run is known to be valid
    optimizer = torch.optim.Adam(parameter_groups(model, config), lr=config.lr)
    averaged = moving_average(model, config.ema) if config.ema is not None else None
    scored = averaged.module if averaged is not None else model  # what is validated, kept and returned
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    generator = torch.Generator().manual_seed(config.seed)
    teacher, white_teacher, sampler_options = None, None, config.noise_options()
    if config.distill_from is not None:
        from ..ensemble import SelfEnsemble
        from ..pretrained import load_pretrained

        teacher, white_teacher = (
            None if name is None else SelfEnsemble(load_pretrained(name, dev), config.distill_views)
            for name in (config.distill_from, config.distill_white_from))
        sampler_options["mark_white"] = True  # compute_loss decides which samples are distilled
    sampler, val_sampler = make_sampler(config.task, config.data, config.crop, config.batch,
                                        config.val_images, config.seed, **sampler_options)
    linear_target = not getattr(sampler, "target_is_srgb", False)
    val_batch = val_sampler.sample(torch.Generator().manual_seed(config.seed + 1)) if val_sampler else None
    step, best = 0, -math.inf
    if resume:
        # On the CPU: RNG states must stay CPU tensors; load_state_dict moves the rest.
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if averaged is not None:
            averaged.load_state_dict(state["ema"])
        step, best = state["iteration"], state["best_val_psnr"]
    end = min(config.iters, stop_at) if stop_at is not None else config.iters
    bar = _Progress(config.iters, step, progress)
    loss_value, val = float("nan"), None
    log = open(out / "log.jsonl", "a")
    model.train()
    try:
        while step < end:
            inputs, target, *side = sampler.sample(generator)  # side: isp camera parameters or the white-AWGN mask
            side = {k: v.to(dev) for k, v in side[0].items()} if side else {}
            white_awgn = side.pop("white_awgn", None)
            loss = compute_loss(model, inputs.to(dev), target.to(dev), config, linear_target, side or None,
                                teacher, white_awgn, white_teacher)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            if averaged is not None:
                averaged.update_parameters(model)
            step += 1
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise HyperispError(out, f"loss became {loss_value} at iteration {step}; lower --lr")
            val, chroma = None, None
            if val_batch is not None and (step % config.validate_every == 0 or step == end):
                val = validate(scored, val_batch, config.task, dev, linear_target=linear_target)
                colour_ok = True
                if config.max_neutral_chroma is not None:
                    chroma = worst_neutral_chroma(scored)
                    colour_ok = chroma <= config.max_neutral_chroma
                if val > best and colour_ok:
                    best = val
                    torch.save({k: v.cpu() for k, v in scored.state_dict().items()}, out / "best.pt")  # loads anywhere
                if on_validate:
                    on_validate(step, val)
            if val is not None or step % 50 == 0:
                event = {"iteration": step, "loss": loss_value, "lr": scheduler.get_last_lr()[0], "val_psnr": val,
                         "time": time.time()}
                if chroma is not None:
                    event["neutral_chroma_max"] = chroma
                log.write(json.dumps(event) + "\n")
                log.flush()
            if step % config.checkpoint_every == 0 or step == end:
                _save_checkpoint(checkpoint_path, step, model, optimizer, scheduler, generator, best, averaged)
            bar.update(step, loss_value, val)
    finally:
        bar.close()
        log.close()
    return {"iteration": step, "last_loss": loss_value, "val_psnr": val, "best_val_psnr": best,
            "it_per_s": bar.speed(step), "model": scored.cpu(), "val_batch": val_batch, "config": config,
            "linear_target": linear_target}


def best_validation(events: list[dict[str, Any]], config: TrainConfig) -> dict[str, Any]:
    """The ``log.jsonl`` event whose weights are ``best.pt``: best held-out PSNR that passed the colour gate.

    (Among equal PSNRs the first, as the training loop only replaces best.pt on a strict gain.)
    """
    limit = config.max_neutral_chroma
    passed = [e for e in events if e.get("val_psnr") is not None
              and (limit is None or e.get("neutral_chroma_max", math.inf) <= limit)]
    if not passed:
        raise HyperispError(None, "no validation of this run passed; there is no best.pt")
    return max(passed, key=lambda e: e["val_psnr"])


def training_record(config: TrainConfig, iterations: int, recipe: str, val_psnr: float,
                    started_from: Optional[str] = None) -> dict[str, Any]:
    """The ``training`` section of a model card: data, iterations, recipe, config, held-out PSNR, start."""
    return {"data": list(config.data), "iterations": iterations, "recipe": recipe, "config": asdict(config),
            "val_psnr_heldout": round(val_psnr, 3),
            "started_from": started_from or config.init or "random initialisation"}


def export_if_better(result: dict[str, Any], name: str, command: str, directory: Optional[Path] = None
                     ) -> tuple[bool, float, Optional[float]]:
    """Write ``result``'s model as shipped model ``name`` only if it beats the current one.

    Both are scored on the run's fixed validation batch (held-out photos). Returns
    (exported, new PSNR, shipped PSNR or None when there is no shipped model yet).
    """
    from ..pretrained import get_card, load_pretrained, save_pretrained

    config, batch = result["config"], result["val_batch"]
    if batch is None:
        raise HyperispError(None, "export needs validation images (--val-images > 0)")
    device = torch.device("cpu")
    linear = result.get("linear_target", True)
    new = validate(result["model"], batch, config.task, device, linear_target=linear)
    try:
        get_card(name, directory)
        shipped: Optional[float] = validate(load_pretrained(name, directory=directory), batch, config.task, device,
                                            linear_target=linear)
    except HyperispError:
        shipped = None
    if shipped is not None and new <= shipped:
        return False, new, shipped
    training = training_record(config, result["iteration"], command, new)
    save_pretrained(result["model"], name, trained=True, directory=directory, training=training,
                    description=f"{config.model or config.init} trained {result['iteration']} iterations on {', '.join(config.data)}")
    return True, new, shipped
