"""The engine's output seam: a Presenter receives small immutable events about one try-on session.

The Discord cog implements it with one throttled status message per session; the console demo prints and
writes files. Both get exactly the same events from the same engine code.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Literal, Protocol

from bot.tryon.errors import TryOnError

if TYPE_CHECKING:
    from bot.tryon.models import SessionState


BotRestart = Literal["handing_over", "taken_back"]


@dataclasses.dataclass(frozen=True)
class StatusChanged:
    """The session moved to a new state, or its queue position / progress changed."""

    session_id: str
    state: SessionState
    elapsed_seconds: float
    outfit: str | None
    queue_position: int | None = None
    estimated_wait_seconds: float | None = None
    # True right after a roll-over to a fresh stream: the front end may say "continuing".
    continuing: bool = False
    # Seconds of streaming left before the session ends on its own (quota or session limit).
    remaining_seconds: float | None = None
    # Why the session ended (for ending/done/failed/cancelled): "member", "idle", "quota", ...
    end_reason: str | None = None
    # While connecting: seconds spent waiting for the platform to free a streamer (HTTP 503 queue).
    platform_wait_seconds: float | None = None
    # The bot restarts while the session streams on a worker: "handing_over" is its last status before it
    # stops, "taken_back" its first after the restarted bot took the session back.
    bot_restart: BotRestart | None = None
    # Shared live: the viewer page's link and how many pages are open on it (set by the engine's
    # WatchingPresenter, never by the session itself).
    watch_url: str | None = None
    viewers: int | None = None


@dataclasses.dataclass(frozen=True)
class SnippetReady:
    """A short animated clip (GIF or MP4) of the stream right after an outfit was applied."""

    session_id: str
    data: bytes
    filename: str
    caption: str
    outfit: str
    stream_seconds: float


@dataclasses.dataclass(frozen=True)
class BroadcastReady:
    """A stream part runs in broadcast mode: spectators join it over WHEP with this URL and token."""

    session_id: str
    stream_id: str | None
    webrtc_url: str
    # Lets anyone holding it watch this stream part (nothing more); never shown in Discord.
    spectator_token: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class SnapshotReady:
    """A still image of the stream's current frame."""

    session_id: str
    data: bytes
    filename: str
    caption: str


@dataclasses.dataclass(frozen=True)
class RecordingLinks:
    """Presigned links of one stream's recording; they expire after about an hour."""

    stream_id: str
    video_url: str | None
    preview_url: str | None
    thumbnail_url: str | None
    events_url: str | None
    duration_seconds: float | None


@dataclasses.dataclass(frozen=True)
class Highlight:
    """A short H.264 MP4 of the whole session, every outfit in turn, made to fit the upload budget."""

    data: bytes
    duration_seconds: float
    width: int
    height: int
    # Outfits it shows (one chapter each).
    outfits: int


@dataclasses.dataclass(frozen=True)
class RecordingReady:
    """The results of a finished session: recording links (one entry per stream), highlight and stills.

    The links expire; the highlight and stills are bytes to keep (upload them: they never expire).
    """

    session_id: str
    recordings: tuple[RecordingLinks, ...]
    # A PNG with the member's photo beside the last frame, when both were available.
    before_after_png: bytes | None = None
    # True when offered after a crash or restart rather than at a normal end.
    recovered: bool = False
    # The highlight video (None when no frames were kept, e.g. after a restart, or it did not fit).
    highlight: Highlight | None = None
    # A small JPEG of the last frame.
    thumbnail_jpeg: bytes | None = None


@dataclasses.dataclass(frozen=True)
class ErrorReported:
    """Something went wrong: a member-facing `TryOnError`, or an unexpected failure with an id for logs."""

    session_id: str | None
    message: str
    error: TryOnError | None = None
    # Set for unexpected errors: quote it to find the traceback in the logs.
    error_id: str | None = None


class Presenter(Protocol):
    """Receives the events of one session; every method must return quickly and never raise on purpose."""

    # The most bytes one message's files may have to be shown here (e.g. the upload limit): a snippet, or
    # the highlight with the stills of the final message. None: the engine's own budgets.
    @property
    def upload_budget_bytes(self) -> int | None:
        """The byte budget of one message's files for this front end."""

    async def status_changed(self, event: StatusChanged) -> None:
        """The state, position or progress changed."""

    async def snippet_ready(self, event: SnippetReady) -> None:
        """A snippet of the newest outfit is ready to show."""

    async def snapshot_ready(self, event: SnapshotReady) -> None:
        """A requested still image is ready."""

    async def broadcast_ready(self, event: BroadcastReady) -> None:
        """A stream part is broadcast (the session was shared live)."""

    async def recording_ready(self, event: RecordingReady) -> None:
        """The recording links are ready."""

    async def error(self, event: ErrorReported) -> None:
        """Something failed; `event.message` is safe to show to the member."""
