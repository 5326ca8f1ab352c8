"""Trainer: exact resume, validation, export only on improvement; CLI train/eval on tiny data."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hyperisp.data import linear_to_srgb
from hyperisp.errors import HyperispError
from hyperisp.train.trainer import TrainConfig, best_validation, compute_loss, export_if_better, lr_factor, train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_lr_schedule_warms_up_then_decays():
    c = TrainConfig(iters=100, warmup=10, min_lr_ratio=0.1)
    assert lr_factor(0, c) == pytest.approx(0.1) and lr_factor(9, c) == pytest.approx(1.0)
    assert lr_factor(10, c) == pytest.approx(1.0) and lr_factor(100, c) == pytest.approx(0.1)
    assert lr_factor(55, c) == pytest.approx(0.55)


def test_resume_is_exact(tmp_path, tiny_config):
    whole = train(tiny_config(), tmp_path / "a", progress=False)
    train(tiny_config(), tmp_path / "b", stop_at=3, progress=False)
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert state["iteration"] == 3
    resumed = train(TrainConfig(iters=0), tmp_path / "b", resume=True, progress=False)
    assert resumed["iteration"] == whole["iteration"] == 6
    for (name, a), (_, b) in zip(whole["model"].state_dict().items(), resumed["model"].state_dict().items()):
        assert torch.equal(a, b), name
    different = train(tiny_config(seed=1), tmp_path / "c", progress=False)
    assert not all(torch.equal(a, b) for a, b in zip(whole["model"].state_dict().values(),
                                                     different["model"].state_dict().values()))
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [e["iteration"] for e in log if e["val_psnr"] is not None] == [3, 6]
    assert json.loads((tmp_path / "a" / "config.json").read_text())["model"] == "isp_small"


def test_ema_keeps_the_weights_moving_average_and_resumes_exactly(tmp_path, tiny_config):
    from hyperisp.train.trainer import scored_weights

    plain = train(tiny_config(), tmp_path / "plain", progress=False)
    whole = train(tiny_config(ema=0.5, validate_every=6), tmp_path / "a", progress=False)  # best.pt: the end's
    state = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    assert all(torch.equal(a, b) for a, b in zip(plain["model"].state_dict().values(), state["model"].values()))
    ema = scored_weights(state)  # the returned model, best.pt and an export are the average, not the last weights
    assert ema.keys() == state["model"].keys()
    for name, value in whole["model"].state_dict().items():
        assert torch.equal(value, ema[name]), name
    assert not all(torch.equal(ema[k], state["model"][k]) for k in ema)
    best = torch.load(tmp_path / "a" / "best.pt")
    assert all(torch.equal(best[k], ema[k]) for k in ema)
    train(tiny_config(ema=0.5, validate_every=6), tmp_path / "b", stop_at=3, progress=False)
    resumed = train(TrainConfig(iters=0), tmp_path / "b", resume=True, progress=False)
    for (name, a), (_, b) in zip(whole["model"].state_dict().items(), resumed["model"].state_dict().items()):
        assert torch.equal(a, b), name
    for decay in (0.0, 1.0):
        with pytest.raises(HyperispError, match="ema"):
            tiny_config(ema=decay)


def test_denoise_training_with_vdn_loss_runs_finite(tmp_path, tiny_config):
    result = train(tiny_config(task="denoise", iters=8, lr=3e-3, validate_every=8, phone_noise_max=80.0),
                   tmp_path / "d", progress=False)
    assert result["config"].loss == "vdn" and np.isfinite(result["last_loss"]) and np.isfinite(result["val_psnr"])
    assert json.loads((tmp_path / "d" / "config.json").read_text())["phone_noise_max"] == 80.0
    assert TrainConfig(task="denoise", phone_channel_gain=1.5).noise_options() == {"phone_channel_gain_max": 1.5}
    with pytest.raises(HyperispError, match="at least 1"):
        TrainConfig(task="denoise", phone_channel_gain=0.5)
    assert TrainConfig(task="denoise", phone_signal_dependent=0.5).noise_options() == {"phone_signal_prob": 0.5}
    with pytest.raises(HyperispError, match="phone_signal_dependent"):
        TrainConfig(task="denoise", phone_signal_dependent=2.0)
    with pytest.raises(HyperispError, match="denoise task only"):
        TrainConfig(task="isp", phone_signal_dependent=0.5)


def test_distillation_pulls_towards_the_teacher_on_all_but_white_awgn(tmp_path, tiny_config):
    from hyperisp.models import create_model
    from hyperisp.pretrained import save_pretrained
    from hyperisp.train.trainer import build_model

    config = tiny_config(task="denoise", loss="l1", iters=4, validate_every=4, checkpoint_every=4)
    torch.manual_seed(0)
    student, other = build_model(config).eval(), build_model(config).eval()
    inputs, target = torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)
    plain = compute_loss(student, inputs, target, config)
    mixed = torch.tensor([True, False, True, False])
    with torch.no_grad():
        # The student as its own teacher adds nothing; white AWGN samples are never distilled.
        torch.testing.assert_close(compute_loss(student, inputs, target, config, teacher=student, white_awgn=mixed),
                                   plain)
        torch.testing.assert_close(compute_loss(student, inputs, target, config, teacher=other,
                                                white_awgn=torch.ones(4, dtype=torch.bool)), plain)
        pulled = compute_loss(student, inputs, target, config, teacher=other, white_awgn=mixed)
        rest = (student(inputs[~mixed]) - other(inputs[~mixed])).abs().mean()
        torch.testing.assert_close(pulled, plain + config.distill_weight * rest)
        # --distill-white: the white AWGN samples are distilled as well.
        everywhere = compute_loss(student, inputs, target, tiny_config(task="denoise", loss="l1", distill_from="t",
                                                                       distill_white=True),
                                  teacher=other, white_awgn=mixed)
        torch.testing.assert_close(everywhere, plain + config.distill_weight
                                   * (student(inputs) - other(inputs)).abs().mean())
    card = save_pretrained(create_model(student.config), "teacher", trained=False, description="t", directory=tmp_path)
    result = train(tiny_config(task="denoise", loss="l1", iters=4, validate_every=4, checkpoint_every=4,
                               distill_from=str(tmp_path / "teacher.json"), distill_weight=2.0),
                   tmp_path / "run", progress=False)
    assert card.file == "teacher.safetensors" and np.isfinite(result["last_loss"])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["distill_weight"] == 2.0
    with pytest.raises(HyperispError, match="distill_from"):
        TrainConfig(task="denoise", loss="vdn", distill_from="denoise")
    with pytest.raises(HyperispError, match="distill_from"):
        TrainConfig(task="isp", distill_from="isp")
    with pytest.raises(HyperispError, match="distill_weight"):
        TrainConfig(task="denoise", loss="l1", distill_from="denoise", distill_weight=0.0)
    with pytest.raises(HyperispError, match="need distill_from"):
        TrainConfig(task="denoise", loss="l1", distill_views=8)
    with pytest.raises(HyperispError, match="1 to 8"):
        TrainConfig(task="denoise", loss="l1", distill_from="denoise", distill_views=9)


def test_an_ensemble_teacher_is_the_mean_of_its_views(tmp_path, tiny_config, monkeypatch):
    from hyperisp import pretrained
    from hyperisp.ensemble import self_ensemble
    from hyperisp.models import create_model
    from hyperisp.pretrained import save_pretrained
    from hyperisp.train import trainer

    config = tiny_config(task="denoise", loss="l1", iters=2, validate_every=2, checkpoint_every=2,
                         distill_from=str(tmp_path / "teacher.json"), distill_views=4, distill_white=True)
    torch.manual_seed(3)
    teacher = create_model(trainer.build_model(config).config)
    with torch.no_grad():  # a fresh model is the identity (zero-initialised residual); make it a random net
        for p in teacher.parameters():
            p.add_(0.1 * torch.randn_like(p))
    save_pretrained(teacher, "teacher", trained=False, description="t", directory=tmp_path)
    seen = []
    real = trainer.compute_loss

    def spy(*args, **kwargs):
        seen.append(args[6])  # the trainer passes the teacher positionally
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "compute_loss", spy)
    result = train(config, tmp_path / "run", progress=False)
    assert np.isfinite(result["last_loss"]) and len(seen) == 2
    x = torch.rand(2, 3, 24, 32)
    single = pretrained.load_pretrained(str(tmp_path / "teacher.json"))
    with torch.no_grad():
        torch.testing.assert_close(seen[0](x), self_ensemble(single, x, 4))
        assert not torch.allclose(seen[0](x), single(x), atol=1e-4)  # a random net is far from equivariant


def test_a_white_teacher_sets_the_targets_of_the_white_awgn_samples(tmp_path, tiny_config, monkeypatch):
    from hyperisp.models import create_model
    from hyperisp.pretrained import save_pretrained
    from hyperisp.train import trainer

    base = tiny_config(task="denoise", loss="l1", iters=2, validate_every=2, checkpoint_every=2)
    torch.manual_seed(5)
    student, teacher, white_teacher = (create_model(trainer.build_model(base).config).eval() for _ in range(3))
    with torch.no_grad():  # fresh models are the identity; make the teachers two different random nets
        for net in (teacher, white_teacher):
            for p in net.parameters():
                p.add_(0.1 * torch.randn_like(p))
    for name, net in (("rest", teacher), ("white", white_teacher)):
        save_pretrained(net, name, trained=False, description="t", directory=tmp_path)
    config = tiny_config(task="denoise", loss="l1", iters=2, validate_every=2, checkpoint_every=2,
                         distill_from=str(tmp_path / "rest.json"), distill_white_from=str(tmp_path / "white.json"))
    inputs, target = torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)
    white = torch.tensor([True, False, False, True])
    with torch.no_grad():
        taught = torch.where(white.view(-1, 1, 1, 1), white_teacher(inputs), teacher(inputs))
        assert (white_teacher(inputs) - teacher(inputs)).abs().mean() > 1e-3  # the two targets differ
        expected = compute_loss(student, inputs, target, base) + config.distill_weight * (
            student(inputs) - taught).abs().mean()
        got = compute_loss(student, inputs, target, config, teacher=teacher, white_awgn=white,
                           white_teacher=white_teacher)
        torch.testing.assert_close(got, expected)
    seen = []
    real = trainer.compute_loss
    monkeypatch.setattr(trainer, "compute_loss", lambda *a, **k: seen.append(a[8]) or real(*a, **k))
    assert np.isfinite(train(config, tmp_path / "run", progress=False)["last_loss"])
    x = torch.rand(1, 3, 24, 32)
    with torch.no_grad():
        torch.testing.assert_close(seen[0](x), white_teacher(x), atol=1e-3, rtol=0)  # the card's fp16 weights
        assert (seen[0](x) - teacher(x)).abs().max() > 1e-2
    with pytest.raises(HyperispError, match="need distill_from"):
        TrainConfig(task="denoise", loss="l1", distill_white_from="w")
    with pytest.raises(HyperispError, match="give one"):
        TrainConfig(task="denoise", loss="l1", distill_from="t", distill_white=True, distill_white_from="w")


def test_colour_gate_decides_which_validation_is_best(tmp_path, tiny_config):
    # An impossible limit: validations are logged with their chroma but none becomes best.pt.
    train(tiny_config(max_neutral_chroma=0.0), tmp_path / "strict", progress=False)
    events = [json.loads(line) for line in (tmp_path / "strict" / "log.jsonl").read_text().splitlines()]
    chromas = [e["neutral_chroma_max"] for e in events if e["val_psnr"] is not None]
    assert len(chromas) == 2 and all(c > 0 for c in chromas)
    assert not (tmp_path / "strict" / "best.pt").exists()
    with pytest.raises(HyperispError, match="no validation"):
        best_validation(events, TrainConfig(max_neutral_chroma=0.0))
    gated = [{"val_psnr": 30.0, "neutral_chroma_max": 1.0}, {"val_psnr": 31.0, "neutral_chroma_max": 2.0}]
    assert best_validation(gated, TrainConfig(max_neutral_chroma=1.5))["val_psnr"] == 30.0
    assert best_validation(gated, TrainConfig())["val_psnr"] == 31.0
    # A limit every model passes: the gate changes nothing.
    train(tiny_config(max_neutral_chroma=1e9), tmp_path / "loose", progress=False)
    assert (tmp_path / "loose" / "best.pt").exists()
    with pytest.raises(HyperispError, match="isp task only"):
        tiny_config(task="denoise", max_neutral_chroma=1.0)
    with pytest.raises(HyperispError, match="denoise task only"):
        tiny_config(phone_noise_max=80.0)


def test_export_only_when_better(training_photos, tmp_path, tiny_config):
    result = train(tiny_config(iters=4), tmp_path / "e", progress=False)
    weights = tmp_path / "weights"
    exported, new, shipped = export_if_better(result, "tiny", "hyperisp train isp ...", directory=weights)
    assert exported and shipped is None
    card = json.loads((weights / "tiny.json").read_text())
    assert card["trained"] and card["training"]["iterations"] == 4 and card["training"]["data"] == [str(training_photos)]
    again, new2, shipped2 = export_if_better(result, "tiny", "x", directory=weights)
    assert not again and new2 == pytest.approx(shipped2, abs=0.01)  # fp16 weights: equal, not better


@pytest.mark.parametrize("option, value, reason", [
    ("--lr", "0", "above 0"), ("--lr", "-1e-4", "above 0"), ("--lr", "nan", "above 0"),
    ("--distill-weight", "0", "above 0"), ("--grown-lr-scale", "0", "above 0"),
    ("--ema", "0", "above 0 and below 1"), ("--ema", "1", "above 0 and below 1")])
def test_cli_train_refuses_values_outside_their_open_range(tmp_path, option, value, reason):
    from typer.testing import CliRunner

    from hyperisp.cli import app

    result = CliRunner().invoke(app, ["train", "denoise", "--data", str(tmp_path), "--out", str(tmp_path / "run"),
                                      option, value])
    assert result.exit_code == 2 and f"must be {reason}, got" in result.output  # before any data is read
    assert not (tmp_path / "run").exists()


def test_config_refuses_a_learning_rate_that_is_not_positive(tiny_config):
    for lr in (0.0, -1e-4, float("nan")):
        with pytest.raises(HyperispError, match="lr must be positive"):
            tiny_config(lr=lr)


def test_cli_train_and_eval_end_to_end(training_photos, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from hyperisp.cli import app

    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "isp", "--data", str(training_photos), "--out", str(run), "--iters", "2",
                                 "--crop", "32", "--batch", "1", "--val-images", "1", "--validate-every", "2"])
    assert result.exit_code == 0, result.output
    assert (run / "checkpoint.pt").is_file()
    result = runner.invoke(app, ["eval", "isp", "--data", str(training_photos), "--limit", "1", "--baselines", "bilinear",
                                 "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    rows = report["rows"]
    by = {(r["method"], r["level"]): r["psnr"] for r in rows}
    # The colour check develops ColorChecker DNGs with both (4 charts each).
    colour = {(r["method"], r["level"]): r["neutral_chroma"] for r in report["colour"]}
    assert {m for m, _ in colour} == {"isp", "bilinear"} and len(colour) == 8
    assert set(by) == {(m, lv) for m in ("isp", "bilinear") for lv in ("clean", "moderate", "high")}
    assert by[("bilinear", "clean")] > by[("bilinear", "moderate")] > by[("bilinear", "high")]
    bad = runner.invoke(app, ["eval", "isp", "--data", str(training_photos), "--baselines", "nonsense"])
    assert bad.exit_code == 2
    # --write-card: the measured metrics and the command land in (a copy of) the shipped card.
    import shutil

    weights = tmp_path / "weights"
    shutil.copytree(Path(__file__).resolve().parents[1] / "weights", weights)
    monkeypatch.setenv("HYPERISP_WEIGHTS", str(weights))
    result = runner.invoke(app, ["eval", "isp", "--data", str(training_photos), "--limit", "1", "--baselines", "none",
                                 "--write-card"])
    assert result.exit_code == 0, result.output
    card = json.loads((weights / "isp.json").read_text())
    # eval scores develop's default, 1 view, under the plain names (a self-ensemble's carry "(N views)")
    clean = [m for m in card["metrics"] if m["name"] == "isp clean psnr"][0]
    assert [m for m in card["metrics"] if m["name"] == "isp chart A -3EV neutral_chroma"]
    # (the recorded command is sys.argv: pytest's here, the real one from a shell)
    assert clean["value"] == pytest.approx(by[("isp", "clean")], abs=1e-3) and clean["command"].startswith("hyperisp")
    from hyperisp.pretrained import load_pretrained
    load_pretrained("isp", directory=weights)  # hash still valid


def test_zrr_training_compares_srgb_targets_directly(tmp_path, tiny_config):
    root = tmp_path / "zrr"
    (root / "huawei_raw").mkdir(parents=True)
    (root / "canon").mkdir()
    g = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(g.integers(0, 1024, (32, 32)).astype(np.uint16)).save(root / "huawei_raw" / f"{i}.png")
        Image.fromarray(g.integers(0, 256, (32, 32, 3)).astype(np.uint8)).save(root / "canon" / f"{i}.jpg")
    config = TrainConfig(task="isp", model="hyperunet_8_8_256", data=[str(root)], crop=32, batch=2, iters=2,
                         warmup=1, val_images=1, model_overrides=tiny_config().model_overrides, loss="mse_msssim")
    result = train(config, tmp_path / "run", progress=False)
    assert result["linear_target"] is False and np.isfinite(result["val_psnr"])
    from hyperisp.train.trainer import compute_loss
    from hyperisp.train.losses import mse_msssim_loss

    packed, target = torch.rand(1, 4, 16, 16), torch.rand(1, 3, 32, 32)
    model = result["model"].eval()
    with torch.no_grad():
        direct = mse_msssim_loss(model(packed), target)
        assert float(compute_loss(model, packed, target, config, linear_target=False)) == pytest.approx(float(direct))
        assert float(compute_loss(model, packed, target, config, linear_target=True)) != pytest.approx(float(direct))


def test_init_grows_into_a_larger_model_and_rejects_one_it_does_not_fit(tmp_path, tiny_config):
    from hyperisp.pretrained import load_pretrained
    from hyperisp.train.trainer import build_model

    result = train(tiny_config(iters=2), tmp_path / "small", progress=False)
    export_if_better(result, "tiny", "hyperisp train isp ...", directory=tmp_path / "weights")
    card = str(tmp_path / "weights" / "tiny.json")
    source = load_pretrained(card)
    grown = build_model(tiny_config(init=card, model="isp_refine2")).eval()
    assert grown.config["n_refine"] == 2
    packed = torch.rand(1, 4, 20, 24)
    with torch.no_grad():
        torch.testing.assert_close(grown(packed), source(packed), atol=0, rtol=0)
    # Overrides alone apply to the init's architecture.
    assert build_model(tiny_config(init=card, model_overrides={"n_refine": 1})).config["n_refine"] == 1
    with pytest.raises(HyperispError, match="does not fit"):
        build_model(tiny_config(init=card, model="isp_small", model_overrides={**tiny_config().model_overrides, "n_fwd": 8}))


def test_grown_parameters_train_at_their_own_lr(tmp_path, tiny_config):
    from hyperisp.train.trainer import build_model, parameter_groups

    result = train(tiny_config(iters=2), tmp_path / "small", progress=False)
    export_if_better(result, "tiny", "hyperisp train isp ...", directory=tmp_path / "weights")
    card = str(tmp_path / "weights" / "tiny.json")
    config = tiny_config(init=card, model="isp_refine2", grown_lr_scale=10, iters=3)
    grown = build_model(config)
    names = {id(p): name for name, p in grown.named_parameters()}
    base, added = parameter_groups(grown, config)
    assert added["params"] and all(names[id(p)].startswith("refine.") for p in added["params"])
    assert not any(names[id(p)].startswith("refine.") for p in base["params"])
    assert added["lr"] == pytest.approx(10 * config.lr) and "lr" not in base
    assert len(parameter_groups(grown, tiny_config(init=card, model="isp_refine2"))) == 1  # scale 1: one group
    train(config, tmp_path / "grown", progress=False)  # the run's optimizer has both rates
    state = torch.load(tmp_path / "grown" / "checkpoint.pt", weights_only=False)
    assert [g["initial_lr"] for g in state["optimizer"]["param_groups"]] == pytest.approx([config.lr, 10 * config.lr])
    with pytest.raises(HyperispError, match="grown_lr_scale"):
        tiny_config(grown_lr_scale=0)


def test_a_grown_denoiser_keeps_its_inits_input_clip_and_refuses_unclipped_training(tmp_path, tiny_config):
    from hyperisp.train.trainer import build_model

    overrides = {**tiny_config("denoise").model_overrides, "clip_input": True}
    result = train(tiny_config("denoise", iters=2, model_overrides=overrides), tmp_path / "clip", progress=False)
    export_if_better(result, "tiny", "hyperisp train denoise ...", directory=tmp_path / "weights")
    card = str(tmp_path / "weights" / "tiny.json")
    wider = {**overrides, "widths": [4, 8]}  # tiny default widths 2, 4
    wider.pop("clip_input")
    assert build_model(tiny_config("denoise", init=card, model="denoise_small", model_overrides=wider)).clip_input
    with pytest.raises(HyperispError, match="clips its input"):
        train(tiny_config("denoise", init=card, unclipped_awgn=0.5), tmp_path / "unclipped", progress=False)
    assert not (tmp_path / "unclipped" / "config.json").exists()  # a refused run leaves no config to resume


def test_init_without_a_model_name_keeps_the_init_architecture(tmp_path, tiny_config):
    # A grown model continues as itself: `--init isp` must not shrink it to the task's default config.
    from hyperisp.train.trainer import build_model

    config = tiny_config(iters=2, model="isp_refine2")
    result = train(config, tmp_path / "grown", progress=False)
    export_if_better(result, "tiny", "hyperisp train isp ...", directory=tmp_path / "weights")
    card = str(tmp_path / "weights" / "tiny.json")
    again = tiny_config(init=card, model_overrides={})
    assert again.model == "" and build_model(again).config == result["model"].config


def test_validation_can_share_filters_per_photo(tmp_path, tiny_config):
    from hyperisp.metrics import psnr
    from hyperisp.models import pooling_groups
    from hyperisp.train.trainer import validate

    model = train(tiny_config(iters=2), tmp_path / "run", progress=False)["model"].eval()
    with torch.no_grad():
        model.residual_scale.fill_(1.0)  # after 2 iterations the head barely shows: make it count
        packed, target = torch.rand(4, 4, 16, 16), torch.rand(4, 3, 32, 32)
        for group in (1, 2):
            with pooling_groups(model, group):
                expected = float(psnr(linear_to_srgb(model(packed).clamp(0, 1)), linear_to_srgb(target)).mean())
            got = validate(model, (packed, target), "isp", torch.device("cpu"), chunk=2, pool_group=group)
            assert got == pytest.approx(expected, abs=1e-5)
    assert model.pool_group == 1
