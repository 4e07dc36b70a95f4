"""The front end (`python -m bot run`, a real process on the fake Discord) stopped and killed while a worker
streams: each time the restarted bot takes the session back (status, buttons, steering), and usage is
settled exactly once with nothing lost."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.emulator import Emulator
from bot.store import Store
from bot.workers.bus import connect
from bot.workers.presence import PresenceBoard
from bot.workers.settings import WorkerSettings
from tests.fakediscord import FakeDiscord
from tests.fakediscord import payloads as p
from tests.fakediscord.server import FakeMessage
from tests.helpers import PHOTO, session_id_of, start_bot_process, wait_status, write_run_config
from tests.workers.processes import WorkerPool

pytestmark = pytest.mark.timeout(240)

BotProcess = asyncio.subprocess.Process


@pytest.fixture
async def board(worker_settings: WorkerSettings) -> AsyncIterator[PresenceBoard]:
    client = await connect(worker_settings, "test")
    try:
        yield PresenceBoard(client, worker_settings)
    finally:
        await client.close()


def bot_config(
    path: Path, fake: FakeDiscord, emulator: Emulator, database: Path, workers: WorkerSettings
) -> Path:
    """The run config, with remote workers on the test's NATS server (the token comes from the env)."""
    write_run_config(path, fake, emulator.url, database)
    with path.open("a", encoding="utf-8") as config:
        config.write(
            "\n[workers]\n"
            f'nats_url = "{workers.nats_url}"\n'
            f"presence_ttl_seconds = {workers.presence_ttl_seconds}\n"
        )
    return path


def log_text(log: Path) -> str:
    """Everything the bot processes logged."""
    return log.read_text(encoding="utf-8", errors="replace")


async def start_bot(fake: FakeDiscord, config: Path, workers: WorkerSettings, log: Path) -> BotProcess:
    """The bot as a process, once it has identified on the fake gateway (its sessions taken back by then)."""
    fake.identify = None
    with log.open("ab") as output:
        process = await start_bot_process(
            config, stdout=output, stderr=output, extra_env={"NATS_TOKEN": workers.token or ""}
        )
    identified = asyncio.create_task(fake.wait_for(lambda: fake.identify, within=60))
    exited = asyncio.create_task(process.wait())
    await asyncio.wait({identified, exited}, return_when=asyncio.FIRST_COMPLETED)
    exited.cancel()
    if not identified.done() or identified.exception() is not None:
        identified.cancel()
        if process.returncode is None:
            process.kill()
            await process.wait()
        pytest.fail("the bot never identified:\n" + log_text(log)[-3000:])
    return process


async def press(fake: FakeDiscord, ctx: p.InteractionContext, message: FakeMessage, custom_id: str) -> str:
    """Press a button on `message` through the gateway; the press's interaction token."""
    payload = message.payload()
    payload["guild_id"] = str(ctx.guild_id)
    interaction = p.component(ctx, custom_id, payload)
    fake.register_interaction(interaction)
    await fake.gateway_dispatch("INTERACTION_CREATE", interaction)
    return str(interaction["token"])


async def command(fake: FakeDiscord, ctx: p.InteractionContext, name: str, **options: object) -> str:
    """Run a slash command through the gateway; its interaction token."""
    interaction = p.slash_command(ctx, name, dict(options))
    fake.register_interaction(interaction)
    await fake.gateway_dispatch("INTERACTION_CREATE", interaction)
    return str(interaction["token"])


def replied(fake: FakeDiscord, token: str, words: str) -> bool:
    """True once the interaction `token` was answered with `words`."""
    return any(words in m.text for m in fake.messages_for(token))


async def test_stopped_then_killed_bot_takes_the_live_session_back_each_time(
    fake_discord: FakeDiscord,
    emulator: Emulator,
    worker_settings: WorkerSettings,
    workers: WorkerPool,
    board: PresenceBoard,
    tmp_path: Path,
) -> None:
    world = p.guild_world()
    for channel in world.channels:
        fake_discord.add_channel(int(channel["id"]))
    fake_discord.gateway_guilds.append(world.guild_create())
    database, log = tmp_path / "tryon.db", tmp_path / "bot.log"
    config = bot_config(tmp_path / "config.toml", fake_discord, emulator, database, worker_settings)
    await workers.start("w1", 2, board)
    channel_id = int(world.channel["id"])
    alice = world.add_member("alice")
    ctx = p.InteractionContext(fake_discord.application_id, world.channel, world.guild_id, alice)

    def channel_text() -> str:
        return "\n".join(m.text for m in fake_discord.channel_messages(channel_id))

    bot = await start_bot(fake_discord, config, worker_settings, log)
    try:
        photo = fake_discord.add_attachment("me.jpg", PHOTO, "image/jpeg", width=512, height=512)
        start = await command(
            fake_discord, ctx, "tryon start", photo=p.opt_attachment(photo), outfit="red parka"
        )
        status = await wait_status(fake_discord, start, "Streaming live", within=60)
        session_id = session_id_of(status)
        streaming_since = time.monotonic()

        # A graceful stop (a deploy): the session is handed over, not ended; the member is told so.
        bot.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            assert await bot.wait() == 0, log_text(log)[-3000:]
        assert "keeps streaming" in status.text
        assert [c for c in status.custom_ids() if c.startswith("tryon:")]  # the buttons stay
        await asyncio.sleep(2.0)  # the worker streams on alone; its events wait in JetStream

        bot = await start_bot(fake_discord, config, worker_settings, log)
        await wait_status(fake_discord, start, "nothing was lost", within=20)

        # Killed outright this time: no goodbye at all.
        bot.kill()
        await bot.wait()
        await asyncio.sleep(2.0)
        bot = await start_bot(fake_discord, config, worker_settings, log)
        await wait_status(fake_discord, start, "nothing was lost", within=20)

        # Steering, the snapshot button and the stop button all work on the restarted bot.
        steer = await command(fake_discord, ctx, "tryon outfit", prompt="green rain coat")
        await fake_discord.wait_for(lambda: replied(fake_discord, steer, "New outfit applied"), within=30)
        await fake_discord.wait_for(lambda: "green rain coat" in status.text, within=30)
        snap = await press(fake_discord, ctx, status, f"tryon:snap:{session_id}")
        await fake_discord.wait_for(lambda: replied(fake_discord, snap, "Snapshot posted"), within=30)
        posts = fake_discord.channel_messages(channel_id)
        assert any(a["filename"].endswith(".png") for m in posts for a in m.attachments)
        stop = await press(fake_discord, ctx, status, f"tryon:stop:{session_id}")
        await fake_discord.wait_for(lambda: replied(fake_discord, stop, "Ending the try-on"), within=30)
        await wait_status(fake_discord, start, "Done after", within=60)
        # The restarted bot has no interaction token: the recording is posted in the channel.
        await fake_discord.wait_for(lambda: "Your try-on recording" in channel_text(), within=60)
        wall_seconds = time.monotonic() - streaming_since
        bot.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            assert await bot.wait() == 0
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()

    store = await Store.open(database)
    try:
        record = await store.sessions.get(session_id)
        assert record is not None and record.state == "done"
        # Streamed while the bot was away counts too (the worker's heartbeats waited in JetStream).
        assert 4.0 < record.streamed_seconds <= wall_seconds + 1.0
        entries = await store.usage.for_session(session_id)
        assert [e.kind for e in entries] == ["session", "charge"]
        [charge] = [e for e in entries if e.kind == "charge"]
        assert charge.seconds == pytest.approx(record.streamed_seconds, abs=0.01)
    finally:
        await store.close()
    assert "Traceback" not in log_text(log)
