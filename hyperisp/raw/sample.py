"""A deterministic synthetic raw photo: the built-in demo input (``hyperisp develop --sample``).

The scene (:func:`sample_scene_srgb`) has a 24-patch colour chart, a zone plate,
a grey ramp and fine stripes (to show demosaicking artefacts). :func:`write_sample_dng`
"unprocesses" it into what a camera would have recorded and writes a 12-bit DNG:
sRGB -> linear -> camera RGB (inverse colour matrix) -> divide by the white-balance
gains -> RGGB mosaic -> shot + read noise -> 12-bit with black level 256.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .colour import camera_to_srgb_matrix, srgb_to_linear
from .dng import write_dng

SAMPLE_HEIGHT, SAMPLE_WIDTH = 480, 640
BLACK_LEVEL, WHITE_LEVEL = 256, 4095

# XYZ -> camera matrix (D65) of the Canon EOS 5D Mark II: Adobe's DNG ColorMatrix2, as
# tabulated in dcraw / LibRaw ``adobe_coeff`` ({4716,603,-830,-7798,15474,2480,-1496,1937,6651} / 10000).
SAMPLE_COLOR_MATRIX = np.array(
    [[0.4716, 0.0603, -0.0830], [-0.7798, 1.5474, 0.2480], [-0.1496, 0.1937, 0.6651]]
)
D65_WHITE_XYZ = np.array([0.95047, 1.0, 1.08883])

# Approximate sRGB (8-bit) values of the 24 ColorChecker patches, row by row
# (the widely quoted X-Rite / BabelColor figures).
COLOR_CHECKER_SRGB = np.array([
    [115, 82, 68], [194, 150, 130], [98, 122, 157], [87, 108, 67], [133, 128, 177], [103, 189, 170],
    [214, 126, 44], [80, 91, 166], [193, 90, 99], [94, 60, 108], [157, 188, 64], [224, 163, 46],
    [56, 61, 150], [70, 148, 73], [175, 54, 60], [231, 199, 31], [187, 86, 149], [8, 133, 161],
    [243, 243, 242], [200, 200, 200], [160, 160, 160], [122, 122, 121], [85, 85, 85], [52, 52, 52],
], dtype=np.float32) / 255.0


def sample_scene_srgb(height: int = SAMPLE_HEIGHT, width: int = SAMPLE_WIDTH) -> np.ndarray:
    """The clean demo scene.

    Layout (fractions of the frame): colour chart top-left, zone plate top-right,
    a horizontal grey ramp, and a band of fine stripes at the bottom.

    Args:
        height, width: output size, at least 64 x 64.
    Returns:
        (height, width, 3) float32 sRGB-encoded in [0, 1].
    """
    if height < 64 or width < 64:
        raise ValueError(f"sample scene needs at least 64x64 pixels, got {height}x{width}")
    scene = np.full((height, width, 3), 0.2, dtype=np.float32)  # dark grey surround, like a chart's
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)

    # 6 x 4 colour chart in the top-left 65 % x 60 %.
    top, left, cell_h, cell_w = 0.04 * height, 0.03 * width, 0.15 * height, 0.108 * width
    for i, colour in enumerate(COLOR_CHECKER_SRGB):
        y0, x0 = top + (i // 6) * cell_h, left + (i % 6) * cell_w
        inside = (yy >= y0) & (yy < y0 + 0.85 * cell_h) & (xx >= x0) & (xx < x0 + 0.85 * cell_w)
        scene[inside] = colour

    # Zone plate top-right: frequency grows linearly with radius to 0.45 cycles/pixel.
    y0, y1, x0, x1 = 0.04 * height, 0.64 * height, 0.71 * width, 0.97 * width
    cy, cx, radius = (y0 + y1) / 2, (x0 + x1) / 2, min(y1 - y0, x1 - x0) / 2
    r2 = (yy - cy) ** 2 + (xx - cx) ** 2
    plate = 0.5 + 0.4 * np.cos(np.pi * 0.45 * r2 / radius)
    inside = r2 <= radius**2
    scene[inside] = plate[inside, None]

    # Grey ramp, black to white, left to right.
    band = (yy >= 0.68 * height) & (yy < 0.80 * height) & (xx >= 0.03 * width) & (xx < 0.97 * width)
    ramp = np.clip((xx - 0.03 * width) / (0.94 * width), 0.0, 1.0)
    scene[band] = ramp[band, None]

    # Fine stripes (periods in pixels): vertical 3 and 4, horizontal 3, diagonal 4, red/cyan 6.
    # Period 2 is left out: at Nyquist, luminance stripes and a flat colour give the same mosaic.
    band = (yy >= 0.84 * height) & (yy < 0.96 * height)
    section = np.clip((xx / width * 5).astype(int), 0, 4)
    xi, yi = xx.astype(int), yy.astype(int)
    patterns = [xi % 3 == 0, xi % 4 < 2, yi % 3 == 0, (xi + yi) % 4 < 2, xi % 6 < 3]
    for k, on in enumerate(patterns):
        where = band & (section == k)
        if k == 4:  # chroma stripes: alternating red and cyan
            scene[where & on] = (0.8, 0.15, 0.15)
            scene[where & ~on] = (0.15, 0.7, 0.7)
        else:
            scene[where] = np.where(on[where], 0.85, 0.1)[:, None]
    return scene


def sample_white_balance() -> np.ndarray:
    """(3,) AsShotNeutral of the sample: the camera's response to D65 white, G = 1."""
    neutral = SAMPLE_COLOR_MATRIX @ D65_WHITE_XYZ
    return neutral / neutral[1]


def write_sample_dng(path: str | os.PathLike) -> Path:
    """Write the demo scene as a 12-bit RGGB DNG (black 256, white 4095, 640 x 480).

    Deterministic: the same bytes every time (fixed noise seed).
    """
    scene = sample_scene_srgb(SAMPLE_HEIGHT, SAMPLE_WIDTH)
    neutral = sample_white_balance()
    srgb_to_cam = np.linalg.inv(camera_to_srgb_matrix(SAMPLE_COLOR_MATRIX).astype(np.float64))
    # White-balanced camera RGB, then undo the white balance: camera white is `neutral`.
    cam = (srgb_to_linear(scene).astype(np.float64) @ srgb_to_cam.T) * neutral
    cam = np.clip(cam, 0.0, 1.0)
    mosaic = np.empty(cam.shape[:2])
    for (dy, dx), channel in zip([(0, 0), (0, 1), (1, 0), (1, 1)], [0, 1, 1, 2]):  # RGGB
        mosaic[dy::2, dx::2] = cam[dy::2, dx::2, channel]
    signal = mosaic * (WHITE_LEVEL - BLACK_LEVEL)
    rng = np.random.default_rng(20240601)
    noisy = signal + rng.standard_normal(signal.shape) * np.sqrt(0.25 * signal + 2.0**2)  # shot + read, in DN
    values = np.clip(np.round(noisy + BLACK_LEVEL), 0, WHITE_LEVEL).astype(np.uint16)
    return write_dng(
        path,
        values,
        cfa_phase="RGGB",
        black_level=BLACK_LEVEL,
        white_level=WHITE_LEVEL,
        as_shot_neutral=neutral,
        color_matrix=SAMPLE_COLOR_MATRIX,
        make="hyperisp",
        model="synthetic sample",
        datetime="2024:06:01 12:00:00",
        exposure_time=1 / 125,
        f_number=5.6,
        iso=400,
    )
