"""Plain data types of the Odyssey API: statuses, frames, credentials, recordings and simulation jobs."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.odyssey.errors import OdysseyError


class ConnectionStatus(StrEnum):
    """Where a client is in its connection life cycle."""

    AUTHENTICATING = "authenticating"
    CONNECTING = "connecting"
    RECONNECTING = "reconnecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    FAILED = "failed"


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame as RGB pixels, the shape the official SDK hands to `on_video_frame`."""

    data: npt.NDArray[np.uint8]
    width: int
    height: int
    timestamp_ms: int
    stream_seconds: float = 0.0
    stream_id: str | None = None


@dataclass(frozen=True)
class BroadcastInfo:
    """Where spectators can watch a broadcast stream."""

    webrtc_url: str
    spectator_token: str
    broadcast_url: str | None = None


@dataclass(frozen=True)
class Capabilities:
    """What the assigned streamer can do."""

    image_to_video: bool = False

    @classmethod
    def from_json(cls, value: Any) -> Capabilities:
        """Read the `capabilities` object; anything malformed means no capability."""
        if not isinstance(value, dict):
            return cls()
        return cls(image_to_video=value.get("image_to_video") is True)

    def to_json(self) -> dict[str, bool]:
        return {"image_to_video": self.image_to_video}


@dataclass(frozen=True)
class SessionGrant:
    """A streamer reserved by `/sessions/request`."""

    session_id: str
    signalling_url: str
    capabilities: Capabilities = field(default_factory=Capabilities)


@dataclass(frozen=True)
class ClientCredentials:
    """What a server hands a client so it can connect without the API key (spec §7)."""

    signaling_url: str
    session_token: str
    expires_in: float = 600.0
    session_id: str = ""
    capabilities: Capabilities = field(default_factory=Capabilities)

    def token_session_id(self) -> str:
        """The `session_id` claim of the session token (the JWT is not verified here)."""
        return session_id_from_token(self.session_token)

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id or self.token_session_id(),
            "signaling_url": self.signaling_url,
            "session_token": self.session_token,
            "expires_in": self.expires_in,
            "capabilities": self.capabilities.to_json(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClientCredentials:
        """Accept the snake_case cross-SDK form and the JS SDK's camelCase form."""
        url = data.get("signaling_url", data.get("signalingUrl"))
        token = data.get("session_token", data.get("sessionToken"))
        if not isinstance(url, str) or not isinstance(token, str):
            raise ValueError("Client credentials need signaling_url and session_token strings")
        expires = data.get("expires_in", data.get("expiresIn", 600))
        session_id = data.get("session_id", data.get("sessionId", ""))
        return cls(
            signaling_url=url,
            session_token=token,
            expires_in=float(expires) if isinstance(expires, int | float) else 600.0,
            session_id=session_id if isinstance(session_id, str) else "",
            capabilities=Capabilities.from_json(data.get("capabilities")),
        )


def session_id_from_token(token: str) -> str:
    """Read the `session_id` claim from a session JWT's payload."""
    parts = token.split(".")
    if len(parts) != 3:
        raise OdysseyError("Invalid session token: not a JWT")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError) as exc:
        raise OdysseyError("Invalid session token: unreadable payload") from exc
    session_id = claims.get("session_id") if isinstance(claims, dict) else None
    if not isinstance(session_id, str) or not session_id:
        raise OdysseyError("Invalid session token: no session_id claim")
    return session_id


