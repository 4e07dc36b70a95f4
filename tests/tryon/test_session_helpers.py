"""Small pure parts of the session: platform usage errors in plain words, the before/after still."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.odyssey import (
    AccountSuspendedError,
    ConcurrentLimitReachedError,
    MonthlyLimitReachedError,
    OdysseyUsageError,
    RateLimitError,
)
from bot.tryon.framebuffer import KeptFrame
from bot.tryon.recordings import usage_error_message
from bot.tryon.session import before_after_png

PHOTO = (Path(__file__).parents[2] / "examples" / "astronaut.jpg").read_bytes()


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (
            MonthlyLimitReachedError("x", code="MONTHLY_LIMIT_REACHED", details={"reset_date": "2026-12-01"}),
            "resets on 2026-12-01",
        ),
        (ConcurrentLimitReachedError("x", code="CONCURRENT_LIMIT_REACHED"), "as many try-ons as its plan"),
        (AccountSuspendedError("x", code="ACCOUNT_SUSPENDED"), "suspended"),
        (RateLimitError("x", code="RATE_LIMITED", details={"retry_after_seconds": 30}), "about 30 seconds"),
        (OdysseyUsageError("x", code="SOMETHING_NEW"), "try again later"),
    ],
)
def test_usage_errors_in_plain_words(error: OdysseyUsageError, words: str) -> None:
    message = usage_error_message(error)
    assert words in message
    assert error.code not in message  # no codes or jargon for members


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
