"""Batch processing: planning, failure isolation, resume after interruption, engines giving identical bytes."""
from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

from hyperisp.batch import FileResult, cap_jobs
from hyperisp.batch_plan import RAW_EXTENSIONS, clean_stale_temp_files, output_name, plan_batch
from hyperisp.batch_report import BatchReporter, write_failures
from hyperisp.cli import app
from hyperisp.errors import HyperispError
from hyperisp.io.tiff import write_tiff
from hyperisp.raw.dng import PHOTOMETRIC_LINEAR_RAW, write_dng

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def make_dng(path: Path, seed: int, shape=(40, 56)) -> Path:
    mosaic = np.random.default_rng(seed).integers(64, 4095, shape).astype(np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_dng(path, mosaic, black_level=64, white_level=4095, as_shot_neutral=[0.5, 1.0, 0.7])


def make_monochrome_dng(path: Path) -> Path:
    """A DNG LibRaw opens but hyperisp refuses: a monochrome (non-Bayer) sensor."""
    tags = [(254, "LONG", 0), (271, "ASCII", "test"), (272, "ASCII", "mono"), (50706, "BYTE", [1, 4, 0, 0]),
            (50708, "ASCII", "test mono"), (50717, "LONG", 4095)]
    with open(path, "wb") as file:
        write_tiff(file, np.full((40, 56), 900, np.uint16), tags, photometric=PHOTOMETRIC_LINEAR_RAW)
    return path


@pytest.fixture
def shoot(tmp_path: Path) -> Path:
    """shoot/: a.dng, b.DNG, day2/c.dng good; corrupt.dng truncated; mono.dng unsupported; notes.xmp sidecar."""
    root = tmp_path / "shoot"
    make_dng(root / "a.dng", 1)
    make_dng(root / "b.DNG", 2)
    make_dng(root / "day2" / "c.dng", 3)
    good = (root / "a.dng").read_bytes()
    (root / "corrupt.dng").write_bytes(good[: len(good) // 3])
    make_monochrome_dng(root / "mono.dng")
    (root / "notes.xmp").write_text("<xmp/>")
    return root


GOOD = ["a.jpg", "b.jpg", "day2/c.jpg"]


def outputs(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- planning

def test_plan_expands_folders_and_globs_and_mirrors_the_tree(shoot: Path, tmp_path: Path):
    out = tmp_path / "out"
    flat = plan_batch([shoot], extensions=RAW_EXTENSIONS, pattern="{stem}.{ext}", ext="jpg", output=out)
    assert sorted(i.source.name for i in flat) == ["a.dng", "b.DNG", "corrupt.dng", "mono.dng"]  # no .xmp, no sub
    deep = plan_batch([shoot], extensions=RAW_EXTENSIONS, pattern="{parent}_{stem}.{in_ext}.{ext}", ext="tif",
                      output=out, recursive=True)
    targets = {i.source.name: i.target for i in deep}
    assert targets["c.dng"] == out / "day2" / "day2_c.dng.tif"
    assert targets["b.DNG"] == out / "shoot_b.DNG.tif"
    globbed = plan_batch([str(shoot / "**" / "*.dng")], extensions=RAW_EXTENSIONS, pattern="{stem}.{ext}",
                         ext="jpg", output=out)
    assert {i.target for i in globbed} >= {out / "a.jpg", out / "day2" / "c.jpg"}
    beside = plan_batch([shoot / "a.dng"], extensions=RAW_EXTENSIONS, pattern="{stem}.{ext}", ext="jpg")
    assert beside[0].target == shoot / "a.jpg"


def test_plan_flags_collisions_existing_outputs_and_empty_globs(shoot: Path, tmp_path: Path):
    make_dng(shoot / "a.NEF", 4)  # same stem as a.dng: both would write a.jpg
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b.jpg").write_bytes(b"done before")
    items = plan_batch([shoot / "a.dng", shoot / "a.NEF", shoot / "b.DNG", str(shoot / "*.cr2")],
                       extensions=RAW_EXTENSIONS, pattern="{stem}.{ext}", ext="jpg", output=tmp_path / "out")
    assert [i.status for i in items] == ["todo", "failed", "skipped", "failed"]
    assert "same output" in items[1].reason and "no file matches" in items[3].reason


@pytest.mark.parametrize("pattern, problem", [("{nope}.jpg", "unknown variable"), ("../{stem}.jpg", "inside")])
def test_bad_name_patterns(pattern: str, problem: str):
    with pytest.raises(HyperispError, match=problem):
        output_name(pattern, Path("x/IMG_1.NEF"), "jpg")


def test_stale_temp_files_are_cleaned_only_when_old(tmp_path: Path):
    old, young, other = (tmp_path / n for n in (".a.jpg.1234abcd.part", ".a.jpg.99999999.part", ".z.jpg.12.part"))
    for f in (old, young, other):
        f.write_bytes(b"half")
    os.utime(old, (time.time() - 3600,) * 2)
    os.utime(other, (time.time() - 3600,) * 2)
    assert clean_stale_temp_files([tmp_path / "a.jpg"]) == 1
    assert not old.exists() and young.exists() and other.exists()  # other: not a target of this batch


def test_memory_guard_caps_jobs():
    assert cap_jobs(4, 12.0, "develop", available=64 * 10**9) == (4, "")
    jobs, note = cap_jobs(4, 12.0, "develop", available=8 * 10**9)
    assert 1 <= jobs < 4 and "capped" in note
    assert cap_jobs(3, 24.0, "denoise", available=10**9)[0] == 1


# ----------------------------------------------------------------------------- failure isolation, reports

def test_folder_with_corrupt_and_unsupported_files(shoot: Path, tmp_path: Path):
    out, report = tmp_path / "out", tmp_path / "failures.csv"
    result = run("develop", shoot, "-r", "-o", out, "--json", "--failures", report)
    assert result.exit_code == 1, result.output
    assert sorted(outputs(out)) == GOOD
    for name in GOOD:
        with Image.open(out / name) as im:
            assert im.format == "JPEG" and im.size == (56, 40)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and any("mono.dng" in e and "monochrome" in e for e in errors)
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["counts"] == {"done": 3, "skipped": 0, "failed": 2, "total": 5}
    done = [f for f in summary["files"] if f["status"] == "done"]
    assert all(f["info"]["white_balance_source"] for f in done) and all(f["megapixels"] > 0 for f in done)
    assert all(set(f["info"]["stage_seconds"]) == {"read", "network", "write"} for f in done)
    rows = list(csv.DictReader(report.open()))
    assert sorted(Path(r["path"]).name for r in rows) == ["corrupt.dng", "mono.dng"] and all(r["reason"] for r in rows)
    rerun = run("develop", shoot, "-r", "-o", out, "--quiet")
    assert rerun.exit_code == 1 and "3 skipped" in rerun.output and "2 of 5" in rerun.output


def test_denoise_folder_keeps_formats_and_names(tmp_path: Path):
    from hyperisp.io.images import write_image

    rng = np.random.default_rng(5)
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "x.png", rng.random((24, 32, 3)))
    write_image(tmp_path / "in" / "y.jpg", rng.random((24, 32, 3)))
    (tmp_path / "in" / "z.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = run("denoise", tmp_path / "in", "-o", tmp_path / "out")
    assert result.exit_code == 1 and "1 of 3" in result.output
    assert sorted(outputs(tmp_path / "out")) == ["x_denoised.png", "y_denoised.jpg"]
    (tmp_path / "in" / "z.png").unlink()
    assert run("denoise", tmp_path / "in").exit_code == 0  # beside the inputs
    rerun = run("denoise", tmp_path / "in", "--json")  # its own outputs are not taken for inputs
    assert json.loads(rerun.stdout[rerun.stdout.index("{"):])["counts"] == {"done": 0, "skipped": 2, "failed": 0,
                                                                             "total": 2}
    in_place = run("denoise", tmp_path / "in" / "x.png", "--name", "{name}", "--overwrite")
    assert in_place.exit_code == 1 and "replace the input" in in_place.output


def test_failures_report_json_and_tty_progress(tmp_path: Path):
    results = [FileResult("a.dng", "a.jpg", "done", megapixels=1.0), FileResult("b.dng", "b.jpg", "failed", "empty file")]
    report = json.loads(write_failures(tmp_path / "f.json", results).read_text())
    assert report == [{"path": "b.dng", "reason": "empty file"}]
    stream = io.StringIO()
    with BatchReporter(Console(file=stream, force_terminal=True, width=100), 2, "developed") as reporter:
        for r in results:
            reporter(r)
    assert "b.dng: empty file" in stream.getvalue() and reporter.megapixels == 1.0


# ----------------------------------------------------------------------------- resume

def test_resume_after_ctrl_c(shoot: Path, tmp_path: Path, monkeypatch):
    import hyperisp.batch as batch

    reference = tmp_path / "reference"
    assert run("develop", shoot, "-r", "-o", reference).exit_code == 1
    real_compute, calls = batch.compute_stage, []

    def interrupted_compute(decoded, spec):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C while the network runs on the third good file
        return real_compute(decoded, spec)

    monkeypatch.setattr(batch, "compute_stage", interrupted_compute)
    out = tmp_path / "out"
    first = run("develop", shoot, "-r", "-o", out)
    assert first.exit_code == 130 and "resume" in first.output
    assert sorted(outputs(out)) == GOOD[:2]  # the two finished files were written, nothing partial
    monkeypatch.setattr(batch, "compute_stage", real_compute)
    second = run("develop", shoot, "-r", "-o", out)
    assert second.exit_code == 1 and "2 skipped" in second.output
    assert outputs(out) == outputs(reference)


def test_resume_after_kill(tmp_path: Path):
    """SIGKILL a real run mid-batch: every output present is complete, and the rerun finishes the rest."""
    folder = tmp_path / "many"
    for n in range(8):
        make_dng(folder / f"f{n}.dng", n, shape=(120, 160))
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "hyperisp.cli", "develop", str(folder), "-o", str(out), "--quiet"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not (out.is_dir() and any(out.glob("*.jpg"))) and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL  # killed, not finished
    finished = sorted(out.glob("*.jpg"))
    print(f"{len(finished)} of 8 finished before the kill")
    assert 0 < len(finished) < 8
    for path in finished:
        with Image.open(path) as im:
            im.load()  # a truncated JPEG raises here
    rerun = run("develop", folder, "-o", out, "--quiet")
    assert rerun.exit_code == 0, rerun.output
    assert sorted(p.name for p in out.glob("*.jpg")) == [f"f{n}.jpg" for n in range(8)]
    assert f"{len(finished)} skipped" in rerun.output


# ----------------------------------------------------------------------------- engines give identical bytes

def test_two_workers_give_the_same_bytes(shoot: Path, tmp_path: Path):
    assert run("develop", shoot, "-r", "-o", tmp_path / "one").exit_code == 1
    result = run("develop", shoot, "-r", "-o", tmp_path / "two", "--jobs", "2")
    assert result.exit_code == 1 and "2 of 5" in result.output
    assert outputs(tmp_path / "two") == outputs(tmp_path / "one") and sorted(outputs(tmp_path / "one")) == GOOD


def test_workers_are_capped_to_one_on_a_gpu(shoot: Path, tmp_path: Path, monkeypatch):
    import hyperisp.cli

    monkeypatch.setattr(hyperisp.cli, "_cuda_available", lambda: True)  # as on a GPU machine; the run uses the CPU
    result = run("develop", shoot, "-r", "-o", tmp_path / "gpu", "--jobs", "2", "--device", "cpu")
    assert "capped to 1 on the GPU" not in result.output  # --device cpu: workers as asked
    result = run("develop", shoot, "-r", "-o", tmp_path / "auto", "--jobs", "2")
    assert "--jobs 2 capped to 1 on the GPU" in result.output and result.exit_code == 1  # the shoot's bad files
    assert sorted(outputs(tmp_path / "auto")) == GOOD


def test_ray_engine_gives_the_same_bytes(shoot: Path, tmp_path: Path):
    ray = pytest.importorskip("ray")
    from hyperisp.batch_ray import _connect

    assert run("develop", shoot, "-r", "-o", tmp_path / "local").exit_code == 1
    _connect(None, 2)  # one local instance (2 CPUs, no dashboard) for both runs below
    try:
        result = run("develop", shoot, "-r", "-o", tmp_path / "ray", "--engine", "ray", "--json", "--quiet")
        assert result.exit_code == 1, result.output
        summary = json.loads(result.stdout[result.stdout.index("{"):])
        assert summary["engine"] == "ray" and summary["counts"]["failed"] == 2
        assert outputs(tmp_path / "ray") == outputs(tmp_path / "local")
        again = run("develop", shoot, "-r", "-o", tmp_path / "ray", "--engine", "ray", "--quiet")
        assert again.exit_code == 1 and "3 skipped" in again.output
    finally:
        ray.shutdown()


def test_unreachable_ray_address_fails_fast():
    from hyperisp.batch_ray import _check_reachable

    start = time.perf_counter()
    with pytest.raises(HyperispError, match="cannot reach Ray at 127.0.0.1:1"):
        _check_reachable("127.0.0.1:1")  # nothing listens on port 1
    assert time.perf_counter() - start < 6
