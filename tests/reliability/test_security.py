"""Security through the real bot on the fake Discord (issue 5): who may act, what each guild sees, what stays.

Every test drives the real discord.py client, the real SQLite file and (where a session runs) the emulator
over real WebRTC on loopback. The interactions are crafted the way a hostile or misconfigured server could
deliver them: commands Discord should have hidden, buttons on messages the presser never saw, session ids
from another server, attachment objects with URLs and names nobody should trust.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import contextlib
import copy
import dataclasses
import json
import logging
import re
import secrets
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from discord import AppCommandOptionType as discord_option
from discord import app_commands

from bot.app import TryOnBot
from bot.config import BotConfig, DiscordSettings, OdysseySettings
from bot.emulator.config import ApiKey
from bot.logsafety import configure_logging
from bot.odyssey.rest import ApiClient
from bot.store import Store
from bot.tryon.photos import MAX_PHOTO_BYTES
from cogs.admin._cog import TryOnAdmin
from cogs.utils.download import NOT_FROM_DISCORD
from tests.fakediscord import BotDriver, FakeDiscord, FakeMessage
from tests.fakediscord import payloads as p
from tests.helpers import (
    PHOTO,
    ROOT,
    fast_engine,
    make_bot_config,
    photo_option,
    session_id_of,
    start_streaming,
    stored_session,
    until,
    user_id,
    wait_status,
)
from tests.reliability.conftest import assert_settled_once

pytestmark = pytest.mark.timeout(120)

Ctx = Callable[..., p.InteractionContext]
ADMINISTRATOR = 1 << 3
EPHEMERAL = 1 << 6
# Everything a member could be given short of Manage Server and Administrator (roles, channels, bans...).
ALMOST_EVERYTHING = p.ALL_PERMISSIONS & ~(p.MANAGE_GUILD | ADMINISTRATOR)
MANAGE_SERVER_REFUSAL = "You need the Manage Server permission"
UNEXPECTED = "Something went wrong"
NO_SUCH_SESSION = "That try-on session doesn't exist or has already finished."


@pytest.fixture
def bot_config(request: pytest.FixtureRequest, tmp_path: Path) -> BotConfig:
    """The bot on the emulator for tests that ask for one; otherwise no Odyssey at all (faster)."""
    if "emulator" in request.fixturenames:
        return make_bot_config(tmp_path, request.getfixturevalue("emulator").url)
    config = make_bot_config(tmp_path)
    if "elsewhere" in request.fixturenames:
        # The redirecting stand-in counts as part of Discord's CDN; the trap never does.
        origins = (*config.discord.attachment_origins, request.getfixturevalue("elsewhere").cdn_url)
        return dataclasses.replace(
            config, discord=dataclasses.replace(config.discord, attachment_origins=origins)
        )
    return config


def stop_all(bot: TryOnBot) -> None:
    """Stop whatever the engine still runs (a session without an Odyssey to reach may already be gone)."""
    manager = bot.runtime.engine.manager
    for session in manager.sessions():
        manager.stop(session.id)


def member_with(world: p.GuildWorld, name: str, permissions: int) -> p.Payload:
    """A member whose resolved permissions in the interaction are exactly `permissions`."""
    payload = world.add_member(name)
    payload["permissions"] = str(permissions)
    return payload


async def db_snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to prove that a refused action changed nothing at all."""
    tables = await store.db.fetch_all(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    )
    snapshot = {}
    for table in tables:
        rows = await store.db.fetch_all(f'SELECT * FROM "{table["name"]}" ORDER BY rowid')
        snapshot[table["name"]] = [tuple(row) for row in rows]
    return snapshot


async def refusal(delivered: Any) -> str:
    """The text of an immediate, private refusal (a type-4 callback flagged ephemeral)."""
    callback = await delivered.response()
    assert callback.json["type"] == 4, callback.json
    assert callback.json["data"]["flags"] & EPHEMERAL, callback.json
    return str(callback.json["data"]["content"])


# 1. Moderator commands check Manage Server at run time, whatever Discord's command permissions say.


def _leaf_commands(
    commands: list[app_commands.Command[Any, ..., Any] | app_commands.Group], prefix: str
) -> list[tuple[str, app_commands.Command[Any, ..., Any]]]:
    leaves: list[tuple[str, app_commands.Command[Any, ..., Any]]] = []
    for command in commands:
        name = f"{prefix} {command.name}"
        if isinstance(command, app_commands.Group):
            leaves += _leaf_commands(command.commands, name)
        else:
            leaves.append((name, command))
    return leaves


ADMIN_COMMANDS = dict(_leaf_commands(TryOnAdmin.__cog_app_commands__, "tryonadmin"))


def required_options(
    command: app_commands.Command[Any, ..., Any], world: p.GuildWorld, target: p.Payload
) -> dict[str, Any]:
    """A value for every required option of `command`, of the type Discord would resolve it to."""
    values: dict[str, Any] = {}
    for param in command.parameters:
        if not param.required:
            continue
        kind = param.type
        if kind is discord_option.user:
            values[param.name] = p.opt_member(target)
        elif kind is discord_option.role:
            values[param.name] = p.opt_role(world.member_role)
        elif kind is discord_option.channel:
            values[param.name] = p.opt_channel(world.channels[1])
        elif kind is discord_option.string:
            values[param.name] = "velvet"
        else:
            raise AssertionError(f"no test value for {param.name}: {kind}")
    return values


