"""Notices the bot sends at most once: per guild (the first try-on's help) or once per window (alerts)."""

from __future__ import annotations

from bot.store.database import Database


class Notices:
    """Claims on notices: whoever claims one first is the one to send it."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(
        self, guild_id: int, kind: str, *, every_seconds: float | None = None, at: float | None = None
    ) -> bool:
        """True if the caller should send the notice `kind` for `guild_id` now (0: bot-wide), and claims it.

        Without `every_seconds` a notice is claimed once, ever; with it, again once that much time has
        passed since the last claim. One statement, so two callers never both get True.
        """
        if every_seconds is not None and every_seconds <= 0:
            raise ValueError("every_seconds must be > 0")
        now = self._db.now(at)
        due_before = None if every_seconds is None else now - every_seconds
        return bool(
            await self._db.execute(
                "INSERT INTO notices (guild_id, kind, sent_at) VALUES (?, ?, ?)"
                " ON CONFLICT (guild_id, kind) DO UPDATE SET sent_at = excluded.sent_at"
                " WHERE ? IS NOT NULL AND notices.sent_at <= ?",
                (guild_id, kind, now, due_before, due_before),
            )
        )

    async def sent_at(self, guild_id: int, kind: str) -> float | None:
        """When the notice was last claimed (None: never)."""
        row = await self._db.fetch_one(
            "SELECT sent_at FROM notices WHERE guild_id = ? AND kind = ?", (guild_id, kind)
        )
        return None if row is None else float(row["sent_at"])
