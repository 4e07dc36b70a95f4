"""`Store`: opens the SQLite file (WAL, foreign keys, busy timeout), migrates it, holds the repositories."""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from types import TracebackType

import aiosqlite

from bot.store.audit import AuditLog
from bot.store.blocks import Blocks
from bot.store.database import Clock, Database
from bot.store.guilds import GuildRules
from bot.store.members import MemberPreferences
from bot.store.migrations import MIGRATIONS, Migration, migrate, schema_version
from bot.store.notices import Notices
from bot.store.photos import KeptPhotos
from bot.store.posts import Posts
from bot.store.prompts import Prompts
from bot.store.quotas import QuotaOverrides
from bot.store.records import UNFINISHED_STATES, ForgetResult
from bot.store.sessions import Sessions
from bot.store.streams import Streams
from bot.store.usage import UsageLedger

log = logging.getLogger(__name__)

BUSY_TIMEOUT_SECONDS = 10.0
_UNFINISHED = ", ".join(f"'{state}'" for state in UNFINISHED_STATES)


def month_start(now: float) -> float:
    """Start of the UTC calendar month containing `now`."""
    moment = dt.datetime.fromtimestamp(now, tz=dt.UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


class Store:
    """The bot's state in one SQLite file: `await Store.open(path)` (also usable with `async with`)."""

    def __init__(self, conn: aiosqlite.Connection, path: Path, clock: Clock) -> None:
        self._conn = conn
        self.path = path
        self.db = Database(conn, clock)
        self.guilds = GuildRules(self.db)
        self.quotas = QuotaOverrides(self.db)
        self.blocks = Blocks(self.db)
        self.sessions = Sessions(self.db)
        self.streams = Streams(self.db)
        self.prompts = Prompts(self.db)
        self.usage = UsageLedger(self.db)
        self.audit = AuditLog(self.db)
        self.photos = KeptPhotos(self.db, path.parent / "photos")
        self.notices = Notices(self.db)
        self.posts = Posts(self.db)
        self.members = MemberPreferences(self.db)

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        clock: Clock = time.time,
        migrations: tuple[Migration, ...] = MIGRATIONS,
    ) -> Store:
        """Open (creating if needed) and migrate the database at `path`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit, so BEGIN/COMMIT are explicit and ours (see Database.transaction).
        conn = await aiosqlite.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS)
        try:
            conn.row_factory = aiosqlite.Row
            await conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
            await conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable across a crash of the bot process in WAL mode; only power loss can lose the
            # last commits, which for heartbeats is a few seconds of usage.
            await conn.execute("PRAGMA synchronous = NORMAL")
            await conn.execute("PRAGMA foreign_keys = ON")
            # Deleted and moved-away content is overwritten with zeros instead of lingering in free space,
            # so `forget` removes a member's words from the file, not just from the tables.
            await conn.execute("PRAGMA secure_delete = ON")
            await migrate(conn, migrations)
        except BaseException:
            await conn.close()
            raise
        return cls(conn, path, clock)

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        await self._conn.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def schema_version(self) -> int:
        """The file's schema version."""
        return await schema_version(self._conn)

    async def integrity_check(self) -> str:
        """SQLite's own integrity check: "ok" when the file is sound."""
        rows = await self.db.fetch_all("PRAGMA integrity_check")
        return "; ".join(str(row[0]) for row in rows)

    async def pragma(self, name: str) -> str:
        """Read one PRAGMA (for tests and diagnostics)."""
        if not name.isidentifier():
            raise ValueError(f"bad pragma name {name!r}")
        row = await self.db.fetch_one(f"PRAGMA {name}")
        return "" if row is None else str(row[0])

    async def _truncate_wal(self) -> None:
        """Copy the WAL into the database file and empty it (old page versions live on in the WAL)."""
        row = await self.db.fetch_one("PRAGMA wal_checkpoint(TRUNCATE)")
        if row is not None and row[0]:
            # Another connection is reading; the words stay in the WAL until its next full checkpoint.
            log.warning("forget: the WAL could not be truncated (database busy)")

    async def forget(self, user_id: int, *, now: float | None = None) -> ForgetResult:
        """Delete a member's own data in every guild: finished sessions with their streams and prompts, and
        their kept photos (files included).

        Kept on purpose:
        - queued/live sessions (stop them first; the engine is still using them);
        - usage ledger rows of the current UTC month, stripped of their session link, because quotas are
          enforced from them: deleting them would let anyone reset a monthly quota by forgetting. Older rows
          can no longer affect any quota window and are deleted.
        - moderators' records (blocks, overrides, audit entries), because they are the guild's, not the
          member's; the member's own words in them (`details["prompt"]`, e.g. refused prompts) are removed.
        - the record of the bot's posts (`bot_posts`): the front end removes the posts from Discord first
          and drops the rows of those gone (`posts.remove`); the ones it could not remove stay listed so a
          later forget can try again. The member's own settings are deleted.

        Deleted content is zeroed in the file (`secure_delete`), and the WAL, which still holds the pages as
        they were before, is checkpointed and truncated, so the words are gone from the bytes on disk too.
        """
        moment = self.db.now(now)
        async with self.db.transaction() as tx:
            live = await tx.fetch_one(
                f"SELECT COUNT(*) AS n FROM sessions WHERE user_id = ? AND state IN ({_UNFINISHED})",
                (user_id,),
            )
            gone = await tx.fetch_all(
                f"SELECT id FROM sessions WHERE user_id = ? AND state NOT IN ({_UNFINISHED})", (user_id,)
            )
            gone_ids = [row["id"] for row in gone]
            marks = ", ".join("?" for _ in gone_ids)
            sessions_deleted = await tx.execute(f"DELETE FROM sessions WHERE id IN ({marks})", gone_ids)
            ledger_deleted = await tx.execute(
                "DELETE FROM usage_ledger WHERE user_id = ? AND at < ?", (user_id, month_start(moment))
            )
            ledger_anonymised = await tx.execute(
                f"UPDATE usage_ledger SET session_id = NULL WHERE user_id = ? AND session_id IN ({marks})",
                (user_id, *gone_ids),
            )
            settings_deleted = await tx.execute("DELETE FROM member_settings WHERE user_id = ?", (user_id,))
            audit_redacted = await tx.execute(
                "UPDATE audit_log SET details = json_set(json_remove(details, '$.prompt'), '$.redacted', 1)"
                " WHERE (actor_id = ? OR target_user_id = ?)"
                " AND json_extract(details, '$.prompt') IS NOT NULL",
                (user_id, user_id),
            )
        photos_deleted = await self.photos.forget(user_id)
        await self._truncate_wal()
        return ForgetResult(
            sessions_deleted=sessions_deleted,
            live_sessions_kept=0 if live is None else int(live["n"]),
            ledger_rows_deleted=ledger_deleted,
            ledger_rows_anonymised=ledger_anonymised,
            audit_rows_redacted=audit_redacted,
            photos_deleted=photos_deleted,
            member_settings_deleted=settings_deleted,
        )
