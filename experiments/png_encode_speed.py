"""PNG encoding of a 12 MP photo: Pillow against hyperisp's banded encoder, time and size.

The photo is a validation image scaled up to 12 MP (bicubic, so it is smooth like a
denoised output), written as 8-bit and 16-bit PNG at the level outputs use
(``hyperisp.io.images.PNG_COMPRESS_LEVEL``). Pillow writes 8-bit only. Each case is the
median of ``--repeats`` runs in memory (no disk).

    PYTHONPATH=. python experiments/png_encode_speed.py [--image PATH] [--repeats 5]

Writes experiments/results/png_encode_speed.json.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from hyperisp.io.images import PNG_COMPRESS_LEVEL
from hyperisp.io.png import write_png

DEFAULT_IMAGE = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "train" / "sun_hays80"


def photo_12mp(path: Path) -> np.ndarray:
    """(2828, 4242, 3) uint16 from the photo at ``path`` (or the first one in a folder)."""
    if path.is_dir():
        path = sorted(path.iterdir())[0]
    image = Image.open(path).convert("RGB").resize((4242, 2828), Image.BICUBIC)
    return np.asarray(image).astype(np.uint16) * 257


def median_seconds(encode, repeats: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeats):
        buffer = io.BytesIO()
        start = time.perf_counter()
        encode(buffer)
        times.append(time.perf_counter() - start)
        size = buffer.tell()
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("experiments/results/png_encode_speed.json"))
    args = parser.parse_args()

    image16 = photo_12mp(args.image)
    image8 = (image16 // 257).astype(np.uint8)
    level = PNG_COMPRESS_LEVEL
    cases = {
        "pillow, 8-bit": lambda f: Image.fromarray(image8).save(f, format="PNG", compress_level=level),
        "write_png, 8-bit, 1 thread": lambda f: write_png(f, image8, compress_level=level, threads=1),
        "write_png, 8-bit, all cores": lambda f: write_png(f, image8, compress_level=level),
        "write_png, 16-bit, 1 thread": lambda f: write_png(f, image16, compress_level=level, threads=1),
        "write_png, 16-bit, all cores": lambda f: write_png(f, image16, compress_level=level),
    }
    rows = []
    for name, encode in cases.items():
        seconds, size = median_seconds(encode, args.repeats)
        rows.append({"case": name, "seconds": seconds, "bytes": size})
        print(f"{name:30s} {seconds:6.3f} s  {size / 2**20:7.2f} MiB")
    result = {"image": str(args.image), "shape": list(image16.shape), "compress_level": level,
              "cores": os.cpu_count(), "repeats": args.repeats, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
