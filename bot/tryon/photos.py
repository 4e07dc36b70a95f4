"""Photo checks before anything is spent: sniffed type, size, pixel limit, EXIF orientation, size and shape.

`check_photo` returns the photo as a clean JPEG (orientation applied, metadata such as GPS dropped, scaled
down to a sensible size) ready for the Odyssey client, or raises `PhotoRejected` with a reason per problem.
Decoding runs in a worker thread, at most two at a time (a 50 MP decode holds ~150 MB while it runs).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
import threading
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, features

from bot.tryon.errors import PhotoRejected

MiB = 1024 * 1024
MAX_PHOTO_BYTES = 25 * MiB
# Above today's 48 MP phone cameras, far below what a decompression bomb claims.
MAX_PHOTO_PIXELS = 50_000_000
MIN_SHORT_SIDE = 256
# Longer than 4:1 (a panorama, a screenshot strip): scaled to the platform's frame, the person would be tiny.
MAX_ASPECT_RATIO = 4.0
OUTPUT_LONG_SIDE = 1280  # the platform streams 1280x704 / 704x1280; more would only cost bytes

_DECODE_SLOTS = threading.BoundedSemaphore(2)
_plugins_lock = threading.Lock()
_plugins_ready = False

# Our format names -> the Pillow plugin that may open them (nothing else is tried on the bytes).
_PIL_FORMATS = {
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "gif": "GIF",
    "bmp": "BMP",
    "heic": "HEIF",
    "avif": "AVIF",
}
# EXIF orientations 5-8 include a 90° turn, so width and height swap for display.
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}
_HEIC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"}
_AVIF_BRANDS = {b"avif", b"avis"}


@dataclass(frozen=True)
class PhotoLimits:
    """What a photo must satisfy, and how the output JPEG is made."""

    max_bytes: int = MAX_PHOTO_BYTES
    max_pixels: int = MAX_PHOTO_PIXELS
    min_short_side: int = MIN_SHORT_SIDE
    max_aspect_ratio: float = MAX_ASPECT_RATIO
    output_long_side: int = OUTPUT_LONG_SIDE
    jpeg_quality: int = 90


@dataclass(frozen=True)
class CheckedPhoto:
    """An accepted photo: upright RGB JPEG bytes for the client, and facts about the upload."""

    jpeg: bytes
    width: int
    height: int
    source_format: str  # "jpeg", "png", "webp", "gif", "bmp", "heic" or "avif"
    source_width: int  # as displayed (after EXIF orientation)
    source_height: int
    sha256: str  # of the uploaded bytes, so the same upload always has the same hash

    @property
    def portrait(self) -> bool:
        """Taller than wide (square counts as portrait, the platform's default)."""
        return self.height >= self.width

    @property
    def orientation(self) -> str:
        """ "portrait" or "landscape"."""
        return "portrait" if self.portrait else "landscape"


def _ensure_plugins() -> None:
    """Register the HEIF opener once (pillow-heif); without it HEIC is simply not supported."""
    global _plugins_ready
    with _plugins_lock:
        if _plugins_ready:
            return
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
        except ImportError:  # optional at run time: the dependency is declared, but keep working without it
            pass
        _plugins_ready = True


def supported_formats() -> list[str]:
    """Formats this installation can read."""
    _ensure_plugins()
    registered = set(Image.registered_extensions().values())
    found = [name for name, pil in _PIL_FORMATS.items() if pil in registered]
    if "avif" in found and not features.check("avif"):
        found.remove("avif")
    return found


def sniff_format(data: bytes) -> str | None:
    """The image type from its magic bytes, or None. Never trusts file names or Discord's content type."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] == b"BM" and len(data) >= 26 and data[14:18] in _BMP_HEADER_SIZES:
        return "bmp"
    return _sniff_iso_bmff(data)


# BITMAPCOREHEADER, OS/2 v2 (two sizes), BITMAPINFOHEADER, v2, v3, v4, v5.
_BMP_HEADER_SIZES = {size.to_bytes(4, "little") for size in (12, 16, 64, 40, 52, 56, 108, 124)}


def _sniff_iso_bmff(data: bytes) -> str | None:
    """HEIC/AVIF live in an ISO-BMFF "ftyp" box: major brand, minor version, then compatible brands."""
    if data[4:8] != b"ftyp":
        return None
    box_size = int.from_bytes(data[0:4], "big")
    if box_size < 16 or box_size > len(data):
        return None
    brands = {data[8:12]} | {data[offset : offset + 4] for offset in range(16, box_size - 3, 4)}
    if brands & _AVIF_BRANDS:
        return "avif"
    if brands & _HEIC_BRANDS:
        return "heic"
    return None  # e.g. MP4/MOV video


def _format_list(names: list[str]) -> str:
    upper = [name.upper() if name != "webp" else "WebP" for name in names]
    return ", ".join(upper[:-1]) + f" or {upper[-1]}" if len(upper) > 1 else "".join(upper)


async def check_photo(data: bytes, limits: PhotoLimits = PhotoLimits()) -> CheckedPhoto:
    """Check and normalise an uploaded photo off the event loop; raise `PhotoRejected` with the reason."""
    _check_size(data, limits)  # instant, and spares a thread for the commonest refusals
    return await asyncio.to_thread(check_photo_sync, data, limits)


def _check_size(data: bytes, limits: PhotoLimits) -> None:
    if not data:
        raise PhotoRejected("The attached file is empty. Please attach a photo.", reason="photo_empty")
    if len(data) > limits.max_bytes:
        raise PhotoRejected(
            f"That photo is {math.ceil(len(data) / MiB * 10) / 10:.1f} MiB; the limit is "
            f"{limits.max_bytes / MiB:.0f} MiB. "
            "Please send a smaller photo.",
            reason="photo_too_large",
        )


def _check_type(data: bytes) -> str:
    kind = sniff_format(data)
    supported = supported_formats()
    if kind is None or kind not in supported:
        raise PhotoRejected(
            f"That file isn't a photo type I can use. Please attach a {_format_list(supported)} image.",
            reason="photo_unsupported_type",
        )
    return kind


def check_photo_sync(data: bytes, limits: PhotoLimits = PhotoLimits()) -> CheckedPhoto:
    """The blocking part of `check_photo` (call it from a worker thread)."""
    _check_size(data, limits)
    kind = _check_type(data)  # may import the HEIF plugin the first time: off the loop too
    with _DECODE_SLOTS:
        image = _open_header(data, kind, limits)
        with image:
            upright, source_size = _decode_upright(image, limits)
    with upright:
        jpeg = _encode_jpeg(upright, limits)
        width, height = upright.size
    return CheckedPhoto(
        jpeg=jpeg,
        width=width,
        height=height,
        source_format=kind,
        source_width=source_size[0],
        source_height=source_size[1],
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _damaged() -> PhotoRejected:
    return PhotoRejected(
        "That photo couldn't be read: the file seems damaged or incomplete. Please try another copy.",
        reason="photo_damaged",
    )


def _open_header(data: bytes, kind: str, limits: PhotoLimits) -> Image.Image:
    """Open lazily (header only) and refuse pixel bombs, tiny and strip-shaped photos before any decoding."""
    try:
        # Pillow's own bomb check (Image.MAX_IMAGE_PIXELS) only warns up to twice its limit; ours, below
        # that limit, refuses first. Above twice its limit Pillow refuses while opening.
        image = Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[kind]])
    except Image.DecompressionBombError:
        raise _too_many_pixels(None, limits) from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise _damaged() from error
    width, height = image.size
    if width * height > limits.max_pixels:
        image.close()
        raise _too_many_pixels((width, height), limits)
    if min(width, height) < limits.min_short_side:
        image.close()
        raise PhotoRejected(
            f"That photo is too small ({width}×{height} pixels): it needs at least "
            f"{limits.min_short_side} pixels on its shorter side. Please send a larger photo.",
            reason="photo_too_small",
        )
    if max(width, height) > limits.max_aspect_ratio * min(width, height):
        image.close()
        raise PhotoRejected(
            f"That photo is too long and thin ({width}×{height} pixels). Please crop it to a portrait or "
            f"landscape shape, at most {limits.max_aspect_ratio:g} times longer than it is wide.",
            reason="photo_bad_shape",
        )
    return image


def _too_many_pixels(size: tuple[int, int] | None, limits: PhotoLimits) -> PhotoRejected:
    shown = f" ({size[0]}×{size[1]} pixels)" if size else ""
    return PhotoRejected(
        f"That image is too large{shown}: the limit is {limits.max_pixels / 1e6:.0f} megapixels. "
        "Please send a smaller photo (any phone photo fits).",
        reason="photo_too_many_pixels",
    )


def _decode_upright(image: Image.Image, limits: PhotoLimits) -> tuple[Image.Image, tuple[int, int]]:
    """Decode the first frame, apply EXIF orientation, flatten to RGB on white, scale to the output size.

    Returns the new image and the upload's size as displayed (after orientation).
    """
    width, height = image.size
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except (OSError, ValueError, SyntaxError):
        orientation = 1
    displayed = (height, width) if orientation in _TRANSPOSING_ORIENTATIONS else (width, height)
    if image.format == "JPEG":
        # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the photo is much larger than we keep.
        image.draft("RGB", (limits.output_long_side, limits.output_long_side))
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone relaxed Pillow globally; we still refuse partial photos
        raise RuntimeError("ImageFile.LOAD_TRUNCATED_IMAGES must stay False for photo checks")
    try:
        image.seek(0)  # the first frame of a GIF (or of an animated WebP)
        image.load()
        upright = ImageOps.exif_transpose(image)  # always a new image
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise _damaged() from error
    rgb = _flatten_rgb(upright)
    if rgb is not upright:
        upright.close()
    rgb.thumbnail((limits.output_long_side, limits.output_long_side), Image.Resampling.LANCZOS)
    return rgb, displayed


def _flatten_rgb(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited on white (what a viewer would show)."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        rgba.close()
        return background
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I"):
        # 16-bit greyscale (PNG "I;16") or 32-bit integer: Pillow's convert() clips at 255, which turns a
        # 16-bit photo almost entirely white. Scale the 16-bit range down instead.
        grey = np.asarray(image, dtype=np.uint32).clip(0, 65535) >> 8
        return Image.fromarray(grey.astype(np.uint8), "L").convert("RGB")
    return image.convert("RGB")


def _encode_jpeg(image: Image.Image, limits: PhotoLimits) -> bytes:
    """Baseline JPEG without metadata (no EXIF: orientation is already applied, GPS is private)."""
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=limits.jpeg_quality, optimize=True)
    return out.getvalue()
