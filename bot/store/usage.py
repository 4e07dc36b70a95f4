"""The append-only usage ledger: session starts, charges, refunds and moderator adjustments, with window sums.

Rows are never updated or deleted, except by `Store.forget` (see there). Each session gets at most one
"session" row (counted at start), then exactly one of "charge" (seconds streamed) or "refund" (the start
given back when it failed before streaming); a partial unique index enforces the "at most one".
"""

from __future__ import annotations

import aiosqlite

from bot.store.audit import write_audit
from bot.store.database import Database, Tx
from bot.store.records import AuditEntry, DayUsage, LedgerEntry, MemberUsage, UsageReport, UsageTotals

_COLUMNS = "id, guild_id, user_id, session_id, kind, seconds, sessions, at, actor_id, note"


class SettlementError(RuntimeError):
    """A charge or refund that contradicts the session's ledger (e.g. refunding a charged session)."""


def _entry_from_row(row: aiosqlite.Row) -> LedgerEntry:
    return LedgerEntry(
        id=row["id"],
        guild_id=row["guild_id"],
        user_id=row["user_id"],
        session_id=row["session_id"],
        kind=row["kind"],
        seconds=row["seconds"],
        sessions=row["sessions"],
        at=row["at"],
        actor_id=row["actor_id"],
        note=row["note"],
    )


async def _entry(tx: Tx, session_id: str, kind: str) -> LedgerEntry | None:
    row = await tx.fetch_one(
        f"SELECT {_COLUMNS} FROM usage_ledger WHERE session_id = ? AND kind = ?", (session_id, kind)
    )
    return None if row is None else _entry_from_row(row)


async def _append(
    tx: Tx,
    *,
    guild_id: int,
    user_id: int,
    session_id: str | None,
    kind: str,
    at: float,
    seconds: float = 0.0,
    sessions: int = 0,
    actor_id: int | None = None,
    note: str | None = None,
) -> LedgerEntry:
    """Append one row; the entry as stored."""
    entry_id = await tx.insert(
        "INSERT INTO usage_ledger"
        " (guild_id, user_id, session_id, kind, seconds, sessions, at, actor_id, note)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (guild_id, user_id, session_id, kind, seconds, sessions, at, actor_id, note),
    )
    return LedgerEntry(entry_id, guild_id, user_id, session_id, kind, seconds, sessions, at, actor_id, note)


