"""Process faults, with real SIGKILLs: the Odyssey emulator killed mid-stream, then the bot itself.

(a) `python -m bot emulator` runs as a child process; mid-stream it is SIGKILLed and restarted on the same
    port. The in-process bot must tell the member, settle once, free the slot and still offer the recording
    of what streamed (the restarted emulator finishes it from its recordings folder).
(b) `python -m bot run` runs as a child process against the fake Discord (REST and gateway) and an emulator;
    with one session streaming and one queued it is SIGKILLed and started again. The restart must mark both
    interrupted, settle each once (the live one from its last heartbeat in the SQLite file, the queued one
    refunded), tell both members, offer the recording, and the killed bot must leave no process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import av
import httpx
import pytest

from bot.app import TryOnBot
from bot.config import BotConfig
from bot.emulator import Emulator
from bot.store import Store
from tests.emulator.process import EmulatorProcess, emulator_process
from tests.fakediscord import BotDriver, FakeDiscord, FakeMessage
from tests.fakediscord import payloads as p
from tests.helpers import (
    PHOTO,
    fast_engine,
    make_bot_config,
    session_id_of,
    start_bot_process,
    start_streaming,
    status_message,
    wait_status,
    write_run_config,
)
from tests.reliability.conftest import assert_nothing_running, assert_settled_once

pytestmark = pytest.mark.timeout(120)

TELL_WITHIN_SECONDS = 5.0  # the limit for telling the member
VIDEO_LINK = re.compile(r"\[video\]\((\S+?)\)")
Ctx = Callable[..., p.InteractionContext]


def recording_message(fake: FakeDiscord, messages: list[FakeMessage]) -> FakeMessage | None:
    """The message offering the recording, once it carries a video link."""
    return next(
        (
            m
            for m in messages
            if m.embeds
            and str(m.embeds[0].get("title", "")).startswith("Your try-on recording")
            and VIDEO_LINK.search(m.text)
        ),
        None,
    )


async def assert_playable(message: FakeMessage, streamed_seconds: float) -> None:
    """The offered video downloads and plays, and lasts about as long as the stream ran before the kill."""
    match = VIDEO_LINK.search(message.text)
    assert match is not None, message.text
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(match.group(1))
    assert response.status_code == 200, response.text
    with av.open(io.BytesIO(response.content), "r") as container:
        frames = list(container.decode(video=0))
        seconds = (container.duration or 0) / 1_000_000
    assert frames, "the recording has no frames"
    # The emulator marks progress every 0.5 s; the bot counts from `stream_started` to the loss it noticed.
    assert abs(seconds - streamed_seconds) < 1.5, (seconds, streamed_seconds)


# ---- (a) the emulator process killed mid-stream ----------------------------------------------------------


@pytest.fixture
async def emulator_proc(tmp_path: Path) -> AsyncIterator[EmulatorProcess]:
    """`python -m bot emulator` with a recordings folder (killed at teardown whatever happened)."""
    async with emulator_process(tmp_path / "recordings") as emulator:
        yield emulator


@pytest.fixture
def bot_config(tmp_path: Path, emulator_proc: EmulatorProcess) -> BotConfig:
    """The in-process bot on the emulator process; recordings are polled long enough to outlive a restart."""
    engine = fast_engine(recording_poll_limit_seconds=40.0)
    return make_bot_config(tmp_path, emulator_proc.url, engine=engine)


async def test_emulator_killed_mid_stream_and_restarted(
    driver: BotDriver,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    emulator_proc: EmulatorProcess,
) -> None:
    start, status = await start_streaming(driver, as_member("alice"), "green linen shirt")
    session_id = session_id_of(status)
    await asyncio.sleep(1.5)  # some video and a few heartbeats

    await emulator_proc.kill()
    killed_at = time.perf_counter()
    await fake_discord.wait_for(
        lambda: any("could not continue" in m.text for m in fake_discord.messages_for(start.token)),
        within=20,
    )
    told_after = time.perf_counter() - killed_at
    assert told_after < TELL_WITHIN_SECONDS, f"member told {told_after:.1f} s after the kill"

    await emulator_proc.start()  # same port, same recordings folder
    offered = await fake_discord.wait_for(
        lambda: recording_message(fake_discord, fake_discord.messages_for(start.token)), within=45
    )
    final = await wait_status(fake_discord, start.token, "Done after", within=10)
    assert final.custom_ids() == [f"tryon:delete:{session_id}"], "session buttons left on an ended session"

    charged = await assert_settled_once(bot.runtime.store, session_id)
    record = await bot.runtime.store.sessions.get(session_id)
    assert record is not None and record.state == "done" and charged == pytest.approx(record.streamed_seconds)
    assert charged > 1.0
    await assert_playable(offered, charged)
    assert_nothing_running(bot)


# ---- (b) the bot process killed mid-session ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def bot_process(config: Path, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m bot run --config …` logging to `log`; killed on the way out if still running."""
    with log.open("wb") as output:
        # A file, not a pipe: a pipe would also be held open by any child process the bot leaves behind.
        process = await start_bot_process(config, stdout=asyncio.subprocess.DEVNULL, stderr=output)
    try:
        yield process
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await process.wait()


