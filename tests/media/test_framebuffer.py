"""FrameBuffer: sampling by stream time, bounded window, compact storage, off-loop scaling, roll-over."""

from __future__ import annotations

import asyncio
import io
import threading

import av
import numpy as np
import pytest
from PIL import Image

from bot.media import framebuffer
from bot.media.framebuffer import FrameBuffer, StreamFrameLike, scaled_size
from bot.odyssey import StreamFrame
from bot.tryon.settings import EngineSettings


def decoded(width: int = 64, height: int = 112, shade: int = 100) -> av.VideoFrame:
    rgb = np.full((height, width, 3), shade, np.uint8)
    rgb[: height // 2, :, 0] = 250
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


async def feed(buffer: FrameBuffer, fps: float, seconds: float, stream_id: str = "s1", start: float = 0.0):
    source = decoded()
    kept = []
    for i in range(round(fps * seconds)):
        result = await buffer.add(StreamFrame(source, start + i / fps, stream_id))
        if result is not None:
            kept.append(result)
    return kept


async def test_samples_24fps_source_at_12fps_by_stream_time() -> None:
    buffer = FrameBuffer(sample_fps=12, window_seconds=4)
    kept = await feed(buffer, fps=24, seconds=2)
    assert len(kept) == 24
    gaps = np.diff([k.timeline_seconds for k in kept])
    assert np.allclose(gaps, 1 / 12)
    assert buffer.skipped == 24


async def test_uneven_source_rate_averages_the_target_rate() -> None:
    buffer = FrameBuffer(sample_fps=12, window_seconds=4)
    kept = await feed(buffer, fps=30, seconds=3)
    assert 35 <= len(kept) <= 37
    assert max(np.diff([k.timeline_seconds for k in kept])) <= 0.1 + 1e-9


async def test_source_slower_than_target_keeps_every_frame() -> None:
    buffer = FrameBuffer(sample_fps=12, window_seconds=4)
    kept = await feed(buffer, fps=8, seconds=2)
    assert len(kept) == 16


async def test_window_is_bounded_in_time_count_and_bytes() -> None:
    buffer = FrameBuffer(sample_fps=12, window_seconds=2, max_width=32)
    await feed(buffer, fps=24, seconds=6)
    latest = buffer.latest()
    assert latest is not None
    frames = buffer.window(10)
    assert len(buffer) == len(frames) <= buffer.max_frames == 25
    assert frames[0].timeline_seconds >= latest.timeline_seconds - 2
    assert buffer.nbytes == sum(f.nbytes for f in frames) + 64 * 112 * 3 // 2
    assert all(f.yuv420p.shape == (56 * 3 // 2, 32) for f in frames)


async def test_window_and_since_select_recent_frames() -> None:
    buffer = FrameBuffer(sample_fps=12, window_seconds=6)
    await feed(buffer, fps=24, seconds=5)
    two_seconds = buffer.window(2)
    assert len(two_seconds) == 24
    assert two_seconds[-1] is buffer.latest()
    times = [f.timeline_seconds for f in buffer.since(4.0)]
    assert times and min(times) >= 4.0 and times == sorted(times)


async def test_frames_are_scaled_to_compact_even_sizes() -> None:
    assert scaled_size(704, 1280, 360) == (360, 654)
    assert scaled_size(100, 60, 360) == (100, 60)
    buffer = FrameBuffer(max_width=360)
    kept = await buffer.add(StreamFrame(decoded(704, 1280), 0.0, "s1"))
    assert kept is not None
    assert (kept.width, kept.height) == (360, 654)
    assert kept.yuv420p.dtype == np.uint8 and kept.yuv420p.flags["C_CONTIGUOUS"]
    rgb = kept.to_rgb()
    assert rgb.shape == (654, 360, 3)
    assert abs(int(rgb[10, 10, 0]) - 250) < 8 and abs(int(rgb[600, 10, 1]) - 100) < 8


async def test_scaling_runs_off_the_event_loop_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []
    real_scale = framebuffer.scale_into_yuv420p

    def recording_scale(frame: av.VideoFrame, out: np.ndarray) -> np.ndarray:
        threads.append(threading.get_ident())
        return real_scale(frame, out)

    monkeypatch.setattr(framebuffer, "scale_into_yuv420p", recording_scale)
    buffer = FrameBuffer()
    await feed(buffer, fps=12, seconds=0.5)
    assert threads and threading.get_ident() not in threads


async def test_frames_arriving_while_scaler_is_busy_are_dropped_not_queued() -> None:
    buffer = FrameBuffer(sample_fps=12)
    source = decoded()
    results = await asyncio.gather(*(buffer.add(StreamFrame(source, i / 12, "s1")) for i in range(5)))
    assert sum(r is not None for r in results) == 1
    assert buffer.dropped_busy == 4
    # Once the scaler is free again, the next due frame is kept.
    assert await buffer.add(StreamFrame(source, 5 / 12, "s1")) is not None


async def test_roll_over_continues_the_timeline_across_streams() -> None:
    buffer = FrameBuffer(sample_fps=12, window_seconds=6)
    first = await feed(buffer, fps=24, seconds=2, stream_id="a")
    second = await feed(buffer, fps=24, seconds=2, stream_id="b")
    assert second[0].stream_seconds == 0.0
    assert second[0].timeline_seconds == pytest.approx(first[-1].timeline_seconds + 1 / 12, abs=0.05)
    across = buffer.window(3)
    assert {f.stream_id for f in across} == {"a", "b"}
    times = [f.timeline_seconds for f in buffer.window(6)]
    assert times == sorted(times) and len(times) == 48


async def test_clear_restarts_the_timeline() -> None:
    buffer = FrameBuffer()
    await feed(buffer, fps=24, seconds=1, start=30.0)
    buffer.clear()
    assert len(buffer) == 0 and buffer.latest() is None and buffer.nbytes == 0
    kept = await feed(buffer, fps=24, seconds=1)
    assert kept[0].timeline_seconds == 0.0


async def test_snapshot_is_the_latest_frame_at_full_size() -> None:
    buffer = FrameBuffer(max_width=32)
    assert await buffer.snapshot() is None
    await buffer.add(StreamFrame(decoded(64, 112), 0.0, "s1"))
    png = await buffer.snapshot()
    assert png is not None
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (64, 112)
    jpeg = await buffer.snapshot("JPEG")
    assert jpeg is not None and Image.open(io.BytesIO(jpeg)).format == "JPEG"


def test_client_stream_frames_fit_the_buffer_protocol() -> None:
    offered: StreamFrameLike = StreamFrame(decoded(), 0.0, "s1")  # checked by mypy: the structural contract
    assert offered.stream_id == "s1"


async def test_a_frame_scaled_across_clear_is_discarded() -> None:
    buffer = FrameBuffer()
    adding = asyncio.create_task(buffer.add(StreamFrame(decoded(), 0.0, "s1")))
    await asyncio.sleep(0)  # the scale is now in its worker thread
    buffer.clear()
    assert await adding is None
    assert len(buffer) == 0


@pytest.mark.parametrize(("width", "height"), [(360, 654), (98, 178)])
def test_scaling_into_a_preallocated_array_matches_pyav(width: int, height: int) -> None:
    # Plane rows are padded in FFmpeg buffers (line_size > width); the copy must strip the padding.
    rgb = np.random.default_rng(0).integers(0, 256, (1280, 704, 3), dtype=np.uint8)
    source = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    expected = source.reformat(width, height, "yuv420p", interpolation="AREA").to_ndarray()
    out = np.empty((height * 3 // 2, width), np.uint8)
    assert np.array_equal(framebuffer.scale_into_yuv420p(source, out), expected)


async def test_a_live_session_buffer_stays_under_30_mb_with_the_engine_defaults() -> None:
    # Configured exactly as TryOnSession does, fed a full-size portrait stream for longer than its window.
    settings = EngineSettings()
    buffer = FrameBuffer(
        sample_fps=settings.snippet_fps,
        window_seconds=settings.buffer_seconds,
        max_width=settings.snippet_width,
    )
    source = decoded(704, 1280)
    source_fps = 24
    for index in range(round((settings.buffer_seconds + 2) * source_fps)):
        await buffer.add(StreamFrame(source, index / source_fps, "s1"))
    assert len(buffer) >= settings.buffer_seconds * settings.snippet_fps  # the window is full
    assert buffer.nbytes < 30 * 1024 * 1024
