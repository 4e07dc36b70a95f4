"""Migrations: fresh files, upgrades from an older version, failed steps, and files from newer code."""

from __future__ import annotations

import sqlite3

import pytest

from bot.store import MIGRATIONS, Migration, SchemaError, Store

ADD_NICKNAME = Migration(
    version=len(MIGRATIONS) + 1,
    description="test-only step: a column and a table",
    statements=(
        "ALTER TABLE sessions ADD COLUMN nickname TEXT NOT NULL DEFAULT 'none'",
        "CREATE TABLE extra (id INTEGER PRIMARY KEY)",
    ),
)
BROKEN = Migration(
    version=len(MIGRATIONS) + 1,
    description="test-only step that fails half-way",
    statements=("CREATE TABLE half_done (id INTEGER PRIMARY KEY)", "THIS IS NOT SQL"),
)


async def test_fresh_file_gets_latest_schema_and_pragmas(tmp_path):
    async with await Store.open(tmp_path / "bot.db") as store:
        assert await store.schema_version() == len(MIGRATIONS)
        assert await store.pragma("journal_mode") == "wal"
        assert await store.pragma("foreign_keys") == "1"
        assert int(await store.pragma("busy_timeout")) >= 5000
        assert await store.integrity_check() == "ok"


async def test_reopen_does_not_reapply(tmp_path):
    path = tmp_path / "bot.db"
    async with await Store.open(path) as store:
        await store.sessions.create(guild_id=1, channel_id=2, user_id=3)
    async with await Store.open(path) as store:
        assert await store.schema_version() == len(MIGRATIONS)
        assert await store.sessions.count_for_user(1, 3) == 1


async def test_upgrade_from_older_version_keeps_data(tmp_path):
    path = tmp_path / "bot.db"
    async with await Store.open(path) as old:
        created = await old.sessions.create(guild_id=1, channel_id=2, user_id=3)
    async with await Store.open(path, migrations=(*MIGRATIONS, ADD_NICKNAME)) as new:
        assert await new.schema_version() == ADD_NICKNAME.version
        row = await new.db.fetch_one("SELECT id, nickname FROM sessions")
        assert row is not None
        assert (row["id"], row["nickname"]) == (created.id, "none")
        assert (await new.sessions.get(created.id)) == created


async def test_failed_step_rolls_back_completely(tmp_path):
    path = tmp_path / "bot.db"
    async with await Store.open(path):
        pass
    with pytest.raises(sqlite3.OperationalError):
        await Store.open(path, migrations=(*MIGRATIONS, BROKEN))
    async with await Store.open(path) as store:
        assert await store.schema_version() == len(MIGRATIONS)
        tables = await store.db.fetch_all("SELECT name FROM sqlite_master WHERE name = 'half_done'")
        assert tables == []


async def test_file_from_newer_code_is_refused(tmp_path):
    path = tmp_path / "bot.db"
    async with await Store.open(path, migrations=(*MIGRATIONS, ADD_NICKNAME)):
        pass
    with pytest.raises(SchemaError, match="newer"):
        await Store.open(path)


async def test_misnumbered_migrations_are_refused(tmp_path):
    skipped = Migration(version=len(MIGRATIONS) + 2, description="gap", statements=())
    with pytest.raises(SchemaError, match="in order"):
        await Store.open(tmp_path / "bot.db", migrations=(*MIGRATIONS, skipped))


async def test_a_file_from_every_earlier_version_upgrades_to_the_latest(tmp_path):
    for version in range(1, len(MIGRATIONS)):
        path = tmp_path / f"v{version}.db"
        async with await Store.open(path, migrations=MIGRATIONS[:version]) as old:
            session = await old.sessions.create(guild_id=1, channel_id=2, user_id=3)
            await old.usage.open_session(guild_id=1, user_id=3, session_id=session.id)
        async with await Store.open(path) as new:
            assert await new.schema_version() == len(MIGRATIONS)
            assert await new.integrity_check() == "ok"
            assert [entry.kind for entry in await new.usage.for_session(session.id)] == ["session"]
            indexes = await new.db.fetch_all("SELECT name FROM sqlite_master WHERE type = 'index'")
            assert "ledger_by_session" in {row["name"] for row in indexes}
            upgraded = await new.sessions.get(session.id)
            assert upgraded is not None and upgraded.events_applied == 0
