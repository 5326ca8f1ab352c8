"""hyperisp.io: atomic output, image write/read round trips, ICC + EXIF, bad inputs."""
from __future__ import annotations

import io
import os
import stat
import struct
import zlib
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps, JpegImagePlugin

from hyperisp.errors import HyperispError
from hyperisp.io import images, png
from hyperisp.io.atomic import atomic_output
from hyperisp.io.images import Photo, apply_exif_orientation, array_to_unit_float, output_format, read_image, write_image
from hyperisp.io.metadata import build_exif, exif_tiff_tags, metadata_from_exif, srgb_icc_profile

METADATA = {
    "gps_latitude": -33.856784,  # south and west: the signs must survive
    "gps_longitude": -70.651234,
    "gps_altitude": 571.5,
    "make": "Fujifilm",
    "model": "X-T5",
    "iso": 3200,
    "exposure_time": 1 / 250,
    "f_number": 2.8,
    "focal_length": 23.0,
    "datetime": datetime(2024, 5, 6, 7, 8, 9),
    "lens_make": "Fujifilm",
    "lens_model": "XF23mmF1.4 R LM WR",
    "artist": "Ana Example",
    "copyright": "(c) 2024 Ana Example, all rights reserved",
}
FORMATS = {"jpeg": "jpg", "png": "png", "png16": "png", "tiff": "tif"}


