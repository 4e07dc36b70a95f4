"""The audit log: moderator actions and refused prompts, always read per guild."""

from __future__ import annotations

from typing import Any

import aiosqlite

from bot.store.database import Database, Tx
from bot.store.records import AuditEntry, dumps_json, loads_json

PROMPT_REFUSED = "prompt_refused"
_COLUMNS = "id, guild_id, at, actor_id, action, target_user_id, target, details"


def audit_from_row(row: aiosqlite.Row) -> AuditEntry:
    """Row -> AuditEntry."""
    return AuditEntry(
        id=row["id"],
        guild_id=row["guild_id"],
        at=row["at"],
        actor_id=row["actor_id"],
        action=row["action"],
        target_user_id=row["target_user_id"],
        target=row["target"],
        details=loads_json(row["details"]) or {},
    )


async def write_audit(
    tx: Tx,
    *,
    guild_id: int,
    at: float,
    actor_id: int | None,
    action: str,
    target_user_id: int | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry inside the caller's transaction, so the action and its record commit together."""
    details = details or {}
    entry_id = await tx.insert(
        "INSERT INTO audit_log (guild_id, at, actor_id, action, target_user_id, target, details)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (guild_id, at, actor_id, action, target_user_id, target, dumps_json(details)),
    )
    return AuditEntry(entry_id, guild_id, at, actor_id, action, target_user_id, target, details)


class AuditLog:
    """Append and read audit entries; every read takes the guild it is for."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        guild_id: int,
        action: str,
        *,
        actor_id: int | None,
        target_user_id: int | None = None,
        target: str | None = None,
        details: dict[str, Any] | None = None,
        at: float | None = None,
    ) -> AuditEntry:
        """Append one entry (e.g. "prompt_refused", or an action the front end performs itself)."""
        async with self._db.transaction() as tx:
            return await write_audit(
                tx,
                guild_id=guild_id,
                at=self._db.now(at),
                actor_id=actor_id,
                action=action,
                target_user_id=target_user_id,
                target=target,
                details=details,
            )

    async def prompt_refused(
        self,
        guild_id: int,
        user_id: int,
        prompt: str,
        *,
        reason: str,
        blocked_entry: str | None = None,
        session_id: str | None = None,
        at: float | None = None,
    ) -> AuditEntry:
        """Record a refused prompt for the moderators (actor and target: the member).

        The member's words go under `details["prompt"]`, the key `Store.forget` removes.
        """
        details: dict[str, Any] = {"prompt": prompt, "reason": reason}
        if blocked_entry is not None:
            details["blocked_entry"] = blocked_entry
        return await self.record(
            guild_id,
            PROMPT_REFUSED,
            actor_id=user_id,
            target_user_id=user_id,
            target=session_id,
            details=details,
            at=at,
        )

    async def list(
        self,
        guild_id: int,
        *,
        limit: int = 25,
        before_id: int | None = None,
        action: str | None = None,
        target_user_id: int | None = None,
    ) -> list[AuditEntry]:
        """Newest first, one guild only; page with `before_id` (the last id of the previous page)."""
        clauses = ["guild_id = ?"]
        params: list[Any] = [guild_id]
        if before_id is not None:
            clauses.append("id < ?")
            params.append(before_id)
        if action is not None:
            clauses.append("action = ?")
            params.append(action)
        if target_user_id is not None:
            clauses.append("target_user_id = ?")
            params.append(target_user_id)
        params.append(limit)
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM audit_log WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?",
            params,
        )
        return [audit_from_row(row) for row in rows]
