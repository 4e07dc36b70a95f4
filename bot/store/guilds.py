"""Guild settings and rules: default quotas, queue cap, idle timeout, photo retention, clips, privacy, pause,
mod-log, channel allowlist, blocklist.

Every change takes the moderator's id and writes its audit entry in the same transaction; mutators return
that entry (for the mod-log channel), or None when nothing changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import aiosqlite

from bot.store.audit import write_audit
from bot.store.database import Database, Tx
from bot.store.quotas import check_limits
from bot.store.records import AuditEntry, GuildSettings, QuotaLimits

_SETTING_COLUMNS = (
    "daily_seconds",
    "monthly_seconds",
    "daily_sessions",
    "monthly_sessions",
    "queue_cap",
    "idle_timeout_seconds",
    "mod_log_channel_id",
    "photo_retention_hours",
    "snippets_enabled",
    "private_by_default",
    "paused",
    "pause_message",
)
PAUSE_MESSAGE_CHARS = 200


def _number(low: float, high: float, unit: str, kind: type = float) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise ValueError(f"must be a number from {low:g} to {high:g} {unit}")
        return kind(value)

    return check


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be on or off")
    return value


def _message(value: Any) -> str:
    text = " ".join(str(value).split())
    if not 1 <= len(text) <= PAUSE_MESSAGE_CHARS:
        raise ValueError(f"must be 1 to {PAUSE_MESSAGE_CHARS} characters")
    return text


# What moderators may set with `update`, and what each accepts (None always means: the bot's default).
SETTING_CHECKS: dict[str, Callable[[Any], Any]] = {
    "queue_cap": _number(0, 100, "members", int),
    "idle_timeout_seconds": _number(10, 3600, "seconds"),
    "photo_retention_hours": _number(0, 720, "hours"),
    "snippets_enabled": _flag,
    "private_by_default": _flag,
    "paused": _flag,
    "pause_message": _message,
}


def check_settings(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The changes, cleaned; ValueError naming the setting when one is unknown or out of range."""
    checked: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in SETTING_CHECKS:
            raise ValueError(f"{name}: not a server setting")
        try:
            checked[name] = None if value is None else SETTING_CHECKS[name](value)
        except ValueError as error:
            raise ValueError(f"{name} {error}") from None
    return checked


def _flag_of(value: int | None) -> bool | None:
    return None if value is None else bool(value)


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
        updated_at=row["updated_at"],
        photo_retention_hours=row["photo_retention_hours"],
        snippets_enabled=_flag_of(row["snippets_enabled"]),
        private_by_default=_flag_of(row["private_by_default"]),
        paused=_flag_of(row["paused"]),
        pause_message=row["pause_message"],
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

    async def set_idle_timeout(
        self, guild_id: int, seconds: float | None, *, moderator_id: int | None
    ) -> AuditEntry:
        """End a session after this many seconds without a prompt (None: bot default)."""
        if seconds is not None and seconds <= 0:
            raise ValueError("idle timeout must be > 0")
        return await self._set(guild_id, {"idle_timeout_seconds": seconds}, moderator_id, "idle_timeout_set")

    async def update(
        self, guild_id: int, changes: Mapping[str, Any], *, moderator_id: int | None
    ) -> AuditEntry | None:
        """Set several settings at once (None: back to the bot's default), checked by `SETTING_CHECKS`.

        One audit entry names what changed; None (and nothing written) when nothing would change.
        ValueError, naming the setting, for an unknown name or a value out of range.
        """
        checked = check_settings(changes)
        current = await self.get(guild_id)
        changed = {name: value for name, value in checked.items() if getattr(current, name) != value}
        if not changed:
            return None
        return await self._set(guild_id, changed, moderator_id, "guild_settings_set")

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
