"""The stills: the member's photo beside the last frame, and the thumbnail."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bot.media.framebuffer import KeptFrame
from bot.media.stills import before_after_png, thumbnail_jpeg
from tests.helpers import PHOTO


def test_before_after_puts_the_photo_beside_the_last_frame() -> None:
    width, height = 64, 112
    yuv = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
    frame = KeptFrame(1.0, 1.0, "s", width, height, yuv)
    png = before_after_png(PHOTO, frame, height=100)
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.height == 100
        with Image.open(io.BytesIO(PHOTO)) as photo:
            photo_width = round(photo.width * 100 / photo.height)
        assert image.width == photo_width + round(width * 100 / height)
        # The right part is the (grey) frame.
        assert image.getpixel((image.width - 1, 50)) == pytest.approx((128, 128, 128), abs=2)


def test_the_thumbnail_is_a_small_jpeg_of_the_last_frame() -> None:
    width, height = 360, 656
    yuv = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
    data = thumbnail_jpeg(KeptFrame(1.0, 1.0, "s", width, height, yuv), width=120)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and image.size == (120, round(656 * 120 / 360))
        assert image.getpixel((60, 100)) == pytest.approx((128, 128, 128), abs=3)
    small = thumbnail_jpeg(KeptFrame(1.0, 1.0, "s", 64, 112, yuv[: 112 * 3 // 2, :64].copy()), width=120)
    with Image.open(io.BytesIO(small)) as image:
        assert image.size == (64, 112)  # never upscaled
