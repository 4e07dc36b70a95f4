"""Image preparation: sniffing, size cap, centre-crop geometry, formats, data URLs."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.odyssey import OdysseyStreamError
from bot.odyssey.images import (
    MAX_IMAGE_BYTES,
    fit_to_stream,
    image_to_data_url,
    load_image_bytes,
    sniff_mime,
)

SAMPLE = Path(__file__).parents[2] / "examples" / "astronaut.jpg"


def encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def decode_data_url(url: str) -> tuple[str, Image.Image]:
    header, payload = url.split(",", 1)
    assert header.endswith(";base64")
    return header[len("data:") : -len(";base64")], Image.open(io.BytesIO(base64.b64decode(payload)))


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"\xff\xd8\xff\xe0" + b"\0" * 20, "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "image/png"),
        (b"GIF89a" + b"\0" * 20, "image/gif"),
        (b"GIF87a" + b"\0" * 20, "image/gif"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "image/webp"),
        (b"\0\0\0\x18ftypheic\0\0", "image/heic"),
        (b"\0\0\0\x18ftypmif1\0\0", "image/heif"),
        (b"\0\0\0\x18ftypavif\0\0", "image/avif"),
        (b"\0\0\0\x18ftypXXXX\0\0", "image/heif"),
        (b"BM" + b"\0" * 20, "image/bmp"),
        (b"something else entirely", "image/jpeg"),
        (b"short", "application/octet-stream"),
    ],
)
def test_sniff_mime_by_magic_bytes(data: bytes, mime: str) -> None:
    assert sniff_mime(data) == mime


@pytest.mark.parametrize(("portrait", "size"), [(True, (704, 1280)), (False, (1280, 704))])
def test_photo_is_centre_cropped_to_the_stream_size_as_jpeg(portrait: bool, size: tuple[int, int]) -> None:
    mime, image = decode_data_url(image_to_data_url(SAMPLE, portrait))
    assert mime == "image/jpeg"
    assert image.format == "JPEG"
    assert image.size == size


def test_crop_keeps_the_centre() -> None:
    # A wide image: left third red, middle blue, right third green. Portrait crop keeps only blue.
    pixels = np.zeros((400, 1200, 3), np.uint8)
    pixels[:, :400] = (255, 0, 0)
    pixels[:, 400:800] = (0, 0, 255)
    pixels[:, 800:] = (0, 255, 0)
    data, mime = fit_to_stream(encode(Image.fromarray(pixels), "PNG"), portrait=True)
    assert mime == "image/png"
    out = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert out.shape == (1280, 704, 3)
    assert out[:, 5, 2].min() > 200 and out[:, -5, 2].min() > 200  # blue at both edges


def test_image_already_at_target_size_is_sent_unchanged() -> None:
    data = encode(Image.new("RGB", (1280, 704), "white"), "PNG")
    assert fit_to_stream(data, portrait=False) == (data, "image/png")


def test_undecodable_bytes_are_sent_as_is() -> None:
    data = b"\x89PNG\r\n\x1a\n" + b"garbage" * 10
    assert fit_to_stream(data, portrait=True) == (data, "image/png")


def test_webp_keeps_its_format() -> None:
    data, mime = fit_to_stream(encode(Image.new("RGB", (100, 100), "red"), "WEBP"), portrait=True)
    assert mime == "image/webp"
    assert Image.open(io.BytesIO(data)).size == (704, 1280)


def test_palette_png_is_resized() -> None:
    data, _ = fit_to_stream(encode(Image.new("P", (50, 80)), "PNG"), portrait=False)
    assert Image.open(io.BytesIO(data)).size == (1280, 704)


def test_pil_and_numpy_inputs_become_jpeg() -> None:
    for image in (Image.new("RGBA", (300, 300), "red"), np.full((300, 200, 3), 128, np.uint8)):
        mime, decoded = decode_data_url(image_to_data_url(image, portrait=True))
        assert mime == "image/jpeg"
        assert decoded.size == (704, 1280)


def test_data_url_passes_through() -> None:
    url = "data:image/png;base64,AAAA"
    assert image_to_data_url(url, portrait=True) == url


def test_size_cap_applies_to_raw_bytes_and_files(tmp_path: Path) -> None:
    big = b"\xff\xd8\xff" + b"\0" * MAX_IMAGE_BYTES
    with pytest.raises(OdysseyStreamError, match="exceeds maximum size of 25MB"):
        load_image_bytes(big)
    path = tmp_path / "big.jpg"
    path.write_bytes(big)
    with pytest.raises(OdysseyStreamError, match="exceeds maximum size of 25MB"):
        load_image_bytes(path)
    assert len(load_image_bytes(big[:MAX_IMAGE_BYTES])) == MAX_IMAGE_BYTES


def test_missing_file_and_bad_array_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(OdysseyStreamError, match="not found"):
        load_image_bytes(tmp_path / "nope.jpg")
    with pytest.raises(OdysseyStreamError, match="RGB uint8"):
        load_image_bytes(np.zeros((10, 10), np.float32))


def jpeg_luma_dc_step(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format in ("JPEG", "MPO")
        return int(image.quantization[0][0])  # type: ignore[attr-defined]


def test_jpeg_output_uses_quality_90() -> None:
    data, _ = fit_to_stream(SAMPLE.read_bytes(), portrait=False)
    assert jpeg_luma_dc_step(data) == 3  # the standard table scaled for quality 90 (75 would give 8)


def test_phone_mpo_photo_is_treated_as_jpeg() -> None:
    # Many phone cameras write MPO (JPEG plus a second picture); Pillow reports it as its own format.
    first, second = Image.new("RGB", (600, 400), "red"), Image.new("RGB", (600, 400), "blue")
    out = io.BytesIO()
    first.save(out, "MPO", save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(out.getvalue())).format == "MPO"
    data, mime = fit_to_stream(out.getvalue(), portrait=True)
    assert mime == "image/jpeg" and data.startswith(b"\xff\xd8\xff")
    assert Image.open(io.BytesIO(data)).size == (704, 1280)
    assert jpeg_luma_dc_step(data) == 3


def test_format_without_a_known_mime_is_sent_as_jpeg() -> None:
    data, mime = fit_to_stream(encode(Image.new("RGB", (300, 300), "red"), "TIFF"), portrait=True)
    with Image.open(io.BytesIO(data)) as image:
        assert (mime, image.format, image.size) == ("image/jpeg", "JPEG", (704, 1280))