async def logged_in(fake: FakeDiscord, process: asyncio.subprocess.Process, logins: int, log: Path) -> float:
    """When the bot process logged in for the `logins`-th time (perf_counter); fails if it died first."""
    login = asyncio.ensure_future(fake.wait_for_request("GET", r"^/users/@me$", count=logins, within=60))
    exited = asyncio.ensure_future(process.wait())
    try:
        await asyncio.wait({login, exited}, return_when=asyncio.FIRST_COMPLETED)
        if not login.done():
            errors = (await asyncio.to_thread(log.read_text, errors="replace"))[-3000:]
            pytest.fail(f"the bot exited ({process.returncode}) before logging in:\n{errors}")
        return login.result().received_at
    finally:
        login.cancel()
        exited.cancel()


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (Linux /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found |= {int(child)} | descendants(int(child))
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped has stopped running)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def kill_leftovers(pids: set[int]) -> None:
    """SIGKILL what a killed bot left behind, so a failing test leaves no orphans either."""
    for pid in pids:
        with contextlib.suppress(OSError):
            if alive(pid) and b"multiprocessing" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


async def all_gone(pids: set[int], within: float) -> set[int]:
    """The processes of `pids` still running after `within` seconds (empty once all have stopped)."""
    deadline = time.monotonic() + within
    # Processes of no relation to us: nothing to wait on but /proc.
    while (running := {pid for pid in pids if alive(pid)}) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    return running


def stored_row(database: Path, session_id: str) -> tuple[str, float]:
    """(state, streamed_seconds) of a session, read straight from the SQLite file the bot writes."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        row = db.execute(
            "SELECT state, streamed_seconds FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
    assert row is not None, session_id
    return str(row[0]), float(row[1])


async def heartbeat_reaches(database: Path, session_id: str, seconds: float, within: float = 20.0) -> None:
    """Wait until the bot's heartbeat has stored at least `seconds` streamed."""
    async with asyncio.timeout(within):
        # Another process writes the file: nothing to wait on but the file itself.
        while (await asyncio.to_thread(stored_row, database, session_id))[1] < seconds:  # noqa: ASYNC110
            await asyncio.sleep(0.1)


