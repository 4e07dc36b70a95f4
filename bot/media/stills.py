"""Still images cut from a session: the member's photo beside the last frame, and a small thumbnail."""

from __future__ import annotations

import io

import PIL.Image
import PIL.ImageOps

from bot.media.framebuffer import KeptFrame


def before_after_png(photo: bytes, latest: KeptFrame, height: int = 480) -> bytes:
    """The member's photo beside the last frame, same height, as PNG (CPU work: run it in a thread)."""
    with PIL.Image.open(io.BytesIO(photo)) as opened:
        before = PIL.ImageOps.exif_transpose(opened).convert("RGB")
    after = PIL.Image.fromarray(latest.to_rgb())
    scaled = [
        image.resize((max(1, round(image.width * height / image.height)), height))
        for image in (before, after)
    ]
    canvas = PIL.Image.new("RGB", (sum(image.width for image in scaled), height))
    canvas.paste(scaled[0], (0, 0))
    canvas.paste(scaled[1], (scaled[0].width, 0))
    out = io.BytesIO()
    canvas.save(out, format="PNG", optimize=False)
    return out.getvalue()


def thumbnail_jpeg(latest: KeptFrame, width: int = 240, quality: int = 85) -> bytes:
    """The last frame, `width` pixels wide (never upscaled), as JPEG (CPU work: run it in a thread)."""
    image = PIL.Image.fromarray(latest.to_rgb())
    if image.width > width:
        height = max(1, round(image.height * width / image.width))
        image = image.resize((width, height), PIL.Image.Resampling.BOX)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()
