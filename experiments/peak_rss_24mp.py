"""Peak RSS of a whole 24 MP develop (read DNG, tiled network, colour, JPEG), in a fresh process.

    PYTHONPATH=. python experiments/peak_rss_24mp.py [--tile 4096] [--model CARD] [--ensemble 2] > experiments/results/peak_rss_24mp.txt

Writes a synthetic 6000x4000 14-bit DNG to a temp folder, runs `hyperisp develop` on it in a
child process and reports the child's peak RSS (ru_maxrss) and wall time.
"""
import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hyperisp.bench import synthetic_mosaic
from hyperisp.raw.dng import write_dng

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--tile", type=int, default=None, help="tile size in image pixels (default: the CLI's)")
parser.add_argument("--model", default=None, help="model name or card path (default: the shipped isp)")
parser.add_argument("--ensemble", type=int, default=None, help="self-ensemble views, as develop --ensemble (default: develop's)")
args = parser.parse_args()

with tempfile.TemporaryDirectory() as tmp:
    raw = write_dng(Path(tmp) / "24mp.dng", synthetic_mosaic(4000, 6000), black_level=512, white_level=16383)
    command = [sys.executable, "-m", "hyperisp.cli", "develop", str(raw), "-o", str(Path(tmp) / "24mp.jpg")]
    if args.tile is not None:
        command += ["--tile", str(args.tile)]
    if args.model is not None:
        command += ["--model", args.model]
    if args.ensemble is not None:
        command += ["--ensemble", str(args.ensemble)]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - start
peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
views = f", {args.ensemble} views" if args.ensemble is not None else ", default views"
print(f"24 MP develop (tile {args.tile or 'default'}, model {args.model or 'isp'}{views}): peak RSS {peak_gb:.2f} GB, "
      f"{seconds:.1f} s wall")
