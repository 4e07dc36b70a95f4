"""The fair queue, idle and quota stops with sessions on a local worker, through the fake Discord: one slot,
so the second member waits in line; each stop is decided on the worker, which holds the session's clock."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.app import TryOnBot
from bot.config import BotConfig
from bot.emulator import Emulator
from bot.store import QuotaLimits
from bot.workers.settings import WorkerSettings
from tests.fakediscord import BotDriver, FakeDiscord
from tests.fakediscord import payloads as p
from tests.helpers import fast_engine, make_bot_config, photo_option, user_id, wait_status

Ctx = Callable[..., p.InteractionContext]

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def bot_config(tmp_path: Path, emulator: Emulator) -> BotConfig:
    config = make_bot_config(tmp_path, emulator.url, engine=fast_engine(slots=1, idle_seconds=4.0))
    return dataclasses.replace(config, workers=WorkerSettings(local_workers=1, capacity=2))


async def test_the_fair_queue_idle_and_quota_stops_work_the_same_on_workers(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    alice, bob = as_member("alice"), as_member("bob")
    await bot.runtime.store.quotas.set_user(
        world.guild_id, user_id(bob), QuotaLimits(daily_seconds=2.5), moderator_id=None
    )

    first = driver.command(alice, "tryon start", photo=photo_option(fake_discord), outfit="a red coat")
    await wait_status(fake_discord, first.token, "Streaming live")
    second = driver.command(bob, "tryon start", photo=photo_option(fake_discord), outfit="a blue coat")
    await wait_status(fake_discord, second.token, "Waiting in line: position **1**")

    # Alice sends nothing more: the worker ends her try-on for idleness; Bob's turn comes.
    await wait_status(fake_discord, first.token, "no new outfit for a while", within=40)
    await wait_status(fake_discord, second.token, "Streaming live", within=40)
    # Bob's 2.5 s of quota run out on the worker (before his idle time).
    await wait_status(fake_discord, second.token, "your try-on time ran out", within=40)
    store = bot.runtime.store
    for member in (alice, bob):
        [record] = await store.sessions.history(world.guild_id, user_id(member))
        assert record.state == "done"
        kinds = [e.kind for e in await store.usage.for_session(record.id)]
        assert kinds == ["session", "charge"], kinds
    [bobs] = await store.sessions.history(world.guild_id, user_id(bob))
    assert bobs.streamed_seconds <= 2.5 + 1.0  # stopped at the allowance (a heartbeat of slack)
