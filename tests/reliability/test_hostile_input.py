"""Hostile input through the real bot: every photo and prompt of the corpus, sent the way members send them.

Each case goes through `/tryon start` on the fake Discord (the photo served from its CDN) and, for
prompts, through `/tryon outfit` and the "New outfit" modal too. Every case must end in a clear private
refusal or be handled safely (an accepted photo becomes an upright JPEG of a sane size, without whatever
rode along in the file); the event loop may never stall for 100 ms; the bot must answer the next command;
and nothing the bot sent may ping anyone (no mention allowed, member text escaped).
"""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bot.app import TryOnBot
from bot.store import Store
from bot.tryon.photos import OUTPUT_LONG_SIDE
from bot.tryon.prompts import clean_prompt
from tests.fakediscord import BotDriver, FakeDiscord, FakeMessage
from tests.fakediscord import payloads as p
from tests.fakediscord.server import RecordedRequest
from tests.helpers import photo_option, session_id_of, status_message, until, user_id, wait_status
from tests.reliability.conftest import assert_settled_once, loop_lag_probe
from tests.reliability.hostile_corpus import (
    BLOCKLIST,
    MENTION_IDS,
    PHOTO_CASES,
    PROMPT_CASES,
    PhotoCase,
    PromptCase,
)

pytestmark = pytest.mark.timeout(60)

Ctx = Callable[..., p.InteractionContext]
MAX_LAG_MS = 100.0
ANSWER_SECONDS = 20.0  # generous on a loaded 2-core machine; no case comes near it


# ----- shared checks ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def photo_bytes() -> Callable[[PhotoCase], bytes]:
    """Each case's bytes, built once per run (big blobs are rebuilt on use so only one is alive at a time)."""
    built: dict[str, bytes] = {}

    def get(case: PhotoCase) -> bytes:
        if not case.keep:
            return case.build()
        if case.name not in built:
            built[case.name] = case.build()
        return built[case.name]

    return get


def _message_bodies(request: RecordedRequest) -> list[dict[str, Any]]:
    """The message objects a request carries (a callback's `data`, or the body of a send or an edit)."""
    body = request.json if isinstance(request.json, dict) else {}
    if "/callback" in request.path:
        # Only CHANNEL_MESSAGE_WITH_SOURCE (4) and UPDATE_MESSAGE (7) carry a message; a modal (9) does not.
        message = body.get("data") if body.get("type") in (4, 7) else None
    else:
        message = body
    if isinstance(message, dict) and any(k in message for k in ("content", "embeds", "components")):
        return [message]
    return []


def _texts(message: dict[str, Any]) -> list[str]:
    texts = [str(message.get("content") or "")]
    for embed in message.get("embeds") or []:
        texts += [str(embed.get("title", "")), str(embed.get("description", ""))]
        texts += [f"{f.get('name', '')} {f.get('value', '')}" for f in embed.get("fields", [])]
        texts.append(str((embed.get("footer") or {}).get("text", "")))
    return texts


_LIVE_MENTION = re.compile(r"@(everyone|here)(?!\u200b)|<(@[!&]?|#|/[^>]*:)(\d+)>")
_BIDI_AND_INVISIBLE = re.compile("[\u200c-\u200f\u202a-\u202e\u2060-\u2069\ufeff\u00ad]")


def assert_nothing_pings(fake: FakeDiscord) -> int:
    """No request may allow a mention, and no member-written mention may appear live; returns the count."""
    checked = 0
    for request in fake.requests:
        for message in _message_bodies(request):
            checked += 1
            allowed = message.get("allowed_mentions")
            assert allowed is not None, request.route
            assert allowed.get("parse") == [], (request.route, allowed)
            assert not allowed.get("users") and not allowed.get("roles"), (request.route, allowed)
            assert not allowed.get("replied_user"), (request.route, allowed)
            for text in _texts(message):
                for match in _LIVE_MENTION.finditer(text):
                    # The bot's own "<@member>" field is fine (and pings nobody); the corpus's ids never are.
                    assert match.group(1) is None and match.group(3) not in MENTION_IDS, (request.route, text)
                assert not _BIDI_AND_INVISIBLE.search(text), (request.route, text)
    return checked


async def still_answers(driver: BotDriver, member: p.InteractionContext) -> None:
    """The bot is alive and answers the next command."""
    quota = await driver.command(member, "tryon quota").reply(within=ANSWER_SECONDS)
    assert quota.ephemeral and "left" in quota.content


async def final_answer(start: Any) -> FakeMessage:
    """The start command's last word: the refusal or "on its way" (not "Checking your photo…")."""
    message: FakeMessage = await start.original(
        lambda m: m.content and "Checking your photo" not in m.content, within=ANSWER_SECONDS
    )
    return message


