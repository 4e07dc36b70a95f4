"""The bot <-> worker wire format: subjects, and each message as a kind, JSON fields and optional bytes.

A message travels as NATS headers (`Tryon-Kind`, `Tryon-Fields` with the JSON) and a payload holding only
its bytes (a snippet, a still, the photo), so a 10 MiB GIF is sent as it is, never base64'd. A message with
several files (the recording event: highlight MP4, before/after PNG, thumbnail) carries them one after
another in the payload, their sizes in the fields.

Commands are request/reply with deadlines: `<prefix>.worker.<id>.start` (accept or refuse a session; the
worker claims it first, see `claims.py`) and `<prefix>.session.<sid>.<outfit|snapshot|share|stop|status>`.
Events go from the worker to the bot through the JetStream stream `<prefix>_events` on
`<prefix>.events.<sid>`: stored until the bot acknowledges them, so neither a restart of the bot nor of NATS
loses one. Each carries `Nats-Msg-Id` = `<sid>:<seq>`, so a publish retried after a lost acknowledgement is
stored once, and the bot applies each event once (`feed.py`).
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
    Highlight,
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
EVENT_ID = "Nats-Msg-Id"


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


def event_id(session_id: str, sequence: int) -> str:
    """The `Nats-Msg-Id` of a session's event number `sequence` (1, 2, ... in the order made)."""
    return f"{session_id}:{sequence}"


def event_sequence(headers: dict[str, str] | None) -> int | None:
    """The sequence number in an event's `Nats-Msg-Id`; None if it has none."""
    _, _, number = (headers or {}).get(EVENT_ID, "").rpartition(":")
    return int(number) if number.isdigit() else None


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
    # The worker claims the session only over this revision of its claim (0: no claim may exist yet).
    claim_revision: int = 0

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
                "snippets": request.snippets,
                "watch": request.watch,
                "allowance_seconds": self.allowance_seconds,
                "idle_seconds": self.idle_seconds,
                "pending_prompt_ids": list(self.pending_prompt_ids),
                "upload_budget_bytes": self.upload_budget_bytes,
                "settings": dataclasses.asdict(self.settings),
                "claim_revision": self.claim_revision,
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
                snippets=bool(f.get("snippets", True)),  # absent from a bot of an earlier version
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
                claim_revision=int(f.get("claim_revision", 0)),
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


# The files of a recording event, in their order in the payload.
RECORDING_FILES = ("before_after_png", "highlight", "thumbnail_jpeg")


def recording_message(event: RecordingReady) -> Message:
    """The results as an event: links in the fields; highlight and stills one after another as the payload."""
    highlight = event.highlight
    files = {
        "before_after_png": event.before_after_png,
        "highlight": None if highlight is None else highlight.data,
        "thumbnail_jpeg": event.thumbnail_jpeg,
    }
    fields = {
        "session_id": event.session_id,
        "recordings": [dataclasses.asdict(links) for links in event.recordings],
        "recovered": event.recovered,
        "has_still": event.before_after_png is not None,  # read by bots of an earlier version
        "file_sizes": {name: None if data is None else len(data) for name, data in files.items()},
        "highlight": None
        if highlight is None
        else {k: v for k, v in dataclasses.asdict(highlight).items() if k != "data"},
    }
    return Message("recording", fields, b"".join(data for data in files.values() if data is not None))


def recording_from(message: Message) -> RecordingReady:
    """The results an event carries; ProtocolError if its files do not add up to its payload."""
    fields = message.fields
    files = _split_files(message)
    about = fields.get("highlight")
    highlight = files.get("highlight")
    return RecordingReady(
        session_id=fields["session_id"],
        recordings=tuple(RecordingLinks(**links) for links in fields["recordings"]),
        before_after_png=files.get("before_after_png"),
        recovered=fields["recovered"],
        highlight=None if highlight is None or about is None else Highlight(data=highlight, **about),
        thumbnail_jpeg=files.get("thumbnail_jpeg"),
    )


def _split_files(message: Message) -> dict[str, bytes]:
    sizes = message.fields.get("file_sizes")
    if sizes is None:  # a worker of an earlier version: the payload is the before/after still, if any
        return {"before_after_png": message.data} if message.fields["has_still"] else {}
    files, offset = {}, 0
    for name in RECORDING_FILES:
        size = sizes.get(name)
        if size is None:
            continue
        if not isinstance(size, int) or size < 0 or offset + size > len(message.data):
            raise ProtocolError(f"the recording event's {name} does not fit its payload")
        files[name], offset = message.data[offset : offset + size], offset + size
    if offset != len(message.data):
        raise ProtocolError("the recording event's payload is longer than its files")
    return files


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
