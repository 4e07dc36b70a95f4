"""The engine's value types: session states and their transitions, end reasons, what a front end asks for."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.tryon.presenter import StatusChanged


class SessionState(enum.StrEnum):
    """Where a session is in its life; stored as text in the sessions table."""

    QUEUED = "queued"
    CONNECTING = "connecting"
    STREAMING = "streaming"
    ENDING = "ending"
    FINALISING = "finalising"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Left live by a crash and found on the next start.
    INTERRUPTED = "interrupted"


TERMINAL_STATES = frozenset(
    {SessionState.DONE, SessionState.FAILED, SessionState.CANCELLED, SessionState.INTERRUPTED}
)

# Stopped: the session only settles and fetches its recordings.
FINISHING_STATES = frozenset({SessionState.ENDING, SessionState.FINALISING})

ALLOWED_TRANSITIONS: Mapping[SessionState, frozenset[SessionState]] = {
    SessionState.QUEUED: frozenset({SessionState.CONNECTING, SessionState.CANCELLED, SessionState.FAILED}),
    SessionState.CONNECTING: frozenset({SessionState.STREAMING, SessionState.CANCELLED, SessionState.FAILED}),
    SessionState.STREAMING: frozenset({SessionState.ENDING, SessionState.FAILED}),
    SessionState.ENDING: frozenset({SessionState.FINALISING, SessionState.FAILED}),
    SessionState.FINALISING: frozenset({SessionState.DONE, SessionState.FAILED}),
    SessionState.DONE: frozenset(),
    SessionState.FAILED: frozenset(),
    SessionState.CANCELLED: frozenset(),
    SessionState.INTERRUPTED: frozenset(),
}


class InvalidTransition(RuntimeError):
    """A state change the table does not allow: a bug in the engine, never a member's doing."""


def check_transition(current: SessionState, new: SessionState) -> None:
    """Raise InvalidTransition unless `current -> new` is in ALLOWED_TRANSITIONS."""
    if new not in ALLOWED_TRANSITIONS[current]:
        raise InvalidTransition(f"{current} -> {new} is not allowed")


class EndReason(enum.StrEnum):
    """Why a session ended."""

    MEMBER = "member"
    IDLE = "idle"
    QUOTA = "quota"
    LIMIT = "limit"
    MODERATOR = "moderator"
    SHUTDOWN = "shutdown"
    CONNECTION_LOST = "connection_lost"


@dataclasses.dataclass(frozen=True)
class SessionRequest:
    """What a front end asks for: who, where, the checked photo and the first outfit."""

    guild_id: int
    user_id: int
    channel_id: int | None
    photo: bytes
    outfit: str
    role_ids: tuple[int, ...] = ()
    # Opaque JSON the front end wants back after a restart (e.g. the status message id).
    front_end: dict[str, Any] | None = None
    # Portrait (True) or landscape (False) stream; None: the engine's setting.
    portrait: bool | None = None
    # Set when `photo` is the member's kept photo: the hash of the upload it was made from (it is not kept
    # again, so its time is counted from that upload).
    kept_photo_sha256: str | None = None
    # Clips after each outfit (off: the member or the server chose none; snapshots still work).
    snippets: bool = True
    # Shared live from the start: streams are broadcast and a watch link is made (Watch live).
    watch: bool = False


@dataclasses.dataclass(frozen=True)
class StreamPhoto:
    """A photo that passed the checks: the bytes to stream and their hash for the store."""

    data: bytes
    sha256: str


@dataclasses.dataclass(frozen=True)
class SessionSummary:
    """A front end's read-only view of a queued or live session."""

    id: str
    guild_id: int
    user_id: int
    state: SessionState
    outfit: str
    streamed_seconds: float
    remaining_seconds: float
    # Stopped (by anyone): it only settles and fetches its recordings now.
    finishing: bool
    # The last status the session reported (None before its first).
    last_status: StatusChanged | None