def test_the_command_tree_is_what_the_table_covers() -> None:
    assert len(ADMIN_COMMANDS) == 21, sorted(ADMIN_COMMANDS)


@pytest.mark.parametrize("command", sorted(ADMIN_COMMANDS))
async def test_moderator_command_needs_manage_server_at_run_time(
    command: str, driver: BotDriver, world: p.GuildWorld, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    store = bot.runtime.store
    target = world.add_member("target")
    options = required_options(ADMIN_COMMANDS[command], world, target)
    # With a mod-log channel set, an action that slipped through would also be posted there.
    await store.guilds.set_mod_log_channel(world.guild_id, int(world.channels[1]["id"]), moderator_id=None)
    before = await db_snapshot(store)
    # Discord delivered the command although the member lacks Manage Server (an admin overrode the
    # command's default permissions for a role or channel): the bot must still refuse and change nothing.
    for name, permissions in (("member", p.MEMBER_PERMISSIONS), ("almost-admin", ALMOST_EVERYTHING)):
        ctx = driver.context(world, member_with(world, name, permissions))
        text = await refusal(driver.command(ctx, command, **options))
        assert MANAGE_SERVER_REFUSAL in text, (name, text)
    assert await db_snapshot(store) == before
    assert not [r for r in fake_discord.requests if r.method == "POST" and "/channels/" in r.path]

    # Moderators (Manage Server through a role) and administrators (the Administrator bit alone) may.
    for name, permissions in (
        ("moderator", p.MEMBER_PERMISSIONS | p.MANAGE_GUILD),
        ("administrator", p.MEMBER_PERMISSIONS | ADMINISTRATOR),
        ("owner", p.ALL_PERMISSIONS),
    ):
        ctx = driver.context(world, member_with(world, name, permissions))
        reply = await driver.command(ctx, command, **options).reply()
        assert reply.ephemeral, (name, reply.text)
        assert MANAGE_SERVER_REFUSAL not in reply.text and UNEXPECTED not in reply.text, (name, reply.text)


# 2. Buttons refuse everyone but the session's owner (and, for session controls, moderators).


async def test_session_buttons_refuse_non_owners_and_let_moderators_act(
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    emulator: Any,
) -> None:
    store = bot.runtime.store
    alice = as_member("alice")
    start, status = await start_streaming(driver, alice, "a red wool coat")
    session_id = session_id_of(status)
    session = bot.runtime.engine.manager.get(session_id)
    with_buttons = message_copy(status, world)  # as a member's client still shows it after the end

    strangers = [as_member("bob"), driver.context(world, member_with(world, "carol", ALMOST_EVERYTHING))]
    for stranger in strangers:
        for action in ("outfit", "snap", "stop"):
            text = await refusal(driver.press(stranger, status, f"tryon:{action}:{session_id}"))
            assert "Only the member who started this try-on" in text, (action, text)
    # Alice's open outfit modal, submitted by someone else (discord.py routes a submit by custom id alone).
    opened = await driver.press(alice, status, f"tryon:outfit:{session_id}").response()
    modal_id = opened.json["data"]["custom_id"]
    await driver.modal_opened(modal_id)
    field_id = opened.json["data"]["components"][0]["components"][0]["custom_id"]
    for stranger in strangers:
        text = await refusal(driver.submit(stranger, modal_id, {field_id: "a clown costume"}))
        assert text == "Only the member who opened this can use it.", text
    assert bot.runtime.engine.manager.get(session_id) is session and session.state == "streaming"
    assert [r.text for r in await store.prompts.for_session(session_id)] == ["a red wool coat"]
    assert not _snapshots_posted(fake_discord)
    assert not await store.audit.list(world.guild_id)

    # A moderator, or an administrator, may use the controls.
    moderator = as_member("mod", moderator=True)
    admin = driver.context(world, member_with(world, "admin", p.MEMBER_PERMISSIONS | ADMINISTRATOR))
    snap = await driver.press(admin, status, f"tryon:snap:{session_id}").reply(within=20)
    assert snap.ephemeral and snap.content == "Snapshot posted.", snap.content
    modal = await driver.press(moderator, status, f"tryon:outfit:{session_id}").response()
    assert modal.json["type"] == 9
    stopped = await driver.press(moderator, status, f"tryon:stop:{session_id}").reply()
    assert "Ending the try-on" in stopped.content
    await wait_status(fake_discord, start.token, "Done after", "Stopped", within=30)
    entries = await store.audit.list(world.guild_id, action="session_stopped")
    assert [(e.actor_id, e.target_user_id) for e in entries] == [(user_id(moderator), user_id(alice))]

    # The persistent buttons of a finished session still refuse strangers (the owner is read from SQLite).
    text = await refusal(driver.press(strangers[0], with_buttons, f"tryon:stop:{session_id}"))
    assert "Only the member who started this try-on" in text


def _snapshots_posted(fake: FakeDiscord) -> list[str]:
    return [
        f.filename
        for r in fake.requests
        for f in r.files
        if f.filename.startswith("tryon-") and f.filename.endswith(".png")
    ]


async def test_history_pages_and_forget_confirmation_answer_only_their_member(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    store = bot.runtime.store
    alice, moderator = as_member("alice"), as_member("mod", moderator=True)
    for _ in range(6):
        await stored_session(store, world.guild_id, user_id(alice), state="done")
    history = await driver.command(alice, "tryon history").reply()
    await driver.view_attached(history)
    question = await driver.command(alice, "tryon forget").reply()
    await driver.view_attached(question)
    before = await db_snapshot(store)
    # The answers themselves may count (history's page replaces its "thinking" message); presses add none.
    answered = (history.edits, question.edits)

    # Not even a moderator: these views belong to the member who opened them.
    for message, custom_id in (
        (history, "tryon:history:next"),
        (history, "tryon:history:prev"),
        (question, "tryon:forget:yes"),
        (question, "tryon:forget:no"),
    ):
        for other in (as_member("bob"), moderator):
            text = await refusal(driver.press(other, message, custom_id))
            assert text == "Only the member who opened this can use it.", (custom_id, text)
    assert await db_snapshot(store) == before
    assert (history.edits, question.edits) == answered

    # The member herself still can.
    turned = await driver.press(alice, history, "tryon:history:next").response()
    assert turned.json["type"] == 7 and "page 2" in turned.json["data"]["content"]


# 3. One guild's data is never visible in, or reachable from, another.


async def test_one_guilds_sessions_usage_and_audit_stay_in_that_guild(
    driver: BotDriver, bot: TryOnBot, fake_discord: FakeDiscord, emulator: Any
) -> None:
    store = bot.runtime.store
    guild_a, guild_b = p.guild_world("a"), p.guild_world("b")
    driver.add_guild(guild_a)
    driver.add_guild(guild_b)
    # Alice is a member of both servers (one user, two member objects); each server has a moderator.
    alice_user = p.user(name="alice")
    alice_a = driver.context(guild_a, p.member(alice_user, roles=[int(guild_a.member_role["id"])]))
    alice_b = driver.context(guild_b, p.member(alice_user, roles=[int(guild_b.member_role["id"])]))
    mod_a = driver.context(guild_a, guild_a.add_member("mod-a", moderator=True))
    mod_b = driver.context(guild_b, guild_b.add_member("mod-b", moderator=True))
    alice_id = int(alice_user["id"])

    # History in A: a finished session with usage; a moderator action about Alice in A.
    old = await stored_session(store, guild_a.guild_id, alice_id, state="done")
    await store.usage.open_session(guild_id=guild_a.guild_id, user_id=alice_id, session_id=old.id)
    await store.usage.charge(old.id, 240.0)
    await driver.command(
        mod_a, "tryonadmin block", member=p.opt_member(p.member(alice_user)), reason="test", days=1
    ).reply()
    await driver.command(mod_a, "tryonadmin unblock", member=p.opt_member(p.member(alice_user))).reply()
    # A live session in A.
    start, status = await start_streaming(driver, alice_a, "a teal cape")
    live_id = session_id_of(status)

    # Alice, in B, sees none of A.
    history = await driver.command(alice_b, "tryon history").reply()
    assert old.id not in history.content and live_id not in history.content
    for session_id in (old.id, live_id):
        shown = await driver.command(alice_b, "tryon show", id=session_id).reply()
        assert "No try-on of yours has that id in this server" in shown.content
        for action in ("stop", "snap", "outfit"):
            # The session's button on a message in B (a crafted custom id): there is no such session here.
            custom_id = f"tryon:{action}:{session_id}"
            text = await refusal(driver.press(alice_b, button_message(guild_b, custom_id), custom_id))
            assert text == NO_SUCH_SESSION, text
    for command in ("tryon status", "tryon stop", "tryon snapshot"):
        reply = await driver.command(alice_b, command).reply()
        assert "no try-on running here" in reply.content, (command, reply.content)
    outfit = await driver.command(alice_b, "tryon outfit", prompt="a gold crown").reply()
    assert "no try-on running here" in outfit.content
    quota = await driver.command(alice_b, "tryon quota").reply()
    assert quota.content.count("(used 0 s;") == 2, quota.content  # A's 4 minutes count in A only

    # B's moderator sees none of A.
    listed = await driver.command(mod_b, "tryonadmin sessions list").reply()
    assert live_id not in listed.content and "No try-ons are running" in listed.content
    stop = await driver.command(mod_b, "tryonadmin sessions stop", session_id=live_id).reply()
    assert stop.content == NO_SUCH_SESSION, stop.content
    for action in ("stop", "snap", "outfit"):
        custom_id = f"tryon:{action}:{live_id}"
        text = await refusal(driver.press(mod_b, button_message(guild_b, custom_id), custom_id))
        assert text == NO_SUCH_SESSION, text
    for session_id in (old.id, live_id):
        shown = await driver.command(mod_b, "tryon show", id=session_id).reply()
        assert "No try-on of yours has that id in this server" in shown.content
    usage = await driver.command(mod_b, "tryonadmin usage").reply()
    assert str(alice_id) not in usage.text and "nobody yet" in usage.text
    audit = await driver.command(mod_b, "tryonadmin audit").reply()
    assert audit.text == "No audit entries."
    shown_quota = await driver.command(
        mod_b, "tryonadmin quota show", member=p.opt_member(p.member(alice_user))
    ).reply()
    assert "today 0 s in 0 sessions" in shown_quota.text and "Blocked" not in shown_quota.text

    # And A's session is untouched by all of it.
    manager = bot.runtime.engine.manager
    assert manager.get(live_id).state == "streaming"
    assert [s.id for s in manager.sessions(guild_b.guild_id)] == []
    assert not await store.audit.list(guild_b.guild_id)
    assert [r.text for r in await store.prompts.for_session(live_id)] == ["a teal cape"]
    listed_a = await driver.command(mod_a, "tryonadmin sessions list").reply()
    assert live_id in listed_a.content
    await driver.command(alice_a, "tryon stop").reply()
    await wait_status(fake_discord, start.token, "Done after", within=30)


def message_copy(like: FakeMessage, world: p.GuildWorld) -> FakeMessage:
    """A copy of `like` (buttons included) as if it sat in `world`'s channel: what a crafted press claims."""
    return FakeMessage(
        id=p.snowflake(),
        channel_id=int(world.channel["id"]),
        author=like.author,
        content=like.content,
        embeds=copy.deepcopy(like.embeds),
        components=copy.deepcopy(like.components),
    )


def button_message(world: p.GuildWorld, custom_id: str) -> FakeMessage:
    """A bot message in `world`'s channel carrying one button `custom_id` (a crafted press needs one)."""
    return FakeMessage(
        id=p.snowflake(),
        channel_id=int(world.channel["id"]),
        author=p.user(name="tryon-bot", bot=True),
        content="",
        components=[p.button_row(custom_id)],
    )


# 4. `/tryon forget` deletes the member's data, down to the bytes of the SQLite file and its WAL.


async def test_forget_removes_the_members_rows_and_every_byte_of_their_prompts(
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    emulator: Any,
    tmp_path: Path,
) -> None:
    store = bot.runtime.store
    marker = "zq" + secrets.token_hex(6)  # appears nowhere but in Alice's prompts
    alice, bob = as_member("alice"), as_member("bob")
    await store.guilds.add_blocked_word(world.guild_id, "sequins", moderator_id=None)
    refused = await driver.command(
        alice, "tryon start", photo=photo_option(fake_discord), outfit=f"{marker} sequins gown"
    ).reply()
    assert "doesn't allow" in refused.content
    start, status = await start_streaming(driver, alice, f"a {marker} velvet kimono")
    session_id = session_id_of(status)
    changed = await driver.command(alice, "tryon outfit", prompt=f"a {marker} linen suit").reply(within=30)
    assert changed.content == "New outfit applied."
    await driver.command(alice, "tryon stop").reply()
    await wait_status(fake_discord, start.token, "Done after", within=30)
    await fake_discord.wait_for(lambda: _recording_offered(fake_discord, start.token), 30)
    await until(lambda: bot.runtime.engine.manager.session_for(user_id(alice)) is None)
    charged = await assert_settled_once(store, session_id)
    # Bob's data must survive Alice's forget.
    bob_session = await stored_session(store, world.guild_id, user_id(bob), state="done")
    await store.prompts.add(bob_session.id, "bob's plain coat", status="applied")
    assert marker.encode() in _database_bytes(store)
    # bot_posts: her try-on's posts; kept_photos: her photo, kept for another try-on.
    mentioning = {"sessions", "usage_ledger", "audit_log", "bot_posts", "kept_photos"}
    assert await tables_mentioning(store, user_id(alice)) == mentioning
    kept_photo = tmp_path / "photos" / f"{world.guild_id}-{user_id(alice)}.jpg"
    assert kept_photo.exists()

    question = await driver.command(alice, "tryon forget").reply()
    await driver.view_attached(question)
    done = await driver.press(alice, question, "tryon:forget:yes").response()
    assert done.json["type"] == 6  # acknowledged at once; the answer replaces the question
    await fake_discord.wait_for(lambda: "Deleted 1 try-on session" in question.content, 30)

    alice_id = user_id(alice)
    assert await store.sessions.get(session_id) is None
    assert await store.sessions.history(world.guild_id, alice_id) == []
    for table in ("streams", "prompts"):
        rows = await store.db.fetch_all(f"SELECT * FROM {table} WHERE session_id = ?", (session_id,))
        assert rows == [], table
    # Accounting stays (quotas are enforced from it; forgetting must not reset a quota), unlinked.
    ledger = await store.db.fetch_all("SELECT * FROM usage_ledger WHERE user_id = ?", (alice_id,))
    assert sorted(row["kind"] for row in ledger) == ["charge", "session"]
    assert all(row["session_id"] is None for row in ledger)
    assert sum(row["seconds"] for row in ledger if row["kind"] == "charge") == charged
    # The moderators' record of the refused prompt stays, without her words.
    audit = await store.audit.list(world.guild_id, action="prompt_refused")
    assert len(audit) == 1 and "prompt" not in audit[0].details and audit[0].details.get("redacted")
    # Her id remains only where the guild's accounting and moderation records need it; her photo is gone.
    assert await tables_mentioning(store, alice_id) == {"usage_ledger", "audit_log"}
    assert not kept_photo.exists()
    # Not one byte of her prompts is left in the database file, its WAL or anywhere in the data folder.
    assert marker.encode() not in _database_bytes(store)
    assert await asyncio.to_thread(_files_containing, tmp_path, marker.encode()) == []
    assert [p.text for p in await store.prompts.for_session(bob_session.id)] == ["bob's plain coat"]
    assert await store.integrity_check() == "ok"


async def tables_mentioning(store: Store, member_id: int) -> set[str]:
    """Tables with a row holding `member_id` in any column (every table, so a new one cannot be missed)."""
    tables = await store.db.fetch_all(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    found = set()
    for table in tables:
        columns = await store.db.fetch_all(f'PRAGMA table_info("{table["name"]}")')
        condition = " OR ".join(f'"{column["name"]}" = ?' for column in columns)
        row = await store.db.fetch_one(
            f'SELECT 1 FROM "{table["name"]}" WHERE {condition} LIMIT 1', [member_id] * len(columns)
        )
        if row is not None:
            found.add(table["name"])
    return found


def _recording_offered(fake: FakeDiscord, token: str) -> bool:
    return any(
        m.embeds and str(m.embeds[0].get("title", "")).startswith("Your try-on recording")
        for m in fake.messages_for(token)
    )


def _files_containing(folder: Path, needle: bytes) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file() and needle in path.read_bytes()]


def _folder_bytes(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file())


def _database_bytes(store: Store) -> bytes:
    """The SQLite file with its WAL and shared-memory index, as they are on disk right now."""
    data = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = Path(f"{store.path}{suffix}")
        if path.exists():
            data += path.read_bytes()
    return data


# 5. API keys and tokens never reach logs, errors or messages.


class Captured(logging.Handler):
    """Every record any logger emits, fully formatted (traceback included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextlib.contextmanager
def everything_logged(config: BotConfig) -> Iterator[Captured]:
    """The bot's own logging set-up at DEBUG (as `log_level = "DEBUG"` runs it), into a capturing handler."""
    root = logging.getLogger()
    noisy = ("discord", "httpx", "httpcore", "aiortc", "aioice", "websockets", "aiosqlite", "asyncio")
    saved = {name: logging.getLogger(name).level for name in noisy}
    saved_root = root.level
    for name in noisy:
        logging.getLogger(name).setLevel(logging.NOTSET)
    handler = Captured()
    configure_logging("DEBUG", [config.discord.token, config.odyssey.api_key], handler=handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_root)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


async def test_keys_and_tokens_never_reach_logs_errors_or_messages(
    fake_discord: FakeDiscord,
    emulator_factory: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api_key = "odk_live_" + secrets.token_hex(16)
    discord_token = "MTI0.Gsecret." + secrets.token_urlsafe(27)
    emulator = await emulator_factory(api_keys={api_key: ApiKey()})
    fake_discord.accepted_token = discord_token
    session_tokens: list[str] = []
    original_session_token = ApiClient.session_token

    async def remember_session_token(self: ApiClient, session_id: str) -> tuple[str, float]:
        token, lifetime = await original_session_token(self, session_id)
        session_tokens.append(token)
        return token, lifetime

    monkeypatch.setattr(ApiClient, "session_token", remember_session_token)
    config = make_bot_config(
        tmp_path,
        discord=DiscordSettings(token=discord_token, status_edit_seconds=0.2),
        odyssey=OdysseySettings(api_key=api_key, api_url=emulator.url),
        engine=fast_engine(),
    )
    with everything_logged(config) as logs:
        bot = TryOnBot(config)
        driver = BotDriver(fake_discord, bot)
        try:
            await bot.login(discord_token)
            world = p.guild_world()
            driver.add_guild(world)
            await _a_whole_try_on_and_its_failures(driver, bot, world, emulator, fake_discord)
        finally:
            await bot.close()

    access_tokens = list(emulator._tokens)
    signatures = [
        match
        for m in fake_discord.requests
        for match in re.findall(r"sig=([0-9a-f]{16,})", json.dumps(m.json))
    ]
    interaction_tokens = list(fake_discord.interactions)
    assert access_tokens and session_tokens and signatures and interaction_tokens
    secret_values = {
        "ODYSSEY_API_KEY": [api_key],
        "DISCORD_TOKEN": [discord_token],
        "Odyssey access token": access_tokens,
        "Odyssey session token": session_tokens + [t.rsplit(".", 1)[-1] for t in session_tokens],
        "emulator signing secret": [
            emulator.secret.hex(),
            base64.urlsafe_b64encode(emulator.secret).decode(),
        ],
    }
    logged = "\n".join(logs.lines)
    assert len(logs.lines) > 100  # DEBUG from the libraries really was captured
    sent = "\n".join(json.dumps(r.json) for r in fake_discord.requests if r.json is not None)
    stored = (await asyncio.to_thread(_folder_bytes, tmp_path)).decode("latin-1")
    leaks = [
        f"{what} in {where}"
        for what, values in secret_values.items()
        for value in values
        for where, text in (("logs", logged), ("messages", sent), ("data folder", stored))
        if value in text
    ]
    # Signed recording links and interaction tokens are the members' to use, never the logs' to keep.
    leaks += ["a recording link signature in the logs" for sig in signatures if sig in logged]
    leaks += ["an interaction token in the logs" for token in interaction_tokens if token in logged]
    assert not leaks, sorted(set(leaks))


async def _a_whole_try_on_and_its_failures(
    driver: BotDriver, bot: TryOnBot, world: p.GuildWorld, emulator: Any, fake: FakeDiscord
) -> None:
    alice = driver.context(world, world.add_member("alice"))
    start, status = await start_streaming(driver, alice, "a red wool coat")
    session_id = session_id_of(status)
    assert (await driver.command(alice, "tryon outfit", prompt="a blue cape").reply(within=30)).content
    await driver.command(alice, "tryon snapshot").reply(within=30)
    await driver.command(alice, "tryon stop").reply()
    await fake.wait_for(lambda: _recording_offered(fake, start.token), 30)
    shown = await driver.command(alice, "tryon show", id=session_id).reply(within=30)
    assert "sig=" in shown.content
    manager = bot.runtime.engine.manager
    await until(lambda: manager.session_for(user_id(alice)) is None)

    # Failures: a usage refusal of the platform, a signaling error, a revoked key.
    async def failing_start(outfit: str) -> None:
        started = driver.command(alice, "tryon start", photo=photo_option(fake), outfit=outfit)
        await started.original(lambda m: "is on its way" in m.content, within=10)
        await until(lambda: manager.session_for(user_id(alice)) is None)

    emulator.faults.force_429_code = "MONTHLY_LIMIT_REACHED"
    await failing_start("a green coat")
    emulator.faults.force_429_code = None
    emulator.faults.signaling_error_reason = "server_error"
    await failing_start("a grey coat")
    emulator.faults.signaling_error_reason = None
    emulator.config.api_keys[next(iter(emulator.config.api_keys))] = ApiKey(disabled=True)
    await failing_start("a pink coat")


LEAKY_RECORDS = {
    "bot token as an argument": ("logging in with %s", "{token}"),
    "API key inside an exception": ("failed", "{key}"),
    "bearer header": ("headers: {{'Authorization': 'Bearer {access}'}}", None),
    "bot authorization header": ("headers: {{'Authorization': 'Bot {token}'}}", None),
    "signaling URL": ("connecting to ws://127.0.0.1:9/client/abc?token={jwt}", None),
    "signed recording link": ("GET http://127.0.0.1:9/files/s/video.mp4?expires=1&sig={sig}", None),
    "interaction webhook": (
        "PATCH https://discord.com/api/v10/webhooks/123/{itoken}/messages/@original",
        None,
    ),
    "interaction callback": ("POST https://discord.com/api/v10/interactions/123/{itoken}/callback", None),
    "token exchange body": ("""body {{"api_key": "{key}"}} -> {{"access_token": "{access}"}}""", None),
}


@pytest.mark.parametrize("case", sorted(LEAKY_RECORDS))
def test_the_log_handler_masks_secrets_however_they_are_formatted(case: str) -> None:
    values = {
        "token": "MTI0.Gsecret." + secrets.token_urlsafe(27),
        "key": "odk_live_" + secrets.token_hex(16),
        "access": secrets.token_urlsafe(32),
        "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzZXNzaW9uX2lkIjoiYWJjIn0.c2lnbmF0dXJlc2lnbmF0dXJl",
        "sig": secrets.token_hex(32),
        "itoken": "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(60),
    }
    template, in_exception = LEAKY_RECORDS[case]
    logger = logging.getLogger("tests.security.leaky")
    handler = Captured()
    saved_level = logging.getLogger().level
    configure_logging("DEBUG", [values["token"], values["key"]], handler=handler)
    try:
        if in_exception is None:
            logger.debug(template.format(**values))
        else:
            try:
                raise RuntimeError(f"the platform said no to {in_exception.format(**values)}")
            except RuntimeError:
                logger.exception(template, *([values["token"]] if "%s" in template else []))
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(saved_level)
    assert len(handler.lines) == 1
    for name, value in values.items():
        assert value not in handler.lines[0], (name, handler.lines[0])
    assert "***" in handler.lines[0]


# 6. Photos are downloaded only from the attachment URL Discord gave, on Discord's CDN.


@dataclass
class Elsewhere:
    """Two loopback servers outside Discord: a trap that counts every request it gets, and a trusted CDN
    stand-in that redirects (`/away` to the trap, `/home?to=<url>` back to the fake Discord's CDN)."""

    trap_url: str = ""
    cdn_url: str = ""
    hits: list[str] = field(default_factory=list)


@pytest.fixture
async def elsewhere() -> AsyncIterator[Elsewhere]:
    servers = Elsewhere()

    async def trap(request: web.Request) -> web.Response:
        servers.hits.append(str(request.rel_url))
        return web.Response(body=PHOTO, content_type="image/jpeg")

    async def redirect(request: web.Request) -> web.Response:
        target = request.query.get("to") or f"{servers.trap_url}/photo.jpg"
        raise web.HTTPFound(target)

    runners = []
    for handler in (trap, redirect):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
    servers.trap_url = f"http://127.0.0.1:{runners[0].addresses[0][1]}"
    servers.cdn_url = f"http://127.0.0.1:{runners[1].addresses[0][1]}"
    try:
        yield servers
    finally:
        for runner in runners:
            await runner.cleanup()


def crafted_attachment(fake: FakeDiscord, url: str, *, data: bytes = PHOTO) -> p.Resolved:
    """A photo option whose attachment object claims `url` (Discord's own field, filled in by an attacker)."""
    attachment = fake.add_attachment("me.jpg", data, "image/jpeg", width=512, height=512)
    attachment["url"] = attachment["proxy_url"] = url
    return p.opt_attachment(attachment)


CRAFTED_URLS: dict[str, Callable[[FakeDiscord, Elsewhere], str]] = {
    "a loopback service (the emulator's kind of address)": lambda fake, away: f"{away.trap_url}/v1/x.jpg",
    "a local file": lambda fake, away: "file:///etc/passwd",
    "a look-alike of Discord's CDN host": lambda fake, away: "https://cdn.discordapp.com.evil.test/a.jpg",
    "Discord's CDN over plain http": lambda fake, away: "http://cdn.discordapp.com/attachments/1/2/a.jpg",
    "credentials in the URL": lambda fake, away: fake.base_url.replace("//", "//user:pw@") + "/cdn/x",
    "the fake Discord's CDN on another port": lambda fake, away: f"{away.trap_url}/cdn/x.jpg",
    "a CDN redirect to elsewhere": lambda fake, away: f"{away.cdn_url}/away",
    "not a URL at all": lambda fake, away: "::not a url::",
}


@pytest.mark.parametrize("case", sorted(CRAFTED_URLS))
async def test_attachments_are_fetched_only_from_discords_cdn(
    case: str,
    driver: BotDriver,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    elsewhere: Elsewhere,
) -> None:
    url = CRAFTED_URLS[case](fake_discord, elsewhere)
    alice = as_member("alice")
    start = driver.command(
        alice, "tryon start", photo=crafted_attachment(fake_discord, url), outfit="a red coat"
    )
    reply = await start.original(lambda m: "Checking" not in m.content and m.content)
    assert reply.ephemeral and reply.content == NOT_FROM_DISCORD, reply.content
    assert elsewhere.hits == []
    assert bot.runtime.engine.manager.sessions() == []
    assert await bot.runtime.store.sessions.history(0, user_id(alice)) == []


async def test_a_redirect_within_discords_cdn_is_followed_and_the_size_limit_holds(
    driver: BotDriver, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord, elsewhere: Elsewhere
) -> None:
    home = fake_discord.add_attachment("real.jpg", PHOTO, "image/jpeg")["url"]
    alice = as_member("alice")
    followed = driver.command(
        alice,
        "tryon start",
        photo=crafted_attachment(fake_discord, f"{elsewhere.cdn_url}/home?to={home}"),
        outfit="a red coat",
    )
    admitted = await followed.original(lambda m: bool(m.content) and "Checking" not in m.content)
    assert "is on its way" in admitted.content, admitted.content
    stop_all(bot)

    # The attachment says 1 KiB; the CDN sends more than the limit: the bot stops reading at the limit.
    huge = fake_discord.add_attachment("big.jpg", PHOTO + bytes(MAX_PHOTO_BYTES), "image/jpeg")
    huge["size"] = 1024
    bob = as_member("bob")
    too_big = driver.command(bob, "tryon start", photo=p.opt_attachment(huge), outfit="a red coat")
    refused = await too_big.original(lambda m: "Checking" not in m.content and m.content, within=20)
    assert "larger than" in refused.content and elsewhere.hits == []


# 7. File names and prompts never reach a shell or a path.

MARK = "pwn" + secrets.token_hex(4)  # in every hostile string, so any file made from one can be found


def hostile_strings(canary: Path) -> dict[str, str]:
    """Names and prompts that would leave a file in `canary` if run by a shell or used as a path."""
    climb = "../" * 16 + str(canary).lstrip("/")
    return {
        "path traversal": f"../../etc/passwd{MARK}",
        "path traversal into the canary": f"{climb}/{MARK}-traversal.jpg",
        "absolute path": f"{canary}/{MARK}-absolute.jpg",
        "command separator": f"a;touch {canary}/{MARK}-semicolon;.jpg",
        "command substitution": f"$(touch {canary}/{MARK}-substitution).png",
        "backticks": f"`touch {canary}/{MARK}-backticks`.png",
        "home and variables": f"~/{MARK}-$HOME-${{IFS}}.jpg",
        "NUL byte": f"photo{MARK}\x00.sh",
        "very long": MARK + "A" * 4000 + ".jpg",
        "newlines and quotes": f"a'\"\n{MARK}\r\n.jpg",
    }


def files_named_with(folder: Path, needle: str, *, recursive: bool) -> list[Path]:
    """Files and folders under `folder` whose name contains `needle`."""
    if not folder.is_dir():
        return []
    entries = folder.rglob("*") if recursive else folder.iterdir()
    return [path for path in entries if needle in path.name]


def places_outside(data_dir: Path) -> list[tuple[Path, bool]]:
    """Where a file made from a member's string could land: the working directory, temp, home, root."""
    return [
        (Path.cwd(), False),
        (Path(tempfile.gettempdir()), False),
        (Path.home(), False),
        (Path("/"), False),
        (Path("/etc"), False),
        (data_dir, True),
    ]


async def nothing_was_made(canary: Path, data_dir: Path) -> None:
    assert await asyncio.to_thread(lambda: list(canary.iterdir())) == []
    for folder, recursive in places_outside(data_dir):
        made = await asyncio.to_thread(files_named_with, folder, MARK, recursive=recursive)
        assert made == [], made


@pytest.mark.parametrize("case", sorted(hostile_strings(Path("/x"))))
async def test_attachment_names_are_never_used_as_paths_or_commands(
    case: str,
    driver: BotDriver,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    tmp_path: Path,
) -> None:
    canary = tmp_path / "canary"
    canary.mkdir()
    name = hostile_strings(canary)[case]
    attachment = fake_discord.add_attachment("photo.jpg", PHOTO, "image/jpeg", width=512, height=512)
    attachment["filename"] = name  # Discord sanitises names; a crafted payload need not
    start = driver.command(
        as_member("alice"), "tryon start", photo=p.opt_attachment(attachment), outfit="a red coat"
    )
    admitted = await start.original(lambda m: bool(m.content) and "Checking" not in m.content)
    # The name plays no part: the photo is taken (the session is admitted) and nothing is made of the name.
    assert "is on its way" in admitted.content, admitted.content
    stop_all(bot)
    await until(lambda: not bot.runtime.engine.manager.sessions())
    sent = json.dumps([r.json for r in fake_discord.requests]) + str([r.files for r in fake_discord.requests])
    assert MARK not in sent  # never echoed either
    await nothing_was_made(canary, tmp_path)


async def test_hostile_prompts_run_through_a_whole_session_without_touching_a_shell_or_a_path(
    driver: BotDriver,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    emulator: Any,
    tmp_path: Path,
) -> None:
    canary = tmp_path / "canary"
    canary.mkdir()
    prompts = [text[:300] for text in hostile_strings(canary).values()]
    alice = as_member("alice")
    start = driver.command(alice, "tryon start", photo=photo_option(fake_discord), outfit=prompts[0])
    status = await wait_status(fake_discord, start.token, "Streaming live", "couldn't", "can't")
    outcomes = {}
    for prompt in prompts[1:]:
        reply = await driver.command(alice, "tryon outfit", prompt=prompt).reply(within=30)
        outcomes[prompt] = reply.content
    await driver.command(alice, "tryon snapshot").reply(within=30)
    await driver.command(alice, "tryon stop").reply()
    await wait_status(fake_discord, start.token, "Done after", within=30)
    await fake_discord.wait_for(lambda: _recording_offered(fake_discord, start.token), 30)
    # Each prompt was applied or refused in words; none broke anything.
    for prompt, said in outcomes.items():
        assert said == "New outfit applied." or "outfit" in said.lower(), (prompt, said)
    assert UNEXPECTED not in json.dumps([r.json for r in fake_discord.requests])
    assert "Streaming live" in status.text or "Done after" in status.text
    # Uploads are named by the bot, never by the member.
    names = [f.filename for r in fake_discord.requests for f in r.files]
    assert names and all(re.fullmatch(r"[A-Za-z0-9_.-]+", name) for name in names), names
    await nothing_was_made(canary, tmp_path)


def test_no_code_of_the_bot_can_start_a_process() -> None:
    """The bot and its cogs import no process-spawning module, call nothing with shell=True, and only the
    local NATS server and local workers start a child process."""
    spawning = {"subprocess", "pty", "pexpect", "sh"}
    calls = {"system", "popen", "execv", "execve", "execvp", "spawnl", "spawnv", "startfile", "posix_spawn"}
    # The two that must: `--local-workers` starts nats-server and the workers, each with a fixed argument
    # list (no shell, nothing from a member or a config value).
    starters = {ROOT / "bot" / "workers" / "nats_server.py", ROOT / "bot" / "workers" / "local.py"}
    found = []
    for path in sorted([*(ROOT / "bot").rglob("*.py"), *(ROOT / "cogs").rglob("*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [f"{path}: import {a.name}" for a in node.names if a.name.split(".")[0] in spawning]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in spawning:
                found.append(f"{path}: from {node.module} import ...")
            elif isinstance(node, ast.Attribute) and node.attr in calls:
                found.append(f"{path}:{node.lineno}: .{node.attr}")
            elif isinstance(node, ast.keyword) and node.arg == "shell":
                found.append(f"{path}:{node.lineno}: shell=")
            elif (
                isinstance(node, ast.Attribute)
                and node.attr == "create_subprocess_exec"
                and path not in starters
            ):
                found.append(f"{path}:{node.lineno}: create_subprocess_exec")
    assert found == []