def smooth_rgb(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    """(H, W, 3) float32 gradient + mild noise: JPEG-friendly, all 16-bit levels random."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    rgb = np.stack([0.1 + 0.8 * xx, 0.2 + 0.5 * yy, 0.9 - 0.7 * xx * yy], -1)
    return np.clip(rgb + rng.normal(0, 0.01, rgb.shape), 0, 1).astype(np.float32)


def files_in(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))  # hidden temp files included


# ----------------------------------------------------------------------------- formats

def test_output_format_from_extension_and_override(tmp_path):
    assert output_format("a.JPG") == "jpeg"
    assert output_format("a.jpeg") == "jpeg"
    assert output_format("a.png") == "png"
    assert output_format("a.tif") == output_format("a.TIFF") == "tiff"
    assert output_format("a.png", "png16") == "png16"
    assert output_format("a.whatever", "TIFF") == "tiff"
    with pytest.raises(HyperispError, match=r"a\.bmp: unknown image extension '\.bmp'"):
        output_format("a.bmp")
    with pytest.raises(HyperispError, match="unknown output format 'webp'"):
        output_format("a.png", "webp")


# ----------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip(tmp_path, fmt):
    rgb = smooth_rgb()
    path = write_image(tmp_path / f"out.{FORMATS[fmt]}", rgb, fmt=fmt, metadata=METADATA)
    assert path == tmp_path / f"out.{FORMATS[fmt]}"
    photo = read_image(path)
    assert isinstance(photo, Photo)
    assert photo.pixels.shape == rgb.shape and photo.pixels.dtype == np.float32
    err = np.abs(photo.pixels - rgb)
    if fmt == "png":
        assert photo.bit_depth == 8
        np.testing.assert_array_equal(np.round(photo.pixels * 255), np.floor(rgb * 255 + 0.5))
    elif fmt in ("png16", "tiff"):
        assert photo.bit_depth == 16
        assert err.max() <= 0.5 / 65535 + 1e-7
        np.testing.assert_array_equal(np.round(photo.pixels * 65535), np.floor(rgb * 65535 + 0.5))
    else:
        assert photo.bit_depth == 8
        assert err.mean() < 0.01 and err.max() < 0.1
    assert photo.icc_profile == srgb_icc_profile()
    assert photo.metadata["make"] == "Fujifilm" and photo.metadata["iso"] == 3200
    assert photo.metadata["exposure_time"] == pytest.approx(1 / 250)
    assert photo.metadata["datetime"] == METADATA["datetime"]
    for key in ("lens_make", "lens_model", "artist", "copyright"):
        assert photo.metadata[key] == METADATA[key], key
    assert files_in(tmp_path) == [path.name]


def test_quantization_rounds_to_nearest_and_clips(tmp_path):
    k = np.arange(0, 250, dtype=np.float64)
    rgb = np.zeros((1, len(k), 3))
    rgb[0, :, 0] = (k + 0.49) / 255  # -> k
    rgb[0, :, 1] = (k + 0.51) / 255  # -> k + 1
    rgb[0, :4, 2] = [-0.5, 1.5, np.nan, np.inf]
    photo = read_image(write_image(tmp_path / "q.png", rgb))
    levels = np.round(photo.pixels[0] * 255)
    np.testing.assert_array_equal(levels[:, 0], k)
    np.testing.assert_array_equal(levels[:, 1], k + 1)
    np.testing.assert_array_equal(levels[:4, 2], [0, 255, 0, 255])


def test_write_rejects_wrong_arrays(tmp_path):
    with pytest.raises(ValueError, match="float image"):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\(H, W, 3\) or \(H, W\)"):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 4)))
    with pytest.raises(HyperispError, match="quality"):
        write_image(tmp_path / "a.jpg", np.zeros((4, 4, 3)), quality=0)
    assert files_in(tmp_path) == []


def test_jpeg_chroma_subsampling_follows_quality(tmp_path):
    rgb = smooth_rgb()
    high = write_image(tmp_path / "q95.jpg", rgb, quality=95)
    low = write_image(tmp_path / "q80.jpg", rgb, quality=80)
    assert JpegImagePlugin.get_sampling(Image.open(high)) == 0  # 4:4:4
    assert JpegImagePlugin.get_sampling(Image.open(low)) == 2  # 4:2:0


# ----------------------------------------------------------------------------- ICC + EXIF

@pytest.mark.parametrize("fmt", FORMATS)
def test_icc_profile_and_exif_readable_by_pillow(tmp_path, fmt):
    path = write_image(tmp_path / f"out.{FORMATS[fmt]}", smooth_rgb(), fmt=fmt, metadata=METADATA)
    with Image.open(path) as im:
        icc = im.info.get("icc_profile")
        exif = im.getexif()
        sub = exif.get_ifd(0x8769)
        assert exif[0x010F] == "Fujifilm"  # Make
        assert exif[0x0110] == "X-T5"  # Model
        assert exif[0x0112] == 1  # Orientation: pixels are already upright
        assert exif[0x0131].startswith("hyperisp ")  # Software
        assert sub[0x8827] == 3200  # ISOSpeedRatings
        assert float(sub[0x829A]) == pytest.approx(1 / 250)  # ExposureTime
        assert float(sub[0x829D]) == pytest.approx(2.8)  # FNumber
        assert float(sub[0x920A]) == pytest.approx(23.0)  # FocalLength
        assert sub[0x9003] == "2024:05:06 07:08:09"  # DateTimeOriginal
        gps = exif.get_ifd(0x8825)
        assert gps[1] == "S" and gps[3] == "W" and gps[5] in (0, b"\x00")
        degrees = [float(v) for v in gps[2]]
        assert degrees[:2] == [33.0, 51.0] and degrees[2] == pytest.approx(0.856784 * 60 % 1 * 60, abs=1e-3)
        assert float(gps[6]) == pytest.approx(571.5)
    assert icc == srgb_icc_profile()
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    assert "sRGB" in ImageCms.getProfileDescription(profile)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of every chunk, each CRC checked."""
    assert data.startswith(png.PNG_SIGNATURE)
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind + body)
        chunks.append((kind, body))
        pos += 12 + length
    return chunks


