"""TIFF/DNG writing, CFA phases and orientation, checked against LibRaw (rawpy) and Pillow."""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import rawpy
import torch
from PIL import Image
from typer.testing import CliRunner

import hyperisp
from hyperisp.cli import app
from hyperisp.io.images import read_image
from hyperisp.io.tiff import write_tiff
from hyperisp.raw import (
    BAYER_PHASES,
    apply_orientation,
    camera_to_srgb_matrix,
    demosaic_bilinear,
    finish,
    from_canonical,
    linear_to_srgb,
    pack_bayer,
    read_raw,
    to_canonical,
    write_dng,
)
from hyperisp.raw.colour import SRGB_TO_XYZ

# XYZ -> camera matrix that makes camera RGB = linear sRGB, so cam_to_srgb is the identity.
SRGB_CAMERA = np.linalg.inv(SRGB_TO_XYZ)
# A real one (Canon EOS 5D Mark II, D65) for checking LibRaw's colour matrix.
CANON_MATRIX = np.array([[0.4716, 0.0603, -0.0830], [-0.7798, 1.5474, 0.2480], [-0.1496, 0.1937, 0.6651]])
LIBRAW_FLIP = {o: int("50132467"[o & 7]) for o in range(1, 9)}  # TIFF orientation -> LibRaw flip
UPRIGHT = {1: lambda a: a, 3: lambda a: np.rot90(a, 2), 6: lambda a: np.rot90(a, -1), 8: lambda a: np.rot90(a, 1)}


def mosaic_for_phase(rgb: np.ndarray, phase: str) -> np.ndarray:
    """(H, W, 3) -> (H, W) sampled through a CFA whose top-left tile is `phase` (independent of phase.py)."""
    out = np.empty(rgb.shape[:2], dtype=rgb.dtype)
    for k, colour in enumerate(phase):
        dy, dx = divmod(k, 2)
        out[dy::2, dx::2] = rgb[dy::2, dx::2, "RGB".index(colour)]
    return out


