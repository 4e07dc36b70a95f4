"""FrameQueue (bounded, drop-oldest, closes) and StreamClock (pts deltas, wrap, monotonic)."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import av
import pytest

from bot.odyssey import FrameQueue, OdysseyConnectionError, StreamFrame
from bot.odyssey.frames import StreamClock, to_video_frame

TB = Fraction(1, 90000)


def frame(n: int) -> StreamFrame:
    return StreamFrame(av.VideoFrame(16, 16, "yuv420p"), float(n), None)


async def test_full_queue_drops_the_oldest() -> None:
    queue = FrameQueue(maxsize=2)
    for n in range(5):
        queue.put(frame(n))
    assert queue.dropped == 3
    assert [(await queue.get()).stream_seconds for _ in range(2)] == [3.0, 4.0]


async def test_get_waits_and_close_ends_iteration() -> None:
    queue = FrameQueue()
    waiter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put(frame(1))
    assert (await waiter).stream_seconds == 1.0
    queue.put(frame(2))
    queue.close()
    queue.put(frame(3))  # ignored after close
    assert [f.stream_seconds async for f in queue] == [2.0]
    with pytest.raises(OdysseyConnectionError):
        await queue.get()


async def test_close_wakes_a_waiting_reader() -> None:
    queue = FrameQueue()
    waiter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.close()
    with pytest.raises(OdysseyConnectionError):
        await waiter


def test_stream_clock_counts_from_each_stream_start_and_survives_wrap() -> None:
    clock = StreamClock()
    origin = (1 << 32) - 3000  # just before the 32-bit RTP wrap
    assert clock.stamp(origin, TB) == 0.0
    assert clock.stamp(origin + 3000, TB) == pytest.approx(3000 / 90000)
    assert clock.stamp((origin + 6000) % (1 << 32), TB) == pytest.approx(6000 / 90000)
    # A reordered (older) frame does not go backwards.
    assert clock.stamp((origin + 3000) % (1 << 32), TB) == pytest.approx(6000 / 90000)
    clock.start_stream("s1")
    assert clock.stamp(123, TB) == 0.0
    assert clock.stamp(123 + 45000, TB) == pytest.approx(0.5)
    assert clock.stream_id == "s1"


def test_video_frame_conversion_is_rgb() -> None:
    raw = av.VideoFrame(32, 16, "yuv420p")
    raw.pts, raw.time_base = 90000, TB
    video = to_video_frame(StreamFrame(raw, 1.5, "s"))
    assert video.data.shape == (16, 32, 3) and (video.width, video.height) == (32, 16)
    assert video.timestamp_ms == 1000 and video.stream_seconds == 1.5 and video.stream_id == "s"
