"""Discord failing under a live try-on: 429s and 5xx on edits and uploads, a deleted status message, missing
permissions, an upload over the limit and an expired interaction token.

Every case runs a whole session (real discord.py against the fake Discord, real WebRTC against the emulator,
real SQLite) with one fault injected at the fake, and then asks the same questions: was the member told in
plain words within 5 s (where any route to them still worked), did the session end cleanly, was the slot
freed and usage settled exactly once, is the recording still offered, is nothing left running, and did no
exception reach discord.py's error handlers or the presenter's last-resort log.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.app import TryOnBot
from bot.config import BotConfig
from bot.emulator import Emulator
from tests.fakediscord import BotDriver, Delivered, FakeDiscord, FakeMessage, Fault, RecordedRequest
from tests.fakediscord import payloads as p
from tests.helpers import fast_engine, make_bot_config, session_id_of, start_streaming, until, user_id
from tests.reliability.conftest import assert_nothing_running, assert_settled_once

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def bot_config(tmp_path: Path, emulator: Emulator) -> BotConfig:
    """The reliability bot with half-second clips: every case waits for one."""
    return make_bot_config(tmp_path, emulator.url, engine=fast_engine(snippet_seconds=0.5))


Ctx = Callable[..., p.InteractionContext]
TOLD_WITHIN = 5.0
ENDED_WORDS = ("Finishing up", "Done after")


def request_text(request: RecordedRequest) -> str:
    """What a message request shows: its content, embed titles, descriptions and field values."""
    body = request.json if isinstance(request.json, dict) else {}
    if "/callback" in request.path:
        body = body.get("data") or {}
    parts = [str(body.get("content") or "")]
    for embed in body.get("embeds") or []:
        parts += [embed.get("title", ""), embed.get("description", "")]
        parts += [field.get("value", "") for field in embed.get("fields", [])]
    return "\n".join(parts)


def shows(*words: str) -> Callable[[RecordedRequest], bool]:
    """A request showing the member any of `words`."""
    return lambda request: any(word in request_text(request) for word in words)


def uploads(*suffixes: str) -> Callable[[RecordedRequest], bool]:
    """A request uploading a file whose name ends with any of `suffixes`."""
    return lambda request: any(f.filename.endswith(suffixes) for f in request.files)


def landed_at(fake: FakeDiscord, what: Callable[[RecordedRequest], bool], *, after: float) -> float | None:
    """When Discord first accepted a request matching `what` (received after `after`)."""
    for request in fake.requests:
        if request.received_at >= after and 200 <= request.status < 300 and what(request):
            return request.received_at
    return None


async def seconds_until(
    fake: FakeDiscord, what: Callable[[RecordedRequest], bool], *, after: float, within: float = 40.0
) -> float:
    """Wait until Discord accepted a request matching `what`; how many seconds after `after` that came."""
    at: float = await fake.wait_for(lambda: landed_at(fake, what, after=after), within)
    return at - after


@dataclass
class Running:
    """A session started through `/tryon start`, streaming."""

    start: Delivered
    status: FakeMessage
    session_id: str


async def start_running(driver: BotDriver, member: p.InteractionContext) -> Running:
    """`/tryon start` and wait until the status message says it streams."""
    start, status = await start_streaming(driver, member, "a red wool coat")
    return Running(start, status, session_id_of(status))


async def assert_recovered(
    bot: TryOnBot, driver: BotDriver, fake: FakeDiscord, member: p.InteractionContext, session_id: str
) -> None:
    """The session ended and settled once, nothing runs, and the recording is still offered."""
    manager = bot.runtime.engine.manager
    # The engine offers no event for "slot freed" to the front end.
    await until(lambda: not manager.running_count and not manager.sessions(), 40)
    record = await bot.runtime.store.sessions.get(session_id)
    assert record is not None and record.state == "done", record
    assert await assert_settled_once(bot.runtime.store, session_id) > 0
    assert_nothing_running(bot)
    shown = await driver.command(member, "tryon show", id=session_id).reply(within=20)
    assert "[video](" in shown.content, shown.content


@pytest.fixture
def unhandled(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fails the test if an exception reached discord.py's handlers, asyncio, or the presenter's catch-all."""
    caplog.set_level(logging.WARNING)
    yield
    escaped = [
        record
        for record in caplog.records
        if record.levelno >= logging.ERROR
        and (record.name.startswith(("discord", "asyncio")) or "presenter failed" in record.getMessage())
    ]
    assert not escaped, [record.getMessage() for record in escaped]


# ----- 429 and 5xx that discord.py retries ---------------------------------------------------------------

TRANSIENT = [
    pytest.param(429, 2, id="429-twice"),
    pytest.param(500, 1, id="500-once"),
    pytest.param(502, 1, id="502-once"),
    pytest.param(503, 1, id="503-once"),
]


