"""Members blocked from try-ons in a guild, with reason, moderator and optional expiry."""

from __future__ import annotations

import aiosqlite

from bot.store.audit import write_audit
from bot.store.database import Database
from bot.store.records import AuditEntry, Block

_COLUMNS = "guild_id, user_id, reason, moderator_id, created_at, expires_at"


def _block_from_row(row: aiosqlite.Row) -> Block:
    return Block(
        guild_id=row["guild_id"],
        user_id=row["user_id"],
        reason=row["reason"],
        moderator_id=row["moderator_id"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
    )


class Blocks:
    """Block, unblock and look up members; scoped to one guild."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def block(
        self,
        guild_id: int,
        user_id: int,
        *,
        moderator_id: int | None,
        reason: str | None = None,
        expires_at: float | None = None,
    ) -> AuditEntry:
        """Block (or re-block with a new reason/expiry) a member in this guild."""
        now = self._db.now()
        async with self._db.transaction() as tx:
            await tx.execute(
                f"INSERT INTO blocks ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (guild_id, user_id) DO UPDATE SET reason = excluded.reason,"
                " moderator_id = excluded.moderator_id, created_at = excluded.created_at,"
                " expires_at = excluded.expires_at",
                (guild_id, user_id, reason, moderator_id, now, expires_at),
            )
            return await write_audit(
                tx,
                guild_id=guild_id,
                at=now,
                actor_id=moderator_id,
                action="block",
                target_user_id=user_id,
                details={"reason": reason, "expires_at": expires_at},
            )

    async def unblock(self, guild_id: int, user_id: int, *, moderator_id: int | None) -> AuditEntry | None:
        """Lift a block; None if the member was not blocked."""
        now = self._db.now()
        async with self._db.transaction() as tx:
            removed = await tx.execute(
                "DELETE FROM blocks WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
            )
            if not removed:
                return None
            return await write_audit(
                tx, guild_id=guild_id, at=now, actor_id=moderator_id, action="unblock", target_user_id=user_id
            )

    async def get(self, guild_id: int, user_id: int, *, now: float | None = None) -> Block | None:
        """The member's block in this guild if it is in force at `now` (expired blocks are ignored)."""
        row = await self._db.fetch_one(
            f"SELECT {_COLUMNS} FROM blocks WHERE guild_id = ? AND user_id = ?"
            " AND (expires_at IS NULL OR expires_at > ?)",
            (guild_id, user_id, self._db.now(now)),
        )
        return None if row is None else _block_from_row(row)

    async def list(self, guild_id: int, *, now: float | None = None) -> list[Block]:
        """Blocks in force in this guild, newest first."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM blocks WHERE guild_id = ? AND (expires_at IS NULL OR expires_at > ?)"
            " ORDER BY created_at DESC",
            (guild_id, self._db.now(now)),
        )
        return [_block_from_row(row) for row in rows]