def pattern_scene(height: int, width: int) -> np.ndarray:
    """Linear RGB: left half red, right half blue, a green band over the top quarter."""
    scene = np.zeros((height, width, 3), dtype=np.float64)
    scene[:, : width // 2] = (0.6, 0.05, 0.05)
    scene[:, width // 2 :] = (0.05, 0.05, 0.6)
    scene[: height // 4] = (0.05, 0.6, 0.05)
    return scene


def uniform_interior(scene: np.ndarray, margin: int = 2) -> np.ndarray:
    """True where the scene is constant within `margin` pixels (demosaicking is exact there)."""
    h, w = scene.shape[:2]
    keep = np.ones((h, w), dtype=bool)
    padded = np.pad(scene, ((margin, margin), (margin, margin), (0, 0)), mode="edge")
    for dy in range(2 * margin + 1):
        for dx in range(2 * margin + 1):
            keep &= np.all(padded[dy : dy + h, dx : dx + w] == scene, axis=2)
    return keep


def develop_bilinear(raw) -> np.ndarray:
    """Reference development: bilinear demosaic, then the analytic finish, upright."""
    packed = pack_bayer(torch.from_numpy(raw.mosaic)[None, None])
    cam = demosaic_bilinear(packed)[0].permute(1, 2, 0).numpy()
    rgb = finish(from_canonical(cam, raw.frame), raw.as_shot_wb, raw.cam_to_srgb, tone=False)
    return apply_orientation(rgb, raw.flip)


def write_pattern_dng(path, phase: str, orientation: int, height: int = 33, width: int = 47):
    neutral = np.array([0.5, 1.0, 0.8])  # camera records white as (0.5, 1, 0.8): gains (2, 1, 1.25)
    scene = pattern_scene(height, width)
    black, white = 64, 4095
    values = black + mosaic_for_phase(scene * neutral, phase) * (white - black)
    write_dng(path, np.round(values).astype(np.uint16), cfa_phase=phase, black_level=black, white_level=white,
              as_shot_neutral=neutral, color_matrix=SRGB_CAMERA, orientation=orientation)
    return scene


# --------------------------------------------------------------------------- TIFF writer

def test_tiff_8bit_rgb_round_trips_through_pillow_with_tags_and_exif():
    image = np.random.default_rng(0).integers(0, 256, (37, 51, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    write_tiff(buffer, image, tags=[(305, "ASCII", "hyperisp"), (282, "RATIONAL", 300.0), (283, "RATIONAL", 72),
                                    (296, "SHORT", 2), (34675, "UNDEFINED", b"fake icc profile")],
               exif_tags=[(33434, "RATIONAL", 1 / 250), (33437, "RATIONAL", 2.8), (34855, "SHORT", 400),
                          (36867, "ASCII", "2024:01:02 03:04:05")])
    buffer.seek(0)
    with Image.open(buffer) as im:
        assert im.mode == "RGB" and im.size == (51, 37)
        np.testing.assert_array_equal(np.asarray(im), image)
        assert im.tag_v2[305] == "hyperisp"
        assert float(im.tag_v2[282]) == 300.0 and float(im.tag_v2[283]) == 72.0
        assert im.info["icc_profile"] == b"fake icc profile"
        exif = im.getexif().get_ifd(0x8769)
    assert float(exif[33434]) == pytest.approx(1 / 250) and float(exif[33437]) == pytest.approx(2.8)
    assert exif[34855] == 400 and exif[36867] == "2024:01:02 03:04:05"


def test_tiff_16bit_grey_reads_back_in_pillow():
    image = np.random.default_rng(1).integers(0, 65536, (300, 700), dtype=np.uint16)  # several strips
    buffer = io.BytesIO()
    write_tiff(buffer, image)
    buffer.seek(0)
    with Image.open(buffer) as im:
        assert im.mode == "I;16"
        np.testing.assert_array_equal(np.asarray(im), image)


def test_tiff_16bit_rgb_strips_hold_the_exact_pixels():
    image = np.random.default_rng(2).integers(0, 65536, (200, 333, 3), dtype=np.uint16)
    buffer = io.BytesIO()
    write_tiff(buffer, image)
    data = buffer.getvalue()
    assert data[:4] == b"II*\0"
    with Image.open(io.BytesIO(data)) as im:  # Pillow parses the IFD; we read the strips ourselves
        tags = im.tag_v2
        assert tags[258] == (16, 16, 16) and tags[262] == 2 and tags[277] == 3 and tags[259] == 1
        offsets, counts = tags[273], tags[279]
        codes = list(im.tag_v2.keys())
    assert len(offsets) > 1 and all(o % 2 == 0 for o in offsets)
    pixels = b"".join(data[o : o + n] for o, n in zip(offsets, counts))
    np.testing.assert_array_equal(np.frombuffer(pixels, "<u2").reshape(image.shape), image)
    # IFD entries must be sorted by tag code: read them in file order.
    (ifd,) = struct.unpack("<I", data[4:8])
    (n,) = struct.unpack("<H", data[ifd : ifd + 2])
    in_file = [struct.unpack("<H", data[ifd + 2 + 12 * i : ifd + 4 + 12 * i])[0] for i in range(n)]
    assert in_file == sorted(in_file) == sorted(codes)


def test_tiff_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8 or uint16"):
        write_tiff(io.BytesIO(), np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="written by write_tiff"):
        write_tiff(io.BytesIO(), np.zeros((4, 4), np.uint8), tags=[(256, "LONG", 4)])
    with pytest.raises(ValueError, match="SHORT"):
        write_tiff(io.BytesIO(), np.zeros((4, 4), np.uint8), tags=[(274, "SHORT", 70000)])


# --------------------------------------------------------------------------- DNG writer vs LibRaw

@pytest.mark.parametrize("phase", BAYER_PHASES)
def test_dng_fields_come_back_from_libraw(tmp_path, phase):
    rng = np.random.default_rng(3)
    mosaic = rng.integers(300, 4000, (40, 62), dtype=np.uint16)
    blacks = [100, 200, 300, 400]  # per CFA position (0,0), (0,1), (1,0), (1,1)
    path = write_dng(tmp_path / "x.dng", mosaic, cfa_phase=phase, black_level=blacks, white_level=4095,
                     as_shot_neutral=[0.5, 1.0, 0.7], color_matrix=CANON_MATRIX, orientation=6,
                     datetime="2024:05:06 07:08:09", exposure_time=1 / 250, f_number=2.8, iso=400)
    with rawpy.imread(str(path)) as raw:
        np.testing.assert_array_equal(raw.raw_image_visible, mosaic)
        colours = raw.raw_colors_visible[:2, :2].ravel()
        assert "".join(raw.color_desc.decode()[c] for c in colours) == phase
        per_channel = np.asarray(raw.black_level_per_channel)
        assert per_channel[colours].tolist() == blacks
        assert raw.white_level == 4095
        np.testing.assert_allclose(raw.camera_whitebalance[:3], [2.0, 1.0, 1 / 0.7], rtol=1e-6)
        assert raw.sizes.flip == LIBRAW_FLIP[6]
        # LibRaw keeps its own cam_xyz empty for DNGs; it builds rgb_cam from ColorMatrix1.
        np.testing.assert_allclose(raw.color_matrix[:, :3], camera_to_srgb_matrix(CANON_MATRIX), atol=1e-4)
        assert raw.other.iso_speed == 400 and raw.other.aperture == pytest.approx(2.8)
        assert raw.other.shutter_speed == pytest.approx(1 / 250)


@pytest.mark.parametrize("orientation", [1, 6])
def test_the_default_crop_is_applied_in_sensor_coordinates(tmp_path, orientation):
    mosaic = np.full((64, 96), 1200, dtype=np.uint16)
    mosaic[:, :6] = 3900  # left of the crop: near white, so a misplaced crop shows
    path = write_dng(tmp_path / "c.dng", mosaic, white_level=4095, as_shot_neutral=[1.0, 1.0, 1.0],
                     color_matrix=SRGB_CAMERA, orientation=orientation, default_crop=(6, 4, 80, 50))
    raw = read_raw(path)
    assert raw.default_crop == (4, 6, 50, 80)  # (top, left, height, width)
    cropped = hyperisp.develop_raw(raw, device="cpu").rgb
    whole = hyperisp.develop_raw(raw, device="cpu", crop=False).rgb
    assert cropped.shape[:2] == ((50, 80) if orientation == 1 else (80, 50))
    assert whole.shape[:2] == ((64, 96) if orientation == 1 else (96, 64))
    assert cropped.max() < whole.max() - 0.2  # the bright strip is outside the crop
    with pytest.raises(ValueError, match="does not fit"):
        write_dng(tmp_path / "bad.dng", mosaic, default_crop=(50, 0, 80, 64))


def test_lens_artist_copyright_and_place_go_from_the_raw_to_the_developed_file(tmp_path):
    fields = {"lens_make": "Sigma", "lens_model": "35mm F1.4 DG HSM | Art", "artist": "Ana Example",
              "copyright": "(c) 2024 Ana Example"}
    place = {"gps_latitude": 64.147209, "gps_longitude": -21.9424, "gps_altitude": 43.0}
    mosaic = np.random.default_rng(4).integers(300, 4000, (40, 62), dtype=np.uint16)
    path = write_dng(tmp_path / "x.dng", mosaic, white_level=4095, as_shot_neutral=[0.5, 1.0, 0.7],
                     color_matrix=CANON_MATRIX, gps=tuple(place.values()), **fields)
    raw = read_raw(path)
    assert {key: raw.metadata.get(key) for key in fields} == fields
    assert {key: raw.metadata.get(key) for key in place} == pytest.approx(place, abs=1e-6)
    for ext in ("jpg", "png", "tif"):
        hyperisp.develop_file(path, tmp_path / f"x.{ext}", device="cpu")
        metadata = read_image(tmp_path / f"x.{ext}").metadata
        assert {key: metadata.get(key) for key in fields} == fields, ext
        assert {key: metadata.get(key) for key in place} == pytest.approx(place, abs=1e-6), ext
    with pytest.raises(ValueError, match="gps must be"):
        write_dng(tmp_path / "bad.dng", mosaic, gps=(95.0, 0.0))
    shared = tmp_path / "shared"
    result = CliRunner().invoke(app, ["develop", str(path), "-o", str(shared), "--strip-location"])
    assert result.exit_code == 0, result.output
    metadata = read_image(shared / "x.jpg").metadata
    assert not any(key in metadata for key in place) and metadata["artist"] == "Ana Example"


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
@pytest.mark.parametrize("phase", BAYER_PHASES)
def test_colours_land_upright_for_every_phase_and_orientation(tmp_path, phase, orientation):
    scene = write_pattern_dng(tmp_path / "p.dng", phase, orientation)
    raw = read_raw(tmp_path / "p.dng")
    assert raw.phase == phase and raw.flip == LIBRAW_FLIP[orientation]
    np.testing.assert_allclose(raw.as_shot_wb, [2.0, 1.0, 1.25], rtol=1e-5)
    np.testing.assert_allclose(raw.cam_to_srgb, np.eye(3), atol=1e-3)
    out = develop_bilinear(raw)
    expected = UPRIGHT[orientation](linear_to_srgb(scene.astype(np.float32)))
    assert out.shape == expected.shape  # transposed for 6 and 8
    mask = UPRIGHT[orientation](uniform_interior(scene))
    np.testing.assert_allclose(out[mask], expected[mask], atol=2e-3)
    # And, in words: after turning upright, where is the green band and the red half?
    red = UPRIGHT[orientation](np.argmax(scene, axis=2) == 0)
    assert np.all(np.argmax(out[mask & red], axis=1) == 0)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_orientation_matches_libraw_postprocess(tmp_path, orientation):
    scene = write_pattern_dng(tmp_path / "p.dng", "GBRG", orientation, height=40, width=58)
    ours = develop_bilinear(read_raw(tmp_path / "p.dng"))
    with rawpy.imread(str(tmp_path / "p.dng")) as raw:
        theirs = raw.postprocess(use_camera_wb=True, no_auto_bright=True, output_bps=8,
                                 gamma=(2.4, 12.92)).astype(np.float32) / 255
    assert ours.shape == theirs.shape
    mask = UPRIGHT[orientation](uniform_interior(scene, margin=3))
    np.testing.assert_allclose(ours[mask], theirs[mask], atol=0.03)


@pytest.mark.parametrize("phase", BAYER_PHASES)
def test_per_position_black_levels_and_white_level(tmp_path, phase):
    blacks = np.array([60, 70, 80, 90])
    white = 1023  # 10-bit
    values = np.empty((24, 30))
    for k in range(4):  # the same 25 % grey everywhere, stored over a different black per position
        dy, dx = divmod(k, 2)
        values[dy::2, dx::2] = blacks[k] + 0.25 * (white - blacks[k])
    values[0, 0], values[1, 1] = white, 0  # one saturated pixel, one below black
    write_dng(tmp_path / "b.dng", np.round(values).astype(np.uint16), cfa_phase=phase, black_level=blacks,
              white_level=white)
    raw = read_raw(tmp_path / "b.dng")
    sensor = from_canonical(raw.mosaic[..., None], raw.frame)[..., 0]  # back to the file's own layout
    assert sensor[0, 0] == 1.0 and sensor[1, 1] == 0.0
    rest = np.ones_like(sensor, dtype=bool)
    rest[0, 0] = rest[1, 1] = False
    np.testing.assert_allclose(sensor[rest], 0.25, atol=0.6 / (white - blacks.max()))


# --------------------------------------------------------------------------- phase geometry

@pytest.mark.parametrize("shape", [(6, 8), (7, 9), (7, 8), (6, 9)])
@pytest.mark.parametrize("phase", BAYER_PHASES)
def test_to_canonical_gives_rggb_and_from_canonical_restores_the_sensor(phase, shape):
    scene = np.random.default_rng(4).random((*shape, 3)).astype(np.float32)
    canonical, frame = to_canonical(mosaic_for_phase(scene, phase), phase)
    assert canonical.shape == (shape[0] // 2 * 2, shape[1] // 2 * 2)
    # Canonical RGGB: the colours at the 2x2 positions come from the flipped scene's R, G, G, B.
    flipped = scene[: canonical.shape[0], : canonical.shape[1]][:: -1 if frame.flip_rows else 1,
                                                               :: -1 if frame.flip_cols else 1]
    np.testing.assert_array_equal(canonical, mosaic_for_phase(flipped, "RGGB"))
    restored = from_canonical(flipped, frame)
    assert restored.shape == scene.shape
    np.testing.assert_array_equal(restored[: canonical.shape[0], : canonical.shape[1]],
                                  scene[: canonical.shape[0], : canonical.shape[1]])
    if shape[0] % 2:  # the cropped last row comes back as a copy of its neighbour
        np.testing.assert_array_equal(restored[-1, : canonical.shape[1]], scene[-2, : canonical.shape[1]])


def test_apply_orientation_follows_dcraw_flip_bits():
    image = np.arange(6).reshape(2, 3)
    assert np.array_equal(apply_orientation(image, 0), image)
    assert np.array_equal(apply_orientation(image, 3), np.rot90(image, 2))
    assert np.array_equal(apply_orientation(image, 6), np.rot90(image, -1))  # 90 deg clockwise
    assert np.array_equal(apply_orientation(image, 5), np.rot90(image, 1))  # 90 deg counter-clockwise
    assert np.array_equal(apply_orientation(image, 1), image[:, ::-1])
    assert np.array_equal(apply_orientation(image, 2), image[::-1])
    with pytest.raises(ValueError):
        apply_orientation(image, 9)
