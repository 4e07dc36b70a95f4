"""Received video: the cheap path (`FrameQueue` of `StreamFrame`) and the SDK-shaped RGB callback path."""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bot.odyssey.callbacks import Callback, CallbackRunner
from bot.odyssey.errors import OdysseyConnectionError
from bot.odyssey.models import VideoFrame

log = logging.getLogger(__name__)

DEFAULT_FRAME_QUEUE_SIZE = 4
_RTP_CLOCK_WRAP = 1 << 32


@dataclass(frozen=True)
class StreamFrame:
    """A decoded frame in its native pixel format, stamped with seconds since its stream's first frame."""

    frame: av.VideoFrame
    stream_seconds: float
    stream_id: str | None


class FrameQueue:
    """Bounded queue of decoded frames; when full the oldest frame is dropped (and counted)."""

    def __init__(self, maxsize: int = DEFAULT_FRAME_QUEUE_SIZE) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.dropped = 0
        self.delivered = 0
        self._frames: collections.deque[StreamFrame] = collections.deque()
        self._changed = asyncio.Event()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, frame: StreamFrame) -> None:
        """Add a frame without waiting; drops the oldest when full. Ignored once closed."""
        if self._closed:
            return
        if len(self._frames) >= self.maxsize:
            self._frames.popleft()
            self.dropped += 1
        self._frames.append(frame)
        self._changed.set()

    def get_nowait(self) -> StreamFrame | None:
        """The oldest queued frame, or None when empty."""
        if not self._frames:
            return None
        self.delivered += 1
        return self._frames.popleft()

    async def get(self) -> StreamFrame:
        """Wait for the next frame; OdysseyConnectionError once closed and empty (wrap in asyncio.timeout)."""
        while not self._frames:
            if self._closed:
                raise OdysseyConnectionError("Connection closed")
            self._changed.clear()
            await self._changed.wait()
        self.delivered += 1
        return self._frames.popleft()

    def close(self) -> None:
        """No more frames will come; waiting readers wake up."""
        self._closed = True
        self._changed.set()

    def __aiter__(self) -> FrameQueue:
        return self

    async def __anext__(self) -> StreamFrame:
        try:
            return await self.get()
        except OdysseyConnectionError:
            raise StopAsyncIteration from None


class StreamClock:
    """Stream-relative seconds from RTP pts deltas (random origin, 32-bit wrap); never goes backwards."""

    def __init__(self) -> None:
        self.stream_id: str | None = None
        self._last_pts: int | None = None
        self._seconds = 0.0
        self._restart = True

    def start_stream(self, stream_id: str | None) -> None:
        """The next frame is the first of a new stream (or of the idle period when None)."""
        self.stream_id = stream_id
        self._restart = True

    def stamp(self, pts: int | None, time_base: Fraction | None) -> float:
        if pts is not None and time_base is not None:
            if self._restart:
                self._seconds = 0.0
            elif self._last_pts is not None:
                delta = (pts - self._last_pts) % _RTP_CLOCK_WRAP
                if delta < _RTP_CLOCK_WRAP // 2:  # a larger delta is a reordered (earlier) frame
                    self._seconds += float(delta * time_base)
            self._last_pts = pts
        self._restart = False
        return self._seconds


class LatestFrameWorker:
    """Feeds `on_video_frame` with RGB frames converted in a worker thread, skipping frames when behind."""

    def __init__(self, callback: Callback, runner: CallbackRunner) -> None:
        self._callback = callback
        self._runner = runner
        self._latest: StreamFrame | None = None
        self._available = asyncio.Event()
        self.dropped = 0

    def offer(self, frame: StreamFrame) -> None:
        if self._latest is not None:
            self.dropped += 1
        self._latest = frame
        self._available.set()

    async def run(self) -> None:
        while True:
            await self._available.wait()
            self._available.clear()
            frame, self._latest = self._latest, None
            if frame is None:
                continue
            try:
                video_frame = await asyncio.to_thread(to_video_frame, frame)
            except (ValueError, av.error.FFmpegError) as exc:  # one bad frame must not stop the callbacks
                log.warning("frame conversion failed: %s", exc)
                continue
            await self._runner.call_and_wait(self._callback, video_frame)


def to_video_frame(frame: StreamFrame) -> VideoFrame:
    """The SDK's `VideoFrame` (RGB array); blocking, run it in a worker thread."""
    pixels: npt.NDArray[np.uint8] = frame.frame.to_ndarray(format="rgb24")  # type: ignore[assignment]
    pts, time_base = frame.frame.pts, frame.frame.time_base
    timestamp_ms = int(pts * time_base * 1000) if pts is not None and time_base is not None else 0
    return VideoFrame(
        data=pixels,
        width=int(pixels.shape[1]),
        height=int(pixels.shape[0]),
        timestamp_ms=timestamp_ms,
        stream_seconds=frame.stream_seconds,
        stream_id=frame.stream_id,
    )


async def pump_frames(
    track: MediaStreamTrack, clock: StreamClock, queue: FrameQueue, worker: LatestFrameWorker | None
) -> None:
    """Move decoded frames from the track into the queue (and the callback worker) until the track ends."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if not isinstance(frame, av.VideoFrame):
            continue
        stamped = StreamFrame(frame, clock.stamp(frame.pts, frame.time_base), clock.stream_id)
        queue.put(stamped)
        if worker is not None:
            worker.offer(stamped)