def _opt_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _opt_int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _opt_float(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Recording:
    """A finished stream's artifacts, as presigned URLs (valid about an hour)."""

    stream_id: str
    video_url: str | None = None
    events_url: str | None = None
    thumbnail_url: str | None = None
    preview_url: str | None = None
    frame_count: int | None = None
    duration_seconds: float | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Recording:
        return cls(
            stream_id=str(data["stream_id"]),
            video_url=_opt_str(data, "video_url"),
            events_url=_opt_str(data, "events_url"),
            thumbnail_url=_opt_str(data, "thumbnail_url"),
            preview_url=_opt_str(data, "preview_url"),
            frame_count=_opt_int(data, "frame_count"),
            duration_seconds=_opt_float(data, "duration_seconds"),
        )


@dataclass(frozen=True)
class StreamRecording:
    """One entry of the caller's recording list."""

    stream_id: str
    width: int
    height: int
    started_at: str
    ended_at: str | None = None
    duration_seconds: float | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamRecording:
        return cls(
            stream_id=str(data["stream_id"]),
            width=int(data.get("width") or 0),
            height=int(data.get("height") or 0),
            started_at=str(data.get("started_at") or ""),
            ended_at=_opt_str(data, "ended_at"),
            duration_seconds=_opt_float(data, "duration_seconds"),
        )


@dataclass(frozen=True)
class StreamRecordingsList:
    """A page of the caller's recordings, most recent first."""

    recordings: list[StreamRecording]
    total: int
    limit: int
    offset: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamRecordingsList:
        return cls(
            recordings=[StreamRecording.from_json(item) for item in data.get("recordings") or []],
            total=int(data["total"]),
            limit=int(data["limit"]),
            offset=int(data["offset"]),
        )


class SimulationJobStatus(StrEnum):
    """Life cycle of a simulation job."""

    PENDING = "pending"
    DISPATCHED = "dispatched"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


def _status(data: dict[str, Any]) -> SimulationJobStatus:
    try:
        return SimulationJobStatus(str(data.get("status")))
    except ValueError as exc:
        raise OdysseyError(f"Unknown simulation status: {data.get('status')!r}") from exc


@dataclass(frozen=True)
class SimulationStream(Recording):
    """A stream produced by a simulation job: its recording, and which script produced it."""

    script_index: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SimulationStream:
        recording = Recording.from_json(data)
        return cls(**dataclasses.asdict(recording), script_index=_opt_int(data, "script_index"))


@dataclass(frozen=True)
class SimulationJobInfo:
    """Summary of a simulation job (list entries, cancel result)."""

    job_id: str
    status: SimulationJobStatus
    priority: str | None = None
    created_at: str | None = None
    completed_at: str | None = None
    error_message: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SimulationJobInfo:
        return cls(
            job_id=str(data["job_id"]),
            status=_status(data),
            priority=_opt_str(data, "priority"),
            created_at=_opt_str(data, "created_at"),
            completed_at=_opt_str(data, "completed_at"),
            error_message=_opt_str(data, "error_message"),
        )


@dataclass(frozen=True)
class SimulationJobDetail:
    """Full state of a simulation job, with its streams once completed."""

    job_id: str
    status: SimulationJobStatus
    priority: str | None = None
    created_at: str | None = None
    estimated_wait_minutes: float | None = None
    dispatched_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    error_message: str | None = None
    assigned_region: str | None = None
    retry_count: int | None = None
    streams: list[SimulationStream] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SimulationJobDetail:
        return cls(
            job_id=str(data["job_id"]),
            status=_status(data),
            priority=_opt_str(data, "priority"),
            created_at=_opt_str(data, "created_at"),
            estimated_wait_minutes=_opt_float(data, "estimated_wait_minutes"),
            dispatched_at=_opt_str(data, "dispatched_at"),
            started_at=_opt_str(data, "started_at"),
            completed_at=_opt_str(data, "completed_at"),
            error_message=_opt_str(data, "error_message"),
            assigned_region=_opt_str(data, "assigned_region"),
            retry_count=_opt_int(data, "retry_count"),
            streams=[SimulationStream.from_json(item) for item in data.get("streams") or []],
        )


@dataclass(frozen=True)
class SimulationJobsList:
    """A page of the caller's simulation jobs."""

    jobs: list[SimulationJobInfo]
    total: int
    limit: int
    offset: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SimulationJobsList:
        return cls(
            jobs=[SimulationJobInfo.from_json(item) for item in data.get("jobs") or []],
            total=int(data["total"]),
            limit=int(data["limit"]),
            offset=int(data["offset"]),
        )
