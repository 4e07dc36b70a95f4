"""The bot's public posts of each try-on (status, clips, stills, recording), so they can be removed later."""

from __future__ import annotations

from collections.abc import Collection

import aiosqlite

from bot.store.database import Database
from bot.store.records import BotPost

_COLUMNS = "message_id, channel_id, guild_id, session_id, user_id, posted_at"


def _post_from_row(row: aiosqlite.Row) -> BotPost:
    return BotPost(
        message_id=row["message_id"],
        channel_id=row["channel_id"],
        guild_id=row["guild_id"],
        session_id=row["session_id"],
        user_id=row["user_id"],
        posted_at=row["posted_at"],
    )


class Posts:
    """Record posts as they are made; list them per session or member; drop the ones removed."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        *,
        message_id: int,
        channel_id: int,
        guild_id: int,
        session_id: str,
        user_id: int,
        at: float | None = None,
    ) -> None:
        """Write down one post (a message id recorded twice stays one row)."""
        await self._db.execute(
            f"INSERT OR IGNORE INTO bot_posts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
            (message_id, channel_id, guild_id, session_id, user_id, self._db.now(at)),
        )

    async def for_session(self, guild_id: int, session_id: str) -> list[BotPost]:
        """The posts of one try-on in this guild, oldest first."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM bot_posts WHERE guild_id = ? AND session_id = ? ORDER BY message_id",
            (guild_id, session_id),
        )
        return [_post_from_row(row) for row in rows]

    async def for_member(self, user_id: int, *, except_sessions: Collection[str] = ()) -> list[BotPost]:
        """The posts of a member's try-ons in every guild, oldest first (but those of `except_sessions`)."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM bot_posts WHERE user_id = ? ORDER BY message_id", (user_id,)
        )
        return [post for post in map(_post_from_row, rows) if post.session_id not in except_sessions]

    async def remove(self, message_ids: Collection[int]) -> int:
        """Forget posts that are gone from Discord; how many rows were deleted."""
        if not message_ids:
            return 0
        marks = ", ".join("?" for _ in message_ids)
        return await self._db.execute(
            f"DELETE FROM bot_posts WHERE message_id IN ({marks})", tuple(message_ids)
        )
