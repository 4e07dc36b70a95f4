"""Plain records the store hands out: frozen dataclasses, times as UTC unix seconds (float)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# Discord snowflakes are never 0, so 0 stands for "no guild" (DMs, the console demo).
NO_GUILD = 0
# How long a member's photo may be kept for another try-on unless a server's moderators say otherwise.
DEFAULT_PHOTO_RETENTION_HOURS = 24.0

QUEUED_STATE = "queued"
LIVE_STATES: tuple[str, ...] = ("connecting", "streaming", "ending", "finalising")
INTERRUPTED_STATE = "interrupted"
# States a crash can leave behind; `SessionRepository.interrupt_unfinished` moves them to "interrupted".
UNFINISHED_STATES: tuple[str, ...] = (QUEUED_STATE, *LIVE_STATES)


@dataclass(frozen=True)
class QuotaLimits:
    """Limits per window; in stored settings a None field means "not set here, inherit"."""

    daily_seconds: float | None = None
    monthly_seconds: float | None = None
    daily_sessions: int | None = None
    monthly_sessions: int | None = None

    def is_empty(self) -> bool:
        """True when no field is set."""
        return all(value is None for value in self.as_dict().values())

    def as_dict(self) -> dict[str, float | int | None]:
        """Field name -> value, in a fixed order."""
        return {
            "daily_seconds": self.daily_seconds,
            "monthly_seconds": self.monthly_seconds,
            "daily_sessions": self.daily_sessions,
            "monthly_sessions": self.monthly_sessions,
        }


@dataclass(frozen=True)
class GuildSettings:
    """A guild's rules; None fields fall back to the bot-wide configuration."""

    guild_id: int
    default_limits: QuotaLimits = field(default_factory=QuotaLimits)
    queue_cap: int | None = None
    idle_timeout_seconds: float | None = None
    mod_log_channel_id: int | None = None
    updated_at: float | None = None
    # How long a member's photo may be kept for another try-on (None: DEFAULT_PHOTO_RETENTION_HOURS).
    photo_retention_hours: float | None = None
    snippets_enabled: bool | None = None  # None: on
    private_by_default: bool | None = None  # None: public
    paused: bool | None = None  # None: not paused
    pause_message: str | None = None

    @property
    def photo_retention(self) -> float:
        """Hours a photo may be kept (0: not at all)."""
        hours = self.photo_retention_hours
        return DEFAULT_PHOTO_RETENTION_HOURS if hours is None else hours


@dataclass(frozen=True)
class QuotaOverride:
    """A moderator's quota override for one member or one role in a guild."""

    guild_id: int
    subject_kind: str  # "user" or "role"
    subject_id: int
    limits: QuotaLimits
    set_by: int | None
    updated_at: float


@dataclass(frozen=True)
class Block:
    """A member blocked from try-ons in one guild."""

    guild_id: int
    user_id: int
    reason: str | None
    moderator_id: int | None
    created_at: float
    expires_at: float | None


@dataclass(frozen=True)
class SessionRecord:
    """One try-on session as stored; `front_end` is opaque JSON owned by the front end."""

    id: str
    guild_id: int
    channel_id: int | None
    user_id: int
    state: str
    created_at: float
    updated_at: float
    ended_at: float | None
    photo_sha256: str | None
    orientation: str | None
    error: str | None
    error_reason: str | None
    front_end: dict[str, Any] | None
    heartbeat_at: float | None
    streamed_seconds: float
    # The sequence number of the last event from its worker the bot applied (0: none, or not on a worker).
    events_applied: int = 0

    @property
    def is_unfinished(self) -> bool:
        """Queued or live: a crash would leave it for recovery."""
        return self.state in UNFINISHED_STATES


@dataclass(frozen=True)
class StreamRecord:
    """One Odyssey stream inside a session (a session rolls over to a new stream at the platform cap)."""

    id: int
    session_id: str
    index: int
    odyssey_stream_id: str | None
    prompt: str | None
    started_at: float
    ended_at: float | None
    seconds: float
    end_reason: str | None


@dataclass(frozen=True)
class PromptRecord:
    """An outfit prompt sent in a session, and what became of it."""

    id: int
    session_id: str
    at: float
    text: str
    status: str  # "pending", "applied" or "refused"
    refusal_reason: str | None


@dataclass(frozen=True)
class LedgerEntry:
    """One append-only usage ledger row: positive amounts use quota, negative ones give it back."""

    id: int
    guild_id: int
    user_id: int
    session_id: str | None
    kind: str  # "session", "charge", "refund" or "adjust"
    seconds: float
    sessions: int
    at: float
    actor_id: int | None
    note: str | None


@dataclass(frozen=True)
class UsageTotals:
    """Summed usage over a window."""

    seconds: float = 0.0
    sessions: int = 0


@dataclass(frozen=True)
class MemberUsage:
    """One member's usage in a report."""

    user_id: int
    seconds: float
    sessions: int


@dataclass(frozen=True)
class DayUsage:
    """One UTC day's usage in a report (`day` is YYYY-MM-DD)."""

    day: str
    seconds: float
    sessions: int


@dataclass(frozen=True)
class UsageReport:
    """A guild's usage between two times: totals, top members, per UTC day."""

    guild_id: int
    since: float
    until: float
    totals: UsageTotals
    top_members: list[MemberUsage]
    by_day: list[DayUsage]


@dataclass(frozen=True)
class AuditEntry:
    """One moderator action or refused prompt, always scoped to a guild."""

    id: int
    guild_id: int
    at: float
    actor_id: int | None
    action: str
    target_user_id: int | None
    target: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class BotPost:
    """A public message the bot posted for a member's try-on (a channel's or a DM's)."""

    message_id: int
    channel_id: int
    guild_id: int
    session_id: str
    user_id: int
    posted_at: float


@dataclass(frozen=True)
class MemberSettings:
    """A member's own defaults for new try-ons; None: not chosen (the server's default applies)."""

    user_id: int
    private: bool | None = None
    orientation: str | None = None  # "portrait" or "landscape"
    snippets: bool | None = None


@dataclass(frozen=True)
class ForgetResult:
    """What `Store.forget` removed for a member."""

    sessions_deleted: int
    live_sessions_kept: int
    ledger_rows_deleted: int
    ledger_rows_anonymised: int
    audit_rows_redacted: int
    photos_deleted: int = 0
    member_settings_deleted: int = 0


def dumps_json(value: dict[str, Any] | None) -> str | None:
    """Compact JSON for a TEXT column (None stays NULL)."""
    return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)


def loads_json(text: str | None) -> dict[str, Any] | None:
    """Inverse of `dumps_json`."""
    if text is None:
        return None
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value
