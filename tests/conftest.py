"""Shared test configuration: WebRTC stays on loopback for the whole suite."""

from __future__ import annotations

from bot.loopback_ice import restrict_ice_to_loopback

restrict_ice_to_loopback()


# ---- emulator fixtures (owner: emulator engineer) -------------------------------------------------------

from collections.abc import AsyncIterator, Awaitable, Callable  # noqa: E402

import pytest  # noqa: E402

from bot.emulator import Emulator, EmulatorConfig  # noqa: E402

EmulatorFactory = Callable[..., Awaitable[Emulator]]


@pytest.fixture
async def emulator_factory() -> AsyncIterator[EmulatorFactory]:
    """Start emulators with small, fast settings plus any `EmulatorConfig` overrides; all stop at teardown."""
    started: list[Emulator] = []

    async def start(**overrides: object) -> Emulator:
        emulator = Emulator(EmulatorConfig.small(**overrides))
        await emulator.start()
        started.append(emulator)
        return emulator

    try:
        yield start
    finally:
        # Every emulator stops even if another one's stop fails; the first failure is then raised.
        results = [await _stop_quietly(emulator) for emulator in reversed(started)]
        failure = next((error for error in results if error is not None), None)
        if failure is not None:
            raise failure


async def _stop_quietly(emulator: Emulator) -> BaseException | None:
    try:
        await emulator.stop()
    except Exception as error:
        return error
    return None


@pytest.fixture
async def emulator(emulator_factory: EmulatorFactory) -> Emulator:
    """A running emulator (quarter-size frames, 8 fps, 1 s loops) accepting `DEV_API_KEY`."""
    return await emulator_factory()


# ---- front-end fixtures: the real TryOnBot logged in against the fake Discord ----------------------------

from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from bot.app import TryOnBot  # noqa: E402
from bot.config import BotConfig  # noqa: E402
from tests.fakediscord import BotDriver, FakeDiscord  # noqa: E402
from tests.fakediscord import payloads as p  # noqa: E402
from tests.fakediscord.fixtures import fake_discord  # noqa: E402
from tests.helpers import make_bot_config  # noqa: E402

__all__ = ["fake_discord"]


@pytest.fixture
def bot_config(tmp_path: Path) -> BotConfig:
    """The configuration `driver` starts the bot with (override the fixture to change it)."""
    return make_bot_config(tmp_path)


@pytest.fixture
async def driver(fake_discord: FakeDiscord, bot_config: BotConfig) -> AsyncIterator[BotDriver]:
    """A logged-in TryOnBot (runtime opened, extensions loaded) and the link to feed it interactions."""
    bot = TryOnBot(bot_config)
    driver = BotDriver(fake_discord, bot)
    try:
        await driver.login()
        yield driver
    finally:
        await bot.close()


@pytest.fixture
def bot(driver: BotDriver) -> TryOnBot:
    """The running bot."""
    assert isinstance(driver.client, TryOnBot)
    return driver.client


@pytest.fixture
def world(driver: BotDriver) -> p.GuildWorld:
    """A guild the bot has joined (GUILD_CREATE delivered)."""
    guild = p.guild_world()
    driver.add_guild(guild)
    return guild


@pytest.fixture
def as_member(driver: BotDriver, world: p.GuildWorld) -> Callable[..., p.InteractionContext]:
    """`as_member("alice", moderator=True)` -> an interaction context for a new member of `world`."""

    def make(name: str, *, moderator: bool = False, **kwargs: Any) -> p.InteractionContext:
        return driver.context(world, world.add_member(name, moderator=moderator), **kwargs)

    return make
