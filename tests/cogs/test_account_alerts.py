"""Odyssey account problems through the real bot and the fake Discord: every member hears their sentence,
the mod-log and the application's owner hear of the problem once."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.app import TryOnBot
from bot.config import BotConfig
from bot.emulator import Emulator
from bot.tryon.account import ACCOUNT_PROBLEM
from tests.fakediscord import BotDriver, FakeDiscord, FakeMessage
from tests.fakediscord import payloads as p
from tests.helpers import make_bot_config, photo_option

Ctx = Callable[..., p.InteractionContext]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def bot_config(tmp_path: Path, emulator: Emulator) -> BotConfig:
    return make_bot_config(tmp_path, emulator.url)


def told_why(fake: FakeDiscord, token: str) -> FakeMessage | None:
    """The message telling the member why their try-on failed, once posted."""
    return next((m for m in fake.messages_for(token) if "video time" in m.content), None)


async def test_the_monthly_limit_is_told_to_the_mod_log_and_the_owner_once_not_per_member(
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    emulator: Emulator,
) -> None:
    log_channel = int(world.channels[1]["id"])
    await bot.runtime.store.guilds.set_mod_log_channel(world.guild_id, log_channel, moderator_id=None)
    emulator.faults.force_429_code = "MONTHLY_LIMIT_REACHED"  # every session request: the month is used up

    for name in ("alice", "bob", "carol"):
        start = driver.command(
            as_member(name), "tryon start", photo=photo_option(fake_discord), outfit="a red coat"
        )
        told = await fake_discord.wait_for(functools.partial(told_why, fake_discord, start.token), 40)
        assert "used all of its video time for this month" in told.content  # each member, in words

    # Written before each failure was shown: by now every failure has been looked at.
    assert len(await bot.runtime.store.audit.list(world.guild_id, action=ACCOUNT_PROBLEM)) == 1
    owner_id = int(fake_discord.owner["id"])
    logged = await fake_discord.wait_for(lambda: fake_discord.channel_messages(log_channel), 20)
    owner_dm = await fake_discord.wait_for(
        lambda: (dm := fake_discord.dm_channels.get(owner_id)) and fake_discord.channel_messages(dm), 20
    )
    await bot.runtime.engine.services.account.aclose()  # every delivery under way has landed
    assert len(fake_discord.channel_messages(log_channel)) == len(logged) == 1
    assert "reports a problem with its Odyssey account" in logged[0].content
    assert "streaming time" in logged[0].content
    assert len(fake_discord.channel_messages(fake_discord.dm_channels[owner_id])) == len(owner_dm) == 1
    assert "Odyssey account" in owner_dm[0].content and str(world.guild_id) in owner_dm[0].content
