"""Security through the real bot on the fake Discord (issue 5): who may act, what each guild sees, what stays.

Every test drives the real discord.py client, the real SQLite file and (where a session runs) the emulator
over real WebRTC on loopback. The interactions are crafted the way a hostile or misconfigured server could
deliver them: commands Discord should have hidden, buttons on messages the presser never saw, session ids
from another server, attachment objects with URLs and names nobody should trust.
"""

from __future__ import annotations

import asyncio
import copy
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from discord import AppCommandOptionType as discord_option
from discord import app_commands

from bot.app import TryOnBot
from bot.config import BotConfig
from bot.store import Store
from cogs.admin._cog import TryOnAdmin
from tests.cogs.conftest import (
    emulator_config,
    make_config,
    photo_option,
    session_id_of,
    stored_session,
    wait_status,
)
from tests.fakediscord import BotDriver, FakeDiscord, FakeMessage
from tests.fakediscord import payloads as p
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
        return emulator_config(tmp_path, request.getfixturevalue("emulator"))
    return make_config(tmp_path)


def member_with(world: p.GuildWorld, name: str, permissions: int) -> p.Payload:
    """A member whose resolved permissions in the interaction are exactly `permissions`."""
    payload = world.add_member(name)
    payload["permissions"] = str(permissions)
    return payload


def user_id(ctx: p.InteractionContext) -> int:
    """The acting member's user id."""
    assert ctx.member is not None
    return int(ctx.member["user"]["id"])


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
    assert len(ADMIN_COMMANDS) == 20, sorted(ADMIN_COMMANDS)


@pytest.mark.parametrize("command", sorted(ADMIN_COMMANDS))
async def test_moderator_command_needs_manage_server_at_run_time(
    command: str, driver: BotDriver, world: p.GuildWorld, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    store = bot.runtime.store
    target = world.add_member("target")
    options = required_options(ADMIN_COMMANDS[command], world, target)
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
    start = driver.command(alice, "tryon start", photo=photo_option(fake_discord), outfit="a red wool coat")
    status = await wait_status(fake_discord, start.token, "Streaming live")
    session_id = session_id_of(status)
    session = bot.runtime.engine.manager.get(session_id)
    with_buttons = message_copy(status, world)  # as a member's client still shows it after the end

    strangers = [as_member("bob"), driver.context(world, member_with(world, "carol", ALMOST_EVERYTHING))]
    for stranger in strangers:
        for action in ("outfit", "snap", "stop"):
            text = await refusal(driver.press(stranger, status, f"tryon:{action}:{session_id}"))
            assert "Only the member who started this try-on" in text, (action, text)
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
    assert (history.edits, question.edits) == (0, 0)

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
    start = driver.command(alice_a, "tryon start", photo=photo_option(fake_discord), outfit="a teal cape")
    status = await wait_status(fake_discord, start.token, "Streaming live")
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
    start = driver.command(
        alice, "tryon start", photo=photo_option(fake_discord), outfit=f"a {marker} velvet kimono"
    )
    status = await wait_status(fake_discord, start.token, "Streaming live")
    session_id = session_id_of(status)
    changed = await driver.command(alice, "tryon outfit", prompt=f"a {marker} linen suit").reply(within=30)
    assert changed.content == "New outfit applied."
    await driver.command(alice, "tryon stop").reply()
    await wait_status(fake_discord, start.token, "Done after", within=30)
    await fake_discord.wait_for(lambda: _recording_offered(fake_discord, start.token), 30)
    charged = await assert_settled_once(store, session_id)
    # Bob's data must survive Alice's forget.
    bob_session = await stored_session(store, world.guild_id, user_id(bob), state="done")
    await store.prompts.add(bob_session.id, "bob's plain coat", status="applied")
    assert marker.encode() in _database_bytes(store)

    question = await driver.command(alice, "tryon forget").reply()
    await driver.view_attached(question)
    done = await driver.press(alice, question, "tryon:forget:yes").response()
    assert done.json["type"] == 7 and "Deleted 1 try-on session" in done.json["data"]["content"]

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
    # Not one byte of her prompts is left in the database file, its WAL or anywhere in the data folder.
    assert marker.encode() not in _database_bytes(store)
    assert await asyncio.to_thread(_files_containing, tmp_path, marker.encode()) == []
    assert [p.text for p in await store.prompts.for_session(bob_session.id)] == ["bob's plain coat"]
    assert await store.integrity_check() == "ok"


def _recording_offered(fake: FakeDiscord, token: str) -> bool:
    return any(
        m.embeds and str(m.embeds[0].get("title", "")).startswith("Your try-on recording")
        for m in fake.messages_for(token)
    )


def _files_containing(folder: Path, needle: bytes) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file() and needle in path.read_bytes()]


def _database_bytes(store: Store) -> bytes:
    """The SQLite file with its WAL and shared-memory index, as they are on disk right now."""
    data = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = Path(f"{store.path}{suffix}")
        if path.exists():
            data += path.read_bytes()
    return data
