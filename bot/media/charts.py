"""The usage chart of `/tryonadmin usage`: minutes per day and the top members, drawn with Pillow as a PNG.

Pillow is already a dependency and a bar chart is a few rectangles and labels; CPU work all the same, so
callers run `usage_chart_png` off the event loop (asyncio.to_thread).
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

WIDTH = 960
MARGIN = 24
AXIS_WIDTH = 56  # room for the minutes on the left of the daily bars
DAYS_HEIGHT = 300
MEMBER_ROW = 22
NAME_WIDTH = 200
BACKGROUND = "#ffffff"
INK = "#23272a"
FAINT = "#c9cdd2"
BAR = "#5865f2"
NAME_CHARS = 24


@dataclasses.dataclass(frozen=True)
class UsageChart:
    """What to draw: a title, (label, minutes) per day oldest first, (name, minutes) per top member."""

    title: str
    days: Sequence[tuple[str, float]]
    members: Sequence[tuple[str, float]]


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (an axis maximum); 1 for nothing."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return float(next(step * power for step in (1, 2, 5, 10) if step * power >= value))


def usage_chart_png(chart: UsageChart) -> bytes:
    """The chart as PNG bytes (CPU work: run it in a thread)."""
    font = ImageFont.load_default(size=14)
    small = ImageFont.load_default(size=12)
    days_top = MARGIN + 56
    members_top = days_top + DAYS_HEIGHT + 48
    height = members_top + 28 + MEMBER_ROW * max(1, len(chart.members)) + MARGIN
    image = Image.new("RGB", (WIDTH, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, MARGIN), chart.title, fill=INK, font=ImageFont.load_default(size=18))
    _draw_days(draw, chart.days, days_top, font, small)
    _draw_members(draw, chart.members, members_top, font)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _draw_days(
    draw: ImageDraw.ImageDraw,
    days: Sequence[tuple[str, float]],
    top: int,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    small: ImageFont.FreeTypeFont | ImageFont.ImageFont,
) -> None:
    """Minutes per day as vertical bars over a labelled axis, gridlines at quarters of the maximum."""
    left, right = MARGIN + AXIS_WIDTH, WIDTH - MARGIN
    bottom = top + DAYS_HEIGHT
    ceiling = nice_ceiling(max((minutes for _, minutes in days), default=0.0))
    for quarter in range(5):
        y = bottom - DAYS_HEIGHT * quarter / 4
        draw.line([(left, y), (right, y)], fill=FAINT, width=1)
        draw.text((MARGIN, y - 8), f"{ceiling * quarter / 4:g}", fill=INK, font=small)
    draw.text((MARGIN, top - 22), "minutes", fill=INK, font=small)
    if not days:
        return
    slot = (right - left) / len(days)
    for index, (label, minutes) in enumerate(days):
        x0 = left + index * slot + slot * 0.15
        x1 = left + (index + 1) * slot - slot * 0.15
        if minutes > 0:
            draw.rectangle([(x0, bottom - DAYS_HEIGHT * minutes / ceiling), (x1, bottom)], fill=BAR)
        if index % 5 == 0 or index == len(days) - 1:
            draw.text((x0, bottom + 6), label, fill=INK, font=small)
    draw.line([(left, bottom), (right, bottom)], fill=INK, width=1)
    draw.text((left, bottom + 24), "UTC days", fill=INK, font=font)


def _draw_members(
    draw: ImageDraw.ImageDraw,
    members: Sequence[tuple[str, float]],
    top: int,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
) -> None:
    """The top members as horizontal bars, longest first, with their minutes."""
    draw.text((MARGIN, top), "Top members (minutes)", fill=INK, font=font)
    if not members:
        draw.text((MARGIN, top + 28), "nobody yet", fill=INK, font=font)
        return
    longest = max(minutes for _, minutes in members) or 1.0
    left = MARGIN + NAME_WIDTH
    span = WIDTH - MARGIN - left - 80
    for index, (name, minutes) in enumerate(members):
        y = top + 28 + index * MEMBER_ROW
        shown = name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"
        draw.text((MARGIN, y), shown, fill=INK, font=font)
        end = left + span * minutes / longest
        if minutes > 0:
            draw.rectangle([(left, y + 2), (end, y + MEMBER_ROW - 6)], fill=BAR)
        draw.text((end + 6, y), f"{minutes:.1f}", fill=INK, font=font)