async def test_bot_killed_with_a_live_and_a_queued_session_and_restarted(
    fake_discord: FakeDiscord, emulator: Emulator, tmp_path: Path
) -> None:
    world = p.guild_world()
    channel_id = int(world.channel["id"])
    for channel in world.channels:
        fake_discord.add_channel(int(channel["id"]))
    fake_discord.gateway_guilds.append(world.guild_create())
    config, database = tmp_path / "config.toml", tmp_path / "tryon.db"
    engine = fast_engine(slots=1, recording_poll_limit_seconds=20.0)  # one slot: bob waits behind alice
    write_run_config(config, fake_discord, emulator.url, database, engine)
    alice, bob = world.add_member("alice"), world.add_member("bob")
    photo = p.opt_attachment(
        fake_discord.add_attachment("me.jpg", PHOTO, "image/jpeg", width=512, height=512)
    )

    def start_command(member: p.Payload, outfit: str) -> p.Payload:
        ctx = p.InteractionContext(fake_discord.application_id, world.channel, world.guild_id, member)
        return p.slash_command(ctx, "tryon start", {"photo": photo, "outfit": outfit})

    async def deliver(interaction: p.Payload) -> None:
        fake_discord.register_interaction(interaction)
        await fake_discord.gateway_dispatch("INTERACTION_CREATE", interaction)

    live, queued = start_command(alice, "red parka"), start_command(bob, "blue blazer")
    log = tmp_path / "bot.log"
    async with bot_process(config, log) as first:
        await logged_in(fake_discord, first, 1, log)
        await fake_discord.wait_for(lambda: fake_discord.identify, within=30)
        await deliver(live)
        live_id = session_id_of(await wait_status(fake_discord, live["token"], "Streaming live", within=40))
        await deliver(queued)
        queued_id = session_id_of(await wait_status(fake_discord, queued["token"], "Waiting in line"))
        # The first clip is posted (so the snippet worker process runs) and a heartbeat passed 1 s.
        await fake_discord.wait_for(
            lambda: any(m.attachments for m in fake_discord.messages_for(live["token"])), within=30
        )
        await heartbeat_reaches(database, live_id, 1.0)
        children = descendants(first.pid)
        assert children, "the bot runs its snippet encoder in worker processes"
        first.send_signal(signal.SIGKILL)
        assert await first.wait() == -signal.SIGKILL
    try:
        orphans = await all_gone(children, within=5.0)
        assert not orphans, f"the killed bot left processes running: {orphans}"
    finally:
        kill_leftovers(children)
    state, last_heartbeat = stored_row(database, live_id)
    assert state == "streaming" and last_heartbeat >= 1.0  # what the kill left on disk
    assert stored_row(database, queued_id) == ("queued", 0.0)

    def interrupted(token: str) -> FakeMessage | None:
        status = status_message(fake_discord, token)
        return status if status is not None and "Interrupted by a restart" in status.text else None

    def notice_for(member: p.Payload, words: str) -> FakeMessage | None:
        mention = f"<@{member['user']['id']}>"
        messages = fake_discord.channel_messages(channel_id)
        return next((m for m in messages if mention in m.content and words in m.text), None)

    log = tmp_path / "restarted.log"
    async with bot_process(config, log) as restarted:
        back_at = await logged_in(fake_discord, restarted, 2, log)
        statuses = await fake_discord.wait_for(
            lambda: (a := interrupted(live["token"])) and (b := interrupted(queued["token"])) and (a, b),
            within=30,
        )
        told_after = time.perf_counter() - back_at
        assert told_after < TELL_WITHIN_SECONDS, f"members told {told_after:.1f} s after the bot was back"
        assert all([c.split(":")[1] for c in status.custom_ids()] == ["delete"] for status in statuses), (
            "session buttons left on interrupted sessions"
        )
        offered = await fake_discord.wait_for(
            lambda: notice_for(alice, "recovered after a restart"), within=30
        )
        assert recording_message(fake_discord, [offered]) is not None, offered.text
        await fake_discord.wait_for(lambda: notice_for(bob, "before anything was recorded"), within=30)
        restarted.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await restarted.wait() == 0, log.read_text(errors="replace")[-3000:]

    await assert_playable(offered, last_heartbeat)
    async with await Store.open(database) as store:
        for session_id in (live_id, queued_id):
            record = await store.sessions.get(session_id)
            assert record is not None and record.state == "interrupted"
        assert (await store.sessions.get(live_id)).streamed_seconds == last_heartbeat  # type: ignore[union-attr]
        assert await assert_settled_once(store, live_id) == pytest.approx(last_heartbeat)
        assert await assert_settled_once(store, queued_id) == 0.0  # refunded: it never streamed
        assert await store.sessions.live(world.guild_id) == []
    assert emulator.active_sessions() == [] and not emulator.connections  # the platform slot is free
