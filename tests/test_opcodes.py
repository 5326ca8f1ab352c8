"""DNG lens-correction opcodes (gain maps, radial vignetting, distortion): parsing, evaluation as
Adobe's SDK does, and their place in read_raw and develop."""
import struct

import numpy as np
import pytest
from typer.testing import CliRunner

import hyperisp
from hyperisp.cli import app
from hyperisp.raw.dng import write_dng
from hyperisp.raw.opcodes import (
    TAG_OPCODE_LIST_2,
    GainMap,
    Opcode,
    RadialVignette,
    apply_lens_corrections,
    apply_rgb_corrections,
    gain_map_gains,
    gain_map_opcode,
    corrections_from_opcodes,
    opcode_list_bytes,
    parse_gain_map,
    parse_opcode_list,
    radial_vignette_gains,
    radial_vignette_opcode,
)
from hyperisp.raw.tiff_tags import FileTags, read_file_tags


def _site_map(site: tuple[int, int], grid: np.ndarray, shape: tuple[int, int]) -> GainMap:
    """A GainMap for one CFA site, its points spread from the first to the last pixel centre, as
    Android's DngCreator writes the lens-shading map."""
    height, width = shape
    points_v, points_h = grid.shape
    origin = (0.5 / height, 0.5 / width)
    spacing = ((1 - 1 / height) / (points_v - 1), (1 - 1 / width) / (points_h - 1))
    return GainMap((site[0], site[1], height, width), 0, 1, (2, 2), spacing, origin,
                   grid.astype(np.float32)[..., None])


def _vignette(shape: tuple[int, int], points: tuple[int, int] = (5, 7)) -> np.ndarray:
    """(points V, points H) gains, 1 at the centre and up to ~2.2 in the corners."""
    v, h = np.meshgrid(np.linspace(-1, 1, points[0]), np.linspace(-1, 1, points[1]), indexing="ij")
    return 1 + 0.6 * (v**2 + h**2)


def test_gains_interpolate_bilinearly_between_pixel_centres():
    grid = np.array([[1.0, 2.0], [3.0, 5.0]])
    gain_map = _site_map((0, 0), grid, (5, 5))
    gain_map = GainMap((0, 0, 5, 5), 0, 1, (1, 1), gain_map.spacing, gain_map.origin, gain_map.gains)
    rows, cols, gains = gain_map_gains(gain_map, (5, 5))
    assert list(rows) == list(cols) == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(gains[[0, 0, 4, 4], [0, 4, 0, 4]], [1, 2, 3, 5], rtol=1e-6)  # corners = map points
    np.testing.assert_allclose(gains[2, 2], (1 + 2 + 3 + 5) / 4, rtol=1e-6)  # the centre: their mean
    np.testing.assert_allclose(gains[0, 1], 1.25, rtol=1e-6)  # a quarter of the way along the top row
    # Positions before the first point or after the last take the edge value (the SDK clamps).
    wide = GainMap((0, 0, 5, 5), 0, 1, (1, 1), (0.5, 0.5), (0.3, 0.3), gain_map.gains)
    assert gain_map_gains(wide, (5, 5))[2][0, 0] == pytest.approx(1.0)


def test_a_gain_map_corrects_its_cfa_site_only_and_clips_at_white():
    shape = (12, 16)
    flat = np.full(shape, 0.25, np.float32)
    grid = _vignette(shape)
    out = apply_lens_corrections(flat, [_site_map((0, 1), grid, shape)])  # the Gr site of an RGGB mosaic
    np.testing.assert_array_equal(out[0::2, 0::2], flat[0::2, 0::2])
    np.testing.assert_array_equal(out[1::2], flat[1::2])
    # Pixel (0, 1): its row centre is the first map row; its column centre lies 0.4 of the way
    # from the first map column to the second ((1.5 - 0.5) / 16 over a spacing of (15 / 16) / 6).
    expected = 0.25 * (0.6 * grid[0, 0] + 0.4 * grid[0, 1])
    assert out[0, 1] == pytest.approx(expected, rel=1e-5) and out[0, 1] > out[6, 7]
    bright = apply_lens_corrections(np.full(shape, 0.9, np.float32), [_site_map((0, 1), grid, shape)])
    assert bright.max() == 1.0


