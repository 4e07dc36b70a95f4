"""The before/after still: the member's photo beside the last frame."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bot.media.framebuffer import KeptFrame
from bot.media.stills import before_after_png
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
