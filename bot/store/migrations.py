"""Versioned schema migrations: ordered steps, each applied in its own transaction with `PRAGMA user_version`.

Add a step by appending a `Migration` with the next version; never edit a step that has shipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite


@dataclass(frozen=True)
class Migration:
    """One schema step: its version number (1, 2, ...) and the statements that take the schema there."""

    version: int
    description: str
    statements: tuple[str, ...]


class SchemaError(RuntimeError):
    """The database file's schema cannot be used by this code (newer, or migration list broken)."""


INITIAL_SCHEMA = Migration(
    version=1,
    description="guild rules, quota overrides, blocks, sessions, streams, prompts, usage ledger, audit log",
    statements=(
        """
        CREATE TABLE guild_settings (
            guild_id INTEGER PRIMARY KEY,
            daily_seconds REAL,
            monthly_seconds REAL,
            daily_sessions INTEGER,
            monthly_sessions INTEGER,
            queue_cap INTEGER,
            idle_timeout_seconds REAL,
            mod_log_channel_id INTEGER,
            updated_at REAL NOT NULL
        )
        """,
        """
        CREATE TABLE allowed_channels (
            guild_id INTEGER NOT NULL,
            channel_id INTEGER NOT NULL,
            added_by INTEGER,
            added_at REAL NOT NULL,
            PRIMARY KEY (guild_id, channel_id)
        )
        """,
        """
        CREATE TABLE blocked_words (
            guild_id INTEGER NOT NULL,
            word TEXT NOT NULL,
            added_by INTEGER,
            added_at REAL NOT NULL,
            PRIMARY KEY (guild_id, word)
        )
        """,
        """
        CREATE TABLE quota_overrides (
            guild_id INTEGER NOT NULL,
            subject_kind TEXT NOT NULL CHECK (subject_kind IN ('user', 'role')),
            subject_id INTEGER NOT NULL,
            daily_seconds REAL,
            monthly_seconds REAL,
            daily_sessions INTEGER,
            monthly_sessions INTEGER,
            set_by INTEGER,
            updated_at REAL NOT NULL,
            PRIMARY KEY (guild_id, subject_kind, subject_id)
        )
        """,
        """
        CREATE TABLE blocks (
            guild_id INTEGER NOT NULL,
            user_id INTEGER NOT NULL,
            reason TEXT,
            moderator_id INTEGER,
            created_at REAL NOT NULL,
            expires_at REAL,
            PRIMARY KEY (guild_id, user_id)
        )
        """,
        """
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            guild_id INTEGER NOT NULL,
            channel_id INTEGER,
            user_id INTEGER NOT NULL,
            state TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            ended_at REAL,
            photo_sha256 TEXT,
            orientation TEXT,
            error TEXT,
            error_reason TEXT,
            front_end TEXT,
            heartbeat_at REAL,
            streamed_seconds REAL NOT NULL DEFAULT 0
        )
        """,
        "CREATE INDEX sessions_by_guild_state ON sessions (guild_id, state)",
        "CREATE INDEX sessions_by_user ON sessions (user_id, created_at)",
        "CREATE INDEX sessions_by_state ON sessions (state)",
        """
        CREATE TABLE streams (
            id INTEGER PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            stream_index INTEGER NOT NULL,
            odyssey_stream_id TEXT,
            prompt TEXT,
            started_at REAL NOT NULL,
            ended_at REAL,
            seconds REAL NOT NULL DEFAULT 0,
            end_reason TEXT,
            UNIQUE (session_id, stream_index)
        )
        """,
        "CREATE INDEX streams_by_odyssey_id ON streams (odyssey_stream_id)",
        """
        CREATE TABLE prompts (
            id INTEGER PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            at REAL NOT NULL,
            text TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending', 'applied', 'refused')),
            refusal_reason TEXT
        )
        """,
        "CREATE INDEX prompts_by_session ON prompts (session_id, at)",
        # No foreign key to sessions: the ledger must outlive a forgotten session (see Store.forget).
        """
        CREATE TABLE usage_ledger (
            id INTEGER PRIMARY KEY,
            guild_id INTEGER NOT NULL,
            user_id INTEGER NOT NULL,
            session_id TEXT,
            kind TEXT NOT NULL CHECK (kind IN ('session', 'charge', 'refund', 'adjust')),
            seconds REAL NOT NULL DEFAULT 0,
            sessions INTEGER NOT NULL DEFAULT 0,
            at REAL NOT NULL,
            actor_id INTEGER,
            note TEXT
        )
        """,
        "CREATE INDEX ledger_by_member ON usage_ledger (guild_id, user_id, at)",
        "CREATE INDEX ledger_by_guild ON usage_ledger (guild_id, at)",
        # What makes start/charge/refund exactly-once per session.
        """
        CREATE UNIQUE INDEX ledger_once_per_session ON usage_ledger (session_id, kind)
        WHERE session_id IS NOT NULL AND kind IN ('session', 'charge', 'refund')
        """,
        """
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            guild_id INTEGER NOT NULL,
            at REAL NOT NULL,
            actor_id INTEGER,
            action TEXT NOT NULL,
            target_user_id INTEGER,
            target TEXT,
            details TEXT NOT NULL DEFAULT '{}'
        )
        """,
        "CREATE INDEX audit_by_guild ON audit_log (guild_id, id)",
        "CREATE INDEX audit_by_target ON audit_log (target_user_id)",
        "CREATE INDEX audit_by_actor ON audit_log (actor_id)",
    ),
)

