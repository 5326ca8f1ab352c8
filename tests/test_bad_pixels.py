"""DNG bad-pixel opcodes (FixBadPixelsConstant, FixBadPixelsList): parsing, the same-colour repair,
and their place in read_raw and develop."""
import numpy as np
import pytest
from typer.testing import CliRunner

import hyperisp
from hyperisp.cli import app
from hyperisp.raw.bad_pixels import (
    RGGB_COLOURS as RGGB,
    BadPixels,
    bad_pixel_mask,
    hot_pixel_mask,
    interpolate_bad_pixels,
    parse_bad_pixels_constant,
    parse_bad_pixels_list,
)
from hyperisp.raw.dng import write_dng
from hyperisp.pipeline import remove_hot_pixels
from hyperisp.raw.opcodes import OPCODE_LIST_TAGS, bad_pixels_opcode, dng_corrections, opcode_list_bytes
from hyperisp.raw.tiff_tags import read_file_tags


def _scene(shape=(32, 48)) -> np.ndarray:
    """A smooth RGGB mosaic in [0.2, 0.6]: each colour a different gentle ramp."""
    rows, cols = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    ramp = 0.2 + 0.2 * rows / shape[0] + 0.2 * cols / shape[1]
    level = np.ones(shape, np.float32)
    level[0::2, 0::2], level[1::2, 1::2] = 0.8, 0.6  # red, blue weaker than green
    return (ramp * level).astype(np.float32)


def test_list_opcode_round_trips_and_rejects_a_bad_length():
    bad = BadPixels(points=np.array([[3, 4], [10, 11]]), rects=np.array([[0, 5, 32, 6]]))
    opcode = bad_pixels_opcode(bad)
    parsed = parse_bad_pixels_list(opcode.params)
    np.testing.assert_array_equal(parsed.points, bad.points)
    np.testing.assert_array_equal(parsed.rects, bad.rects)
    with pytest.raises(ValueError, match="does not match"):
        parse_bad_pixels_list(opcode.params[:-4])
    assert parse_bad_pixels_constant(bad_pixels_opcode(BadPixels(constant=0)).params).constant == 0
    with pytest.raises(ValueError, match="bottom/right is before"):
        parse_bad_pixels_list(bad_pixels_opcode(BadPixels(rects=np.array([[5, 5, 4, 6]]))).params)


def test_a_bad_pixel_takes_the_mean_of_its_nearest_good_pixels_of_the_same_colour():
    mosaic = np.random.default_rng(0).uniform(0.1, 0.9, (12, 12)).astype(np.float32)
    mask = np.zeros(mosaic.shape, bool)
    mask[4, 4] = mask[5, 6] = mask[6, 5] = True  # red; green with a bad diagonal neighbour; green
    out = interpolate_bad_pixels(mosaic, mask, RGGB)
    # Red: two pixels away along the row and the column (the nearest red sites).
    assert out[4, 4] == pytest.approx(np.mean(mosaic[[2, 6, 4, 4], [4, 4, 2, 6]]))
    # Green: the diagonal neighbours, skipping the bad one (6, 5) at (5+1, 6-1).
    assert out[5, 6] == pytest.approx(np.mean(mosaic[[4, 4, 6], [5, 7, 7]]))
    assert out[6, 5] == pytest.approx(np.mean(mosaic[[5, 7, 7], [4, 4, 6]]))
    unchanged = ~mask
    np.testing.assert_array_equal(out[unchanged], mosaic[unchanged])


def test_a_bad_column_is_filled_from_the_columns_beside_it():
    scene = _scene()
    mask = np.zeros(scene.shape, bool)
    mask[:, 21] = True
    broken = np.where(mask, 1.0, scene).astype(np.float32)  # a stuck-bright column
    out = interpolate_bad_pixels(broken, mask, RGGB)
    np.testing.assert_allclose(out[1:-1], scene[1:-1], atol=1e-6)  # the ramp is linear: its neighbours' mean
    np.testing.assert_allclose(out[[0, -1]], scene[[0, -1]], atol=1e-2)  # one-sided at the edges