@pytest.mark.parametrize(("status", "times"), TRANSIENT)
async def test_transient_errors_on_status_edits_and_uploads(
    status: int,
    times: int,
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    unhandled: None,
) -> None:
    """discord.py retries these itself: every edit and upload lands, late by the retry wait only."""
    alice = as_member("alice")

    def fail_next(method: str, pattern: str, **options: Any) -> Fault:
        return fake_discord.fail(method, pattern, status=status, times=times, retry_after=0.3, **options)

    clip = fail_next("POST", r"^/webhooks/", when=uploads(".gif"))
    running = await start_running(driver, alice)
    await fake_discord.wait_for(lambda: clip.hits, 20)
    assert await seconds_until(fake_discord, uploads(".gif"), after=clip.hits[0].received_at) < TOLD_WITHIN

    edit = fail_next("PATCH", rf"/messages/{running.status.id}$")
    still = fail_next("POST", r"^/webhooks/", when=uploads(".png"))
    await driver.command(alice, "tryon stop").reply()
    await fake_discord.wait_for(lambda: edit.hits and still.hits, 20)
    assert (
        await seconds_until(fake_discord, shows(*ENDED_WORDS), after=edit.hits[0].received_at) < TOLD_WITHIN
    )
    assert await seconds_until(fake_discord, uploads(".png"), after=still.hits[0].received_at) < TOLD_WITHIN
    await assert_recovered(bot, driver, fake_discord, alice, running.session_id)
    assert len(edit.hits) == len(clip.hits) == len(still.hits) == times


def first_refusal(fake: FakeDiscord, method: str, pattern: str) -> RecordedRequest | None:
    """The first request of this kind that Discord refused, if any yet."""
    return next((r for r in fake.requests_to(method, pattern) if r.status >= 400), None)


# ----- the status message can no longer be edited ---------------------------------------------------------

STATUS_GONE = [
    pytest.param(None, id="deleted-by-a-moderator"),
    pytest.param(500, id="500-until-lifted"),
    pytest.param(503, id="503-until-lifted"),
]


@pytest.mark.parametrize("server_error", STATUS_GONE)
async def test_a_status_message_that_cannot_be_edited_is_posted_again(
    server_error: int | None,
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    unhandled: None,
) -> None:
    """Deleted (404 Unknown Message) or failing for good: the status moves to a new message, once."""
    alice = as_member("alice")
    running = await start_running(driver, alice)
    old = rf"/messages/{running.status.id}$"
    if server_error is None:
        fake_discord.delete_message(running.status.id)
    else:
        fake_discord.fail("PATCH", old, status=server_error, times=None)
    await driver.command(alice, "tryon stop").reply()
    refused = await fake_discord.wait_for(lambda: first_refusal(fake_discord, "PATCH", old), 20)
    moved = shows(*ENDED_WORDS)
    assert await seconds_until(fake_discord, moved, after=refused.received_at) < TOLD_WITHIN
    await assert_recovered(bot, driver, fake_discord, alice, running.session_id)
    statuses = [
        m
        for m in fake_discord.messages_for(running.start.token)
        if m.id != running.status.id and "session " in m.text
    ]
    assert len(statuses) == 1  # one new status message, not one per edit
    assert "Done after" in statuses[0].text
    assert statuses[0].custom_ids() == [f"tryon:delete:{running.session_id}"]  # only Delete is left
    record = await bot.runtime.store.sessions.get(running.session_id)
    assert record is not None and record.front_end["status_message_id"] == statuses[0].id  # type: ignore[index]


# ----- uploads that cannot succeed -------------------------------------------------------------------------

UPLOAD_REFUSED = [
    pytest.param(503, 0, "Discord did not accept", id="503-until-lifted"),
    pytest.param(413, 40005, "upload limit", id="413-entity-too-large"),
]


@pytest.mark.parametrize(("status", "code", "why"), UPLOAD_REFUSED)
async def test_refused_uploads_are_replaced_by_words(
    status: int,
    code: int,
    why: str,
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    unhandled: None,
) -> None:
    """The clip becomes a sentence saying why; the final message comes without its still, links intact."""
    alice = as_member("alice")
    refuse = fake_discord.fail(
        "POST", r"^/webhooks/", status=status, code=code, times=None, when=lambda r: bool(r.files)
    )
    running = await start_running(driver, alice)
    clip = await fake_discord.wait_for(lambda: refuse.hits, 20)
    note = shows("could not be posted")
    assert await seconds_until(fake_discord, note, after=clip[0].received_at) < TOLD_WITHIN
    assert why in request_text(next(r for r in fake_discord.requests if note(r) and r.status == 200))

    await driver.command(alice, "tryon stop").reply()
    await assert_recovered(bot, driver, fake_discord, alice, running.session_id)
    still = next((r for r in refuse.hits if uploads(".png")(r)), None)
    if still is not None:
        assert await seconds_until(fake_discord, shows("[video]("), after=still.received_at) < TOLD_WITHIN
    else:  # a 413 taught the bot the real limit, and the still was over it: not even tried
        assert status == 413 and not any(uploads(".png")(r) for r in fake_discord.requests)
    final = next(m for m in fake_discord.messages_for(running.start.token) if "[video](" in m.text)
    assert final.attachments == [] and "image" not in final.embeds[0]


