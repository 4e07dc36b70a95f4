"""`python -m bot run` as a real process: gateway login, a live session, then SIGTERM ends and settles it."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from bot.emulator import Emulator
from bot.store import Store
from tests.fakediscord import FakeDiscord
from tests.fakediscord import payloads as p
from tests.helpers import PHOTO, start_bot_process, status_message, until, write_run_config

pytestmark = pytest.mark.timeout(120)


async def test_sigterm_ends_and_settles_every_session(
    fake_discord: FakeDiscord, emulator: Emulator, tmp_path: Path
) -> None:
    world = p.guild_world()
    for channel in world.channels:
        fake_discord.add_channel(int(channel["id"]))
    fake_discord.gateway_guilds.append(world.guild_create())
    config, database = tmp_path / "config.toml", tmp_path / "tryon.db"
    write_run_config(config, fake_discord, emulator.url, database)
    process = await start_bot_process(
        config, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        identified = asyncio.create_task(fake_discord.wait_for(lambda: fake_discord.identify, within=60))
        exited = asyncio.create_task(process.wait())
        await asyncio.wait({identified, exited}, return_when=asyncio.FIRST_COMPLETED)
        if not identified.done() or identified.exception() is not None:
            identified.cancel()
            output, _ = await process.communicate()
            pytest.fail("the bot never identified:\n" + output.decode(errors="replace")[-3000:])
        exited.cancel()
        assert fake_discord.identify is not None and fake_discord.identify["token"] == "fake.process.token"
        assert not fake_discord.synced_commands  # never synced on start

        alice = world.add_member("alice")
        ctx = p.InteractionContext(fake_discord.application_id, world.channel, world.guild_id, alice)
        photo = fake_discord.add_attachment("me.jpg", PHOTO, "image/jpeg", width=512, height=512)
        start = p.slash_command(ctx, "tryon start", {"photo": p.opt_attachment(photo), "outfit": "red parka"})
        fake_discord.register_interaction(start)
        await fake_discord.gateway_dispatch("INTERACTION_CREATE", start)
        await fake_discord.wait_for(
            lambda: any("Streaming live" in m.text for m in fake_discord.messages_for(start["token"])),
            within=60,
        )

        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            output, _ = await process.communicate()
        assert process.returncode == 0, output.decode(errors="replace")[-3000:]
        assert b"shutting down" in output
        status = status_message(fake_discord, start["token"])  # (the first try-on's guide is an embed too)
        assert status is not None and "the bot is restarting" in status.text
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    store = await Store.open(database)
    try:
        sessions = await store.sessions.history(world.guild_id, int(alice["user"]["id"]))
        assert len(sessions) == 1 and sessions[0].state == "done" and sessions[0].streamed_seconds > 0
        assert "charge" in [entry.kind for entry in await store.usage.for_session(sessions[0].id)]
    finally:
        await store.close()


async def test_ctrl_c_ends_the_bot_with_one_line_and_no_child_traceback(
    fake_discord: FakeDiscord, emulator: Emulator, tmp_path: Path
) -> None:
    world = p.guild_world()
    for channel in world.channels:
        fake_discord.add_channel(int(channel["id"]))
    fake_discord.gateway_guilds.append(world.guild_create())
    config = tmp_path / "config.toml"
    write_run_config(config, fake_discord, emulator.url, tmp_path / "tryon.db")
    # Its own process group, as a shell gives a foreground job: Ctrl-C signals the whole group.
    process = await start_bot_process(
        config, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True
    )
    try:
        await fake_discord.wait_for(lambda: fake_discord.identify, within=60)
        alice = world.add_member("alice")
        ctx = p.InteractionContext(fake_discord.application_id, world.channel, world.guild_id, alice)
        photo = fake_discord.add_attachment("me.jpg", PHOTO, "image/jpeg", width=512, height=512)
        start = p.slash_command(ctx, "tryon start", {"photo": p.opt_attachment(photo), "outfit": "red parka"})
        fake_discord.register_interaction(start)
        await fake_discord.gateway_dispatch("INTERACTION_CREATE", start)
        # The first clip means the snippet encoder's worker process runs (it starts with the first job).
        await fake_discord.wait_for(
            lambda: any(m.attachments for m in fake_discord.messages_for(start["token"])), within=60
        )
        pool_workers = child_pids(process.pid)
        assert pool_workers, "the snippet encoder's worker process should be running"

        os.killpg(process.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        async with asyncio.timeout(60):
            output, _ = await process.communicate()
        text = output.decode(errors="replace")
        assert process.returncode == 0, text[-3000:]
        assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]
        assert text.count("shutting down") == 1
        await until(lambda: not [pid for pid in pool_workers if alive(pid)], within=10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def alive(pid: int) -> bool:
    """Whether a process runs (exists and is not a zombie waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def child_pids(parent: int) -> list[int]:
    """The pids of `parent`'s live child processes (from /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            children.append(int(stat.parent.name))
    return children
