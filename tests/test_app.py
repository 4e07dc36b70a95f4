"""The bot shell: CLI `sync`/`run` start-up, the runtime's backends, the tree's error handling, replies."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from pathlib import Path

import discord
import httpx
import pytest
from discord import app_commands

from bot.__main__ import main as cli_main
from bot.app import TryOnBot, open_runtime, sync_once
from bot.config import OdysseySettings
from bot.tryon.errors import QuotaExceeded
from cogs.utils.delivery import send_reply
from tests.fakediscord import BotDriver, FakeDiscord
from tests.fakediscord import payloads as p
from tests.helpers import make_bot_config, stored_session


async def test_sync_cli_publishes_without_opening_the_runtime(
    fake_discord: FakeDiscord, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_bot_config(tmp_path)
    config = dataclasses.replace(
        config, discord=dataclasses.replace(config.discord, api_base_url=fake_discord.api_base)
    )
    assert await sync_once(config, None) == 0
    assert {c["name"] for c in fake_discord.synced_commands[None]} >= {"tryonadmin"}
    assert await sync_once(config, 1234) == 0
    assert {c["name"] for c in fake_discord.synced_commands[1234]} >= {"tryonadmin"}
    assert "published" in capsys.readouterr().out
    assert not (tmp_path / "tryon.db").exists()
    assert fake_discord.requests[0].headers["Authorization"] == "Bot fake"


async def test_rejected_token_stops_with_a_message(
    fake_discord: FakeDiscord, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_discord.accepted_token = "the-right-token"
    path = tmp_path / "config.toml"
    path.write_text(
        f'[discord]\ntoken = "revoked"\napi_base_url = "{fake_discord.api_base}"\n', encoding="utf-8"
    )
    # The fake serves on this test's loop; the CLI runs its own loop in a thread.
    assert await asyncio.to_thread(cli_main, ["sync", "--config", str(path)]) == 2
    assert "Discord rejected the bot token" in capsys.readouterr().err


def test_invalid_config_stops_start_up_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[engine]\nslots = 'many'\n", encoding="utf-8")
    assert cli_main(["run", "--config", str(path)]) == 2
    assert "engine.slots" in capsys.readouterr().err


def test_run_without_token_names_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    path = tmp_path / "config.toml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(SystemExit, match="DISCORD_TOKEN"):
        cli_main(["run", "--config", str(path)])


async def test_runtime_without_api_key_runs_the_embedded_emulator(tmp_path: Path) -> None:
    config = make_bot_config(tmp_path, odyssey=OdysseySettings())
    assert config.uses_emulator
    async with contextlib.AsyncExitStack() as resources:
        runtime = await open_runtime(config, resources)
        assert runtime.odyssey_url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(runtime.odyssey_url + "/")
        assert response.status_code < 500
        # The Watch live viewer runs beside it by default, on loopback only.
        assert runtime.viewer is not None and runtime.viewer.registry.base_url is not None
        viewer_url = runtime.viewer.registry.base_url
        assert viewer_url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.get(f"{viewer_url}/watch/{'x' * 24}")).status_code == 404
    for url in (runtime.odyssey_url, viewer_url):
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient(timeout=5) as client:
                await client.get(url + "/")


async def test_close_releases_the_store(driver: BotDriver, bot: TryOnBot) -> None:
    store = bot.runtime.store
    await bot.close()
    with pytest.raises(ValueError):
        await store.guilds.get(1)


@pytest.fixture
def failing_commands(bot: TryOnBot) -> None:
    async def explode(interaction: discord.Interaction[TryOnBot]) -> None:
        raise RuntimeError("disk on fire")

    async def over_quota(interaction: discord.Interaction[TryOnBot]) -> None:
        raise QuotaExceeded.for_window("daily", "time", None)

    bot.tree.add_command(app_commands.Command(name="explode", description="x", callback=explode))
    bot.tree.add_command(app_commands.Command(name="overquota", description="x", callback=over_quota))


@pytest.mark.usefixtures("failing_commands")
async def test_unexpected_error_is_logged_with_an_id_the_member_sees(
    driver: BotDriver, world: p.GuildWorld, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = driver.context(world, world.add_member("alice"))
    with caplog.at_level(logging.ERROR, logger="bot.app"):
        reply = await driver.command(ctx, "explode").reply()
    assert reply.ephemeral
    error_id = reply.content.split("`")[1]
    assert len(error_id) == 8 and "disk on fire" not in reply.content
    record = next(r for r in caplog.records if error_id in r.getMessage())
    assert record.exc_info is not None and "disk on fire" in str(record.exc_info[1])


@pytest.mark.usefixtures("failing_commands")
async def test_member_errors_are_shown_as_written(driver: BotDriver, world: p.GuildWorld) -> None:
    ctx = driver.context(world, world.add_member("alice"))
    reply = await driver.command(ctx, "overquota").reply()
    assert reply.ephemeral and reply.content == "You have used all of your daily try-on time."


async def test_reply_after_token_expiry_goes_to_the_channel(
    driver: BotDriver, world: p.GuildWorld, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    seen: list[discord.Interaction[TryOnBot]] = []

    async def later(interaction: discord.Interaction[TryOnBot]) -> None:
        seen.append(interaction)
        await interaction.response.defer()

    bot.tree.add_command(app_commands.Command(name="later", description="x", callback=later))
    sent = driver.command(driver.context(world, world.add_member("alice")), "later")
    await sent.original()
    fake_discord.expire_token(sent.token)
    interaction = seen[0]
    public = await send_reply(interaction, "done @everyone", ephemeral=False)
    assert public is not None and public.channel.id == int(world.channel["id"])
    posted = fake_discord.channel_messages(int(world.channel["id"]))[-1]
    assert posted.content == "done @everyone" and posted.interaction_token is None
    create = fake_discord.requests_to("POST", r"^/channels/\d+/messages$")[-1]
    assert create.json["allowed_mentions"] == {"parse": []}
    assert await send_reply(interaction, "private", ephemeral=True) is None


async def test_start_up_does_not_wait_for_recordings_of_interrupted_sessions(
    driver: BotDriver, world: p.GuildWorld, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    store = bot.runtime.store
    record = await stored_session(
        store,
        world.guild_id,
        p.snowflake(),
        channel_id=int(world.channel["id"]),
        front_end={"private": False, "status_message_id": None},
        state="streaming",
    )
    # Odyssey is unreachable (the test config points at a closed port): fetching the recording retries
    # for `recording_poll_limit_seconds` (two minutes by default).
    await store.streams.start(record.id, odyssey_stream_id="stream-before-the-crash")
    restarted = TryOnBot(bot.config)
    try:
        async with asyncio.timeout(15):
            await BotDriver(fake_discord, restarted).login()
        # Settled before any command could run, while its recording is still being fetched.
        stored = await restarted.runtime.store.sessions.get(record.id)
        assert stored is not None and stored.state == "interrupted"
        assert not fake_discord.channel_messages(int(world.channel["id"]))  # the offer has not come yet
    finally:
        async with asyncio.timeout(15):
            await restarted.close()  # an unfinished recovery is abandoned, not waited for
