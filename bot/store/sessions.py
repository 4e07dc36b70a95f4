"""Try-on sessions: creation, state, the cheap heartbeat, history, and crash recovery queries."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import aiosqlite

from bot.store.database import Database
from bot.store.records import (
    INTERRUPTED_STATE,
    UNFINISHED_STATES,
    SessionRecord,
    dumps_json,
    loads_json,
)

# States after which nothing more happens to a session; entering one stamps `ended_at`.
TERMINAL_STATES: tuple[str, ...] = ("done", "failed", "cancelled", INTERRUPTED_STATE)

_COLUMNS = (
    "id, guild_id, channel_id, user_id, state, created_at, updated_at, ended_at, photo_sha256, orientation,"
    " error, error_reason, front_end, heartbeat_at, streamed_seconds, events_applied"
)
_UNFINISHED = ", ".join(f"'{state}'" for state in UNFINISHED_STATES)


def new_session_id() -> str:
    """11 URL-safe characters (64 random bits): short enough for Discord custom ids (100 chars)."""
    return secrets.token_urlsafe(8)


def session_from_row(row: aiosqlite.Row) -> SessionRecord:
    """Row -> SessionRecord."""
    return SessionRecord(
        id=row["id"],
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        user_id=row["user_id"],
        state=row["state"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        ended_at=row["ended_at"],
        photo_sha256=row["photo_sha256"],
        orientation=row["orientation"],
        error=row["error"],
        error_reason=row["error_reason"],
        front_end=loads_json(row["front_end"]),
        heartbeat_at=row["heartbeat_at"],
        streamed_seconds=row["streamed_seconds"],
        events_applied=row["events_applied"],
    )


@dataclass(frozen=True)
class InterruptedSession:
    """A session a crash left unfinished, now marked interrupted; `previous_state` says how far it got."""

    session: SessionRecord
    previous_state: str


class Sessions:
    """Session rows. Engine calls take a session id; anything a member or moderator sees takes a guild."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        *,
        guild_id: int,
        channel_id: int | None,
        user_id: int,
        state: str = "queued",
        photo_sha256: str | None = None,
        orientation: str | None = None,
        front_end: dict[str, Any] | None = None,
        at: float | None = None,
    ) -> SessionRecord:
        """Insert a new session with a fresh id."""
        now = self._db.now(at)
        for _ in range(5):
            session_id = new_session_id()
            try:
                await self._db.execute(
                    "INSERT INTO sessions (id, guild_id, channel_id, user_id, state, created_at, updated_at,"
                    " photo_sha256, orientation, front_end) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        session_id,
                        guild_id,
                        channel_id,
                        user_id,
                        state,
                        now,
                        now,
                        photo_sha256,
                        orientation,
                        dumps_json(front_end),
                    ),
                )
            except sqlite3.IntegrityError:
                continue  # an id collision: astronomically unlikely, but cheap to survive
            return SessionRecord(
                session_id, guild_id, channel_id, user_id, state, now, now, None, photo_sha256, orientation,
                None, None, front_end, None, 0.0,
            )  # fmt: skip
        raise RuntimeError("could not allocate a unique session id")

    async def get(self, session_id: str) -> SessionRecord | None:
        """Engine lookup by id, any guild. Front ends use `find` instead."""
        row = await self._db.fetch_one(f"SELECT {_COLUMNS} FROM sessions WHERE id = ?", (session_id,))
        return None if row is None else session_from_row(row)

    async def find(self, guild_id: int, session_id: str) -> SessionRecord | None:
        """A session by id only if it belongs to this guild (ids from another guild look unknown)."""
        row = await self._db.fetch_one(
            f"SELECT {_COLUMNS} FROM sessions WHERE id = ? AND guild_id = ?", (session_id, guild_id)
        )
        return None if row is None else session_from_row(row)

    async def set_state(
        self,
        session_id: str,
        state: str,
        *,
        error: str | None = None,
        error_reason: str | None = None,
        at: float | None = None,
    ) -> bool:
        """Record a transition (terminal states also stamp `ended_at`); False if the session is unknown."""
        now = self._db.now(at)
        ended_at = now if state in TERMINAL_STATES else None
        changed = await self._db.execute(
            "UPDATE sessions SET state = ?, updated_at = ?, ended_at = COALESCE(?, ended_at),"
            " error = COALESCE(?, error), error_reason = COALESCE(?, error_reason) WHERE id = ?",
            (state, now, ended_at, error, error_reason, session_id),
        )
        return changed > 0

    async def set_photo(self, session_id: str, *, photo_sha256: str, orientation: str | None) -> bool:
        """Remember which photo (by hash) and orientation the session streams."""
        changed = await self._db.execute(
            "UPDATE sessions SET photo_sha256 = ?, orientation = ? WHERE id = ?",
            (photo_sha256, orientation, session_id),
        )
        return changed > 0

    async def set_front_end(self, session_id: str, data: dict[str, Any] | None) -> bool:
        """Store the front end's opaque JSON (status message id, interaction info...)."""
        changed = await self._db.execute(
            "UPDATE sessions SET front_end = ? WHERE id = ?", (dumps_json(data), session_id)
        )
        return changed > 0

    async def heartbeat(
        self,
        session_id: str,
        streamed_seconds: float,
        *,
        stream_seconds: float | None = None,
        at: float | None = None,
    ) -> None:
        """Record the seconds streamed so far (never decreasing); cheap enough for every ~2 s.

        With `stream_seconds`, the open stream's own count is updated in the same transaction.
        """
        now = self._db.now(at)
        async with self._db.transaction() as tx:
            await tx.execute(
                "UPDATE sessions SET streamed_seconds = MAX(streamed_seconds, ?), heartbeat_at = ?"
                " WHERE id = ?",
                (streamed_seconds, now, session_id),
            )
            if stream_seconds is not None:
                await tx.execute(
                    "UPDATE streams SET seconds = MAX(seconds, ?) WHERE session_id = ? AND ended_at IS NULL",
                    (stream_seconds, session_id),
                )

    async def mark_events_applied(self, session_id: str, sequence: int) -> None:
        """Record that the session's events from its worker were applied up to `sequence` (never lowered)."""
        await self._db.execute(
            "UPDATE sessions SET events_applied = MAX(events_applied, ?) WHERE id = ?", (sequence, session_id)
        )

    async def live(self, guild_id: int) -> list[SessionRecord]:
        """This guild's queued and live sessions, oldest first (for moderators)."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM sessions WHERE guild_id = ? AND state IN ({_UNFINISHED})"
            " ORDER BY created_at, id",
            (guild_id,),
        )
        return [session_from_row(row) for row in rows]

    async def unfinished_for_user(self, user_id: int) -> list[SessionRecord]:
        """A member's queued or live sessions in any guild (the engine's one-session-per-member check)."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM sessions WHERE user_id = ? AND state IN ({_UNFINISHED})"
            " ORDER BY created_at, id",
            (user_id,),
        )
        return [session_from_row(row) for row in rows]

    async def history(
        self, guild_id: int, user_id: int, *, limit: int = 10, offset: int = 0
    ) -> list[SessionRecord]:
        """A member's own sessions in this guild, newest first, one page."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM sessions WHERE guild_id = ? AND user_id = ?"
            " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            (guild_id, user_id, limit, offset),
        )
        return [session_from_row(row) for row in rows]

    async def count_for_user(self, guild_id: int, user_id: int) -> int:
        """How many sessions a member has in this guild (for paging)."""
        row = await self._db.fetch_one(
            "SELECT COUNT(*) AS n FROM sessions WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
        )
        return 0 if row is None else int(row["n"])

    async def unfinished(self) -> list[SessionRecord]:
        """Queued and live sessions of every guild, oldest first (at start-up: what a crash left open)."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM sessions WHERE state IN ({_UNFINISHED}) ORDER BY created_at, id"
        )
        return [session_from_row(row) for row in rows]

    async def interrupt_unfinished(
        self, *, keep: Collection[str] = (), at: float | None = None
    ) -> list[InterruptedSession]:
        """On start-up: mark every queued/live session (all guilds) interrupted and close its open streams.

        `keep`: sessions still running elsewhere (on a worker) that the bot took back. `ended_at` is the last
        heartbeat when there was one (the last moment we know it was alive), so the streamed seconds to
        settle are `session.streamed_seconds`.
        """
        now = self._db.now(at)
        async with self._db.transaction() as tx:
            rows = await tx.fetch_all(
                f"SELECT {_COLUMNS} FROM sessions WHERE state IN ({_UNFINISHED}) ORDER BY created_at, id"
            )
            previous = {row["id"]: row["state"] for row in rows if row["id"] not in keep}
            if not previous:
                return []
            marks = ", ".join("?" for _ in previous)
            await tx.execute(
                f"UPDATE sessions SET state = ?, updated_at = ?, ended_at = COALESCE(heartbeat_at, ?),"
                f" error_reason = COALESCE(error_reason, 'interrupted') WHERE id IN ({marks})",
                (INTERRUPTED_STATE, now, now, *previous),
            )
            await tx.execute(
                "UPDATE streams SET ended_at = MAX(started_at, COALESCE("
                " (SELECT heartbeat_at FROM sessions WHERE sessions.id = streams.session_id), ?)),"
                " end_reason = COALESCE(end_reason, 'interrupted')"
                f" WHERE ended_at IS NULL AND session_id IN ({marks})",
                (now, *previous),
            )
            updated = await tx.fetch_all(
                f"SELECT {_COLUMNS} FROM sessions WHERE id IN ({marks}) ORDER BY created_at, id",
                tuple(previous),
            )
        return [InterruptedSession(session_from_row(row), previous[row["id"]]) for row in updated]