class UsageLedger:
    """Append to and sum the ledger; sums and reports are per guild."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def open_session(
        self, *, guild_id: int, user_id: int, session_id: str, at: float | None = None
    ) -> LedgerEntry:
        """Count a session start (one session of quota); idempotent on the session id."""
        now = self._db.now(at)
        async with self._db.transaction() as tx:
            existing = await _entry(tx, session_id, "session")
            if existing is not None:
                return existing
            return await _append(
                tx,
                guild_id=guild_id,
                user_id=user_id,
                session_id=session_id,
                kind="session",
                at=now,
                sessions=1,
            )

    async def charge(self, session_id: str, seconds: float, *, at: float | None = None) -> LedgerEntry:
        """Charge the seconds a session streamed, exactly once: a repeat returns the first charge as is."""
        if seconds < 0:
            raise ValueError("charged seconds must be >= 0")
        now = self._db.now(at)
        async with self._db.transaction() as tx:
            opened = await self._opened(tx, session_id)
            existing = await _entry(tx, session_id, "charge")
            if existing is not None:
                return existing
            if await _entry(tx, session_id, "refund") is not None:
                raise SettlementError(f"session {session_id} was already refunded")
            return await _append(
                tx,
                guild_id=opened.guild_id,
                user_id=opened.user_id,
                session_id=session_id,
                kind="charge",
                at=now,
                seconds=seconds,
            )

    async def refund(self, session_id: str) -> LedgerEntry | None:
        """Give back a session start that never streamed; idempotent. None if it was charged instead.

        The refund is dated at the start it cancels, so it lands in the same day and month: a session that
        failed just after midnight must not give back a start in the new day that was counted in the old one.
        """
        async with self._db.transaction() as tx:
            opened = await self._opened(tx, session_id)
            existing = await _entry(tx, session_id, "refund")
            if existing is not None:
                return existing
            if await _entry(tx, session_id, "charge") is not None:
                return None
            return await _append(
                tx,
                guild_id=opened.guild_id,
                user_id=opened.user_id,
                session_id=session_id,
                kind="refund",
                at=opened.at,
                sessions=-1,
            )

    async def adjust(
        self,
        *,
        guild_id: int,
        user_id: int,
        seconds: float = 0.0,
        sessions: int = 0,
        moderator_id: int | None,
        note: str | None = None,
        at: float | None = None,
    ) -> tuple[LedgerEntry, AuditEntry]:
        """A moderator's correction (negative gives quota back); returns the entry and its audit entry."""
        now = self._db.now(at)
        async with self._db.transaction() as tx:
            entry = await _append(
                tx,
                guild_id=guild_id,
                user_id=user_id,
                session_id=None,
                kind="adjust",
                at=now,
                seconds=seconds,
                sessions=sessions,
                actor_id=moderator_id,
                note=note,
            )
            audit = await write_audit(
                tx,
                guild_id=guild_id,
                at=now,
                actor_id=moderator_id,
                action="usage_adjust",
                target_user_id=user_id,
                details={"seconds": seconds, "sessions": sessions, "note": note},
            )
        return entry, audit

    async def _opened(self, tx: Tx, session_id: str) -> LedgerEntry:
        opened = await _entry(tx, session_id, "session")
        if opened is None:
            raise SettlementError(f"session {session_id} has no start in the ledger")
        return opened

    async def for_session(self, session_id: str) -> list[LedgerEntry]:
        """A session's ledger rows in order."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM usage_ledger WHERE session_id = ? ORDER BY id", (session_id,)
        )
        return [_entry_from_row(row) for row in rows]

    async def for_member(self, guild_id: int, user_id: int, *, limit: int = 50) -> list[LedgerEntry]:
        """A member's ledger rows in this guild, newest first."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM usage_ledger WHERE guild_id = ? AND user_id = ?"
            " ORDER BY id DESC LIMIT ?",
            (guild_id, user_id, limit),
        )
        return [_entry_from_row(row) for row in rows]

    async def totals(self, guild_id: int, user_id: int, *, since: float, until: float) -> UsageTotals:
        """Settled usage with `since <= at < until` (adjustments included)."""
        row = await self._db.fetch_one(
            "SELECT COALESCE(SUM(seconds), 0) AS seconds, COALESCE(SUM(sessions), 0) AS sessions"
            " FROM usage_ledger WHERE guild_id = ? AND user_id = ? AND at >= ? AND at < ?",
            (guild_id, user_id, since, until),
        )
        return UsageTotals() if row is None else UsageTotals(float(row["seconds"]), int(row["sessions"]))

    async def unsettled_seconds(self, guild_id: int, user_id: int) -> float:
        """Heartbeat seconds of this member's started sessions not yet charged or refunded (in flight)."""
        row = await self._db.fetch_one(
            "SELECT COALESCE(SUM(s.streamed_seconds), 0) AS seconds FROM usage_ledger AS l"
            " JOIN sessions AS s ON s.id = l.session_id"
            " WHERE l.guild_id = ? AND l.user_id = ? AND l.kind = 'session' AND NOT EXISTS ("
            "   SELECT 1 FROM usage_ledger AS x WHERE x.session_id = l.session_id"
            "   AND x.kind IN ('charge', 'refund'))",
            (guild_id, user_id),
        )
        return 0.0 if row is None else float(row["seconds"])

    async def unsettled_session_ids(self) -> list[str]:
        """Sessions (all guilds) whose start is in the ledger but that were neither charged nor refunded."""
        rows = await self._db.fetch_all(
            "SELECT l.session_id FROM usage_ledger AS l"
            " WHERE l.kind = 'session' AND l.session_id IS NOT NULL AND NOT EXISTS ("
            "  SELECT 1 FROM usage_ledger AS x WHERE x.session_id = l.session_id"
            "  AND x.kind IN ('charge', 'refund')) ORDER BY l.id"
        )
        return [row["session_id"] for row in rows]

    async def report(self, guild_id: int, *, since: float, until: float, top: int = 10) -> UsageReport:
        """Totals, top members by seconds, and per-UTC-day sums for one guild."""
        where = "WHERE guild_id = ? AND at >= ? AND at < ?"
        params = (guild_id, since, until)
        async with self._db.transaction() as tx:  # one snapshot for all three sums
            total = await tx.fetch_one(
                f"SELECT COALESCE(SUM(seconds), 0) AS seconds, COALESCE(SUM(sessions), 0) AS sessions"
                f" FROM usage_ledger {where}",
                params,
            )
            members = await tx.fetch_all(
                f"SELECT user_id, SUM(seconds) AS seconds, SUM(sessions) AS sessions"
                f" FROM usage_ledger {where}"
                " GROUP BY user_id ORDER BY seconds DESC, user_id LIMIT ?",
                (*params, top),
            )
            days = await tx.fetch_all(
                f"SELECT date(at, 'unixepoch') AS day, SUM(seconds) AS seconds, SUM(sessions) AS sessions"
                f" FROM usage_ledger {where} GROUP BY day ORDER BY day",
                params,
            )
        totals = (
            UsageTotals() if total is None else UsageTotals(float(total["seconds"]), int(total["sessions"]))
        )
        return UsageReport(
            guild_id=guild_id,
            since=since,
            until=until,
            totals=totals,
            top_members=[MemberUsage(r["user_id"], float(r["seconds"]), int(r["sessions"])) for r in members],
            by_day=[DayUsage(r["day"], float(r["seconds"]), int(r["sessions"])) for r in days],
        )