def test_opcode_lists_round_trip_and_damage_is_reported():
    gain_map = _site_map((1, 0), _vignette((8, 8)), (8, 8))
    other = Opcode(4, 1, b"\0" * 8)  # FixBadPixelsConstant, not applied: skipped
    data = opcode_list_bytes([other, gain_map_opcode(gain_map)])
    (parsed,) = corrections_from_opcodes(parse_opcode_list(data))
    np.testing.assert_array_equal(parsed.gains, gain_map.gains)
    assert parsed.area == gain_map.area and parsed.pitch == (2, 2) and parsed.origin == gain_map.origin
    with pytest.raises(ValueError, match="parameter bytes"):
        corrections_from_opcodes(parse_opcode_list(data[:-3]))
    with pytest.raises(ValueError, match="does not match"):
        parse_gain_map(gain_map_opcode(gain_map).params[:-4])
    with pytest.raises(ValueError, match="head"):
        parse_gain_map(b"\0" * 10)


def _shaded_dng(tmp_path, with_map: bool):
    """A flat grey field (R 0.30, G 0.45, B 0.35 of white) seen through a lens that darkens each CFA
    site by its own vignette, as a phone raw with its four gain maps in OpcodeList2."""
    shape = (48, 64)
    level = np.zeros(shape)
    level[0::2, 0::2], level[0::2, 1::2], level[1::2, 0::2], level[1::2, 1::2] = 0.30, 0.45, 0.45, 0.35
    maps = [_site_map(site, _vignette(shape) * (1 + 0.1 * i), shape) for i, site in enumerate([(0, 0), (0, 1),
                                                                                               (1, 0), (1, 1)])]
    shading = np.ones(shape, np.float32)
    for gain_map in maps:
        rows, cols, gains = gain_map_gains(gain_map, shape)
        shading[np.ix_(rows, cols)] = 1 / gains
    data = np.round(64 + level * shading * (4095 - 64)).astype(np.uint16)
    opcodes = opcode_list_bytes([gain_map_opcode(m) for m in maps]) if with_map else None
    return write_dng(tmp_path / f"shaded_{with_map}.dng", data, black_level=64, white_level=4095,
                     opcode_list_2=opcodes), level


def test_read_raw_applies_the_files_lens_shading_map(tmp_path):
    path, level = _shaded_dng(tmp_path, with_map=True)
    raw = hyperisp.read_raw(path)
    np.testing.assert_allclose(raw.mosaic, level, atol=2e-3)  # flat again, to the 12-bit rounding
    assert raw.metadata["lens_corrections"] == "DNG GainMap x4"
    result = CliRunner().invoke(app, ["develop", str(path), "-o", str(tmp_path / "out.png"), "-v"])
    assert result.exit_code == 0 and "lens corrections DNG GainMap x4" in result.output
    plain, _ = _shaded_dng(tmp_path, with_map=False)
    uncorrected = hyperisp.read_raw(plain)
    assert "lens_corrections" not in uncorrected.metadata
    assert uncorrected.mosaic[0, 0] < 0.5 * level[0, 0]  # the corner stays dark without the map


def test_a_damaged_gain_map_leaves_the_raw_uncorrected_and_says_so(tmp_path):
    path, _ = _shaded_dng(tmp_path, with_map=False)
    good = hyperisp.read_raw(path).mosaic
    gain_map = _site_map((0, 0), _vignette((48, 64)), (48, 64))
    broken = opcode_list_bytes([gain_map_opcode(gain_map)])[:-4]
    raw_values = np.round(64 + good * (4095 - 64)).astype(np.uint16)  # the same shaded picture
    damaged = write_dng(tmp_path / "damaged.dng", raw_values, black_level=64, white_level=4095,
                        opcode_list_2=broken)
    raw = hyperisp.read_raw(damaged)
    assert raw.metadata["lens_corrections"].startswith("opcodes ignored (opcode 9 needs")
    np.testing.assert_allclose(raw.mosaic, good, atol=1e-6)


def _tiff_with_raw_in_a_sub_ifd(path, opcode_list: bytes) -> None:
    """A little-endian TIFF whose IFD0 is a preview (NewSubFileType 1) and whose SubIFD holds the
    raw (NewSubFileType 0) with an OpcodeList2, as Adobe's DNG converter lays files out."""
    sub_offset = 8 + 2 + 2 * 12 + 4
    values_offset = sub_offset + 2 + 2 * 12 + 4
    ifd0 = struct.pack("<H", 2) + struct.pack("<HHII", 254, 4, 1, 1) + struct.pack("<HHII", 330, 13, 1, sub_offset) \
        + struct.pack("<I", 0)
    sub = struct.pack("<H", 2) + struct.pack("<HHII", 254, 4, 1, 0) \
        + struct.pack("<HHII", TAG_OPCODE_LIST_2, 7, len(opcode_list), values_offset) + struct.pack("<I", 0)
    path.write_bytes(b"II*\0" + struct.pack("<I", 8) + ifd0 + sub + opcode_list)


