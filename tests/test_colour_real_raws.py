"""Real raws from ../shared, developed with defaults: neutral things must come out neutral.

Skipped when ../shared is absent. How each headerless file is read (phase, levels) was
determined by looking at the data: see the comments.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

import hyperisp
from hyperisp.raw import srgb_to_linear, unpack_bayer
from hyperisp.raw.colour_difference import linear_srgb_to_lab_d50
from conftest import shared_path


def chroma(rgb: np.ndarray, y: int, x: int, half: int = 10) -> float:
    """C*ab (D50) of the mean of a (2 half)^2 box of an sRGB-encoded image."""
    mean = rgb[y - half : y + half, x - half : x + half].reshape(-1, 3).mean(axis=0)
    lab = linear_srgb_to_lab_d50(srgb_to_linear(mean))
    return float(np.hypot(lab[1], lab[2]))


def test_openisp_chart_grey_patches_are_neutral():
    # 1920x1080 little-endian uint16, 10-bit RGGB; black already subtracted (zeros, then values from 4),
    # the sensor clips at 1020. No metadata: auto white balance, identity colour matrix.
    path = shared_path("datasets", "val", "raw", "openisp_chart_rggb_10bit_1920x1080.raw")
    mosaic = np.fromfile(path, dtype="<u2").reshape(1080, 1920)
    rgb = hyperisp.develop(mosaic, cfa_phase="RGGB", black_level=0, white_level=1020, device="cpu")
    greys = [(740, 480), (620, 1240), (740, 1360), (860, 620), (860, 740), (860, 860), (120, 720)]
    values = [chroma(rgb, y, x) for y, x in greys]
    assert max(values) < 5.0 and np.mean(values) < 3.0, values


def test_halide_bayer_is_grbg_and_the_white_muzzle_is_neutral():
    # Greens sit on the diagonal ((0,0) and (1,1) have the same statistics); GRBG rather than GBRG
    # because then the tongue is pink, not cyan. Black 25, white 1023 (Halide's camera_pipe levels).
    path = shared_path("datasets", "val", "raw", "halide_bayer_small.png")
    mosaic = np.asarray(Image.open(path))
    assert abs(mosaic[0::2, 0::2].mean() / mosaic[1::2, 1::2].mean() - 1) < 0.01
    rgb = hyperisp.develop(mosaic, cfa_phase="GRBG", black_level=25, white_level=1023, device="cpu")
    assert chroma(rgb, 80, 162, half=8) < 5.0  # the white muzzle
    tongue = linear_srgb_to_lab_d50(srgb_to_linear(rgb[118:132, 150:172].reshape(-1, 3).mean(axis=0)))
    swapped = hyperisp.develop(mosaic, cfa_phase="GBRG", black_level=25, white_level=1023, device="cpu")
    tongue_swapped = linear_srgb_to_lab_d50(srgb_to_linear(swapped[118:132, 150:172].reshape(-1, 3).mean(axis=0)))
    assert tongue[1] > tongue_swapped[1]  # redder (a*) with GRBG


def test_phone_packed_raw_is_r_g_g_b_and_the_lantern_frame_is_red():
    # 512x512x4 uint16, 12-bit. Channels 1 and 2 are the greens (equal means, correlation 0.98);
    # (R, G, G, B) rather than (B, G, G, R) because then the carved frame is red and a face skin-toned.
    path = shared_path("datasets", "val", "raw", "aisp_packed_12bit_512x512x4.npy")
    packed = np.load(path).astype(np.float32)
    assert abs(packed[..., 1].mean() / packed[..., 2].mean() - 1) < 0.01
    assert np.corrcoef(packed[..., 1].ravel(), packed[..., 2].ravel())[0, 1] > 0.95
    mosaic = unpack_bayer(torch.from_numpy(packed).permute(2, 0, 1)[None])[0, 0].numpy()  # (R, Gr, Gb, B)

    def frame_lab(phase: str) -> np.ndarray:
        rgb = hyperisp.develop(mosaic, cfa_phase=phase, black_level=0, white_level=4095, device="cpu")
        return linear_srgb_to_lab_d50(srgb_to_linear(rgb[850:880, 560:620].reshape(-1, 3).mean(axis=0)))

    rggb, bggr = frame_lab("RGGB"), frame_lab("BGGR")
    assert rggb[1] > 5 and rggb[2] > 5  # red-orange wood
    assert bggr[2] < 0  # the swapped order makes it blue
