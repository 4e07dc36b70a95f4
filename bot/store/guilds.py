"""Guild settings and rules: default quotas, queue cap, idle timeout, mod-log, channel allowlist, blocklist.

Every change takes the moderator's id and writes its audit entry in the same transaction; mutators return
that entry (for the mod-log channel), or None when nothing changed.
"""

from __future__ import annotations

from typing import Any

import aiosqlite

from bot.store.audit import write_audit
from bot.store.database import Database, Tx
from bot.store.quotas import check_limits
from bot.store.records import AuditEntry, GuildSettings, QuotaLimits

# A month: "try again later" needs days at most; longer would only keep faces for nothing.
MAX_PHOTO_RETENTION_HOURS = 24 * 30

_SETTING_COLUMNS = (
    "daily_seconds",
    "monthly_seconds",
    "daily_sessions",
    "monthly_sessions",
    "queue_cap",
    "idle_timeout_seconds",
    "mod_log_channel_id",
    "photo_retention_hours",
)


def _settings_from_row(guild_id: int, row: aiosqlite.Row | None) -> GuildSettings:
    if row is None:
        return GuildSettings(guild_id=guild_id)
    return GuildSettings(
        guild_id=guild_id,
        default_limits=QuotaLimits(
            daily_seconds=row["daily_seconds"],
            monthly_seconds=row["monthly_seconds"],
            daily_sessions=row["daily_sessions"],
            monthly_sessions=row["monthly_sessions"],
        ),
        queue_cap=row["queue_cap"],
        idle_timeout_seconds=row["idle_timeout_seconds"],
        mod_log_channel_id=row["mod_log_channel_id"],
        photo_retention_hours=row["photo_retention_hours"],
        updated_at=row["updated_at"],
    )


