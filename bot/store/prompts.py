"""Outfit prompts per session, with when they were sent and whether they were applied or refused."""

from __future__ import annotations

import aiosqlite

from bot.store.database import Database
from bot.store.records import PromptRecord

PROMPT_STATUSES = ("pending", "applied", "refused")
_COLUMNS = "id, session_id, at, text, status, refusal_reason"


def _prompt_from_row(row: aiosqlite.Row) -> PromptRecord:
    return PromptRecord(
        id=row["id"],
        session_id=row["session_id"],
        at=row["at"],
        text=row["text"],
        status=row["status"],
        refusal_reason=row["refusal_reason"],
    )


class Prompts:
    """Prompt rows; callers reach them through a session they already scoped."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        session_id: str,
        text: str,
        *,
        status: str = "pending",
        refusal_reason: str | None = None,
        at: float | None = None,
    ) -> PromptRecord:
        """Record a prompt as sent (pending), applied, or refused with a reason."""
        _check_status(status)
        now = self._db.now(at)
        prompt_id = await self._db.insert(
            "INSERT INTO prompts (session_id, at, text, status, refusal_reason) VALUES (?, ?, ?, ?, ?)",
            (session_id, now, text, status, refusal_reason),
        )
        return PromptRecord(prompt_id, session_id, now, text, status, refusal_reason)

    async def set_status(self, prompt_id: int, status: str, *, refusal_reason: str | None = None) -> bool:
        """Mark a pending prompt applied (the platform acknowledged it) or refused."""
        _check_status(status)
        changed = await self._db.execute(
            "UPDATE prompts SET status = ?, refusal_reason = ? WHERE id = ?",
            (status, refusal_reason, prompt_id),
        )
        return changed > 0

    async def for_session(self, session_id: str) -> list[PromptRecord]:
        """A session's prompts in the order they were sent."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM prompts WHERE session_id = ? ORDER BY at, id", (session_id,)
        )
        return [_prompt_from_row(row) for row in rows]

    async def latest_applied(self, session_id: str) -> PromptRecord | None:
        """The outfit currently on screen (what a roll-over restarts with)."""
        row = await self._db.fetch_one(
            f"SELECT {_COLUMNS} FROM prompts WHERE session_id = ? AND status = 'applied'"
            " ORDER BY at DESC, id DESC LIMIT 1",
            (session_id,),
        )
        return None if row is None else _prompt_from_row(row)


def _check_status(status: str) -> None:
    if status not in PROMPT_STATUSES:
        raise ValueError(f"prompt status must be one of {PROMPT_STATUSES}, got {status!r}")
