"""Batch throughput benchmark: develop a folder of synthetic raws with 1 and 2 local workers and on Ray.

Not a test: it prints a table and writes JSON. The full run (README numbers):

    PYTHONPATH=. python experiments/batch_bench.py --files 20 --megapixels 12 --json experiments/results/batch_bench.json

Each raw is the built-in demo scene (colour chart, zone plate, ramp, stripes) at the
asked size as a 12-bit RGGB DNG with its own shot + read noise. Every engine develops
the whole folder to JPEG into a fresh output folder; the time is wall clock for the
whole batch and includes worker start-up and model loading (what a user waits for),
except Ray's own start-up (``ray.init``), which is reported separately.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hyperisp.batch import JobSpec, run_batch
from hyperisp.batch_plan import RAW_EXTENSIONS, plan_batch
from hyperisp.raw.dng import write_dng
from hyperisp.raw.sample import sample_scene_srgb


def make_raws(folder: Path, files: int, megapixels: float) -> list[Path]:
    """``files`` noisy 12-bit RGGB DNGs of the demo scene at ``megapixels`` (4:3)."""
    height = int(round(np.sqrt(megapixels * 1e6 * 3 / 4) / 2)) * 2
    width = int(round(height * 4 / 3 / 2)) * 2
    scene = sample_scene_srgb(height, width) ** 2.2  # roughly linear light
    mosaic = np.empty((height, width), np.float32)
    for (dy, dx), channel in zip([(0, 0), (0, 1), (1, 0), (1, 1)], [0, 1, 1, 2]):
        mosaic[dy::2, dx::2] = scene[dy::2, dx::2, channel]
    signal = mosaic * (4095 - 256)
    paths = []
    for n in range(files):
        rng = np.random.default_rng(n)
        noisy = signal + rng.standard_normal(signal.shape, dtype=np.float32) * np.sqrt(0.25 * signal + 4.0)
        values = np.clip(np.round(noisy + 256), 0, 4095).astype(np.uint16)
        paths.append(write_dng(folder / f"IMG_{n:04d}.dng", values, black_level=256, white_level=4095,
                               as_shot_neutral=[0.5, 1.0, 0.65]))
    return paths


def run_engine(folder: Path, out: Path, engine: str, jobs: int) -> dict:
    items = plan_batch([folder], extensions=RAW_EXTENSIONS, pattern="{stem}.{ext}", ext="jpg", output=out)
    spec = JobSpec("develop", model="isp", device="cpu", quality=95)
    start = time.perf_counter()
    results = run_batch(items, spec, engine=engine, jobs=jobs)
    seconds = time.perf_counter() - start
    failed = [r for r in results if r.status != "done"]
    if failed:
        raise SystemExit(f"{engine} x{jobs}: {len(failed)} file(s) not developed: {failed[0].reason}")
    megapixels = sum(r.megapixels for r in results)
    # Per-stage work summed over files: with jobs=1, wall time below read + network + write shows the overlap.
    stages = {k: round(sum(r.info["stage_seconds"][k] for r in results), 2) for k in ("read", "network", "write")}
    return {"engine": engine, "jobs": jobs, "files": len(results), "megapixels": round(megapixels, 2),
            "seconds": round(seconds, 2), "megapixels_per_second": round(megapixels / seconds, 3),
            "files_per_second": round(len(results) / seconds, 3), "stage_seconds": stages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="local worker counts to time")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray engine")
    parser.add_argument("--ray-jobs", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--workdir", type=Path, default=None, help="where the raws go (default: a temp folder)")
    args = parser.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="hyperisp_bench_"))
    raws = work / "raws"
    raws.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    make_raws(raws, args.files, args.megapixels)
    print(f"made {args.files} raws of {args.megapixels:g} MP in {time.perf_counter() - start:.1f} s under {raws}")

    rows = []
    for jobs in args.jobs:
        rows.append(run_engine(raws, work / f"out_local_{jobs}", "local", jobs))
        print(rows[-1])
    ray_init_seconds = None
    if not args.no_ray:
        try:
            import ray
        except ImportError:
            print("ray not installed: skipping the Ray engine (pip install 'hyperisp[ray]')")
        else:
            from hyperisp.batch_ray import _connect

            start = time.perf_counter()
            _connect(None, args.ray_jobs)
            ray_init_seconds = round(time.perf_counter() - start, 2)
            try:
                rows.append(run_engine(raws, work / "out_ray", "ray", args.ray_jobs))
                print(rows[-1])
            finally:
                ray.shutdown()
            same = all((work / "out_ray" / p.name).read_bytes() == p.read_bytes()
                       for p in sorted((work / f"out_local_{args.jobs[0]}").glob("*.jpg")))
            print(f"Ray outputs byte-identical to local: {same}")

    print("\n| engine | workers | files | MP | seconds | MP/s | files/s | read + network + write (s, summed) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        st = r["stage_seconds"]
        print(f"| {r['engine']} | {r['jobs']} | {r['files']} | {r['megapixels']:.0f} | {r['seconds']:.1f} "
              f"| {r['megapixels_per_second']:.2f} | {r['files_per_second']:.3f} "
              f"| {st['read']:.1f} + {st['network']:.1f} + {st['write']:.1f} |")
    if ray_init_seconds is not None:
        print(f"(Ray start-up, not included above: {ray_init_seconds:.1f} s)")
    report = {"files": args.files, "megapixels_per_file": args.megapixels, "results": rows,
              "ray_init_seconds": ray_init_seconds, "cpu_count": os.cpu_count(), "torch": torch.__version__,
              "torch_threads": torch.get_num_threads(), "machine": platform.platform()}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