class GuildRules:
    """Read and change one guild's settings; nothing here reads across guilds."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, guild_id: int) -> GuildSettings:
        """The guild's settings (all None, i.e. bot defaults, for a guild never configured)."""
        row = await self._db.fetch_one(
            f"SELECT {', '.join(_SETTING_COLUMNS)}, updated_at FROM guild_settings WHERE guild_id = ?",
            (guild_id,),
        )
        return _settings_from_row(guild_id, row)

    async def set_default_limits(
        self, guild_id: int, limits: QuotaLimits, *, moderator_id: int | None
    ) -> AuditEntry:
        """Replace the guild's default quota (None fields fall back to the bot-wide default)."""
        check_limits(limits)
        return await self._set(guild_id, limits.as_dict(), moderator_id, "guild_quota_set")

    async def set_queue_cap(self, guild_id: int, cap: int | None, *, moderator_id: int | None) -> AuditEntry:
        """How many of this guild's members may wait in the queue at once (None: bot default)."""
        if cap is not None and cap < 0:
            raise ValueError("queue cap must be >= 0")
        return await self._set(guild_id, {"queue_cap": cap}, moderator_id, "queue_cap_set")

    async def set_photo_retention(
        self, guild_id: int, hours: float | None, *, moderator_id: int | None
    ) -> AuditEntry:
        """Keep members' last photos this many hours (0: keep none; None: bot default)."""
        if hours is not None and not 0 <= hours <= MAX_PHOTO_RETENTION_HOURS:
            raise ValueError(f"photo retention must be between 0 and {MAX_PHOTO_RETENTION_HOURS:g} hours")
        return await self._set(
            guild_id, {"photo_retention_hours": hours}, moderator_id, "photo_retention_set"
        )

    async def set_idle_timeout(
        self, guild_id: int, seconds: float | None, *, moderator_id: int | None
    ) -> AuditEntry:
        """End a session after this many seconds without a prompt (None: bot default)."""
        if seconds is not None and seconds <= 0:
            raise ValueError("idle timeout must be > 0")
        return await self._set(guild_id, {"idle_timeout_seconds": seconds}, moderator_id, "idle_timeout_set")

    async def set_mod_log_channel(
        self, guild_id: int, channel_id: int | None, *, moderator_id: int | None
    ) -> AuditEntry:
        """Where moderator actions and refused prompts are posted (None: nowhere)."""
        return await self._set(guild_id, {"mod_log_channel_id": channel_id}, moderator_id, "mod_log_set")

    async def _set(
        self, guild_id: int, values: dict[str, Any], moderator_id: int | None, action: str
    ) -> AuditEntry:
        unknown = set(values) - set(_SETTING_COLUMNS)
        if unknown:
            raise ValueError(f"unknown guild settings: {sorted(unknown)}")
        columns = list(values)
        now = self._db.now()
        assignments = ", ".join(f"{column} = excluded.{column}" for column in columns)
        async with self._db.transaction() as tx:
            await tx.execute(
                f"INSERT INTO guild_settings (guild_id, {', '.join(columns)}, updated_at)"
                f" VALUES (?, {', '.join('?' for _ in columns)}, ?)"
                f" ON CONFLICT (guild_id) DO UPDATE SET {assignments}, updated_at = excluded.updated_at",
                (guild_id, *values.values(), now),
            )
            return await write_audit(
                tx, guild_id=guild_id, at=now, actor_id=moderator_id, action=action, details=values
            )

    # Channel allowlist: empty means every channel is allowed.

    async def allowed_channels(self, guild_id: int) -> frozenset[int]:
        """Channels try-on is limited to; empty means everywhere."""
        rows = await self._db.fetch_all(
            "SELECT channel_id FROM allowed_channels WHERE guild_id = ?", (guild_id,)
        )
        return frozenset(row["channel_id"] for row in rows)

    async def is_channel_allowed(self, guild_id: int, channel_id: int) -> bool:
        """True when the allowlist is empty or names this channel."""
        row = await self._db.fetch_one(
            "SELECT COUNT(*) AS n, SUM(channel_id = ?) AS hit FROM allowed_channels WHERE guild_id = ?",
            (channel_id, guild_id),
        )
        return row is None or row["n"] == 0 or bool(row["hit"])

    async def allow_channel(
        self, guild_id: int, channel_id: int, *, moderator_id: int | None
    ) -> AuditEntry | None:
        """Add a channel to the allowlist; None if it was already there."""
        now = self._db.now()
        async with self._db.transaction() as tx:
            added = await tx.execute(
                "INSERT OR IGNORE INTO allowed_channels (guild_id, channel_id, added_by, added_at)"
                " VALUES (?, ?, ?, ?)",
                (guild_id, channel_id, moderator_id, now),
            )
            if not added:
                return None
            return await _audit(tx, guild_id, now, moderator_id, "channel_allowed", str(channel_id))

    async def disallow_channel(
        self, guild_id: int, channel_id: int, *, moderator_id: int | None
    ) -> AuditEntry | None:
        """Remove a channel from the allowlist; None if it was not there."""
        now = self._db.now()
        async with self._db.transaction() as tx:
            removed = await tx.execute(
                "DELETE FROM allowed_channels WHERE guild_id = ? AND channel_id = ?", (guild_id, channel_id)
            )
            if not removed:
                return None
            return await _audit(tx, guild_id, now, moderator_id, "channel_disallowed", str(channel_id))

    # Prompt blocklist: words are stored as given; callers normalise them (bot.tryon.prompts) first.

    async def blocked_words(self, guild_id: int) -> list[str]:
        """The guild's blocked words, sorted."""
        rows = await self._db.fetch_all(
            "SELECT word FROM blocked_words WHERE guild_id = ? ORDER BY word", (guild_id,)
        )
        return [row["word"] for row in rows]

    async def add_blocked_word(
        self, guild_id: int, word: str, *, moderator_id: int | None
    ) -> AuditEntry | None:
        """Add a word or phrase; None if it was already blocked."""
        if not word:
            raise ValueError("blocked word must not be empty")
        now = self._db.now()
        async with self._db.transaction() as tx:
            added = await tx.execute(
                "INSERT OR IGNORE INTO blocked_words (guild_id, word, added_by, added_at)"
                " VALUES (?, ?, ?, ?)",
                (guild_id, word, moderator_id, now),
            )
            if not added:
                return None
            return await _audit(tx, guild_id, now, moderator_id, "blocklist_add", word)

    async def remove_blocked_word(
        self, guild_id: int, word: str, *, moderator_id: int | None
    ) -> AuditEntry | None:
        """Remove a word; None if it was not blocked."""
        now = self._db.now()
        async with self._db.transaction() as tx:
            removed = await tx.execute(
                "DELETE FROM blocked_words WHERE guild_id = ? AND word = ?", (guild_id, word)
            )
            if not removed:
                return None
            return await _audit(tx, guild_id, now, moderator_id, "blocklist_remove", word)


async def _audit(
    tx: Tx, guild_id: int, now: float, moderator_id: int | None, action: str, target: str
) -> AuditEntry:
    return await write_audit(
        tx, guild_id=guild_id, at=now, actor_id=moderator_id, action=action, target=target
    )
