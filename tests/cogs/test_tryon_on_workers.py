"""`/tryon` through the real bot and the fake Discord with `--local-workers`: the bot starts NATS and a
worker process, and every live session runs there (real WebRTC against the emulator, real SQLite)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.app import TryOnBot
from bot.config import BotConfig
from bot.emulator import Emulator
from bot.workers.remote import RemoteLauncher, RemoteSession
from bot.workers.settings import WorkerSettings
from tests.fakediscord import BotDriver, FakeDiscord
from tests.fakediscord import payloads as p
from tests.helpers import make_bot_config, mp4_video, photo_option, session_id_of, until, wait_status

Ctx = Callable[..., p.InteractionContext]

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def bot_config(tmp_path: Path, emulator: Emulator) -> BotConfig:
    config = make_bot_config(tmp_path, emulator.url)
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
