"""The bot <-> worker wire format: subjects, and each message as a kind, JSON fields and optional bytes.

A message travels as NATS headers (`Tryon-Kind`, `Tryon-Fields` with the JSON) and a payload holding only
its bytes (a snippet, a still, the photo), so a 10 MiB GIF is sent as it is, never base64'd.

Commands are request/reply with deadlines: `<prefix>.worker.<id>.start` (accept or refuse a session) and
`<prefix>.session.<sid>.<outfit|snapshot|share|stop|status>`. Events go from the worker to the bot through
the JetStream stream `<prefix>_events` on `<prefix>.events.<sid>`: stored until the bot acknowledges them,
so neither a restart of the bot nor of NATS loses one. Each carries `Nats-Msg-Id` = `<sid>:<seq>`, so a
publish retried after a lost acknowledgement is stored once.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from bot.tryon.errors import TryOnError
from bot.tryon.models import SessionRequest, SessionState
from bot.tryon.presenter import (
    BroadcastReady,
    ErrorReported,
    RecordingLinks,
    RecordingReady,
    SnapshotReady,
    SnippetReady,
    StatusChanged,
)
from bot.tryon.settings import EngineSettings
from bot.workers.settings import WorkerSettings

KIND = "Tryon-Kind"
FIELDS = "Tryon-Fields"


class ProtocolError(ValueError):
    """A message that does not follow this wire format."""


@dataclasses.dataclass(frozen=True)
class Message:
    """One command, reply or event: what it is, its JSON fields, its bytes."""

    kind: str
    fields: dict[str, Any] = dataclasses.field(default_factory=dict)
    data: bytes = b""

    def headers(self) -> dict[str, str]:
        """The NATS headers carrying kind and fields (JSON is ASCII-only: safe in a header)."""
        return {KIND: self.kind, FIELDS: json.dumps(self.fields, separators=(",", ":"))}

    @classmethod
    def parse(cls, headers: dict[str, str] | None, data: bytes) -> Message:
        """The message of a received NATS message; ProtocolError if it is not one."""
        if not headers or KIND not in headers:
            raise ProtocolError("no Tryon-Kind header")
        try:
            fields = json.loads(headers.get(FIELDS) or "{}")
        except json.JSONDecodeError as error:
            raise ProtocolError(f"bad Tryon-Fields: {error}") from error
        if not isinstance(fields, dict):
            raise ProtocolError("Tryon-Fields is not an object")
        return cls(headers[KIND], fields, data)


# ----- subjects --------------------------------------------------------------------------------------------


def start_subject(settings: WorkerSettings, worker_id: str) -> str:
    """Where a worker takes start requests."""
    return settings.subject("worker", worker_id, "start")


def command_subject(settings: WorkerSettings, session_id: str, command: str) -> str:
    """Where the worker running a session takes `outfit`, `snapshot` and `stop`."""
    return settings.subject("session", session_id, command)


def events_subject(settings: WorkerSettings, session_id: str) -> str:
    """The subject of a session's events in the events stream."""
    return settings.subject("events", session_id)


def events_stream(settings: WorkerSettings) -> str:
    """The JetStream stream holding every session's events until the bot acknowledges them."""
    return f"{settings.subject_prefix}_events"


