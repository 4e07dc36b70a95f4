"""A bounded window of recent live-stream frames, sampled by stream time and scaled down off the loop."""

from __future__ import annotations

import asyncio
import io
import math
from collections import deque
from dataclasses import dataclass
from typing import Literal, Protocol

import av
import numpy as np
from av.video.reformatter import Interpolation
from PIL import Image

# libswscale's default yuv420p->RGB path upsamples chroma crudely; full-resolution chroma interpolation with
# accurate rounding costs ~1.5 ms more per 360 px frame and gains ~2.3 dB (0.8 dB in the final GIF).
YUV_TO_RGB_INTERPOLATION = int(Interpolation.AREA | Interpolation.FULL_CHR_H_INT | Interpolation.ACCURATE_RND)

# Half a sample period of slack keeps a 24 fps source sampled at exactly 12 fps despite float rounding.
_DUE_TOLERANCE = 0.25


class StreamFrameLike(Protocol):
    """What the buffer needs from `bot.odyssey.StreamFrame` (structural: media does not import the client)."""

    @property
    def frame(self) -> av.VideoFrame: ...

    @property
    def stream_seconds(self) -> float: ...

    @property
    def stream_id(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class KeptFrame:
    """One sampled frame, scaled down and stored as compact yuv420p planes in a single array."""

    timeline_seconds: float  # continuous across streams of one session (roll-over does not restart it)
    stream_seconds: float  # as received: seconds since the first frame of its own stream
    stream_id: str | None
    width: int
    height: int
    yuv420p: np.ndarray  # shape (height * 3 // 2, width), uint8, C-contiguous

    @property
    def nbytes(self) -> int:
        """Bytes of pixel data held by this frame."""
        return int(self.yuv420p.nbytes)

    def to_rgb(self, width: int | None = None, height: int | None = None) -> np.ndarray:
        """Convert (and optionally scale) to an RGB array; CPU work, call it from a worker thread."""
        frame = av.VideoFrame.from_ndarray(self.yuv420p, format="yuv420p")
        size = (width or self.width, height or self.height)
        rgb = frame.reformat(*size, "rgb24", interpolation=YUV_TO_RGB_INTERPOLATION)
        return np.ascontiguousarray(rgb.to_ndarray())


def scaled_size(width: int, height: int, max_width: int) -> tuple[int, int]:
    """Size within `max_width`, same aspect ratio, even sides (yuv420p needs them), never upscaled."""
    target_width = min(width, max_width)
    target_width -= target_width % 2
    target_height = round(height * target_width / width / 2) * 2
    return max(target_width, 2), max(target_height, 2)


def scale_into_yuv420p(frame: av.VideoFrame, out: np.ndarray) -> np.ndarray:
    """Scale into `out` (height * 3 // 2, width): the Y plane, then U, then V, each packed row after row."""
    width, height = out.shape[1], out.shape[0] * 2 // 3
    scaled = frame.reformat(width, height, "yuv420p", interpolation="AREA")
    flat = out.reshape(-1)
    offset = 0
    for plane, (plane_width, plane_height) in zip(
        scaled.planes, ((width, height), (width // 2, height // 2), (width // 2, height // 2)), strict=True
    ):
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane_height, plane.line_size)[
            :, :plane_width
        ]
        flat[offset : offset + plane_width * plane_height].reshape(plane_height, plane_width)[:] = rows
        offset += plane_width * plane_height
    return out


def _encode_image(frame: av.VideoFrame, image_format: str, quality: int) -> bytes:
    out = io.BytesIO()
    image = Image.fromarray(
        frame.reformat(format="rgb24", interpolation=YUV_TO_RGB_INTERPOLATION).to_ndarray()
    )
    if image_format == "JPEG":
        image.save(out, format="JPEG", quality=quality)
    else:
        image.save(out, format="PNG")
    return out.getvalue()


class FrameBuffer:
    """Recent frames of one live session: sampled at `sample_fps` by stream time, kept for `window_seconds`.

    Scaling runs in a worker thread (libswscale releases the GIL); while one frame is being scaled, further
    frames are dropped rather than queued, so a slow machine loses frame rate, never memory or loop time.
    Time continues across streams (roll-over) so a snippet can span the seam.
    """

    def __init__(
        self, *, sample_fps: float = 12.0, window_seconds: float = 6.0, max_width: int = 360
    ) -> None:
        if sample_fps <= 0 or window_seconds <= 0 or max_width < 2:
            raise ValueError("sample_fps and window_seconds must be positive, max_width at least 2")
        self.sample_fps = sample_fps
        self.window_seconds = window_seconds
        self.max_width = max_width
        self.max_frames = math.ceil(window_seconds * sample_fps) + 1
        self._frames: deque[KeptFrame] = deque(maxlen=self.max_frames)
        self._latest_source: av.VideoFrame | None = None
        self._scaling = False
        self._generation = 0  # bumped by clear(), so a scale in flight across it is discarded
        self.dropped_busy = 0
        self.skipped = 0
        self._reset_timeline()

    def _reset_timeline(self) -> None:
        self._stream_id: str | None = None
        self._last_stream_seconds: float | None = None
        self._offset = 0.0
        self._last_timeline: float | None = None
        self._next_due: float | None = None

    @property
    def period(self) -> float:
        """Seconds between kept frames."""
        return 1.0 / self.sample_fps

    def _timeline_seconds(self, stream_id: str | None, stream_seconds: float) -> float:
        new_segment = self._last_stream_seconds is not None and (
            stream_id != self._stream_id or stream_seconds < self._last_stream_seconds
        )
        if new_segment and self._last_timeline is not None:
            # A new stream starts one source frame after the old one ended, so time stays continuous.
            self._offset = self._last_timeline + self.period - stream_seconds
            self._next_due = None
        self._stream_id = stream_id
        self._last_stream_seconds = stream_seconds
        timeline = stream_seconds + self._offset
        self._last_timeline = timeline
        return timeline

    def _is_due(self, timeline: float) -> bool:
        due = self._next_due
        if due is not None and timeline < due - _DUE_TOLERANCE * self.period:
            return False
        if due is None or timeline > due + self.period:
            self._next_due = timeline + self.period  # first frame, or a gap: restart the schedule here
        else:
            self._next_due = due + self.period
        return True

    async def add(self, stream_frame: StreamFrameLike) -> KeptFrame | None:
        """Offer a decoded frame; returns the kept frame, or None if sampled out or the scaler was busy."""
        source = stream_frame.frame
        self._latest_source = source
        timeline = self._timeline_seconds(stream_frame.stream_id, stream_frame.stream_seconds)
        if self._scaling:
            self.dropped_busy += 1
            return None
        if not self._is_due(timeline):
            self.skipped += 1
            return None
        width, height = scaled_size(source.width, source.height, self.max_width)
        self._scaling = True
        generation = self._generation
        try:
            # Kept frames are allocated here on the loop thread: buffers allocated in worker threads land in
            # per-thread malloc arenas, which fragment and grew RSS well past the data actually held.
            planes = np.empty((height * 3 // 2, width), np.uint8)
            await asyncio.to_thread(scale_into_yuv420p, source, planes)
        finally:
            self._scaling = False
        if generation != self._generation:
            return None
        kept = KeptFrame(
            timeline_seconds=timeline,
            stream_seconds=stream_frame.stream_seconds,
            stream_id=stream_frame.stream_id,
            width=width,
            height=height,
            yuv420p=planes,
        )
        self._frames.append(kept)
        self._evict_older_than(timeline - self.window_seconds)
        return kept

    def _evict_older_than(self, cutoff: float) -> None:
        while self._frames and self._frames[0].timeline_seconds < cutoff:
            self._frames.popleft()

    def window(self, seconds: float) -> list[KeptFrame]:
        """The kept frames of the most recent `seconds` (ending at the latest kept frame), oldest first."""
        if not self._frames:
            return []
        # A clip of N seconds at F fps holds N*F frames, so the bound is exclusive at the old end.
        return self.since(self._frames[-1].timeline_seconds - seconds + 0.5 * self.period)

    def since(self, timeline_seconds: float) -> list[KeptFrame]:
        """Kept frames at or after `timeline_seconds` on the session timeline, oldest first."""
        return [kept for kept in self._frames if kept.timeline_seconds >= timeline_seconds]

    def latest(self) -> KeptFrame | None:
        """The most recent kept frame, if any."""
        return self._frames[-1] if self._frames else None

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def nbytes(self) -> int:
        """Pixel bytes held: kept frames plus the full-size latest source frame kept for snapshots."""
        held = sum(kept.nbytes for kept in self._frames)
        if self._latest_source is not None:
            held += sum(plane.buffer_size for plane in self._latest_source.planes)
        return held

    def clear(self) -> None:
        """Forget every frame and restart the timeline (end of a session; roll-over needs no clear)."""
        self._generation += 1
        self._frames.clear()
        self._latest_source = None
        self._reset_timeline()

    async def snapshot(self, image_format: Literal["PNG", "JPEG"] = "PNG", quality: int = 92) -> bytes | None:
        """The latest received frame at full size as PNG or JPEG bytes, or None before the first frame."""
        source = self._latest_source
        if source is None:
            return None
        return await asyncio.to_thread(_encode_image, source, image_format, quality)