@pytest.mark.parametrize("fmt, bits", [("png", 8), ("png16", 16)])
def test_png_chunk_layout(tmp_path, fmt, bits):
    path = write_image(tmp_path / "out.png", smooth_rgb(), fmt=fmt, metadata=METADATA)
    chunks = png_chunks(path.read_bytes())
    kinds = [k for k, _ in chunks]
    assert kinds[:3] == [b"IHDR", b"iCCP", b"eXIf"] and kinds[-1] == b"IEND" and b"IDAT" in kinds
    assert chunks[0][1][8:10] == bytes([bits, 2])  # RGB
    assert chunks[1][1].startswith(b"sRGB\0\0")
    assert chunks[2][1][:4] in (b"MM\0*", b"II*\0")  # eXIf holds bare TIFF, no "Exif\0\0"


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("threads", [1, 3])
def test_png_bands_deflated_apart_make_one_stream(tmp_path, monkeypatch, dtype, threads):
    monkeypatch.setattr(png, "_BAND_BYTES", 700)  # a band every few rows: 16+ bands, more than in flight
    top = np.iinfo(dtype).max
    image = (smooth_rgb(41, 60, seed=5) * top).astype(dtype)
    image[::7] = np.random.default_rng(1).integers(0, top + 1, image[::7].shape, dtype=dtype)
    buffer = io.BytesIO()
    png.write_png(buffer, image, compress_level=3, threads=threads)
    # Decoded independently: zlib checks the Adler-32 the bands' checksums were combined into.
    idat = b"".join(body for kind, body in png_chunks(buffer.getvalue()) if kind == b"IDAT")
    filtered = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(41, -1)
    assert (filtered[:, 0] == 2).all()  # "Up" on every row
    rows = np.cumsum(filtered[:, 1:], axis=0, dtype=np.uint8)  # undoes "Up" (mod 256)
    decoded = rows.view(">u2") if dtype == np.uint16 else rows
    np.testing.assert_array_equal(decoded.reshape(image.shape), image)
    path = tmp_path / "out.png"
    path.write_bytes(buffer.getvalue())
    np.testing.assert_array_equal(np.round(read_image(path).pixels * top), image)  # and by Pillow


def test_adler32_combine_matches_zlib():
    first, second = os.urandom(70_000), os.urandom(65_521 * 2 + 5)
    for a, b in [(first, second), (b"", second), (first, b""), (b"\xff" * 9, b"\xff" * 100_000)]:
        assert png.adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)


def test_exif_without_metadata_and_with_bad_values():
    exif = Image.Exif()
    exif.load(build_exif(None)[6:])
    assert exif[0x0112] == 1 and 0x010F not in exif
    # junk values drop their tag instead of failing the export
    ifd0, sub, gps = exif_tiff_tags({"iso": float("nan"), "exposure_time": -1, "make": "Sony", "datetime": "yesterday",
                                     "gps_latitude": 91.0, "gps_longitude": 2.0})
    assert (0x010F, "ASCII", "Sony") in ifd0
    assert {tag for tag, _, _ in sub} == {0x9000}  # only ExifVersion
    assert gps == []  # no latitude beyond the pole
    assert metadata_from_exif(exif) == {}


def test_tiff_tags_match_exif_bytes():
    ifd0, sub, gps = exif_tiff_tags(METADATA)
    exif = Image.Exif()
    exif.load(build_exif(METADATA)[6:])
    assert {t for t, _, _ in ifd0} == set(exif) - {0x8769, 0x8825}
    assert {t for t, _, _ in sub} == set(exif.get_ifd(0x8769))
    assert {t for t, _, _ in gps} == set(exif.get_ifd(0x8825)) == set(range(7))
    back = metadata_from_exif(exif)
    assert back.pop("datetime") == METADATA["datetime"]
    assert back == pytest.approx({k: v for k, v in METADATA.items() if k != "datetime"})


# ----------------------------------------------------------------------------- grey / alpha / orientation

def test_grey_written_grey_and_read_as_rgb(tmp_path):
    grey = smooth_rgb()[:, :, 0]
    for fmt, ext in FORMATS.items():
        path = write_image(tmp_path / f"g_{fmt}.{ext}", grey, fmt=fmt)
        with Image.open(path) as im:
            assert im.mode in ("L", "I;16", "I;16B", "I")
            assert "icc_profile" not in im.info  # an RGB profile is invalid on grey
        photo = read_image(path)
        assert photo.pixels.shape == grey.shape + (3,)
        np.testing.assert_array_equal(photo.pixels[..., 0], photo.pixels[..., 2])
        tolerance = 0.05 if fmt == "jpeg" else 0.5 / (255 if fmt == "png" else 65535) + 1e-7
        assert np.abs(photo.pixels[..., 1] - grey).max() <= tolerance


