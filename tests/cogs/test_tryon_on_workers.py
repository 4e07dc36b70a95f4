"""`/tryon` through the real bot and the fake Discord with `--local-workers`: the bot starts NATS and a
worker process, and every live session runs there (real WebRTC against the emulator, real SQLite)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bot.app import TryOnBot
from bot.config import BotConfig
from bot.emulator import Emulator
from bot.web import WebSettings
from bot.workers.remote import RemoteLauncher, RemoteSession
from bot.workers.settings import WorkerSettings
from tests.fakediscord import BotDriver, FakeDiscord
from tests.fakediscord import payloads as p
from tests.helpers import (
    joined_as_spectator,
    make_bot_config,
    mp4_video,
    photo_option,
    session_id_of,
    status_message,
    until,
    wait_status,
    watch_link,
)

Ctx = Callable[..., p.InteractionContext]

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def bot_config(tmp_path: Path, emulator: Emulator) -> BotConfig:
    config = make_bot_config(tmp_path, emulator.url, web=WebSettings(port=0))
    return dataclasses.replace(config, workers=WorkerSettings(local_workers=1, capacity=2))


async def test_a_whole_try_on_runs_on_a_local_worker(
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    emulator: Emulator,
) -> None:
    alice = as_member("alice")
    emulator.faults.fail_503_times = 2  # Odyssey's queue: its wait, known on the worker, reaches the status
    start = driver.command(
        alice, "tryon start", photo=photo_option(fake_discord), outfit="a red summer dress"
    )
    ack = await start.response()
    assert ack.json["type"] == 5
    await wait_status(fake_discord, start.token, "waiting in its queue")
    status = await wait_status(fake_discord, start.token, "Streaming live")
    session_id = session_id_of(status)
    engine = bot.runtime.engine
    session = engine.manager.get(session_id)
    assert isinstance(engine.manager.launcher, RemoteLauncher) and isinstance(session, RemoteSession)
    assert session.worker_id == "local-1"

    # The first clip, cut on the worker, is uploaded by the bot.
    await fake_discord.wait_for(
        lambda: any(m.attachments for m in fake_discord.messages_for(start.token)), 40
    )
    upload = next(r for r in fake_discord.requests if r.files and r.files[0].filename.endswith(".gif"))
    assert upload.files[0].data[:6] in (b"GIF87a", b"GIF89a")

    # Steering through the modal reaches the worker; its clip follows.
    pressed = driver.press(alice, status, f"tryon:outfit:{session_id}")
    modal = await pressed.response()
    modal_id = modal.json["data"]["custom_id"]
    await driver.modal_opened(modal_id)
    text_input = modal.json["data"]["components"][0]["components"][0]["custom_id"]
    applied = driver.submit(alice, modal_id, {text_input: "a blue denim jacket"})
    assert (await applied.reply(within=40)).content == "New outfit applied."
    await fake_discord.wait_for(
        lambda: any(
            "blue denim jacket" in m.content for m in fake_discord.messages_for(start.token) if m.attachments
        ),
        40,
    )
    snapped = await driver.press(alice, status, f"tryon:snap:{session_id}").reply(within=30)
    assert snapped.ephemeral
    await fake_discord.wait_for(
        lambda: any(
            a["filename"].endswith(".png") and a["filename"] != "before-after.png"
            for m in fake_discord.messages_for(start.token)
            for a in m.attachments
        ),
        30,
    )

    stopped = await driver.press(alice, status, f"tryon:stop:{session_id}").reply()
    assert "Ending" in stopped.content
    done = await wait_status(fake_discord, start.token, "Done after", within=40)
    assert done.custom_ids() == [f"tryon:delete:{session_id}"]
    final = await fake_discord.wait_for(
        lambda: next(
            (m for m in fake_discord.messages_for(start.token) if "[video](" in m.text and m.attachments),
            None,
        ),
        40,
    )
    # The highlight and the stills were made on the worker and came over NATS with the links.
    names = [a["filename"] for a in final.attachments]
    assert names == ["highlight.mp4", "thumbnail.jpg", "before-after.png"]
    upload = next(r for r in fake_discord.requests if any(f.filename == "highlight.mp4" for f in r.files))
    codec, _, _, frames = mp4_video(upload.files[0].data)
    record = await bot.runtime.store.sessions.get(session_id)
    assert codec == "h264" and record is not None and frames >= 0.6 * 4 * record.streamed_seconds
    assert "2 outfits" in final.text and final.embeds[0]["thumbnail"]["url"] == "attachment://thumbnail.jpg"
    bob = as_member("bob")
    fresh = await driver.press(bob, final, f"tryon:full:{session_id}").reply(within=30)
    assert fresh.ephemeral and "[Full video" in fresh.text and "local links" in fresh.text

    store = bot.runtime.store
    await until(lambda: not engine.manager.sessions(), 20)
    record = await store.sessions.get(session_id)
    assert record is not None and record.state == "done" and record.streamed_seconds > 0
    kinds = [e.kind for e in await store.usage.for_session(session_id)]
    assert kinds == ["session", "charge"]
    prompts = {prompt.text: prompt.status for prompt in await store.prompts.for_session(session_id)}
    assert prompts == {"a red summer dress": "applied", "a blue denim jacket": "applied"}


async def test_watch_live_works_for_sessions_on_a_worker(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    # Shared from the start: the worker broadcasts, and each part's details come back over the bus.
    alice, bob = as_member("alice"), as_member("bob")
    shared = driver.command(
        alice, "tryon start", photo=photo_option(fake_discord), outfit="a red summer dress", watch=True
    )
    status = await wait_status(fake_discord, shared.token, "Streaming live")
    link = watch_link(status)
    assert link is not None
    async with httpx.AsyncClient(timeout=10) as http:
        await joined_as_spectator(http, link)

        # "Share live" on a running session: the worker rolls over to a broadcast part at once.
        later = driver.command(bob, "tryon start", photo=photo_option(fake_discord), outfit="a green parka")
        plain = await wait_status(fake_discord, later.token, "Streaming live")
        session_id = session_id_of(plain)
        session = bot.runtime.engine.manager.get(session_id)
        assert isinstance(session, RemoteSession) and session.worker_id == "local-1"
        pressed = await driver.press(bob, plain, f"tryon:share:{session_id}").reply(within=30)
        assert "anyone with this link can watch" in pressed.content
        now_shared = await fake_discord.wait_for(
            lambda: (m := status_message(fake_discord, later.token)) is not None and watch_link(m) and m, 30
        )
        bob_link = watch_link(now_shared)
        assert bob_link is not None and bob_link != link
        await joined_as_spectator(http, bob_link)
        assert len(session.stream_ids) == 2  # the first part was not broadcast; the second is

        for member, token in ((alice, shared.token), (bob, later.token)):
            await driver.command(member, "tryon stop").reply()
            await wait_status(fake_discord, token, "Done after", within=40)
        assert (await http.get(link)).status_code == 404 and (await http.get(bob_link)).status_code == 404
