"""read_raw on good and bad files, raw_from_array, and a real camera raw."""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from conftest import shared_path
from hyperisp.errors import HyperispError
from hyperisp.io.tiff import write_tiff
from hyperisp.raw import raw_from_array, read_raw, write_dng
from hyperisp.raw.dng import PHOTOMETRIC_CFA, PHOTOMETRIC_LINEAR_RAW


def dng_tags(cfa_dim=(2, 2), cfa_pattern=(0, 1, 1, 2), plane_colours=(0, 1, 2)) -> list:
    """Enough DNG tags for LibRaw to open a hand-made file (used for sensors we refuse)."""
    tags = [(254, "LONG", 0), (271, "ASCII", "test"), (272, "ASCII", "odd sensor"), (50706, "BYTE", [1, 4, 0, 0]),
            (50708, "ASCII", "test odd sensor"), (50717, "LONG", 4095)]
    if cfa_pattern is not None:
        tags += [(33421, "SHORT", list(cfa_dim)), (33422, "BYTE", list(cfa_pattern)),
                 (50710, "BYTE", list(plane_colours)), (50711, "SHORT", 1)]
    return tags


def write_bytes(path, data: bytes):
    path.write_bytes(data)
    return path


def write_odd_dng(path, image, tags, photometric):
    with open(path, "wb") as file:
        write_tiff(file, image, tags, photometric=photometric)
    return path


@pytest.fixture
def valid_dng(tmp_path):
    mosaic = np.random.default_rng(0).integers(200, 4000, (128, 160), dtype=np.uint16)
    return write_dng(tmp_path / "good.dng", mosaic, black_level=128, white_level=4095, as_shot_neutral=[0.5, 1, 0.7])