# ----- the start command ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StartCommand:
    """A checked, admitted session for a worker to run: the request, its limits and the engine settings."""

    session_id: str
    request: SessionRequest
    allowance_seconds: float
    idle_seconds: float | None
    pending_prompt_ids: tuple[int, ...]
    upload_budget_bytes: int | None
    settings: EngineSettings

    def to_message(self) -> Message:
        """The `start` request (the photo as the payload)."""
        request = self.request
        return Message(
            "start",
            {
                "session_id": self.session_id,
                "guild_id": request.guild_id,
                "user_id": request.user_id,
                "channel_id": request.channel_id,
                "outfit": request.outfit,
                "portrait": request.portrait,
                "watch": request.watch,
                "allowance_seconds": self.allowance_seconds,
                "idle_seconds": self.idle_seconds,
                "pending_prompt_ids": list(self.pending_prompt_ids),
                "upload_budget_bytes": self.upload_budget_bytes,
                "settings": dataclasses.asdict(self.settings),
            },
            request.photo,
        )

    @classmethod
    def from_message(cls, message: Message) -> StartCommand:
        """Parse a `start` request; ProtocolError if a field is missing or wrong."""
        f = message.fields
        try:
            request = SessionRequest(
                guild_id=int(f["guild_id"]),
                user_id=int(f["user_id"]),
                channel_id=None if f["channel_id"] is None else int(f["channel_id"]),
                photo=message.data,
                outfit=str(f["outfit"]),
                portrait=f["portrait"],
                watch=bool(f.get("watch", False)),  # absent from a bot of an earlier version
            )
            return cls(
                session_id=str(f["session_id"]),
                request=request,
                allowance_seconds=float(f["allowance_seconds"]),
                idle_seconds=None if f["idle_seconds"] is None else float(f["idle_seconds"]),
                pending_prompt_ids=tuple(int(i) for i in f["pending_prompt_ids"]),
                upload_budget_bytes=f["upload_budget_bytes"],
                settings=EngineSettings(**f["settings"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ProtocolError(f"bad start command: {error!r}") from error


# ----- presenter events ------------------------------------------------------------------------------------


def status_message(event: StatusChanged) -> Message:
    """A status change as an event."""
    return Message("status", dataclasses.asdict(event))


def status_from(message: Message) -> StatusChanged:
    """The status change an event carries."""
    fields = dict(message.fields)
    fields["state"] = SessionState(fields["state"])
    return StatusChanged(**fields)


def snippet_message(event: SnippetReady) -> Message:
    """A snippet as an event (the clip as the payload)."""
    fields = {k: v for k, v in dataclasses.asdict(event).items() if k != "data"}
    return Message("snippet", fields, event.data)


def snippet_from(message: Message) -> SnippetReady:
    """The snippet an event carries."""
    return SnippetReady(data=message.data, **message.fields)


def broadcast_message(event: BroadcastReady) -> Message:
    """A stream part's broadcast details as an event."""
    return Message("broadcast", dataclasses.asdict(event))


def broadcast_from(message: Message) -> BroadcastReady:
    """The broadcast details an event carries."""
    f = message.fields
    return BroadcastReady(
        session_id=str(f["session_id"]),
        stream_id=None if f["stream_id"] is None else str(f["stream_id"]),
        webrtc_url=str(f["webrtc_url"]),
        spectator_token=str(f["spectator_token"]),
    )


def snapshot_message(event: SnapshotReady) -> Message:
    """A still as an event (the PNG as the payload)."""
    fields = {k: v for k, v in dataclasses.asdict(event).items() if k != "data"}
    return Message("snapshot", fields, event.data)


def snapshot_from(message: Message) -> SnapshotReady:
    """The still an event carries."""
    return SnapshotReady(data=message.data, **message.fields)


def recording_message(event: RecordingReady) -> Message:
    """The recording links as an event (the before/after still as the payload)."""
    fields = {
        "session_id": event.session_id,
        "recordings": [dataclasses.asdict(links) for links in event.recordings],
        "recovered": event.recovered,
        "has_still": event.before_after_png is not None,
    }
    return Message("recording", fields, event.before_after_png or b"")


def recording_from(message: Message) -> RecordingReady:
    """The recording links an event carries."""
    fields = message.fields
    return RecordingReady(
        session_id=fields["session_id"],
        recordings=tuple(RecordingLinks(**links) for links in fields["recordings"]),
        before_after_png=message.data if fields["has_still"] else None,
        recovered=fields["recovered"],
    )


def error_message(event: ErrorReported) -> Message:
    """An error report as an event (a member-facing TryOnError as its message and reason)."""
    error = event.error
    return Message(
        "error",
        {
            "session_id": event.session_id,
            "message": event.message,
            "error_id": event.error_id,
            "error_reason": None if error is None else error.reason,
            "error_message": None if error is None else error.message,
        },
    )


def error_from(message: Message) -> ErrorReported:
    """The error report an event carries."""
    f = message.fields
    error = None
    if f["error_reason"] is not None:
        error = TryOnError(f["error_message"], reason=f["error_reason"])
    return ErrorReported(f["session_id"], f["message"], error, f["error_id"])