def test_mask_offsets_stored_coordinates_by_the_margins_and_compares_the_constant():
    stored = np.full((6, 8), 100, np.uint16)
    stored[2, 3] = 0
    linear = np.full((6, 8), 0.5, np.float32)
    fixes = [BadPixels(constant=0), BadPixels(points=np.array([[3, 3], [0, 0]]), rects=np.array([[1, 9, 3, 11]]))]
    mask = bad_pixel_mask(stored, linear, fixes, margins=(1, 2))
    expected = np.zeros((6, 8), bool)
    expected[2, 3] = True  # the constant
    expected[2, 1] = True  # point (3, 3) less the margins; (0, 0) lies in the masked border
    expected[0:2, 7:8] = True  # rect rows 1..2, columns 9..10 -> rows 0..1, columns 7..8 (clipped at 8)
    np.testing.assert_array_equal(mask, expected)
    linear_fix = BadPixels(points=np.array([[3, 3]]), stored=False)  # OpcodeList2: no margins
    assert bad_pixel_mask(stored, linear, [linear_fix], margins=(1, 2))[3, 3]


def _dng_with_dead_pixels(tmp_path, opcodes: bytes | None):
    scene = _scene()
    data = np.round(64 + scene * (4095 - 64)).astype(np.uint16)
    data[7, 9] = 0  # dead
    data[20, 30] = 4095  # stuck at white
    return write_dng(tmp_path / f"dead_{opcodes is not None}.dng", data, black_level=64, white_level=4095,
                     opcode_list_1=opcodes), scene


def test_read_raw_repairs_the_pixels_the_dng_marks_bad(tmp_path):
    opcodes = opcode_list_bytes([bad_pixels_opcode(BadPixels(constant=0)),
                                 bad_pixels_opcode(BadPixels(points=np.array([[20, 30]])))])
    path, scene = _dng_with_dead_pixels(tmp_path, opcodes)
    assert len(dng_corrections(read_file_tags(path, raw_codes=OPCODE_LIST_TAGS).raw_ifd).bad_pixels) == 2
    raw = hyperisp.read_raw(path)
    np.testing.assert_allclose(raw.mosaic, scene, atol=3e-3)  # both repaired, to the 12-bit rounding
    assert raw.metadata["bad_pixels"] == 2
    unmarked = hyperisp.read_raw(_dng_with_dead_pixels(tmp_path, None)[0])
    assert unmarked.mosaic[7, 9] == 0.0 and unmarked.mosaic[20, 30] == 1.0
    assert "bad_pixels" not in unmarked.metadata
    result = CliRunner().invoke(app, ["develop", str(path), "-o", str(tmp_path / "out.png"), "-v"])
    assert result.exit_code == 0 and "2 bad pixels repaired" in result.output


def test_a_damaged_bad_pixel_list_is_ignored_and_reported(tmp_path):
    opcodes = opcode_list_bytes([bad_pixels_opcode(BadPixels(points=np.array([[20, 30]])))])[:-4]
    path, _ = _dng_with_dead_pixels(tmp_path, opcodes)
    raw = hyperisp.read_raw(path)
    assert raw.mosaic[20, 30] == 1.0
    assert "bad_pixels" not in raw.metadata
    assert raw.metadata["lens_corrections"].startswith("opcodes ignored (opcode 5 needs")


def test_hot_pixels_are_single_bright_sites_not_small_bright_details():
    mosaic = np.random.default_rng(1).uniform(0.01, 0.03, (40, 40)).astype(np.float32)  # a dark sky
    mosaic[10, 11] = 0.6  # a warm pixel, one site
    mosaic[25:28, 25:28] = 0.5  # a star: it lights every colour's sites around it
    mosaic[33, 3] = 0.04  # brighter than its neighbours but under the threshold
    for i in range(6):
        mosaic[2 + i, 30 + i] = 0.7  # a thin diagonal line (a wire against the sky)
    mask = hot_pixel_mask(mosaic)
    assert list(zip(*np.nonzero(mask))) == [(10, 11)]
    mosaic[12, 11] = 0.5  # a second hot site next to it: three darker neighbours each
    assert not hot_pixel_mask(mosaic)[10, 11] and hot_pixel_mask(mosaic, min_neighbours=3)[10, 11]


def test_develop_hot_pixels_replaces_them_and_says_how_many(tmp_path):
    scene = _scene()
    data = np.round(64 + scene * 0.1 * (4095 - 64)).astype(np.uint16)  # a dim frame
    data[9, 14] = 4000
    path = write_dng(tmp_path / "warm.dng", data, black_level=64, white_level=4095)
    raw = hyperisp.read_raw(path)
    fixed = remove_hot_pixels(raw)
    assert fixed.metadata["hot_pixels"] == 1 and "hot_pixels" not in raw.metadata
    np.testing.assert_allclose(fixed.mosaic, scene * 0.1, atol=1e-3)
    result = CliRunner().invoke(app, ["develop", str(path), "-o", str(tmp_path / "out.png"), "-v", "--hot-pixels"])
    assert result.exit_code == 0 and "1 hot pixels replaced" in result.output
