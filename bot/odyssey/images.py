"""Image-to-video input preparation (spec §11): sniff, 25 MiB cap, centre-crop to the stream size, data URL.

Everything here is blocking (file I/O, Pillow); callers run it in a worker thread.
"""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path
from typing import Union

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from bot.odyssey.errors import OdysseyStreamError

log = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 25 * 1024 * 1024
PORTRAIT_SIZE = (704, 1280)
LANDSCAPE_SIZE = (1280, 704)
JPEG_QUALITY = 90

ImageInput = Union[str, Path, bytes, Image.Image, npt.NDArray[np.uint8]]  # noqa: UP007 (runtime alias)

_FORMAT_MIME = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
}
_FTYP_BRANDS = {
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"heim": "image/heic",
    b"heis": "image/heic",
    b"mif1": "image/heif",
    b"msf1": "image/heif",
    b"avif": "image/avif",
    b"avis": "image/avif",
}


def target_size(portrait: bool) -> tuple[int, int]:
    """The stream's frame size (width, height)."""
    return PORTRAIT_SIZE if portrait else LANDSCAPE_SIZE


def sniff_mime(data: bytes) -> str:
    """The image MIME type from the magic bytes; JPEG when unknown, octet-stream when too short to tell."""
    if len(data) < 12:
        return "application/octet-stream"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(data[8:12], "image/heif")
    if data.startswith(b"BM"):
        return "image/bmp"
    return "image/jpeg"


def image_to_data_url(image: ImageInput, portrait: bool) -> str:
    """The `input_image_base64` value for `image` (a `data:` URL string passes through untouched)."""
    if isinstance(image, str) and image.startswith("data:"):
        return image
    raw = load_image_bytes(image)
    data, mime = fit_to_stream(raw, portrait)
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def load_image_bytes(image: ImageInput) -> bytes:
    """The encoded image: file contents, raw bytes, or a JPEG encoding of a Pillow image / RGB array."""
    if isinstance(image, str | Path):
        return _read_file(Path(image))
    if isinstance(image, bytes | bytearray | memoryview):
        return _checked_size(bytes(image))
    if isinstance(image, Image.Image):
        return _checked_size(_encode_jpeg(image))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise OdysseyStreamError("Image array must be RGB uint8 with shape (height, width, 3)")
        return _checked_size(_encode_jpeg(Image.fromarray(image, "RGB")))
    raise OdysseyStreamError(f"Unsupported image type: {type(image).__name__}")


def fit_to_stream(data: bytes, portrait: bool) -> tuple[bytes, str]:
    """Centre-crop and scale to the stream size, keeping the format; the original bytes if that fails."""
    mime = sniff_mime(data)
    target = target_size(portrait)
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.size == target:
                return data, mime
            fmt = _output_format(image.format)
            if fmt == "JPEG":
                image.draft("RGB", target)  # decode at a reduced scale when the photo is much larger
            fitted = ImageOps.fit(_resizable(image), target, Image.Resampling.LANCZOS)
            return _encode(fitted, fmt), _FORMAT_MIME[fmt]
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        log.info("image left as is (%s: %s)", type(exc).__name__, exc)
        return data, mime


def _output_format(source_format: str | None) -> str:
    """The input's format when we can label it truthfully; JPEG otherwise (phone MPO photos are JPEGs)."""
    return source_format if source_format in _FORMAT_MIME else "JPEG"


def _read_file(path: Path) -> bytes:
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise OdysseyStreamError(f"Image file not found: {path}") from exc
    except OSError as exc:
        raise OdysseyStreamError(f"Image file unreadable: {path} ({exc.strerror})") from exc
    _check_size(size)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise OdysseyStreamError(f"Image file unreadable: {path} ({exc.strerror})") from exc


def _checked_size(data: bytes) -> bytes:
    _check_size(len(data))
    return data


def _check_size(size: int) -> None:
    if size > MAX_IMAGE_BYTES:
        raise OdysseyStreamError(f"Image exceeds maximum size of 25MB ({size / 1024 / 1024:.2f}MB provided)")


def _resizable(image: Image.Image) -> Image.Image:
    if image.mode == "P":
        return image.convert("RGBA")
    if image.mode in ("1", "I;16", "I", "F"):
        return image.convert("L")
    return image


def _encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        if image.mode not in ("RGB", "L", "CMYK"):
            image = image.convert("RGB")
        image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    elif fmt == "WEBP":
        image.save(out, "WEBP", quality=JPEG_QUALITY)
    else:
        image.save(out, fmt)
    return out.getvalue()


def _encode_jpeg(image: Image.Image) -> bytes:
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()
