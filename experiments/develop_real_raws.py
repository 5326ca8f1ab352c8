"""Develop the real raws of ../shared/datasets/val/raw for a look: zipper, maze, colour cast.

Issue 3 asks that the shipped ``isp`` develops them without zipper or maze artefacts and
without a colour cast. There is no reference image, so this writes, for each raw, the full
developed image and a 4x nearest-neighbour zoom of its busiest 96 px crop (where demosaicking
artefacts show first): the model, Menon 2007 (optional package colour-demosaicing) and the
bilinear base alone, left to right, all through the same colour pipeline. Outputs go to
``runs/real_raws/`` (never commit them: they derive from ../shared). It also prints each
method's grid amplitude on the crop's bright pixels (4x4 mean luminance above 0.75 in the
model's output, where a grid shows most): the luminance's component at the 2-pixel checkerboard
frequency, phase-locked to the CFA, in 8-bit levels. A grid or maze artefact made by the
demosaicker adds to it; texture averages out. Last, the same amplitude on developed flat grey
patches (synthetic, from bright to clipped), where no texture can add to it.

How each file is read (phase, levels) was determined by looking at the data:
tests/test_colour_real_raws.py for the chart dump and the Halide crop; the phone raw's packed
channels are ordered (R, G, G, B) (channels 1 and 2 correlate at 0.98 with equal means; the
other order turns the red lantern frame and the face blue).

    PYTHONPATH=. python experiments/develop_real_raws.py [--model isp] [--also runs/old/isp.json] [--out runs/real_raws]
"""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import hyperisp
from hyperisp.evaluate import menon_method
from hyperisp.raw import read_raw, unpack_bayer

RAW_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "val" / "raw"


def phone_mosaic(path: Path) -> np.ndarray:
    """(512, 512, 4) packed (R, G, G, B), the canonical packed order -> (1024, 1024) RGGB mosaic."""
    packed = torch.from_numpy(np.load(path).astype(np.float32)).permute(2, 0, 1)[None]
    return unpack_bayer(packed)[0, 0].numpy()


def sources() -> dict[str, tuple[object, dict]]:
    """name -> (what ``hyperisp.develop`` takes, its keyword options)."""
    chart = np.fromfile(RAW_DIR / "openisp_chart_rggb_10bit_1920x1080.raw", dtype="<u2").reshape(1080, 1920)
    return {
        "kodak_dc50": (read_raw(RAW_DIR / "kodak_dc50.kdc"), {}),
        "openisp_chart": (chart, {"cfa_phase": "RGGB", "black_level": 0, "white_level": 1020}),
        "halide_bayer": (np.asarray(Image.open(RAW_DIR / "halide_bayer_small.png")),
                         {"cfa_phase": "GRBG", "black_level": 25, "white_level": 1023}),
        "phone_packed": (phone_mosaic(RAW_DIR / "aisp_packed_12bit_512x512x4.npy"),
                         {"cfa_phase": "RGGB", "black_level": 0, "white_level": 4095}),
    }


class MenonDemosaic(torch.nn.Module):
    """Menon 2007 with the ``isp`` model interface: packed RGGB (1, 4, h, w) -> camera RGB (1, 3, 2h, 2w)."""

    task = "isp"

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        return menon_method(unpack_bayer(packed))


def grid_amplitude(rgb: np.ndarray, mask: np.ndarray) -> float:
    """|mean of luminance * (-1)^(x+y)| over ``mask`` of an (H, W, 3) sRGB image, in 8-bit levels."""
    luma = rgb.mean(axis=2)
    sign = np.where(np.add.outer(np.arange(luma.shape[0]), np.arange(luma.shape[1])) % 2 == 0, 1.0, -1.0)
    return float(abs((luma * sign)[mask].mean()) * 255) if mask.any() else float("nan")


def bright_mask(rgb: np.ndarray, threshold: float = 0.75) -> np.ndarray:
    """(H, W) bool: pixels whose 4x4 local mean luminance is above ``threshold``.

    The 4x4 mean has no component at the checkerboard frequency, so the mask cannot favour
    the pixels a grid brightens (a per-pixel threshold would: it selects the bright phase).
    """
    luma = torch.from_numpy(rgb.mean(axis=2))[None, None]
    local = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(luma, (1, 2, 1, 2), mode="replicate"), 4, stride=1)
    return local[0, 0].numpy() > threshold


