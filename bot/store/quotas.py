"""Quota overrides for members and roles in a guild (the policy that combines them is bot.tryon.quota)."""

from __future__ import annotations

from collections.abc import Collection

import aiosqlite

from bot.store.audit import write_audit
from bot.store.database import Database
from bot.store.records import AuditEntry, QuotaLimits, QuotaOverride

USER = "user"
ROLE = "role"
_LIMIT_COLUMNS = "daily_seconds, monthly_seconds, daily_sessions, monthly_sessions"
_COLUMNS = f"guild_id, subject_kind, subject_id, {_LIMIT_COLUMNS}, set_by, updated_at"


def _override_from_row(row: aiosqlite.Row) -> QuotaOverride:
    return QuotaOverride(
        guild_id=row["guild_id"],
        subject_kind=row["subject_kind"],
        subject_id=row["subject_id"],
        limits=QuotaLimits(
            daily_seconds=row["daily_seconds"],
            monthly_seconds=row["monthly_seconds"],
            daily_sessions=row["daily_sessions"],
            monthly_sessions=row["monthly_sessions"],
        ),
        set_by=row["set_by"],
        updated_at=row["updated_at"],
    )


class QuotaOverrides:
    """Set, clear and read per-member and per-role limits; every call is scoped to one guild."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def set_user(
        self, guild_id: int, user_id: int, limits: QuotaLimits, *, moderator_id: int | None
    ) -> AuditEntry:
        """Replace a member's override (None fields inherit from roles / the guild default)."""
        return await self._set(guild_id, USER, user_id, limits, moderator_id)

    async def set_role(
        self, guild_id: int, role_id: int, limits: QuotaLimits, *, moderator_id: int | None
    ) -> AuditEntry:
        """Replace a role's override (None fields inherit from the guild default)."""
        return await self._set(guild_id, ROLE, role_id, limits, moderator_id)

    async def clear_user(self, guild_id: int, user_id: int, *, moderator_id: int | None) -> AuditEntry | None:
        """Remove a member's override; None if there was none."""
        return await self._clear(guild_id, USER, user_id, moderator_id)

    async def clear_role(self, guild_id: int, role_id: int, *, moderator_id: int | None) -> AuditEntry | None:
        """Remove a role's override; None if there was none."""
        return await self._clear(guild_id, ROLE, role_id, moderator_id)

    async def get_user(self, guild_id: int, user_id: int) -> QuotaOverride | None:
        """A member's override in this guild, if any."""
        row = await self._db.fetch_one(
            f"SELECT {_COLUMNS} FROM quota_overrides"
            " WHERE guild_id = ? AND subject_kind = ? AND subject_id = ?",
            (guild_id, USER, user_id),
        )
        return None if row is None else _override_from_row(row)

    async def get_role(self, guild_id: int, role_id: int) -> QuotaOverride | None:
        """A role's override in this guild, if any."""
        found = await self.for_roles(guild_id, [role_id])
        return found[0] if found else None

    async def for_roles(self, guild_id: int, role_ids: Collection[int]) -> list[QuotaOverride]:
        """Overrides for any of these roles in this guild."""
        if not role_ids:
            return []
        marks = ", ".join("?" for _ in role_ids)
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM quota_overrides"
            f" WHERE guild_id = ? AND subject_kind = ? AND subject_id IN ({marks}) ORDER BY subject_id",
            (guild_id, ROLE, *role_ids),
        )
        return [_override_from_row(row) for row in rows]

    async def list(self, guild_id: int) -> list[QuotaOverride]:
        """Every override in this guild, roles first."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM quota_overrides WHERE guild_id = ? ORDER BY subject_kind, subject_id",
            (guild_id,),
        )
        return [_override_from_row(row) for row in rows]

    async def _set(
        self, guild_id: int, kind: str, subject_id: int, limits: QuotaLimits, moderator_id: int | None
    ) -> AuditEntry:
        check_limits(limits)
        now = self._db.now()
        values = limits.as_dict()
        async with self._db.transaction() as tx:
            await tx.execute(
                f"INSERT INTO quota_overrides ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (guild_id, subject_kind, subject_id) DO UPDATE SET"
                " daily_seconds = excluded.daily_seconds, monthly_seconds = excluded.monthly_seconds,"
                " daily_sessions = excluded.daily_sessions, monthly_sessions = excluded.monthly_sessions,"
                " set_by = excluded.set_by, updated_at = excluded.updated_at",
                (guild_id, kind, subject_id, *values.values(), moderator_id, now),
            )
            return await write_audit(
                tx,
                guild_id=guild_id,
                at=now,
                actor_id=moderator_id,
                action=f"quota_{kind}_set",
                target_user_id=subject_id if kind == USER else None,
                target=f"{kind}:{subject_id}",
                details=values,
            )

    async def _clear(
        self, guild_id: int, kind: str, subject_id: int, moderator_id: int | None
    ) -> AuditEntry | None:
        now = self._db.now()
        async with self._db.transaction() as tx:
            removed = await tx.execute(
                "DELETE FROM quota_overrides WHERE guild_id = ? AND subject_kind = ? AND subject_id = ?",
                (guild_id, kind, subject_id),
            )
            if not removed:
                return None
            return await write_audit(
                tx,
                guild_id=guild_id,
                at=now,
                actor_id=moderator_id,
                action=f"quota_{kind}_cleared",
                target_user_id=subject_id if kind == USER else None,
                target=f"{kind}:{subject_id}",
            )


def check_limits(limits: QuotaLimits) -> None:
    """Refuse negative limits (a guild default or an override)."""
    for name, value in limits.as_dict().items():
        if value is not None and value < 0:
            raise ValueError(f"{name} must be >= 0")
