"""The highlight reel: JPEG frames true to their planes, sampling per outfit, thinning within its bounds, and
an H.264 MP4 of it from the snippet encoder's process pool."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bot.media.framebuffer import KeptFrame
from bot.media.highlight import HighlightReel, ReelFrame, jpeg_to_yuv420p, yuv420p_to_jpeg
from bot.media.snippets import SnippetEncoder
from tests.helpers import mp4_video


def planes(width: int, height: int, seed: int = 0) -> np.ndarray:
    """yuv420p planes of a smooth picture with some texture, packed as KeptFrame keeps them."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    luma = (60 + 120 * xs / width + 40 * np.sin(ys / 7) + rng.normal(0, 2, (height, width))).clip(0, 255)
    chroma = width * height // 4
    u = np.full(chroma, 100, np.uint8) + (np.arange(chroma) % 40).astype(np.uint8)
    v = np.full(chroma, 160, np.uint8)
    packed = np.concatenate([luma.astype(np.uint8).reshape(-1), u, v])
    return packed.reshape(height * 3 // 2, width)


def kept(timeline: float, width: int = 64, height: int = 112, seed: int = 0) -> KeptFrame:
    return KeptFrame(timeline, timeline, "s1", width, height, planes(width, height, seed))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float(10 * np.log10(255**2 / mse))


async def feed(reel: HighlightReel, seconds: float, fps: float = 12.0, start: float = 0.0) -> None:
    for index in range(round(seconds * fps)):
        await reel.add(kept(start + index / fps, seed=index % 5))


def test_jpeg_keeps_the_planes_without_a_colour_round_trip() -> None:
    original = planes(96, 176)
    data = yuv420p_to_jpeg(original, 96, 176, quality=85)
    assert data[:2] == b"\xff\xd8" and len(data) < original.nbytes / 4
    decoded = jpeg_to_yuv420p(data)
    assert decoded.shape == original.shape and decoded.dtype == np.uint8
    assert psnr(decoded, original) > 38


async def test_samples_each_outfit_at_its_rate() -> None:
    reel = HighlightReel(fps=6, max_frames=100, max_width=64)
    reel.begin_chapter("red coat")
    await feed(reel, seconds=2)
    reel.begin_chapter("blue jacket")
    await feed(reel, seconds=1, start=2.0)
    assert len(reel) == 18 and reel.outfits == 2
    times = [frame.timeline_seconds for frame in reel.frames()]
    assert np.allclose(np.diff(times), 1 / 6)
    assert all(isinstance(frame, ReelFrame) and frame.width == 64 for frame in reel.frames())
    assert reel.cpu_seconds > 0


async def test_an_outfit_changed_before_any_frame_is_one_chapter() -> None:
    reel = HighlightReel(fps=6)
    reel.begin_chapter("red coat")
    reel.begin_chapter("blue jacket")
    await feed(reel, seconds=1)
    assert reel.outfits == 1


async def test_long_sessions_thin_into_an_even_time_lapse_within_the_frame_bound() -> None:
    reel = HighlightReel(fps=6, max_frames=20, max_width=64)
    reel.begin_chapter("short look")
    await feed(reel, seconds=1)  # 6 frames
    reel.begin_chapter("long look")
    await feed(reel, seconds=20, start=1.0)
    assert len(reel) <= 20
    frames = reel.frames()
    first = [f for f in frames if f.timeline_seconds < 1.0]
    long_look = [f for f in frames if f.timeline_seconds >= 1.0]
    # The fullest chapter pays: the short one keeps its frames, the long one covers all 20 s evenly.
    assert len(first) >= 3
    gaps = np.diff([f.timeline_seconds for f in long_look])
    assert long_look[0].timeline_seconds < 2.5 and long_look[-1].timeline_seconds > 19.0
    assert gaps.max() <= 2 * gaps.min() + 1e-9


async def test_the_byte_bound_holds_whatever_the_frames_weigh() -> None:
    one = len(yuv420p_to_jpeg(planes(64, 112), 64, 112))
    reel = HighlightReel(fps=12, max_frames=1000, max_bytes=one * 10, max_width=64)
    peak = 0
    for index in range(120):
        await reel.add(kept(index / 12, seed=index % 5))
        peak = max(peak, reel.nbytes)
    assert peak <= reel.max_bytes
    assert reel.nbytes == sum(len(frame.jpeg) for frame in reel.frames())
    assert len(reel) >= 5


async def test_many_outfits_keep_the_first_look_and_the_latest() -> None:
    reel = HighlightReel(fps=6, max_frames=4, max_width=64)
    for number in range(10):
        reel.begin_chapter(f"outfit {number}")
        await reel.add(kept(float(number)))
    assert len(reel) <= 4
    times = [frame.timeline_seconds for frame in reel.frames()]
    assert times[0] == 0.0 and times[-1] == 9.0


async def test_frames_wider_than_the_reel_are_scaled_down() -> None:
    reel = HighlightReel(fps=6, max_width=32)
    frame = await reel.add(kept(0.0, width=64, height=112))
    assert frame is not None and (frame.width, frame.height) == (32, 56)
    assert jpeg_to_yuv420p(frame.jpeg).shape == (56 * 3 // 2, 32)


async def test_clear_forgets_everything() -> None:
    reel = HighlightReel(fps=6)
    await feed(reel, seconds=1)
    reel.clear()
    assert len(reel) == 0 and reel.nbytes == 0 and reel.frames() == []


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        HighlightReel(max_frames=1)
    with pytest.raises(ValueError):
        HighlightReel(max_bytes=0)


async def test_the_reel_encodes_as_h264_mp4_within_the_budget() -> None:
    reel = HighlightReel(fps=6, max_width=64)
    reel.begin_chapter("red coat")
    await feed(reel, seconds=2)
    reel.begin_chapter("blue jacket")
    await feed(reel, seconds=2, start=2.0)
    frames = reel.frames()
    async with SnippetEncoder() as encoder:
        clip = await encoder.encode_mp4(frames, fps=reel.fps, budget_bytes=200_000, max_width=64)
        with pytest.raises(ValueError):
            mixed: list[Any] = [*frames, kept(9.0)]
            await encoder.encode_mp4(mixed, fps=6)
    assert clip.kind == "mp4" and clip.frame_count == len(frames) == 24 and clip.duration_seconds == 4.0
    assert mp4_video(clip.data) == ("h264", 64, 112, 24)


async def test_frames_a_little_early_do_not_speed_the_rate_up() -> None:
    # A source at 7.7 fps: each frame is within the tolerance of the next due time, but the schedule holds.
    reel = HighlightReel(fps=6, max_frames=1000, max_width=64)
    for index in range(100):
        await reel.add(kept(index * 0.13))
    assert len(reel) == pytest.approx(99 * 0.13 * 6, abs=2)