def assert_one_line_error(path, *reason_words):
    with pytest.raises(HyperispError) as info:
        read_raw(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and "Traceback" not in message
    for word in reason_words:
        assert word in message.lower(), message
    return message


MOSAIC = np.random.default_rng(1).integers(200, 4000, (48, 64), dtype=np.uint16)
XTRANS = ["GGRGGB", "GGBGGR", "BRGRBG", "GGBGGR", "GGRGGB", "RBGBRG"]

BAD_FILES = {
    "missing": (lambda d: d / "nope.dng", ["not found"]),
    "empty": (lambda d: write_bytes(d / "empty.dng", b""), ["empty file"]),
    "text": (lambda d: write_bytes(d / "notes.dng", b"not a raw file at all\n" * 20), ["not a raw file"]),
    "directory": (lambda d: d, ["directory"]),
    "cmyg": (lambda d: write_odd_dng(d / "cmyg.dng", MOSAIC, dng_tags((2, 2), (3, 4, 5, 1), (3, 4, 5, 1)),
                                     PHOTOMETRIC_CFA), ["cmyg"]),
    "x-trans": (lambda d: write_odd_dng(d / "xt.dng", np.tile(MOSAIC, (2, 1))[:96, :48],
                                        dng_tags((6, 6), ["RGB".index(c) for row in XTRANS for c in row]),
                                        PHOTOMETRIC_CFA), ["x-trans"]),
    "linear": (lambda d: write_odd_dng(d / "linear.dng", np.stack([MOSAIC] * 3, -1), dng_tags(cfa_pattern=None),
                                       PHOTOMETRIC_LINEAR_RAW), ["linear", "not a bayer"]),
    "monochrome": (lambda d: write_odd_dng(d / "mono.dng", MOSAIC, dng_tags(cfa_pattern=None),
                                           PHOTOMETRIC_LINEAR_RAW), ["monochrome"]),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_bad_files_raise_one_line_errors(tmp_path, kind):
    make, words = BAD_FILES[kind]
    assert_one_line_error(make(tmp_path), *words)


@pytest.mark.parametrize("keep", [0.5, 0.05, 0.999])
def test_truncated_dng(tmp_path, valid_dng, keep, capfd):
    data = valid_dng.read_bytes()
    cut = tmp_path / "cut.dng"
    cut.write_bytes(data[: int(len(data) * keep)])
    assert_one_line_error(cut, "truncated or corrupt")
    assert capfd.readouterr().err == ""  # LibRaw's own complaint to stderr is silenced


def test_read_raw_of_a_good_dng(valid_dng):
    raw = read_raw(valid_dng)
    assert raw.path == str(valid_dng) and raw.phase == "RGGB" and raw.flip == 0
    assert raw.mosaic.shape == (128, 160) and raw.mosaic.dtype == np.float32
    assert raw.mosaic.flags["C_CONTIGUOUS"] and 0 <= raw.mosaic.min() and raw.mosaic.max() <= 1
    np.testing.assert_allclose(raw.as_shot_wb, [2.0, 1.0, 1 / 0.7], rtol=1e-5)
    assert raw.daylight_wb is None  # no colour matrix, so LibRaw knows no daylight balance
    np.testing.assert_array_equal(raw.cam_to_srgb, np.eye(3))
    assert raw.metadata == {"make": "hyperisp", "model": "synthetic"}


def test_dng_without_white_balance_has_none(tmp_path):
    path = write_dng(tmp_path / "nowb.dng", MOSAIC, white_level=4095)
    assert read_raw(path).as_shot_wb is None


def test_implausible_white_balance_is_dropped(tmp_path):
    path = write_dng(tmp_path / "odd.dng", MOSAIC, white_level=4095, as_shot_neutral=[0.05, 1, 1])
    assert read_raw(path).as_shot_wb is None  # a gain of 20 is not a white balance


def test_raw_from_array_scales_and_canonicalises():
    values = np.full((6, 9), 600, dtype=np.uint16)
    values[0::2, 0::2] = values[1::2, 1::2] = 1100  # the G positions of a GRBG mosaic saturate
    raw = raw_from_array(values, cfa_phase="GRBG", black_level=100, white_level=1100, wb=[4, 2, 3])
    assert raw.path is None and raw.phase == "GRBG" and raw.flip == 0 and raw.metadata == {}
    assert raw.mosaic.shape == (6, 8)
    # Canonical RGGB: the saturated greens now sit at (0, 1) and (1, 0); R and B hold 0.5.
    np.testing.assert_allclose(raw.mosaic[0::2, 1::2], 1.0)
    np.testing.assert_allclose(raw.mosaic[1::2, 0::2], 1.0)
    np.testing.assert_allclose(raw.mosaic[0::2, 0::2], 0.5)
    np.testing.assert_allclose(raw.mosaic[1::2, 1::2], 0.5)
    np.testing.assert_allclose(raw.as_shot_wb, [2.0, 1.0, 1.5])
    np.testing.assert_array_equal(raw.cam_to_srgb, np.eye(3))
    assert (raw.frame.height, raw.frame.width, raw.frame.flip_cols, raw.frame.flip_rows) == (6, 9, True, False)


def test_raw_from_array_default_white_levels_and_checks():
    assert raw_from_array(np.full((4, 4), 255, np.uint8)).mosaic.min() == 1.0
    assert raw_from_array(np.full((4, 4), 0.25, np.float32)).mosaic.max() == pytest.approx(0.25)
    per_position = raw_from_array(np.array([[10, 20], [30, 40]] * 2, np.uint16).reshape(4, 2),
                                  black_level=[10, 20, 30, 40], white_level=50)
    np.testing.assert_array_equal(per_position.mosaic, 0)
    with pytest.raises(ValueError, match="white_level"):
        raw_from_array(np.full((4, 4), 3.0))
    with pytest.raises(ValueError, match="Bayer mosaic"):
        raw_from_array(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="CFA phase"):
        raw_from_array(np.zeros((4, 4), np.uint16), cfa_phase="RGBG")
    with pytest.raises(ValueError, match="wb"):
        raw_from_array(np.zeros((4, 4), np.uint16), wb=[1, 0, 1])


def test_kodak_dc50_smoke():
    path = shared_path("datasets", "val", "raw", "kodak_dc50.kdc")
    raw = read_raw(path)
    assert raw.phase == "GRBG" and raw.mosaic.shape == (512, 768) and raw.flip == 0
    assert raw.as_shot_wb is None  # the file stores (1, 1, 1, 1): not a real white balance
    assert raw.metadata["iso"] == 84 and raw.metadata["make"] == "Eastman Kodak Company"
    assert raw.metadata["datetime"] == datetime(1997, 4, 23, 8, 0, 47)
    assert raw.metadata["exposure_time"] == pytest.approx(0.00435) and raw.metadata["focal_length"] == 37
    assert 0.0 <= raw.mosaic.min() and raw.mosaic.max() <= 1.0 and raw.mosaic.mean() > 0.05
