"""The final post through the real bot, the fake Discord and the emulator: the highlight and stills uploaded
with it, and "Get the full video" for anyone in the channel, rate-limited, after the first links expired and
after the cog is reloaded or the bot restarted."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bot.app import TryOnBot
from bot.config import BotConfig
from bot.emulator import Emulator
from bot.tryon.presenter import Highlight, RecordingLinks, RecordingReady
from cogs.tryon.outlet import SessionOutlet
from cogs.tryon.presenter import DiscordPresenter
from tests.conftest import EmulatorFactory
from tests.fakediscord import BotDriver, FakeDiscord, FakeMessage, RecordedRequest
from tests.fakediscord import payloads as p
from tests.helpers import (
    make_bot_config,
    mp4_video,
    session_id_of,
    start_streaming,
    stored_session,
    user_id,
    wait_status,
)

Ctx = Callable[..., p.InteractionContext]

pytestmark = pytest.mark.timeout(150)

# The emulator's lifetime of recording links in these tests: long enough to fetch a fresh link at once,
# short enough to see the final post's first links expire.
LINK_SECONDS = 3.0
VIDEO_LINK = re.compile(r"\]\((http://127\.0\.0\.1:\d+/files/[^)\s]+/video\.mp4\?[^)\s]+)\)")


@pytest.fixture
async def emulator(emulator_factory: EmulatorFactory) -> Emulator:
    return await emulator_factory(signed_url_ttl_seconds=LINK_SECONDS)


@pytest.fixture
def bot_config(tmp_path: Path, emulator: Emulator) -> BotConfig:
    return make_bot_config(tmp_path, emulator.url)


def final_post(fake: FakeDiscord, token: str) -> FakeMessage | None:
    return next(
        (
            m
            for m in fake.messages_for(token)
            if m.embeds and str(m.embeds[0].get("title", "")).startswith("Your try-on recording")
        ),
        None,
    )


async def finish_try_on(
    driver: BotDriver, member: p.InteractionContext, *outfits: str
) -> tuple[str, FakeMessage]:
    """Start with the first outfit, apply the others, stop: the session id and its final post."""
    start, status = await start_streaming(driver, member, outfits[0])
    for outfit in outfits[1:]:
        applied = await driver.command(member, "tryon outfit", prompt=outfit).reply(within=40)
        assert applied.content == "New outfit applied."
    await driver.command(member, "tryon stop").reply()
    await wait_status(driver.fake, start.token, "Done after", within=40)
    post: FakeMessage = await driver.fake.wait_for(lambda: final_post(driver.fake, start.token), 40)
    return session_id_of(status), post


def upload_of(fake: FakeDiscord, name: str) -> RecordedRequest:
    return next(r for r in fake.requests if any(f.filename == name for f in r.files))


async def fetch(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(url)


def video_links(text: str) -> list[str]:
    return [match.replace("&amp;", "&") for match in VIDEO_LINK.findall(text)]


async def test_the_final_post_keeps_the_highlight_and_a_bystander_gets_fresh_links(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    alice, bob, carol = as_member("alice"), as_member("bob"), as_member("carol")
    session_id, post = await finish_try_on(driver, alice, "a red wool coat", "a blue denim jacket")

    # One upload carries the highlight and both stills; the embed refers to the stills by attachment://.
    upload = upload_of(fake_discord, "highlight.mp4")
    files = {f.filename: f for f in upload.files}
    assert list(files) == ["highlight.mp4", "thumbnail.jpg", "before-after.png"]
    assert [a["filename"] for a in upload.json["attachments"]] == list(files)
    assert files["thumbnail.jpg"].data[:2] == b"\xff\xd8" and files["before-after.png"].data[:4] == b"\x89PNG"
    codec, _, _, shown = mp4_video(files["highlight.mp4"].data)
    assert codec == "h264" and len(files["highlight.mp4"].data) <= alice.attachment_size_limit
    # The whole session, at the buffer's 4 fps (fast_engine): not only its last seconds.
    record = await bot.runtime.store.sessions.get(session_id)
    assert record is not None and shown >= 0.6 * 4 * record.streamed_seconds
    [embed] = upload.json["embeds"]
    assert embed["thumbnail"]["url"] == "attachment://thumbnail.jpg"
    assert embed["image"]["url"] == "attachment://before-after.png"
    assert "2 outfits" in embed["description"] and "local links" in embed["description"]
    assert [a["filename"] for a in post.attachments] == list(files) and not post.ephemeral
    assert post.custom_ids() == [
        f"tryon:again:{session_id}",
        f"tryon:full:{session_id}",
        f"tryon:delete:{session_id}",
    ]
    assert f"<@{user_id(alice)}>" in post.content

    # The links the post was made with expire...
    [first_link] = video_links(post.text)
    assert (await fetch(first_link)).status_code in (200, 403)
    async with httpx.AsyncClient(timeout=10) as http:
        await _until_expired(http, first_link)

    # ...and a bystander gets fresh ones, privately, that play.
    answer = await driver.press(bob, post, f"tryon:full:{session_id}").reply(within=30)
    assert answer.ephemeral and "local links" in answer.text and "highlight" in answer.text
    [fresh] = video_links(answer.text)
    assert fresh != first_link
    response = await fetch(fresh)
    assert response.status_code == 200 and response.content[4:8] == b"ftyp"

    # Three presses per member in five minutes; the fourth is told the limit and when to come back.
    for _ in range(2):
        again = await driver.press(bob, post, f"tryon:full:{session_id}").reply(within=30)
        assert video_links(again.text)
    limited = await driver.press(bob, post, f"tryon:full:{session_id}").reply()
    assert limited.ephemeral and "3 times every 5 min" in limited.content and "<t:" in limited.content
    assert not video_links(limited.text)
    # The limit is per member.
    other = await driver.press(carol, post, f"tryon:full:{session_id}").reply(within=30)
    assert video_links(other.text)


async def _until_expired(http: httpx.AsyncClient, url: str) -> None:
    for _ in range(round(LINK_SECONDS * 10) + 20):
        if (await http.get(url)).status_code == 403:
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"the link still worked after {LINK_SECONDS} s and more")


async def test_the_button_works_after_a_cog_reload_and_a_restart(
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    bot_config: BotConfig,
) -> None:
    alice, bob = as_member("alice"), as_member("bob")
    session_id, post = await finish_try_on(driver, alice, "a green raincoat")

    await bot.reload_extension("cogs.tryon")
    reloaded = await driver.press(bob, post, f"tryon:full:{session_id}").reply(within=30)
    assert reloaded.ephemeral and len(video_links(reloaded.text)) == 1

    restarted = TryOnBot(bot_config)
    try:
        again = BotDriver(fake_discord, restarted)
        await again.login()
        again.add_guild(world)
        after_restart = await again.press(bob, post, f"tryon:full:{session_id}").reply(within=30)
        assert after_restart.ephemeral and len(video_links(after_restart.text)) == 1
    finally:
        await restarted.close()


async def test_a_private_try_on_gives_its_links_only_to_its_member(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    alice, bob = as_member("alice"), as_member("bob")
    channel_id = int(world.channel["id"])
    private = await stored_session(
        bot.runtime.store, world.guild_id, user_id(alice), channel_id=channel_id, front_end={"private": True}
    )
    custom_id = f"tryon:full:{private.id}"
    # A crafted press on a message showing the button (a private post is only ever shown to its member).
    message = FakeMessage(
        id=p.snowflake(),
        channel_id=channel_id,
        author=fake_discord.bot_user,
        components=[p.button_row(custom_id)],
    )
    refused = await driver.press(bob, message, custom_id).reply()
    assert refused.ephemeral and "No try-on of yours" in refused.content
    own = await driver.press(alice, message, custom_id).reply(within=30)
    assert own.ephemeral and "no recording of this try-on right now" in own.text

    other = p.guild_world("other")
    driver.add_guild(other)
    stranger = driver.context(other, other.add_member("stranger"))
    elsewhere = await driver.press(stranger, message, custom_id).reply()
    assert "no longer kept here" in elsewhere.content  # not this server's try-on


async def test_an_upload_over_the_limit_is_posted_again_with_what_fits(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    """Discord refuses the post with 413: it goes again without the largest file, then without files."""
    channel_id = int(world.channel["id"])
    highlight = Highlight(b"\x00\x00\x00\x18ftypisom" + bytes(300_000), 9.0, 360, 656, 2)
    event = RecordingReady(
        "sess1",
        (RecordingLinks("st1", "https://cdn.example/v.mp4", None, None, None, 9.0),),
        before_after_png=b"\x89PNG" + bytes(20_000),
        highlight=highlight,
        thumbnail_jpeg=b"\xff\xd8" + bytes(2_000),
    )
    refuse = fake_discord.fail(
        "POST", r"^/channels/\d+/messages$", status=413, code=40005, when=lambda r: len(r.files) == 3
    )
    presenter = DiscordPresenter(SessionOutlet(bot, channel_id), 42, status_interval=0.1)
    await presenter.recording_ready(event)
    assert len(refuse.hits) == 1
    [posted] = fake_discord.channel_messages(channel_id)
    assert [a["filename"] for a in posted.attachments] == ["thumbnail.jpg", "before-after.png"]
    assert (
        "Highlight" not in posted.text and posted.embeds[0]["image"]["url"] == "attachment://before-after.png"
    )
    assert posted.custom_ids() == ["tryon:again:sess1", "tryon:full:sess1"]
    assert presenter.upload_budget_bytes < len(highlight.data)

    # Refused for another reason, the post goes once more without files: the links and button matter most.
    fake_discord.fail(
        "POST", r"^/channels/\d+/messages$", status=400, code=50035, when=lambda r: bool(r.files)
    )
    await presenter.recording_ready(dataclasses.replace(event, session_id="sess2"))
    last = fake_discord.channel_messages(channel_id)[-1]
    assert last.attachments == [] and "[video](https://cdn.example/v.mp4)" in last.text
    assert "image" not in last.embeds[0] and "thumbnail" not in last.embeds[0]
    assert last.custom_ids() == ["tryon:again:sess2", "tryon:full:sess2"]
