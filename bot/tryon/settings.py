"""Engine settings: every timer, limit and budget of the try-on engine in one typed place."""

from __future__ import annotations

import dataclasses
import math

MIB = 1024 * 1024
# A live session's frames must stay under this: the kept window plus one full-size decoded frame.
SESSION_FRAME_MEMORY_LIMIT_BYTES = 30 * MIB
# The largest stream the platform sends (704x1280 portrait) and one decoded yuv420p frame of it.
FULL_FRAME_SIZE = (704, 1280)
FULL_FRAME_BYTES = FULL_FRAME_SIZE[0] * FULL_FRAME_SIZE[1] * 3 // 2


@dataclasses.dataclass(frozen=True)
class EngineSettings:
    """Tunable limits of the session engine; the defaults match the Odyssey Free plan and Discord."""

    # Live sessions at once across the whole bot: the Odyssey plan's concurrency (Free: 5).
    slots: int = 5
    # Members waiting per guild before new requests are politely refused.
    queue_cap_per_guild: int = 10
    # End the session when the member has not sent a prompt for this long.
    idle_seconds: float = 90.0
    # The platform ends every stream after this long (`session_timeout`, then the connection drops).
    stream_cap_seconds: float = 150.0
    # Roll over to a fresh connection and stream this long before the cap, so the member never sees the cut.
    rollover_margin_seconds: float = 5.0
    # A member needs at least this much quota left to start.
    min_start_seconds: float = 5.0
    # A session never streams longer than this in total, whatever the quota says.
    max_session_seconds: float = 600.0
    # Portrait (704x1280) or landscape (1280x704) streams.
    portrait: bool = True
    # Snippets: how much of the stream after a prompt is acknowledged, and how it is encoded.
    snippet_seconds: float = 2.0
    snippet_fps: int = 12
    snippet_width: int = 360
    # Discord's upload limit for bots without boosts; the front end may pass a different budget per call.
    snippet_budget_bytes: int = 10 * MIB
    # Frames kept in the frame buffer, in seconds of stream.
    buffer_seconds: float = 6.0
    # The highlight video of the whole session (bot/media/highlight.py): frames sampled per second, at most
    # this many frames (a session longer than that becomes a time-lapse), their width, the JPEG bytes held
    # while streaming (its memory bound), the encoder's quality (H.264 CRF) and its largest upload.
    highlight_fps: int = 6
    highlight_max_frames: int = 90
    highlight_width: int = 360
    highlight_memory_bytes: int = 3 * MIB
    highlight_crf: int = 23
    highlight_budget_bytes: int = 8 * MIB
    # Network waits of the Odyssey client calls made by the engine.
    connect_timeout_seconds: float = 60.0
    start_timeout_seconds: float = 30.0
    ack_timeout_seconds: float = 15.0
    end_timeout_seconds: float = 10.0
    # How often streamed seconds are written to the store (a crash loses at most this much usage).
    heartbeat_seconds: float = 2.0
    # Recording polling after the end: first delay, growth factor, largest delay and overall limit.
    recording_poll_first_seconds: float = 0.5
    recording_poll_factor: float = 1.6
    recording_poll_max_seconds: float = 8.0
    recording_poll_limit_seconds: float = 120.0
    # During shutdown the wait for recordings is cut to this; links can be re-issued from the store later.
    shutdown_recording_poll_seconds: float = 10.0
    # Used for the estimated wait until real session durations have been observed.
    default_session_seconds: float = 120.0
    # How many recent session durations feed the estimated wait.
    duration_samples: int = 20

    def __post_init__(self) -> None:
        if self.slots < 1:
            raise ValueError("slots must be at least 1")
        if self.rollover_margin_seconds >= self.stream_cap_seconds:
            raise ValueError("rollover_margin_seconds must be shorter than stream_cap_seconds")
        if self.snippet_seconds <= 0 or self.snippet_fps < 1 or self.snippet_width < 16:
            raise ValueError("snippet settings must be positive")
        if self.buffer_seconds < self.snippet_seconds:
            raise ValueError("buffer_seconds must hold at least one snippet (snippet_seconds)")
        if self.highlight_fps < 1 or self.highlight_max_frames < 2 or self.highlight_width < 16:
            raise ValueError("highlight settings must be positive (at least 2 frames, 16 px wide)")
        if self.highlight_memory_bytes <= 0 or self.highlight_budget_bytes <= 0:
            raise ValueError("highlight_memory_bytes and highlight_budget_bytes must be positive")
        if self.frame_memory_bytes >= SESSION_FRAME_MEMORY_LIMIT_BYTES:
            raise ValueError(
                f"buffer_seconds x snippet_fps x snippet_width plus highlight_memory_bytes keep "
                f"{self.frame_memory_bytes / MIB:.1f} MiB of frames per session; the limit is "
                f"{SESSION_FRAME_MEMORY_LIMIT_BYTES / MIB:.0f} MiB"
            )

    @property
    def frame_memory_bytes(self) -> int:
        """Worst-case frame memory of one live session: the full window of portrait frames, one source, and
        the highlight reel (its JPEG bound plus the frame it is compressing)."""
        full_width, full_height = FULL_FRAME_SIZE
        width = min(self.snippet_width, full_width)
        height = math.ceil(full_height * width / full_width / 2) * 2
        frames = math.ceil(self.buffer_seconds * self.snippet_fps) + 1  # as FrameBuffer.max_frames
        kept_frame = width * height * 3 // 2
        return frames * kept_frame + FULL_FRAME_BYTES + self.highlight_memory_bytes + kept_frame

    @property
    def rollover_after_seconds(self) -> float:
        """Stream seconds after which a stream is replaced by a fresh one."""
        return self.stream_cap_seconds - self.rollover_margin_seconds