def test_the_raw_ifd_is_found_in_a_sub_ifd(tmp_path):
    data = opcode_list_bytes([gain_map_opcode(_site_map((0, 0), _vignette((8, 8)), (8, 8)))])
    _tiff_with_raw_in_a_sub_ifd(tmp_path / "sub.dng", data)
    found = read_file_tags(tmp_path / "sub.dng", ifd0_codes={254, TAG_OPCODE_LIST_2}, raw_codes={TAG_OPCODE_LIST_2})
    assert bytes(found.raw_ifd[TAG_OPCODE_LIST_2]) == data
    assert found.ifd0 == {254: (1,)}  # IFD0 is the preview, and holds no opcodes
    assert read_file_tags(tmp_path / "missing.dng", raw_codes={TAG_OPCODE_LIST_2}) == FileTags()
    (tmp_path / "junk.dng").write_bytes(b"II*\0\xff\xff\xff\x7f")
    assert read_file_tags(tmp_path / "junk.dng", raw_codes={TAG_OPCODE_LIST_2}) == FileTags()


def test_a_radial_vignette_follows_adobes_polynomial_and_centre():
    vignette = RadialVignette((0.8, 0.1, 0.0, 0.0, 0.0), (0.5, 0.25))  # centre a quarter from the left
    gains = radial_vignette_gains(vignette, (20, 40))
    radius = np.hypot(10, 30)  # to the farthest corner: 10 rows, 30 columns away
    r2 = ((0.5 - 10) ** 2 + (39.5 - 10) ** 2) / radius**2  # pixel (0, 39), the far corner's centre
    assert gains[0, 39] == pytest.approx(1 + 0.8 * r2 + 0.1 * r2**2, rel=1e-6)
    assert gains[10, 10] == pytest.approx(1 + 0.8 * 0.5 / radius**2, rel=1e-6) and gains.min() == gains[10, 10]
    with pytest.raises(ValueError, match="outside the image"):
        corrections_from_opcodes(parse_opcode_list(opcode_list_bytes([radial_vignette_opcode(RadialVignette((0.1,) * 5, (1.5, 0.5)))])))


def test_read_raw_applies_a_radial_vignette_from_opcode_list_2(tmp_path):
    vignette = RadialVignette((0.5, 0.2, 0.0, 0.0, 0.0), (0.45, 0.55))
    shape = (40, 56)
    data = np.round(64 + 0.4 / radial_vignette_gains(vignette, shape) * (4095 - 64)).astype(np.uint16)
    path = write_dng(tmp_path / "v.dng", data, black_level=64, white_level=4095,
                     opcode_list_2=opcode_list_bytes([radial_vignette_opcode(vignette)]))
    raw = hyperisp.read_raw(path)
    np.testing.assert_allclose(raw.mosaic, 0.4, atol=2e-4)
    assert raw.metadata["lens_corrections"] == "DNG FixVignetteRadial"


def test_opcode_list_3_gain_maps_act_per_rgb_plane_after_demosaicking(tmp_path):
    rgb = np.full((6, 8, 3), 0.3, np.float32)
    grid = np.stack([np.full((2, 2), 2.0), np.full((2, 2), 1.5)], -1)  # map planes R and G; B reuses G's
    gain_map = GainMap((0, 0, 6, 8), 0, 3, (1, 1), (1.0, 1.0), (0.0, 0.0), grid.astype(np.float32))
    np.testing.assert_allclose(apply_rgb_corrections(rgb, [gain_map])[0, 0], [0.6, 0.45, 0.45], rtol=1e-6)
    only_blue = GainMap((0, 0, 6, 8), 2, 1, (1, 1), (1.0, 1.0), (0.0, 0.0), grid.astype(np.float32))
    np.testing.assert_allclose(apply_rgb_corrections(rgb, [only_blue])[3, 3], [0.3, 0.3, 0.45], rtol=1e-6)
    # In a DNG: read_raw leaves the mosaic alone and develop applies the map to the red plane.
    data = np.full((32, 48), 64 + round(0.3 * (4095 - 64)), np.uint16)
    red = GainMap((0, 0, 32, 48), 0, 1, (1, 1), (1.0, 1.0), (0.0, 0.0), np.full((2, 2, 1), 1.5, np.float32))
    plain = write_dng(tmp_path / "plain.dng", data, black_level=64, white_level=4095, as_shot_neutral=[1, 1, 1])
    mapped = write_dng(tmp_path / "mapped.dng", data, black_level=64, white_level=4095, as_shot_neutral=[1, 1, 1],
                       opcode_list_3=opcode_list_bytes([gain_map_opcode(red)]))
    raw = hyperisp.read_raw(mapped)
    np.testing.assert_array_equal(raw.mosaic, hyperisp.read_raw(plain).mosaic)
    assert raw.metadata["lens_corrections"] == "DNG after demosaicking GainMap" and len(raw.rgb_corrections) == 1
    options = dict(exposure=0.0, linear=True)
    a, b = hyperisp.develop(plain, **options), hyperisp.develop(mapped, **options)
    ratio = b[8:-8, 8:-8].mean(axis=(0, 1)) / a[8:-8, 8:-8].mean(axis=(0, 1))
    assert ratio[0] > 1.2 and abs(ratio[1] - 1) < 0.1  # red raised (through the colour matrix), green barely


