"""The owner-only `!sync` prefix command, driven through dpytest."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import discord
import discord.ext.test as dpytest
import pytest
from discord.ext import commands

from bot.app import TryOnBot
from tests.helpers import make_bot_config


@pytest.fixture
async def dp_bot(tmp_path: Path) -> AsyncIterator[tuple[TryOnBot, list[tuple[str, Any]]]]:
    # dpytest builds its members through the gateway member cache, which needs the members intent.
    bot = TryOnBot(
        make_bot_config(tmp_path),
        open_runtime=None,
        intents=discord.Intents.default() | discord.Intents(members=True),
    )
    await bot._async_setup_hook()
    await bot.setup_hook()
    dpytest.configure(bot, members=["owner", "someone"])
    config = dpytest.get_config()
    assert bot.user is not None
    bot._connection.application_id = bot.user.id  # what login() learns from the application info
    owner = config.members[0]
    bot.config = dataclasses.replace(
        bot.config, discord=dataclasses.replace(bot.config.discord, owner_ids=(owner.id,))
    )
    published: list[tuple[str, Any]] = []

    # dpytest's fake HTTP has no application-command routes; answer them the way Discord does.
    async def upsert_global(application_id: int, payload: list[dict[str, Any]]) -> list[dict[str, Any]]:
        published.append(("global", payload))
        return [_stored(c, application_id) for c in payload]

    async def upsert_guild(
        application_id: int, guild_id: int, payload: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        published.append((str(guild_id), payload))
        return [_stored(c, application_id, guild_id) for c in payload]

    # The command tree keeps the HTTP client it was built with; point it at dpytest's like the rest.
    bot.tree._http = bot.http
    bot.http.bulk_upsert_global_commands = upsert_global  # type: ignore[method-assign,assignment]
    bot.http.bulk_upsert_guild_commands = upsert_guild  # type: ignore[method-assign,assignment]
    try:
        yield bot, published
    finally:
        await dpytest.empty_queue()


def _stored(command: dict[str, Any], application_id: int, guild_id: int | None = None) -> dict[str, Any]:
    stored = dict(command, id=str(discord.utils.time_snowflake(discord.utils.utcnow())), version="1")
    stored.update(application_id=str(application_id), type=command.get("type", 1))
    stored.setdefault("description", "")
    if guild_id is not None:
        stored["guild_id"] = str(guild_id)
    return stored


async def test_owner_syncs_globally(dp_bot: tuple[TryOnBot, list[tuple[str, Any]]]) -> None:
    _, published = dp_bot
    await dpytest.message("!sync", member=0)
    assert dpytest.verify().message().contains().content("Published")
    assert [scope for scope, _ in published] == ["global"]
    assert "tryonadmin" in {c["name"] for c in published[0][1]}


async def test_owner_syncs_to_this_guild(dp_bot: tuple[TryOnBot, list[tuple[str, Any]]]) -> None:
    _, published = dp_bot
    await dpytest.message("!sync here", member=0)
    assert dpytest.verify().message().contains().content("this server")
    guild = dpytest.get_config().guilds[0]
    assert [scope for scope, _ in published] == [str(guild.id)]


async def test_bad_scope_is_explained(dp_bot: tuple[TryOnBot, list[tuple[str, Any]]]) -> None:
    _, published = dp_bot
    await dpytest.message("!sync everywhere", member=0)
    assert dpytest.verify().message().contains().content("Use `!sync`")
    assert published == []


async def test_non_owner_is_refused(dp_bot: tuple[TryOnBot, list[tuple[str, Any]]]) -> None:
    _, published = dp_bot
    # dpytest re-raises every command error to the test after the bot's own handler has run.
    with pytest.raises(commands.NotOwner):
        await dpytest.message("!sync", member=1)
    assert dpytest.verify().message().content("Only the bot's owner can do that.")
    assert published == []
