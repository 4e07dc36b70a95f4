"""Odyssey streams per session: a session rolls over to a new stream at the platform's cap."""

from __future__ import annotations

import aiosqlite

from bot.store.database import Database
from bot.store.records import StreamRecord

_COLUMNS = (
    "id, session_id, stream_index, odyssey_stream_id, prompt, started_at, ended_at, seconds, end_reason"
)


def _stream_from_row(row: aiosqlite.Row) -> StreamRecord:
    return StreamRecord(
        id=row["id"],
        session_id=row["session_id"],
        index=row["stream_index"],
        odyssey_stream_id=row["odyssey_stream_id"],
        prompt=row["prompt"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        seconds=row["seconds"],
        end_reason=row["end_reason"],
    )


class Streams:
    """Stream rows; callers reach them through a session they already scoped."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def start(
        self,
        session_id: str,
        *,
        odyssey_stream_id: str | None = None,
        prompt: str | None = None,
        at: float | None = None,
    ) -> StreamRecord:
        """Record a new stream with the next index (0, 1, ...) for this session."""
        now = self._db.now(at)
        async with self._db.transaction() as tx:
            row = await tx.fetch_one(
                "SELECT COALESCE(MAX(stream_index) + 1, 0) AS next FROM streams WHERE session_id = ?",
                (session_id,),
            )
            index = 0 if row is None else int(row["next"])
            stream_id = await tx.insert(
                "INSERT INTO streams (session_id, stream_index, odyssey_stream_id, prompt, started_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (session_id, index, odyssey_stream_id, prompt, now),
            )
        return StreamRecord(stream_id, session_id, index, odyssey_stream_id, prompt, now, None, 0.0, None)

    async def set_odyssey_id(self, stream_id: int, odyssey_stream_id: str) -> bool:
        """Attach the platform's stream id once `start_stream` returns it."""
        changed = await self._db.execute(
            "UPDATE streams SET odyssey_stream_id = ? WHERE id = ?", (odyssey_stream_id, stream_id)
        )
        return changed > 0

    async def end(
        self, stream_id: int, *, seconds: float, reason: str | None = None, at: float | None = None
    ) -> bool:
        """Close a stream with its streamed seconds; False if unknown or already closed."""
        changed = await self._db.execute(
            "UPDATE streams SET ended_at = ?, seconds = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL",
            (self._db.now(at), seconds, reason, stream_id),
        )
        return changed > 0

    async def for_session(self, session_id: str) -> list[StreamRecord]:
        """A session's streams in order."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM streams WHERE session_id = ? ORDER BY stream_index", (session_id,)
        )
        return [_stream_from_row(row) for row in rows]

    async def by_odyssey_id(self, odyssey_stream_id: str) -> StreamRecord | None:
        """The stream the platform knows by this id (engine use, e.g. recording callbacks)."""
        row = await self._db.fetch_one(
            f"SELECT {_COLUMNS} FROM streams WHERE odyssey_stream_id = ?", (odyssey_stream_id,)
        )
        return None if row is None else _stream_from_row(row)