# ----- the interaction token dies early --------------------------------------------------------------------

TOKEN_DEAD = [
    pytest.param(401, 50027, id="401-invalid-webhook-token"),
    pytest.param(404, 10015, id="404-unknown-webhook"),
]


@pytest.mark.parametrize(("status", "code"), TOKEN_DEAD)
async def test_an_interaction_token_dead_early_moves_the_session_to_the_channel(
    status: int,
    code: int,
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    unhandled: None,
) -> None:
    alice = as_member("alice")
    running = await start_running(driver, alice)
    token = running.start.token
    fake_discord.fail("*", rf"^/webhooks/\d+/{token}", status=status, code=code, times=None)
    stop = driver.command(alice, "tryon stop")
    await stop.reply()
    # Measured from the stop: a clip posted before it may have met the dead token first.
    assert await seconds_until(fake_discord, shows(*ENDED_WORDS), after=stop.delivered_at) < TOLD_WITHIN
    await assert_recovered(bot, driver, fake_discord, alice, running.session_id)
    assert any(r.status == status for r in fake_discord.requests if token in r.path)
    channel = fake_discord.channel_messages(int(world.channel["id"]))
    assert any("[video](" in m.text for m in channel)
    ended = next(m for m in channel if m.id == running.status.id)
    assert ended.custom_ids() == [f"tryon:delete:{running.session_id}"]  # only Delete is left


# ----- the bot may not post in the channel -----------------------------------------------------------------


@pytest.mark.parametrize(
    "dms_open", [pytest.param(True, id="dms-open"), pytest.param(False, id="dms-closed")]
)
async def test_missing_permissions_after_the_token_fallback(
    dms_open: bool,
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    unhandled: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """403 Missing Permissions in the channel once the token is gone: the member hears in DMs, if open."""
    alice = as_member("alice")
    if not dms_open:
        fake_discord.closed_dms.add(user_id(alice))
    running = await start_running(driver, alice)
    fake_discord.expire_token(running.start.token)
    channel = rf"^/channels/{world.channel['id']}/messages"
    fake_discord.fail("*", channel, status=403, code=50013, times=None)
    stop = driver.command(alice, "tryon stop")
    await stop.reply()
    if dms_open:  # measured from the stop: the channel may have refused a clip before it
        assert await seconds_until(fake_discord, shows(*ENDED_WORDS), after=stop.delivered_at) < TOLD_WITHIN
    await assert_recovered(bot, driver, fake_discord, alice, running.session_id)
    assert any(r.status == 403 for r in fake_discord.requests if re.search(channel, r.path))
    dm = fake_discord.dm_channels.get(user_id(alice))
    in_dms = fake_discord.channel_messages(dm) if dm is not None else []
    if dms_open:
        assert any("Done after" in m.text for m in in_dms) and any("[video](" in m.text for m in in_dms)
    else:
        # No route is left: the bot says so in its log and carries on; /tryon show still works.
        assert in_dms == []
        assert any("could not DM" in r.getMessage() for r in caplog.records)


# ----- Discord down for everything -------------------------------------------------------------------------


async def test_discord_down_for_everything(
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    unhandled: None,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No route works (503 on every request): nobody can be told, so the bot logs it, ends and settles the
    session all the same, and once Discord is back /tryon show offers the recording."""
    # Nothing is timed here: give up sooner. By name: each bot loads its own copy of the extension's modules.
    monkeypatch.setattr(sys.modules["cogs.tryon.outlet"], "CALL_SECONDS", 1.0)
    alice = as_member("alice")
    running = await start_running(driver, alice)
    outage = fake_discord.fail("*", ".", status=503, times=None)
    session = bot.runtime.engine.manager.get(running.session_id)
    bot.runtime.engine.manager.stop(running.session_id, user_id=user_id(alice))
    await asyncio.wait_for(session.finished.wait(), 40)
    outage.lift()
    assert outage.hits and all(r.status == 503 for r in outage.hits)
    assert any(r.levelno == logging.WARNING and "status" in r.getMessage() for r in caplog.records)
    await assert_recovered(bot, driver, fake_discord, alice, running.session_id)