def test_rgba_and_palette_inputs_drop_alpha(tmp_path):
    rgba = np.random.default_rng(2).integers(0, 256, (6, 7, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    photo = read_image(tmp_path / "rgba.png")
    np.testing.assert_array_equal(np.round(photo.pixels * 255), rgba[..., :3])
    Image.fromarray(rgba).convert("P").save(tmp_path / "pal.png")
    assert read_image(tmp_path / "pal.png").pixels.shape == (6, 7, 3)
    Image.fromarray(rgba[..., :3]).save(tmp_path / "rgb8.tif", compression="tiff_deflate")
    photo = read_image(tmp_path / "rgb8.tif")
    assert photo.bit_depth == 8
    np.testing.assert_array_equal(np.round(photo.pixels * 255), rgba[..., :3])


def _png(path: Path, image: np.ndarray, colour_type: int, filters: list[int]) -> None:
    """Reference PNG encoder, one explicit filter type per row (slow; tiny images only)."""
    h, w, c = image.shape
    rows = image.astype(">u2").reshape(h, w * c).view(np.uint8).astype(int)
    bpp = 2 * c
    out = b""
    for y in range(h):
        row, prev = rows[y], rows[y - 1] if y else np.zeros_like(rows[0])
        left = np.concatenate([np.zeros(bpp, int), row[:-bpp]])
        up_left = np.concatenate([np.zeros(bpp, int), prev[:-bpp]])
        p = left + prev - up_left
        pa, pb, pc = abs(p - left), abs(p - prev), abs(p - up_left)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, up_left))
        predictor = [0 * row, left, prev, (left + prev) // 2, paeth][filters[y]]
        out += bytes([filters[y]]) + bytes(((row - predictor) % 256).astype(np.uint8))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(out)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("channels,colour_type", [(3, 2), (4, 6), (2, 4), (1, 0)])
def test_16bit_png_from_other_encoders_all_filters(tmp_path, channels, colour_type):
    image = np.random.default_rng(channels).integers(0, 65536, (10, 9, channels), dtype=np.uint16)
    _png(tmp_path / "f.png", image, colour_type, filters=[0, 1, 2, 3, 4, 4, 3, 2, 1, 0])
    photo = read_image(tmp_path / "f.png")
    assert photo.bit_depth == 16
    expected = np.repeat(image[..., :1], 3, 2) if channels <= 2 else image[..., :3]
    np.testing.assert_array_equal(np.round(photo.pixels * 65535), expected)


def test_16bit_tiff_from_other_writers(tmp_path):
    tifffile = pytest.importorskip("tifffile")  # an independent reader/writer, dev-only
    image = np.random.default_rng(3).integers(0, 65536, (20, 24, 3), dtype=np.uint16)
    for name, options in {"deflate": {"compression": "zlib", "predictor": True}, "big_endian": {"byteorder": ">"},
                          "tiled": {"tile": (16, 16)}}.items():
        tifffile.imwrite(tmp_path / f"{name}.tif", image, photometric="rgb", **options)
        photo = read_image(tmp_path / f"{name}.tif")
        np.testing.assert_array_equal(np.round(photo.pixels * 65535), image, err_msg=name)
    # and our own TIFF reads back the same through tifffile, tags included
    rgb = smooth_rgb()
    path = write_image(tmp_path / "ours.tif", rgb, metadata=METADATA)
    with tifffile.TiffFile(path) as tif:
        np.testing.assert_array_equal(tif.asarray(), np.floor(rgb * 65535 + 0.5))
        assert tif.pages[0].tags[34675].value == srgb_icc_profile()
        assert tif.pages[0].tags["ExifTag"].value["ISOSpeedRatings"] == 3200


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    stored = np.random.default_rng(4).integers(0, 256, (5, 8, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "o.png", exif=exif.tobytes())
    with Image.open(tmp_path / "o.png") as im:
        expected = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(np.round(read_image(tmp_path / "o.png").pixels * 255), expected)
    np.testing.assert_array_equal(apply_exif_orientation(stored, orientation), expected)


def test_rotated_jpeg_is_read_upright(tmp_path):
    # A camera held in portrait stores a landscape frame + Orientation 6 (rotate 90 clockwise).
    landscape = np.zeros((40, 64, 3), np.uint8)
    landscape[:, :16] = (255, 0, 0)  # red on the left of the stored frame = top when upright
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(landscape).save(tmp_path / "portrait.jpg", exif=exif.tobytes(), quality=95)
    pixels = read_image(tmp_path / "portrait.jpg").pixels
    assert pixels.shape == (64, 40, 3)
    assert pixels[:8, :, 0].mean() > 0.9 and pixels[:8, :, 1].mean() < 0.1  # red on top
    assert pixels[-8:, :, 0].mean() < 0.1


# ----------------------------------------------------------------------------- atomic output

def test_existing_output_refused_then_replaced(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")
    with pytest.raises(HyperispError, match=r"out\.png: already exists \(use --overwrite\)"):
        write_image(target, smooth_rgb())
    assert target.read_bytes() == b"precious"
    write_image(target, smooth_rgb(), overwrite=True)
    assert read_image(target).pixels.shape == (24, 32, 3)
    assert files_in(tmp_path) == ["out.png"]


def test_output_gets_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = write_image(tmp_path / "out.jpg", smooth_rgb())
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0o600


def test_missing_folder_or_file_as_folder(tmp_path):
    with pytest.raises(HyperispError, match="output folder does not exist"):
        write_image(tmp_path / "nope" / "out.png", smooth_rgb())
    (tmp_path / "file").write_text("x")
    with pytest.raises(HyperispError, match="is a file, not a folder"):
        write_image(tmp_path / "file" / "out.png", smooth_rgb())
    with pytest.raises(HyperispError, match="is a folder"):
        write_image(tmp_path, smooth_rgb(), fmt="png")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores folder permissions")
def test_unwritable_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(HyperispError, match="not writable"):
            write_image(folder / "out.png", smooth_rgb())
    finally:
        folder.chmod(0o700)


def test_unwritable_folder_message(tmp_path, monkeypatch):
    # Runs as root too (where chmod cannot make a folder unwritable): fake the answer.
    monkeypatch.setattr("hyperisp.io.atomic.os.access", lambda *args: False)
    with pytest.raises(HyperispError, match=r"out\.png: output folder is not writable"):
        write_image(tmp_path / "out.png", smooth_rgb())
    assert files_in(tmp_path) == []


@pytest.mark.parametrize("fmt", ["png", "png16", "tiff"])
@pytest.mark.parametrize("exception", [RuntimeError("disk on fire"), KeyboardInterrupt()])
@pytest.mark.parametrize("existing", [False, True])
def test_crash_while_encoding_leaves_nothing(tmp_path, monkeypatch, fmt, exception, existing):
    def half_then_crash(file, *args, **kwargs):
        file.write(b"\x89PNG half written")
        file.flush()
        raise exception

    monkeypatch.setattr(images, "write_tiff" if fmt == "tiff" else "write_png", half_then_crash)
    target = tmp_path / f"out.{FORMATS[fmt]}"
    if existing:
        target.write_bytes(b"old")
    expected = KeyboardInterrupt if isinstance(exception, KeyboardInterrupt) else HyperispError
    with pytest.raises(expected) as info:
        write_image(target, smooth_rgb(), fmt=fmt, overwrite=existing)
    if expected is HyperispError:
        assert str(info.value) == f"{target}: cannot encode {fmt.upper()}: disk on fire"
    assert files_in(tmp_path) == (["out." + FORMATS[fmt]] if existing else [])
    if existing:
        assert target.read_bytes() == b"old"  # the previous file survives a failed overwrite


def test_output_appearing_during_encoding_is_not_clobbered(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    original = images.write_png

    def slow_encoder(file, *args, **kwargs):
        target.write_bytes(b"another process was faster")
        original(file, *args, **kwargs)

    monkeypatch.setattr(images, "write_png", slow_encoder)
    with pytest.raises(HyperispError, match="already exists"):
        write_image(target, smooth_rgb(), fmt="png16")
    assert target.read_bytes() == b"another process was faster"
    assert files_in(tmp_path) == ["out.png"]


def test_crash_inside_pillow_encoder(tmp_path, monkeypatch):
    def crash(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\xff\xd8\xff partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", crash)
    with pytest.raises(HyperispError, match=r"out\.jpg: cannot write: No space left on device"):
        write_image(tmp_path / "out.jpg", smooth_rgb())
    assert files_in(tmp_path) == []


def test_atomic_output_hidden_temp_in_same_folder(tmp_path):
    with atomic_output(tmp_path / "x.bin") as temp:
        assert temp.parent == tmp_path and temp.name.startswith(".x.bin.") and temp.name.endswith(".part")
        temp.write_bytes(b"data")
        assert not (tmp_path / "x.bin").exists()
    assert (tmp_path / "x.bin").read_bytes() == b"data"
    assert files_in(tmp_path) == ["x.bin"]


# ----------------------------------------------------------------------------- bad inputs

def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated(tmp_path: Path, ext: str, fmt: str) -> Path:
    good = write_image(tmp_path / f"good.{ext}", smooth_rgb(64, 64), fmt=fmt)
    bad = tmp_path / f"cut.{ext}"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return bad


@pytest.mark.parametrize(
    "make_input,reason",
    [
        (lambda d: d / "missing.png", "file not found"),
        (lambda d: _write(d / "empty.png", b""), "file is empty"),
        (lambda d: _write(d / "notes.jpg", b"hello, not a photo"), "not a JPEG, PNG, TIFF or WebP"),
        (lambda d: (d / "sub").mkdir() or d / "sub", "is a folder"),
        (lambda d: _truncated(d, "png", "png"), "truncated"),
        (lambda d: _truncated(d, "png", "png16"), "truncated"),
        (lambda d: _truncated(d, "jpg", "jpeg"), "truncated"),
        (lambda d: _truncated(d, "tif", "tiff"), "truncated"),
        (lambda d: _write(d / "h.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 30), "not a readable PNG"),
    ],
)
def test_read_bad_inputs(tmp_path, make_input, reason):
    path = make_input(tmp_path)
    with pytest.raises(HyperispError) as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and reason in message and "\n" not in message


def test_arrays_become_unit_float_like_files_and_bad_ones_are_named():
    np.testing.assert_allclose(array_to_unit_float(np.full((2, 3, 3), 255, np.uint8)), 1.0)
    np.testing.assert_allclose(array_to_unit_float(np.full((2, 3, 3), 32768, np.uint16)), 32768 / 65535)
    floats = np.array([[[-0.5, np.nan, 1.5]]], np.float64)
    out = array_to_unit_float(floats)
    assert out.dtype == np.float32 and out.tolist() == [[[0.0, 0.0, 1.0]]]
    assert array_to_unit_float(np.zeros((4, 5), np.uint8), grey=True).shape == (4, 5)
    for bad, grey, reason in [(np.zeros((4, 5), np.uint8), False, r"shape \(H, W, 3\), got \(4, 5\)"),
                              (np.zeros((4, 5, 4), np.uint8), True, r"shape \(H, W\) or \(H, W, 3\)"),
                              (np.zeros((0, 5, 3), np.uint8), False, "got"),
                              (np.zeros((4, 5, 3), np.int32), False, "uint8, uint16 or float pixels, got int32")]:
        with pytest.raises(HyperispError, match=reason) as info:
            array_to_unit_float(bad, "frame 2", grey=grey)
        assert str(info.value).startswith("frame 2")


def test_webp_photos_are_read_and_listed(tmp_path):
    rgb = smooth_rgb()
    Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(tmp_path / "a.webp", lossless=True)
    photo = read_image(tmp_path / "a.webp")
    assert photo.bit_depth == 8 and np.array_equal(np.round(photo.pixels * 255), np.round(rgb * 255))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.PNG").write_bytes((tmp_path / "a.webp").read_bytes())  # listed by name, sniffed by bytes
    (tmp_path / "notes.txt").write_text("not a photo")
    assert [p.name for p in images.list_photos(tmp_path)] == ["a.webp", "b.PNG"]
    assert read_image(tmp_path / "sub" / "b.PNG").pixels.shape == rgb.shape


def test_gps_position_reads_back_and_a_missing_fix_is_no_position():
    exif = Image.Exif()
    exif.load(build_exif({"gps_latitude": 0.5, "gps_longitude": 179.25, "gps_altitude": -12.0})[6:])
    back = metadata_from_exif(exif)
    assert back == pytest.approx({"gps_latitude": 0.5, "gps_longitude": 179.25, "gps_altitude": -12.0}, abs=1e-6)
    from hyperisp.io.metadata import gps_from_tags

    fix = {1: "N", 2: (48.0, 51.0, 23.64), 3: "E", 4: (2.0, 17.0, 40.0)}
    assert gps_from_tags(fix) == pytest.approx({"gps_latitude": 48 + 51 / 60 + 23.64 / 3600, "gps_longitude": 2 + 17 / 60 + 40 / 3600})
    assert gps_from_tags({**fix, 9: "V"}) == {}  # the receiver said its fix was void
    assert gps_from_tags({1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)}) == {}  # zeros: no fix
    assert gps_from_tags({**fix, 2: (48.0, 51.0)}) == {}  # malformed