def flat_patch_grids(model: object, levels: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95, 1.0)) -> dict[float, float]:
    """Grid amplitude of a developed flat grey patch at each green level (fraction of white).

    A grey under daylight as a sensor records it (red and blue at 0.55 / 0.6 of green), with
    mild shot noise: no texture, so any checkerboard left is the demosaicker's own. At 1.0
    the green pixels clip, as on over-exposed highlights.
    """
    grids = {}
    for level in levels:
        mosaic = np.zeros((256, 256))
        mosaic[0::2, 0::2], mosaic[1::2, 1::2] = 0.55 * level, 0.6 * level
        mosaic[0::2, 1::2] = mosaic[1::2, 0::2] = level
        mosaic += np.random.default_rng(0).normal(0, 1, mosaic.shape) * 0.01 * np.sqrt(mosaic)
        rgb = hyperisp.develop((np.clip(mosaic, 0, 1) * 1000).astype(np.float32), model=model, device="cpu",
                               cfa_phase="RGGB", black_level=0, white_level=1000)[16:-16, 16:-16]
        grids[level] = grid_amplitude(rgb, np.ones(rgb.shape[:2], bool))
    return grids


def busiest_crop(rgb: np.ndarray, size: int = 96) -> tuple[int, int]:
    """Top-left corner of the size x size crop with the most gradient energy."""
    grey = torch.from_numpy(rgb.mean(axis=2))[None, None]
    energy = (grey[..., 1:, :-1] - grey[..., :-1, :-1]).abs() + (grey[..., :-1, 1:] - grey[..., :-1, :-1]).abs()
    pooled = torch.nn.functional.avg_pool2d(energy, size, stride=size // 2)
    y, x = divmod(int(pooled.flatten().argmax()), pooled.shape[-1])
    return y * size // 2, x * size // 2


def to_png(rgb: np.ndarray, path: Path) -> None:
    Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)


def _label(model: str) -> str:
    """A model's column name: its name, or for a card path the folder holding the card."""
    path = Path(model)
    return path.parent.name if path.suffix == ".json" else model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="isp")
    parser.add_argument("--out", type=Path, default=Path("runs/real_raws"))
    parser.add_argument("--also", nargs="*", default=[], help="more models (names or card paths) for the same crops")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    bilinear = hyperisp.load_pretrained("isp", "cpu")
    with torch.no_grad():
        bilinear.residual_scale.zero_()  # the residual off: the bilinear base alone
    label = _label(args.model)
    methods = {label: args.model, **{_label(m): m for m in args.also}, "menon": MenonDemosaic(), "bilinear": bilinear}
    if importlib.util.find_spec("colour_demosaicing") is None:
        print("colour-demosaicing is not installed: no Menon column")
        del methods["menon"]
    for name, (source, options) in sources().items():
        developed = {label: hyperisp.develop(source, model=model, device="cpu", **options)
                     for label, model in methods.items()}
        y, x = busiest_crop(developed[label])
        crops = {label: rgb[y:y + 96, x:x + 96] for label, rgb in developed.items()}
        to_png(developed[label], args.out / f"{name}.png")
        to_png(np.concatenate([np.kron(c, np.ones((4, 4, 1))) for c in crops.values()], axis=1),
               args.out / f"{name}_zoom_{'_'.join(crops)}.png")
        bright = bright_mask(crops[label])
        amplitudes = ", ".join(f"{label} {grid_amplitude(c, bright):.2f}" for label, c in crops.items())
        print(f"{name} ({developed[label].shape[1]}x{developed[label].shape[0]}, crop at y={y} x={x}, "
              f"{int(bright.sum())} bright px): grid amplitude /255: {amplitudes}")
    for label, model in methods.items():
        grids = ", ".join(f"{level:.2f}: {grid:.2f}" for level, grid in flat_patch_grids(model).items())
        print(f"flat grey patch, {label}: grid amplitude /255 by green level: {grids}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