def test_a_rectilinear_warp_samples_each_plane_at_its_source_position():
    from hyperisp.raw.lens_warp import RectilinearWarp, apply_rectilinear_warp, parse_rectilinear_warp, \
        rectilinear_warp_params

    height, width = 30, 40
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    ramp = np.stack([cols / width, rows / height, (cols + rows) / (width + height)], -1).astype(np.float32)
    # Barrel correction: sources lie inward (ratio < 1); the red plane is scaled a little more (lateral colour).
    warp = RectilinearWarp(((0.9, -0.04, 0.0, 0.0), (0.98, -0.03, 0.0, 0.0), (0.98, -0.03, 0.0, 0.0)),
                           ((0.0, 0.0), (0.002, -0.001), (0.002, -0.001)), (0.5, 0.45))
    assert parse_rectilinear_warp(rectilinear_warp_params(warp)) == warp
    out = apply_rectilinear_warp(ramp, warp)
    # Independent arithmetic of the DNG formula at one pixel, for the red plane (radial only) and green.
    centre_v, centre_h = 0.5 * height, 0.45 * width
    radius = np.hypot(max(centre_v, height - centre_v), max(centre_h, width - centre_h))
    y, x = 3, 35
    dv, dh = (y - centre_v) / radius, (x - centre_h) / radius
    r2 = dv * dv + dh * dh
    red_h = centre_h + radius * dh * (0.9 - 0.04 * r2)
    # Keys' bicubic (a = -0.75) is off a ramp by under 0.05 px; no warp would be off by 2.5 px here.
    assert out[y, x, 0] == pytest.approx(red_h / width, abs=0.05 / width) and abs(red_h - x) > 2
    tan_v = 0.002 * (r2 + 2 * dv * dv) + 2 * -0.001 * dh * dv
    green_v = centre_v + radius * (dv * (0.98 - 0.03 * r2) + tan_v)
    assert out[y, x, 1] == pytest.approx(green_v / height, abs=0.05 / height) and abs(green_v - y) > 0.5
    identity = RectilinearWarp(((1.0, 0.0, 0.0, 0.0),), ((0.0, 0.0),), (0.5, 0.5))
    np.testing.assert_allclose(apply_rectilinear_warp(ramp, identity), ramp, atol=1e-5)
    with pytest.raises(ValueError, match="does not match"):
        parse_rectilinear_warp(rectilinear_warp_params(warp)[:-8])


def test_develop_undoes_the_distortion_a_dng_records(tmp_path):
    from hyperisp.raw.lens_warp import OPCODE_WARP_RECTILINEAR, RectilinearWarp, rectilinear_warp_params

    # A mosaic whose grey level rises left to right; the file's warp (a 10 % zoom about the centre)
    # makes the developed picture sample a narrower band of it.
    height, width = 48, 64
    level = np.broadcast_to(np.linspace(0.1, 0.7, width), (height, width))
    data = np.round(64 + level * (4095 - 64)).astype(np.uint16)
    zoom = RectilinearWarp(((0.9, 0.0, 0.0, 0.0),), ((0.0, 0.0),), (0.5, 0.5))
    plain = write_dng(tmp_path / "plain.dng", data, black_level=64, white_level=4095, as_shot_neutral=[1, 1, 1])
    warped = write_dng(tmp_path / "warped.dng", data, black_level=64, white_level=4095, as_shot_neutral=[1, 1, 1],
                       opcode_list_3=opcode_list_bytes([Opcode(OPCODE_WARP_RECTILINEAR, 1,
                                                               rectilinear_warp_params(zoom))]))
    assert hyperisp.read_raw(warped).metadata["lens_corrections"] == "DNG after demosaicking WarpRectilinear"
    a, b = (hyperisp.develop(p, exposure=0.0, linear=True)[20:28].mean(axis=(0, 2)) for p in (plain, warped))
    centre = width // 2
    assert abs(b[centre] - a[centre]) < 0.02  # the centre stays
    ratio = (b[-10] - b[10]) / (a[-10] - a[10])
    assert ratio == pytest.approx(0.9, abs=0.02), ratio  # the slope flattens by 0.9
