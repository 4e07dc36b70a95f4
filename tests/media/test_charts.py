"""The usage chart: a PNG whose bars stand where the minutes are, and an axis that reads in round numbers."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageColor

from bot.media.charts import BAR, UsageChart, nice_ceiling, usage_chart_png

BAR_RGB = ImageColor.getrgb(BAR)


def bar_pixels(png: bytes, box: tuple[int, int, int, int]) -> int:
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        region = np.asarray(image.convert("RGB").crop(box))
        return int(np.all(region == BAR_RGB, axis=-1).sum())


@pytest.mark.parametrize(("value", "ceiling"), [(0, 1), (0.3, 0.5), (1, 1), (7, 10), (12, 20), (450, 500)])
def test_the_axis_ends_on_a_round_number(value: float, ceiling: float) -> None:
    assert nice_ceiling(value) == pytest.approx(ceiling)


def test_bars_stand_only_on_days_with_minutes_and_for_each_member() -> None:
    days = [(f"d{i}", 0.0) for i in range(30)]
    days[29] = ("today", 42.0)  # only the last day has usage
    png = usage_chart_png(UsageChart("t", days, [("alice", 40.0), ("bob", 2.0)]))
    with Image.open(io.BytesIO(png)) as image:
        width, height = image.size
    plot_top, plot_bottom = 80, 80 + 300
    assert bar_pixels(png, (0, plot_top, width // 2, plot_bottom)) == 0  # the first half of the month
    assert bar_pixels(png, (width - 60, plot_top, width, plot_bottom)) > 500  # the last day's bar
    members_area = bar_pixels(png, (0, plot_bottom + 40, width, height))
    assert members_area > 0


def test_an_empty_report_still_draws_a_chart() -> None:
    png = usage_chart_png(UsageChart("nothing yet", [], []))
    assert bar_pixels(png, (0, 0, 960, 600)) == 0