LEDGER_BY_SESSION = Migration(
    version=2,
    description="index the usage ledger by session",
    statements=(
        # Settlement and the in-flight quota sum look rows up by session; the partial unique index above
        # cannot serve them (SQLite uses it only when a query repeats its WHERE), so each was a full scan.
        "CREATE INDEX ledger_by_session ON usage_ledger (session_id, kind)",
    ),
)

KEPT_PHOTOS = Migration(
    version=3,
    description="members' last photos kept for a server's retention time; the setting per server",
    statements=(
        # One photo per member and server: the file lives in the data folder, this row says whose it is,
        # which upload it came from and when it must be gone.
        """
        CREATE TABLE kept_photos (
            guild_id INTEGER NOT NULL,
            user_id INTEGER NOT NULL,
            file_name TEXT NOT NULL,
            upload_sha256 TEXT NOT NULL,
            kept_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            PRIMARY KEY (guild_id, user_id)
        )
        """,
        "CREATE INDEX kept_photos_by_expiry ON kept_photos (expires_at)",
        "ALTER TABLE guild_settings ADD COLUMN photo_retention_hours REAL",
    ),
)

EVENTS_APPLIED = Migration(
    version=4,
    description="the last event from a worker applied per session",
    statements=(
        # A session on a worker reports through numbered events; a restarted bot drops those it had applied.
        "ALTER TABLE sessions ADD COLUMN events_applied INTEGER NOT NULL DEFAULT 0",
    ),
)

MEMBERS_IN_CHARGE = Migration(
    version=5,
    description="notices sent once, the bot's posts of each try-on, members' and servers' new settings",
    statements=(
        # guild_id 0 (NO_GUILD): bot-wide. `sent_at` tells whether a notice repeated per window is due again.
        """
        CREATE TABLE notices (
            guild_id INTEGER NOT NULL,
            kind TEXT NOT NULL,
            sent_at REAL NOT NULL,
            PRIMARY KEY (guild_id, kind)
        )
        """,
        # Every public message the bot posted for a try-on, so Delete and forget can remove them. No
        # foreign key to sessions: forgetting deletes the session row but keeps the posts it could not
        # remove (no permission), to try again later.
        """
        CREATE TABLE bot_posts (
            message_id INTEGER PRIMARY KEY,
            channel_id INTEGER NOT NULL,
            guild_id INTEGER NOT NULL,
            session_id TEXT NOT NULL,
            user_id INTEGER NOT NULL,
            posted_at REAL NOT NULL
        )
        """,
        "CREATE INDEX bot_posts_by_session ON bot_posts (session_id)",
        "CREATE INDEX bot_posts_by_user ON bot_posts (user_id)",
        # A member's own defaults for new try-ons (every server); NULL: not chosen, the server's default.
        """
        CREATE TABLE member_settings (
            user_id INTEGER PRIMARY KEY,
            private INTEGER,
            orientation TEXT CHECK (orientation IN ('portrait', 'landscape')),
            snippets INTEGER,
            updated_at REAL NOT NULL
        )
        """,
        # A server's moderators' settings, NULL: the bot's default (photo_retention_hours came in version 3).
        "ALTER TABLE guild_settings ADD COLUMN snippets_enabled INTEGER",
        "ALTER TABLE guild_settings ADD COLUMN private_by_default INTEGER",
        "ALTER TABLE guild_settings ADD COLUMN paused INTEGER",
        "ALTER TABLE guild_settings ADD COLUMN pause_message TEXT",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (
    INITIAL_SCHEMA,
    LEDGER_BY_SESSION,
    KEPT_PHOTOS,
    EVENTS_APPLIED,
    MEMBERS_IN_CHARGE,
)


def check_migrations(migrations: tuple[Migration, ...]) -> None:
    """Refuse a migration list whose versions are not exactly 1, 2, 3, ..."""
    versions = [step.version for step in migrations]
    if versions != list(range(1, len(migrations) + 1)):
        raise SchemaError(f"migration versions must be 1..N in order, got {versions}")


async def schema_version(conn: aiosqlite.Connection) -> int:
    """The schema version recorded in the file (0 for a new file)."""
    async with conn.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row is not None else 0


async def migrate(conn: aiosqlite.Connection, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Apply every step newer than the file's version, each in its own transaction; return the new version.

    `conn` must be in autocommit mode (isolation_level=None) so the explicit BEGIN/COMMIT are ours. A step
    that fails rolls back completely, leaving the file at the previous version.
    """
    check_migrations(migrations)
    current = await schema_version(conn)
    if current > len(migrations):
        raise SchemaError(
            f"database schema version {current} is newer than this code knows ({len(migrations)}); "
            "upgrade the bot instead of opening this file with an older one"
        )
    for step in migrations[current:]:
        # IMMEDIATE takes the write lock up front, so two processes starting together cannot both migrate.
        await conn.execute("BEGIN IMMEDIATE")
        try:
            if await schema_version(conn) >= step.version:
                await conn.execute("ROLLBACK")
                continue
            for statement in step.statements:
                await conn.execute(statement)
            await conn.execute(f"PRAGMA user_version = {int(step.version)}")
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
    return await schema_version(conn)