async def stop_and_settle(driver: BotDriver, bot: TryOnBot, member: p.InteractionContext) -> str:
    """Stop the member's session, wait until the engine let go of it, check the ledger; returns its id."""
    session = bot.runtime.engine.manager.session_for(user_id(member))
    assert session is not None
    stopped = await driver.command(member, "tryon stop").reply(within=ANSWER_SECONDS)
    assert stopped.ephemeral and "Ending" in stopped.content
    # The engine has no "session released" event to wait on.
    await until(lambda: not bot.runtime.engine.manager.sessions(), ANSWER_SECONDS)
    await assert_settled_once(bot.runtime.store, session.id)
    return str(session.id)


# ----- photos -------------------------------------------------------------------------------------


def _attachment(fake: FakeDiscord, case: PhotoCase, data: bytes) -> p.Resolved:
    attachment = fake.add_attachment(case.filename, data, case.content_type or "application/octet-stream")
    if case.content_type is None:
        del attachment["content_type"]  # Discord omits it when it cannot tell
    if case.declared_size is not None:
        attachment["size"] = case.declared_size
    return p.opt_attachment(attachment)


def assert_sane_photo(case: PhotoCase, jpeg: bytes) -> None:
    """The photo the engine streams: a clean baseline JPEG, upright, sized for the platform."""
    assert jpeg.startswith(b"\xff\xd8\xff")
    for smuggled in (b"PK\x03\x04", b"<script", b"<html", b"Main-Class"):
        assert smuggled not in jpeg, smuggled
    with Image.open(io.BytesIO(jpeg)) as image:
        assert image.format == "JPEG" and image.mode == "RGB"
        assert not image.getexif(), "EXIF (orientation, GPS) must not reach the platform"
        width, height = image.size
        assert max(width, height) <= OUTPUT_LONG_SIDE and min(width, height) >= 256
        assert abs(width / height - 3 / 4) < 0.01, image.size  # every corpus photo is a 3:4 portrait
        pixels = np.asarray(image, dtype=np.int16)
    top, middle, bottom = pixels[:20].mean((0, 1)), pixels[height // 2].mean(0), pixels[-20:].mean((0, 1))
    if case.name == "png_16bit_grey":
        # A 16-bit ramp from dark to light must stay a ramp (clipped to 8 bits it would be all white).
        assert top.mean() < 40 and bottom.mean() > 215 and 90 < middle.mean() < 170, (top, middle, bottom)
    elif case.upright:
        assert top[0] > 180 and top[2] < 80, f"top is not the red band: {top}"
        assert bottom[2] > 180 and bottom[0] < 80, f"bottom is not the blue band: {bottom}"
    if "transparent" in case.name:
        assert middle.min() > 240, f"transparent pixels must be white: {middle}"


@pytest.mark.parametrize("case", PHOTO_CASES, ids=lambda case: case.name)
async def test_hostile_photo(
    case: PhotoCase,
    photo_bytes: Callable[[PhotoCase], bytes],
    driver: BotDriver,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
) -> None:
    photo = _attachment(fake_discord, case, photo_bytes(case))
    mallory = as_member("mallory")
    async with loop_lag_probe() as lag:
        start = driver.command(mallory, "tryon start", photo=photo, outfit="a red wool coat")
        answer = await final_answer(start)
        assert answer.ephemeral, answer.content
        if case.refusal is not None:
            assert case.refusal in answer.content and "please" in answer.content.lower(), answer.content
            assert not bot.runtime.engine.manager.sessions()
            assert await bot.runtime.store.sessions.history(mallory.guild_id or 0, user_id(mallory)) == []
        else:
            assert "is on its way" in answer.content, answer.content
            session = bot.runtime.engine.manager.session_for(user_id(mallory))
            assert session is not None
            assert_sane_photo(case, session.request.photo)
            await stop_and_settle(driver, bot, mallory)
        await still_answers(driver, mallory)
    assert lag.ticks > 0 and lag.worst_ms < MAX_LAG_MS, f"event loop stalled {lag.worst_ms:.0f} ms"
    assert assert_nothing_pings(fake_discord) > 0


# ----- prompts ------------------------------------------------------------------------------------


@pytest.fixture
async def guarded_guild(bot: TryOnBot, world: p.GuildWorld) -> AsyncIterator[int]:
    """The test guild with the corpus blocklist and a mod-log channel (refused prompts are echoed there)."""
    store: Store = bot.runtime.store
    for word in BLOCKLIST:
        await store.guilds.add_blocked_word(world.guild_id, word, moderator_id=None)
    mod_log = int(world.channels[1]["id"])
    await store.guilds.set_mod_log_channel(world.guild_id, mod_log, moderator_id=None)
    yield mod_log


def _assert_echo_escaped(case: PromptCase, echoed: str) -> None:
    """The outfit as the status shows it: the cleaned text, unable to format, mention or reorder anything."""
    assert not _LIVE_MENTION.search(echoed) and not _BIDI_AND_INVISIBLE.search(echoed), echoed
    unescaped = re.search(r"(?<!\\)[*_~|`]|(?<!\\)\[[^\]]*\]\(", echoed)
    assert unescaped is None, echoed
    visible = re.sub(r"\\(.)", r"\1", echoed.replace("\u200b", ""))
    assert visible == clean_prompt(case.text)


async def _refused_or_applied(reply: FakeMessage, case: PromptCase, applied: str) -> None:
    assert reply.ephemeral, reply.content
    if case.refusal is None:
        assert applied in reply.content, reply.content
    else:
        assert case.refusal in reply.content and "please" in reply.content.lower(), reply.content


@pytest.mark.parametrize("case", PROMPT_CASES, ids=lambda case: case.name)
async def test_hostile_prompt(
    case: PromptCase,
    guarded_guild: int,
    driver: BotDriver,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
) -> None:
    mallory = as_member("mallory")
    async with loop_lag_probe() as lag:
        # 1. As the first outfit of /tryon start.
        start = driver.command(mallory, "tryon start", photo=photo_option(fake_discord), outfit=case.text)
        await _refused_or_applied(await final_answer(start), case, "is on its way")
        if case.refusal is not None:
            start = driver.command(
                mallory, "tryon start", photo=photo_option(fake_discord), outfit="a blue shirt"
            )
            assert "is on its way" in (await final_answer(start)).content
        status = await fake_discord.wait_for(
            lambda: status_message(fake_discord, start.token), ANSWER_SECONDS
        )
        if case.refusal is None:
            outfit = next(f["value"] for f in status.embeds[0]["fields"] if f["name"] == "Outfit")
            _assert_echo_escaped(case, outfit)

        # 2. Through /tryon outfit.
        command = driver.command(mallory, "tryon outfit", prompt=case.text)
        await _refused_or_applied(await command.reply(within=ANSWER_SECONDS), case, "New outfit applied")

        # 3. Through the "New outfit" modal of the status message.
        session_id = session_id_of(status)
        modal = await driver.press(mallory, status, f"tryon:outfit:{session_id}").response()
        assert modal.json["type"] == 9
        modal_id = modal.json["data"]["custom_id"]
        await driver.modal_opened(modal_id)
        text_input = modal.json["data"]["components"][0]["components"][0]["custom_id"]
        submitted = driver.submit(mallory, modal_id, {text_input: case.text})
        await _refused_or_applied(await submitted.reply(within=ANSWER_SECONDS), case, "New outfit applied")

        await stop_and_settle(driver, bot, mallory)
        await still_answers(driver, mallory)
    assert lag.ticks > 0 and lag.worst_ms < MAX_LAG_MS, f"event loop stalled {lag.worst_ms:.0f} ms"
    if case.refusal is not None:
        # Three refusals, each on the mod-log with the prompt quoted (escaped like everything else).
        logged = await fake_discord.wait_for(
            lambda: len(msgs := fake_discord.channel_messages(guarded_guild)) >= 3 and msgs, ANSWER_SECONDS
        )
        assert all("had a prompt refused" in m.content for m in logged)
    assert assert_nothing_pings(fake_discord) > 0


LIVE_PROMPTS = [case for case in PROMPT_CASES if case.name in ("mentions", "markdown_and_code_fences")]


async def test_hostile_outfits_on_a_live_stream(
    guarded_guild: int,
    driver: BotDriver,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
) -> None:
    """On a live stream each outfit is posted publicly as a clip captioned with it: escaped there too."""
    mallory = as_member("mallory")
    start = driver.command(mallory, "tryon start", photo=photo_option(fake_discord), outfit="a blue shirt")
    assert "is on its way" in (await final_answer(start)).content
    await wait_status(fake_discord, start.token, "Streaming live")
    seen: set[int] = set()
    async with loop_lag_probe() as lag:
        for case in LIVE_PROMPTS:
            applied = await driver.command(mallory, "tryon outfit", prompt=case.text).reply(within=40)
            assert "New outfit applied" in applied.content, applied.content

            def new_clip() -> FakeMessage | None:
                clips = [m for m in fake_discord.messages_for(start.token) if m.attachments]
                return next((m for m in clips if m.id not in seen and "red coat" in m.content), None)

            clip: FakeMessage = await fake_discord.wait_for(new_clip, 40)
            seen.add(clip.id)
            assert not clip.ephemeral and clip.content.startswith("**") and clip.content.endswith("**")
            _assert_echo_escaped(case, clip.content[2:-2])
    assert lag.ticks > 0 and lag.worst_ms < MAX_LAG_MS, f"event loop stalled {lag.worst_ms:.0f} ms"
    await stop_and_settle(driver, bot, mallory)
    assert assert_nothing_pings(fake_discord) > 0
