"""Members' own settings for new try-ons (private by default, orientation, clips), in every server."""

from __future__ import annotations

from bot.store.database import Database
from bot.store.records import MemberSettings

ORIENTATIONS = ("portrait", "landscape")


def _flag(value: int | None) -> bool | None:
    return None if value is None else bool(value)


class MemberPreferences:
    """Read and change one member's settings; a member never configured reads as all None."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, user_id: int) -> MemberSettings:
        """The member's settings (all None when never set)."""
        row = await self._db.fetch_one(
            "SELECT private, orientation, snippets FROM member_settings WHERE user_id = ?", (user_id,)
        )
        if row is None:
            return MemberSettings(user_id=user_id)
        return MemberSettings(
            user_id=user_id,
            private=_flag(row["private"]),
            orientation=row["orientation"],
            snippets=_flag(row["snippets"]),
        )

    async def update(
        self,
        user_id: int,
        *,
        private: bool | None = None,
        orientation: str | None = None,
        snippets: bool | None = None,
        at: float | None = None,
    ) -> MemberSettings:
        """Change the settings given (None leaves one as it is); returns them all."""
        if orientation is not None and orientation not in ORIENTATIONS:
            raise ValueError(f"orientation must be one of {ORIENTATIONS}")
        await self._db.execute(
            "INSERT INTO member_settings (user_id, private, orientation, snippets, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
            " private = COALESCE(excluded.private, private),"
            " orientation = COALESCE(excluded.orientation, orientation),"
            " snippets = COALESCE(excluded.snippets, snippets),"
            " updated_at = excluded.updated_at",
            (user_id, private, orientation, snippets, self._db.now(at)),
        )
        return await self.get(user_id)
