"""Quota policy: who may stream how much, per UTC day and UTC calendar month, and settling what was used.

Limits are resolved field by field (daily/monthly seconds, daily/monthly sessions):
1. the bot-wide default (configuration; None there means unlimited),
2. replaced by the guild's default when the guild sets that field,
3. replaced by the member's roles when any of their roles sets it; with several such roles the most generous
   value wins (a role may also be stricter than the guild default: that is how a restricted role works),
4. replaced by the member's own override when it sets that field (it beats every role).
A block in force beats everything: nothing is left and `reserve` raises `Blocked`.

Usage is read from the append-only ledger: a session counts when it is reserved, its seconds when it is
charged (at settle time, so a session crossing midnight counts in the new day), and seconds of sessions still
running (from their heartbeats) already count against what is left. Moderator adjustments move usage either
way. Windows are half-open: [00:00 UTC, next 00:00 UTC) and [1st 00:00 UTC, next 1st 00:00 UTC).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from bot.store import AuditEntry, LedgerEntry, QuotaLimits, Store
from bot.tryon.errors import Blocked, QuotaExceeded

DAILY = "daily"
MONTHLY = "monthly"
_Number = TypeVar("_Number", int, float)
_FIELDS = ("daily_seconds", "monthly_seconds", "daily_sessions", "monthly_sessions")


def day_window(now: float) -> tuple[float, float]:
    """[start, end) of the UTC day containing `now`."""
    start = dt.datetime.fromtimestamp(now, tz=dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start.timestamp(), (start + dt.timedelta(days=1)).timestamp()


def month_window(now: float) -> tuple[float, float]:
    """[start, end) of the UTC calendar month containing `now`."""
    moment = dt.datetime.fromtimestamp(now, tz=dt.UTC)
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start.timestamp(), end.timestamp()


@dataclass(frozen=True)
class EffectiveLimits:
    """The limits that apply to one member (None: unlimited) and where each came from."""

    daily_seconds: float | None
    monthly_seconds: float | None
    daily_sessions: int | None
    monthly_sessions: int | None
    sources: dict[str, str] = field(
        default_factory=dict
    )  # field -> "default" | "guild" | "role:<id>" | "user"


@dataclass(frozen=True)
class WindowRemaining:
    """Use and what is left in one window; None limits and lefts mean unlimited."""

    window: str
    starts_at: float
    resets_at: float
    seconds_used: float
    seconds_limit: float | None
    sessions_used: int
    sessions_limit: int | None

    @property
    def seconds_left(self) -> float | None:
        """Seconds still available (never below 0)."""
        return None if self.seconds_limit is None else max(0.0, self.seconds_limit - self.seconds_used)

    @property
    def sessions_left(self) -> int | None:
        """Session starts still available (never below 0)."""
        return None if self.sessions_limit is None else max(0, self.sessions_limit - self.sessions_used)


@dataclass(frozen=True)
class Remaining:
    """What a member has left in a guild: both windows, the tighter of each, and which window binds."""

    guild_id: int
    user_id: int
    limits: EffectiveLimits
    daily: WindowRemaining
    monthly: WindowRemaining
    blocked: bool
    block_reason: str | None = None
    block_expires_at: float | None = None

    @property
    def windows(self) -> tuple[WindowRemaining, WindowRemaining]:
        """Daily, then monthly."""
        return (self.daily, self.monthly)

    @property
    def seconds_left(self) -> float | None:
        """Seconds left in the tighter window (0 when blocked, None when unlimited)."""
        if self.blocked:
            return 0.0
        return _min_or_none(w.seconds_left for w in self.windows)

    @property
    def sessions_left(self) -> int | None:
        """Session starts left in the tighter window (0 when blocked, None when unlimited)."""
        if self.blocked:
            return 0
        return _min_or_none(w.sessions_left for w in self.windows)

    @property
    def binding(self) -> WindowRemaining | None:
        """The window limiting the member now: an exhausted one first, else the one with least time left."""
        for window in self.windows:
            if window.sessions_left == 0 or window.seconds_left == 0:
                return window
        limited = [w for w in self.windows if w.seconds_left is not None]
        if limited:
            return min(limited, key=lambda w: w.seconds_left or 0.0)
        limited = [w for w in self.windows if w.sessions_left is not None]
        return min(limited, key=lambda w: w.sessions_left or 0) if limited else None

    @property
    def resets_at(self) -> float | None:
        """When the binding window resets."""
        binding = self.binding
        return None if binding is None else binding.resets_at


@dataclass(frozen=True)
class Reservation:
    """A granted session start: `seconds_allowed` is the hard stop for the session (None: no quota stop)."""

    session_id: str
    seconds_allowed: float | None
    remaining: Remaining
    entry: LedgerEntry


def _min_or_none(values: Iterable[_Number | None]) -> _Number | None:
    present = [value for value in values if value is not None]
    return min(present) if present else None


class QuotaPolicy:
    """Resolve limits, report what is left, and reserve/charge/refund/adjust usage in the store's ledger."""

    def __init__(self, store: Store, defaults: QuotaLimits, *, min_start_seconds: float = 5.0) -> None:
        """`defaults`: the bot-wide quota (None fields: unlimited); a start needs `min_start_seconds` left."""
        self._store = store
        self._defaults = defaults
        self._min_start_seconds = min_start_seconds
        # One bot process owns the database; this keeps check-then-reserve atomic within it.
        self._reserve_lock = asyncio.Lock()

    async def limits(self, guild_id: int, user_id: int, role_ids: Collection[int] = ()) -> EffectiveLimits:
        """The member's limits in this guild, before blocks and usage."""
        values: dict[str, float | int | None] = dict(self._defaults.as_dict())
        sources = dict.fromkeys(_FIELDS, "default")
        guild = await self._store.guilds.get(guild_id)
        _apply(values, sources, guild.default_limits, "guild")
        role_best: dict[str, tuple[float | int, str]] = {}
        for override in await self._store.quotas.for_roles(guild_id, list(role_ids)):
            for name, value in override.limits.as_dict().items():
                if value is not None and (name not in role_best or value > role_best[name][0]):
                    role_best[name] = (value, f"role:{override.subject_id}")
        for name, (value, source) in role_best.items():
            values[name], sources[name] = value, source
        user = await self._store.quotas.get_user(guild_id, user_id)
        if user is not None:
            _apply(values, sources, user.limits, "user")
        return EffectiveLimits(
            daily_seconds=_as_float(values["daily_seconds"]),
            monthly_seconds=_as_float(values["monthly_seconds"]),
            daily_sessions=_as_int(values["daily_sessions"]),
            monthly_sessions=_as_int(values["monthly_sessions"]),
            sources=sources,
        )

    async def remaining(
        self, guild_id: int, user_id: int, role_ids: Collection[int] = (), *, now: float | None = None
    ) -> Remaining:
        """What the member has left in each window at `now` (default: the store's clock)."""
        moment = self._store.db.now(now)
        limits = await self.limits(guild_id, user_id, role_ids)
        block = await self._store.blocks.get(guild_id, user_id, now=moment)
        in_flight = await self._store.usage.unsettled_seconds(guild_id, user_id)
        daily = await self._window(DAILY, day_window(moment), guild_id, user_id, in_flight, limits)
        monthly = await self._window(MONTHLY, month_window(moment), guild_id, user_id, in_flight, limits)
        return Remaining(
            guild_id=guild_id,
            user_id=user_id,
            limits=limits,
            daily=daily,
            monthly=monthly,
            blocked=block is not None,
            block_reason=None if block is None else block.reason,
            block_expires_at=None if block is None else block.expires_at,
        )

    async def _window(
        self,
        name: str,
        bounds: tuple[float, float],
        guild_id: int,
        user_id: int,
        in_flight: float,
        limits: EffectiveLimits,
    ) -> WindowRemaining:
        start, end = bounds
        used = await self._store.usage.totals(guild_id, user_id, since=start, until=end)
        daily = name == DAILY
        return WindowRemaining(
            window=name,
            starts_at=start,
            resets_at=end,
            seconds_used=used.seconds + in_flight,
            seconds_limit=limits.daily_seconds if daily else limits.monthly_seconds,
            sessions_used=used.sessions,
            sessions_limit=limits.daily_sessions if daily else limits.monthly_sessions,
        )

    async def check(
        self, guild_id: int, user_id: int, role_ids: Collection[int] = (), *, now: float | None = None
    ) -> Remaining:
        """Raise `Blocked` or `QuotaExceeded` if the member could not start now; otherwise what is left."""
        remaining = await self.remaining(guild_id, user_id, role_ids, now=now)
        if remaining.blocked:
            raise _blocked(remaining)
        for window in remaining.windows:
            if window.sessions_left == 0:
                none_allowed = window.sessions_limit == 0
                raise QuotaExceeded.for_window(
                    window.window, "sessions", window.resets_at, none_allowed=none_allowed
                )
            left = window.seconds_left
            if left is not None and left < self._min_start_seconds:
                none_allowed = (
                    window.seconds_limit is not None and window.seconds_limit < self._min_start_seconds
                )
                raise QuotaExceeded.for_window(
                    window.window, "time", window.resets_at, none_allowed=none_allowed
                )
        return remaining

    async def reserve(
        self,
        session_id: str,
        guild_id: int,
        user_id: int,
        role_ids: Collection[int] = (),
        *,
        now: float | None = None,
    ) -> Reservation:
        """Count a session start if the member may start; idempotent on `session_id`.

        Raises `Blocked` or `QuotaExceeded` (naming the window and its reset time).
        """
        async with self._reserve_lock:
            existing = [e for e in await self._store.usage.for_session(session_id) if e.kind == "session"]
            if existing:
                remaining = await self.remaining(guild_id, user_id, role_ids, now=now)
            else:
                remaining = await self.check(guild_id, user_id, role_ids, now=now)
            entry = await self._store.usage.open_session(
                guild_id=guild_id, user_id=user_id, session_id=session_id, at=now
            )
        return Reservation(session_id, remaining.seconds_left, remaining, entry)

    async def charge(self, session_id: str, seconds: float, *, now: float | None = None) -> LedgerEntry:
        """Charge the seconds the session actually streamed, exactly once (repeats return the first)."""
        return await self._store.usage.charge(session_id, seconds, at=now)

    async def refund(self, session_id: str) -> LedgerEntry | None:
        """Give the session start back when it failed before streaming; None if it was already charged.

        Dated at the start it cancels, so it restores the day and month that start was counted in.
        """
        return await self._store.usage.refund(session_id)

    async def settle(
        self, session_id: str, streamed_seconds: float, *, now: float | None = None
    ) -> LedgerEntry | None:
        """End-of-session settlement: charge what streamed, or refund a session that never streamed.

        Also used at start-up for interrupted sessions, with the seconds of their last heartbeat. Without
        `now`, a session that already ended (an interrupted one: at its last heartbeat) is charged at its end,
        so a restart the next day does not move its seconds into that day. A session that was never reserved
        (e.g. a crash between creating and reserving it) has nothing to settle: None.
        """
        entries = {entry.kind: entry for entry in await self._store.usage.for_session(session_id)}
        if "session" not in entries:
            return None
        if streamed_seconds > 0:
            if now is None:
                session = await self._store.sessions.get(session_id)
                now = None if session is None else session.ended_at
            return await self.charge(session_id, streamed_seconds, now=now)
        if "charge" in entries:
            return entries["charge"]
        return await self.refund(session_id)

    async def adjust(
        self,
        guild_id: int,
        user_id: int,
        *,
        seconds: float = 0.0,
        sessions: int = 0,
        moderator_id: int | None,
        note: str | None = None,
        now: float | None = None,
    ) -> tuple[LedgerEntry, AuditEntry]:
        """A moderator's correction: negative amounts give quota back (for today and this month)."""
        if seconds == 0 and sessions == 0:
            raise ValueError("an adjustment must change seconds or sessions")
        return await self._store.usage.adjust(
            guild_id=guild_id,
            user_id=user_id,
            seconds=seconds,
            sessions=sessions,
            moderator_id=moderator_id,
            note=note,
            at=now,
        )


def _blocked(remaining: Remaining) -> Blocked:
    message = "A moderator has blocked you from using try-on in this server"
    if remaining.block_expires_at is not None:
        until = dt.datetime.fromtimestamp(remaining.block_expires_at, tz=dt.UTC)
        message += f" until {until:%Y-%m-%d %H:%M} UTC"
    message += "."
    if remaining.block_reason:
        message += f" Reason: {remaining.block_reason.strip().rstrip('.')}."
    return Blocked(message)


def _apply(
    values: dict[str, float | int | None], sources: dict[str, str], limits: QuotaLimits, source: str
) -> None:
    for name, value in limits.as_dict().items():
        if value is not None:
            values[name], sources[name] = value, source


def _as_float(value: float | int | None) -> float | None:
    return None if value is None else float(value)


def _as_int(value: float | int | None) -> int | None:
    return None if value is None else int(value)
