"""Photo checks on images made in code: each accepted type, orientation, and every refusal."""

from __future__ import annotations

import hashlib
import io
import struct
import threading
import zlib

import pytest
from PIL import Image

from bot.tryon import photos
from bot.tryon.errors import PhotoRejected
from bot.tryon.photos import CheckedPhoto, PhotoLimits, check_photo, sniff_format, supported_formats

RED, BLUE, GREEN = (220, 20, 20), (20, 20, 220), (20, 200, 20)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def halves(size: tuple[int, int], left=RED, right=BLUE) -> Image.Image:
    """Left half one colour, right half another."""
    image = Image.new("RGB", size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


def decoded(photo: CheckedPhoto) -> Image.Image:
    image = Image.open(io.BytesIO(photo.jpeg))
    assert image.format == "JPEG"
    return image.convert("RGB")


def close_to(pixel, colour, tolerance=40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header claiming a huge size, with a few bytes of data: a decompression bomb's shape."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


async def test_jpeg_is_accepted_and_normalised():
    data = encode(halves((640, 480)), "JPEG", quality=95)
    photo = await check_photo(data)
    assert (photo.source_format, photo.width, photo.height) == ("jpeg", 640, 480)
    assert (photo.source_width, photo.source_height, photo.orientation) == (640, 480, "landscape")
    assert photo.sha256 == hashlib.sha256(data).hexdigest()
    image = decoded(photo)
    assert close_to(image.getpixel((10, 240)), RED) and close_to(image.getpixel((630, 240)), BLUE)


@pytest.mark.parametrize(
    ("fmt", "name", "options"),
    [("PNG", "png", {}), ("WEBP", "webp", {"lossless": True}), ("BMP", "bmp", {}), ("GIF", "gif", {})],
)
async def test_other_types_are_accepted(fmt, name, options):
    photo = await check_photo(encode(halves((300, 500)), fmt, **options))
    assert (photo.source_format, photo.width, photo.height, photo.orientation) == (name, 300, 500, "portrait")
    image = decoded(photo)
    assert close_to(image.getpixel((10, 250)), RED) and close_to(image.getpixel((290, 250)), BLUE)


@pytest.mark.parametrize(("fmt", "name"), [("HEIF", "heic"), ("AVIF", "avif")])
async def test_heic_and_avif_when_available(fmt, name):
    if name not in supported_formats():
        pytest.skip(f"{name} is not readable in this installation")
    data = encode(halves((320, 400)), fmt, quality=90)
    assert sniff_format(data) == name
    photo = await check_photo(data)
    assert (photo.source_format, photo.width, photo.height) == (name, 320, 400)
    assert close_to(decoded(photo).getpixel((10, 200)), RED, tolerance=60)


async def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (300, 300), colour) for colour in (GREEN, RED, BLUE)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    photo = await check_photo(data)
    assert close_to(decoded(photo).getpixel((150, 150)), GREEN)


async def test_transparency_is_flattened_on_white():
    image = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    image.paste((200, 0, 0, 255), (0, 0, 150, 300))
    photo = await check_photo(encode(image, "PNG"))
    flat = decoded(photo)
    assert close_to(flat.getpixel((10, 150)), (200, 0, 0)) and close_to(
        flat.getpixel((290, 150)), (255, 255, 255)
    )


async def test_exif_orientation_is_applied_and_metadata_dropped():
    stored = halves((400, 300))  # red left, blue right, as stored in the file
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    exif[0x8825] = {2: (48.0, 51.0, 0.0)}  # a GPS position that must not leak
    photo = await check_photo(encode(stored, "JPEG", exif=exif, quality=95))
    assert (photo.width, photo.height, photo.orientation) == (300, 400, "portrait")
    assert (photo.source_width, photo.source_height) == (300, 400)
    upright = decoded(photo)
    assert close_to(upright.getpixel((150, 10)), RED) and close_to(upright.getpixel((150, 390)), BLUE)
    assert len(Image.open(io.BytesIO(photo.jpeg)).getexif()) == 0


async def test_large_photo_is_scaled_to_the_output_size():
    photo = await check_photo(encode(halves((3000, 2000)), "JPEG", quality=85))
    assert (photo.width, photo.height) == (1280, 853)
    assert (photo.source_width, photo.source_height) == (3000, 2000)
    small = await check_photo(encode(halves((3000, 2000)), "PNG"), PhotoLimits(output_long_side=600))
    assert (small.width, small.height) == (600, 400)


async def test_decompression_bomb_header_is_refused_before_decoding():
    with pytest.raises(PhotoRejected) as refused:
        await check_photo(png_header_only(8000, 8000))  # 64 MP: over our limit, under Pillow's
    assert refused.value.reason == "photo_too_many_pixels" and "8000×8000" in refused.value.message
    with pytest.raises(PhotoRejected) as refused:
        await check_photo(png_header_only(100_000, 100_000))  # Pillow itself refuses to open this
    assert refused.value.reason == "photo_too_many_pixels"
    with pytest.raises(PhotoRejected, match="megapixels"):
        await check_photo(encode(halves((600, 600)), "PNG"), PhotoLimits(max_pixels=300_000))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
async def test_truncated_files_are_refused(fmt):
    noisy = Image.effect_noise((400, 400), 60).convert("RGB")
    data = encode(noisy, fmt)
    with pytest.raises(PhotoRejected) as refused:
        await check_photo(data[: len(data) // 2])
    assert refused.value.reason == "photo_damaged"


@pytest.mark.parametrize(
    "data",
    [
        b"hello, this is not an image at all",
        b"%PDF-1.7\n" + b"\0" * 100,
        b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\0" * 100,  # an MP4
        b"BM" + b"not really a bitmap" * 4,
        b"PK\x03\x04" + b"\0" * 100,
    ],
)
async def test_non_images_are_refused_by_type(data):
    with pytest.raises(PhotoRejected) as refused:
        await check_photo(data)
    assert refused.value.reason == "photo_unsupported_type"
    assert "JPEG" in refused.value.message and "PNG" in refused.value.message


async def test_a_renamed_file_is_judged_by_content():
    # PNG bytes whose name would say .jpg: accepted as what they are.
    photo = await check_photo(encode(halves((300, 300)), "PNG"))
    assert photo.source_format == "png"


async def test_size_refusals():
    with pytest.raises(PhotoRejected) as refused:
        await check_photo(b"")
    assert refused.value.reason == "photo_empty"
    oversized = b"\xff\xd8\xff" + b"\0" * (25 * 1024 * 1024)
    with pytest.raises(PhotoRejected, match="25 MiB") as refused:
        await check_photo(oversized)
    assert refused.value.reason == "photo_too_large"
    with pytest.raises(PhotoRejected) as refused:
        await check_photo(encode(halves((200, 900)), "PNG"))
    assert refused.value.reason == "photo_too_small" and "200×900" in refused.value.message
    assert (await check_photo(encode(halves((256, 256)), "PNG"))).width == 256


async def test_decoding_runs_off_the_event_loop(monkeypatch):
    seen: list[int] = []
    original = photos.check_photo_sync

    def recording(data, limits):
        seen.append(threading.get_ident())
        return original(data, limits)

    monkeypatch.setattr(photos, "check_photo_sync", recording)
    await check_photo(encode(halves((300, 300)), "PNG"))
    assert seen and seen[0] != threading.get_ident()


def test_sniffing():
    assert sniff_format(encode(halves((10, 10)), "JPEG")) == "jpeg"
    assert sniff_format(encode(halves((10, 10)), "PNG")) == "png"
    assert sniff_format(encode(halves((10, 10)), "WEBP")) == "webp"
    assert sniff_format(encode(halves((10, 10)), "GIF")) == "gif"
    assert sniff_format(encode(halves((10, 10)), "BMP")) == "bmp"
    assert sniff_format(b"\x00\x00\x00\x10ftypmif1\x00\x00\x00\x00") is None  # no image brand
    assert sniff_format(b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic") == "heic"
    assert sniff_format(b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00mif1miaf") == "avif"
    assert sniff_format(b"\x00\x00\xff\xffftypheic") is None  # box longer than the data
    assert sniff_format(b"") is None


@pytest.mark.parametrize(
    ("mode", "fmt"), [("CMYK", "JPEG"), ("L", "JPEG"), ("I;16", "PNG"), ("P", "PNG"), ("LA", "PNG")]
)
async def test_unusual_pixel_modes_become_rgb(mode, fmt):
    photo = await check_photo(encode(halves((300, 300)).convert(mode), fmt))
    image = Image.open(io.BytesIO(photo.jpeg))
    assert image.mode == "RGB" and image.size == (300, 300)


async def test_a_long_thin_photo_is_refused():
    # Scaled to the platform's 1280 px, a 1:5 strip would leave a person a few dozen pixels wide.
    with pytest.raises(PhotoRejected) as refused:
        await check_photo(encode(halves((300, 1500)), "PNG"))
    assert refused.value.reason == "photo_bad_shape" and "300×1500" in refused.value.message
    with pytest.raises(PhotoRejected, match="1500×300"):
        await check_photo(encode(halves((1500, 300)), "PNG"))
    photo = await check_photo(encode(halves((300, 1200)), "PNG"))  # 1:4 is still fine
    assert (photo.width, photo.height) == (300, 1200)
