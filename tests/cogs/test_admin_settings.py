"""`/tryonadmin settings` through the real bot and the fake Discord: shown, set, checked, audited, kept
across a restart, and honoured by the engine (pause, queue cap, idle timeout, clips, privacy)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from bot.app import TryOnBot
from bot.config import BotConfig
from bot.emulator import Emulator
from tests.fakediscord import BotDriver, FakeDiscord
from tests.fakediscord import payloads as p
from tests.helpers import fast_engine, make_bot_config, photo_option, user_id, wait_status

Ctx = Callable[..., p.InteractionContext]


async def test_settings_are_shown_set_checked_audited_and_kept_across_a_restart(
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    bot_config: BotConfig,
) -> None:
    mod, alice = as_member("mod", moderator=True), as_member("alice")
    log_channel = int(world.channels[1]["id"])
    await bot.runtime.store.guilds.set_mod_log_channel(world.guild_id, log_channel, moderator_id=None)

    defaults = await driver.command(mod, "tryonadmin settings").reply()
    assert defaults.ephemeral and "Queue cap 10 (default)" in defaults.text
    assert "Photo retention 24 h (default)" in defaults.text and "Paused off (default)" in defaults.text
    refused = await driver.command(alice, "tryonadmin settings", paused=True).reply()
    assert "Manage Server" in refused.content

    saved = await driver.command(
        mod, "tryonadmin settings", queue_cap=3, idle_timeout=120, photo_retention_hours=0, snippets=False,
        private_by_default=True, paused=True, pause_message="Back on   Monday @everyone",
    ).reply()  # fmt: skip
    assert saved.content == "Saved."
    for shown in (
        "Queue cap 3",
        "Idle timeout 2 min",
        "Photo retention 0 h",
        "Clips after each outfit off",
    ):
        assert shown in saved.text, shown
    assert "Private by default on" in saved.text and "Back on Monday @\u200beveryone" in saved.text
    entry = (await bot.runtime.store.audit.list(world.guild_id, action="guild_settings_set"))[0]
    assert entry.actor_id == user_id(mod) and entry.details["queue_cap"] == 3
    assert entry.details["pause_message"] == "Back on Monday @everyone"
    logged = await fake_discord.wait_for(lambda: fake_discord.channel_messages(log_channel))
    assert "changed the server's try-on settings" in logged[-1].content

    # Checked here too, not only by Discord's client: an out-of-range value changes nothing.
    too_many = await driver.command(mod, "tryonadmin settings", queue_cap=500).reply()
    assert too_many.content == "Not saved: queue_cap must be a number from 0 to 100 members."
    both = await driver.command(mod, "tryonadmin settings", queue_cap=4, reset="queue_cap").reply()
    assert "can't be both set and reset" in both.content
    same = await driver.command(mod, "tryonadmin settings", queue_cap=3).reply()
    assert same.content == "Nothing changed."
    assert (await bot.runtime.store.guilds.get(world.guild_id)).queue_cap == 3

    # Paused: new try-ons are refused with the moderators' words, before any photo is fetched.
    paused = await driver.command(
        alice, "tryon start", photo=photo_option(fake_discord), outfit="a linen shirt"
    ).reply()
    assert paused.ephemeral and paused.content == "Back on Monday @everyone"
    assert not fake_discord.requests_to("GET", "/cdn/")

    await bot.close()
    restarted = TryOnBot(bot_config)  # the same SQLite file
    try:
        again = BotDriver(fake_discord, restarted)
        await again.login()
        again.add_guild(world)
        kept = await again.command(mod, "tryonadmin settings", reset="paused").reply()
        assert "Queue cap 3" in kept.text and "Photo retention 0 h" in kept.text
        assert "Paused off (default)" in kept.text
        guide = await again.command(alice, "tryon help").reply()
        assert "the bot does not keep it" in guide.text and "2 min without a new outfit" in guide.text
    finally:
        await restarted.close()


async def test_the_engine_honours_queue_cap_idle_timeout_clips_and_privacy(
    fake_discord: FakeDiscord, emulator: Emulator, tmp_path: Path
) -> None:
    config = make_bot_config(tmp_path, emulator.url)
    bot = TryOnBot(dataclasses.replace(config, engine=fast_engine(slots=1)))
    driver = BotDriver(fake_discord, bot)
    try:
        await driver.login()
        world = p.guild_world()
        driver.add_guild(world)
        mod = driver.context(world, world.add_member("mod", moderator=True))
        await driver.command(
            mod, "tryonadmin settings", queue_cap=0, idle_timeout=10, snippets=False, private_by_default=True
        ).reply()

        alice = driver.context(world, world.add_member("alice"))
        start = driver.command(alice, "tryon start", photo=photo_option(fake_discord), outfit="a wool cape")
        status = await wait_status(fake_discord, start.token, "Streaming live")
        assert status.ephemeral  # private by default here

        # The one slot is taken and nobody may wait here.
        bob = driver.context(world, world.add_member("bob"))
        full = await driver.command(
            bob, "tryon start", photo=photo_option(fake_discord), outfit="a fleece"
        ).reply(lambda m: "Checking" not in m.content, within=20)
        assert "queue for this server is full" in full.content

        # Ten seconds without a new outfit end it; no clip was made.
        await wait_status(fake_discord, start.token, "no new outfit for a while", within=40)
        assert not any(f.filename.endswith(".gif") for r in fake_discord.requests for f in r.files)
    finally:
        await bot.close()
