"""Members' last photos, kept for a server's retention time so they can try another outfit without uploading.

The photo is the checked JPEG the platform got (upright, metadata such as GPS stripped, scaled down), never
the upload itself. Files live only in the data folder beside the database (one per member and server,
owner-only permissions); a row says whose each is and when it must be gone. File work runs in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import tempfile
from pathlib import Path

from bot.store.database import Database

HOUR = 3600.0


class KeptPhotos:
    """Keep, read, expire and forget members' last photos (`folder` holds the files)."""

    def __init__(self, db: Database, folder: Path) -> None:
        self._db = db
        self.folder = folder

    async def keep(
        self, guild_id: int, user_id: int, jpeg: bytes, upload_sha256: str, *, hours: float
    ) -> None:
        """Keep `jpeg` as the member's photo in this server for `hours` (0 or less: keep none, drop any)."""
        if hours <= 0:
            await self.drop(guild_id, user_id)
            return
        name = _file_name(guild_id, user_id)
        await asyncio.to_thread(_write_private, self.folder, name, jpeg)
        now = self._db.now()
        await self._db.execute(
            "INSERT INTO kept_photos (guild_id, user_id, file_name, upload_sha256, kept_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (guild_id, user_id) DO UPDATE SET file_name = excluded.file_name,"
            " upload_sha256 = excluded.upload_sha256, kept_at = excluded.kept_at,"
            " expires_at = excluded.expires_at",
            (guild_id, user_id, name, upload_sha256, now, now + hours * HOUR),
        )

    async def find(self, guild_id: int, user_id: int) -> KeptPhotoEntry | None:
        """Which photo of the member is kept in this server (its file not read), unless it expired."""
        row = await self._db.fetch_one(
            "SELECT file_name, upload_sha256, expires_at FROM kept_photos WHERE guild_id = ? AND user_id = ?",
            (guild_id, user_id),
        )
        if row is None:
            return None
        if row["expires_at"] <= self._db.now():
            await self.drop(guild_id, user_id)
            return None
        return KeptPhotoEntry(row["file_name"], row["upload_sha256"], row["expires_at"])

    async def get(self, guild_id: int, user_id: int) -> KeptPhoto | None:
        """The member's kept photo in this server, unless it expired or is gone."""
        entry = await self.find(guild_id, user_id)
        if entry is None:
            return None
        data = await asyncio.to_thread(_read, self.folder / entry.file_name)
        if data is None:  # removed by hand: the row goes too
            await self.drop(guild_id, user_id)
            return None
        return KeptPhoto(data, entry.upload_sha256, entry.expires_at)

    async def drop(self, guild_id: int, user_id: int) -> int:
        """Remove the member's kept photo in this server; how many were removed (0 or 1)."""
        return await self._remove("guild_id = ? AND user_id = ?", (guild_id, user_id))

    async def forget(self, user_id: int) -> int:
        """Remove the member's kept photos in every server; how many."""
        return await self._remove("user_id = ?", (user_id,))

    async def sweep(self) -> int:
        """Remove every photo past its time; how many."""
        return await self._remove("expires_at <= ?", (self._db.now(),))

    async def _remove(self, where: str, params: tuple[float | int, ...]) -> int:
        async with self._db.transaction() as tx:
            rows = await tx.fetch_all(f"SELECT file_name FROM kept_photos WHERE {where}", params)
            await tx.execute(f"DELETE FROM kept_photos WHERE {where}", params)
        names = [str(row["file_name"]) for row in rows]
        await asyncio.to_thread(_unlink_all, self.folder, names)
        return len(names)


@dataclasses.dataclass(frozen=True)
class KeptPhotoEntry:
    """Which photo is kept: its file in the folder, the hash of the upload it was made from, its expiry."""

    file_name: str
    upload_sha256: str
    expires_at: float


@dataclasses.dataclass(frozen=True)
class KeptPhoto:
    """A kept photo: the JPEG, the hash of the upload it was made from, and when it expires."""

    data: bytes = dataclasses.field(repr=False)
    upload_sha256: str
    expires_at: float


def _file_name(guild_id: int, user_id: int) -> str:
    return f"{int(guild_id)}-{int(user_id)}.jpg"  # ints only: nothing a member types reaches a path


def _write_private(folder: Path, name: str, data: bytes) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".keep-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:  # mkstemp makes it 0600
            file.write(data)
        os.replace(temporary, folder / name)  # atomic: a reader sees the old photo or the new one
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _unlink_all(folder: Path, names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
