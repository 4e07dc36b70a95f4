"""Watch live through discord.py against the fake Discord: `/tryon start watch:true` posts the link, "Share
live" shares a running try-on, the status shows how many watch; real WebRTC spectators, the real viewer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bot.app import TryOnBot
from bot.config import BotConfig
from bot.emulator import Emulator
from bot.web import WebSettings
from tests.fakediscord import BotDriver, FakeDiscord
from tests.fakediscord import payloads as p
from tests.helpers import (
    joined_as_spectator,
    make_bot_config,
    photo_option,
    session_id_of,
    status_message,
    wait_status,
    watch_link,
)
from tests.web.sse import events

Ctx = Callable[..., p.InteractionContext]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def bot_config(tmp_path: Path, emulator: Emulator) -> BotConfig:
    return make_bot_config(tmp_path, emulator.url, web=WebSettings(port=0))


async def test_start_with_watch_posts_the_link_and_counts_the_viewers(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    alice = as_member("alice")
    start = driver.command(
        alice, "tryon start", photo=photo_option(fake_discord), outfit="a red summer dress", watch=True
    )
    status = await wait_status(fake_discord, start.token, "Streaming live")
    session_id = session_id_of(status)
    link = watch_link(status)
    assert link is not None and "nobody watching yet" in status.text
    assert f"tryon:share:{session_id}" not in status.custom_ids()  # already shared
    original = fake_discord.original_message(start.token)
    assert original is not None and "Watch live link" in original.content

    async with httpx.AsyncClient(timeout=10) as http:
        page = await http.get(link)
        assert page.status_code == 200 and "Live try-on" in page.text
        assert "ody_" not in page.text  # never an Odyssey key
        await joined_as_spectator(http, link)
        async with http.stream("GET", f"{link}/events") as open_page:
            stream = events(open_page)  # held: a dropped reader closes the page's connection
            await anext(stream)
            watching = await wait_status(fake_discord, start.token, "1 watching")
            assert watch_link(watching) == link

        await driver.command(alice, "tryon stop").reply()
        done = await wait_status(fake_discord, start.token, "Done after", within=40)
        assert "Watch live" not in done.text
        gone = await http.get(link)
    assert gone.status_code == 404 and "doesn't exist" in gone.text  # the link died with the try-on


async def test_share_live_shares_a_running_try_on_for_its_owner_only(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, bot: TryOnBot, fake_discord: FakeDiscord
) -> None:
    alice, bob = as_member("alice"), as_member("bob")
    start = driver.command(alice, "tryon start", photo=photo_option(fake_discord), outfit="a green parka")
    status = await wait_status(fake_discord, start.token, "Streaming live")
    session_id = session_id_of(status)
    share = f"tryon:share:{session_id}"
    assert status.custom_ids() == [
        f"tryon:outfit:{session_id}",
        f"tryon:snap:{session_id}",
        share,
        f"tryon:stop:{session_id}",
    ]
    assert watch_link(status) is None

    refused = await driver.press(bob, status, share).reply()
    assert refused.ephemeral and "Only the member who started" in refused.content
    moderator = as_member("mod", moderator=True)
    not_theirs = await driver.press(moderator, status, share).reply(within=20)
    assert "Only the member who started this try-on can share it live" in not_theirs.content

    shared = await driver.press(alice, status, share).reply(within=20)
    assert shared.ephemeral and "anyone with this link can watch" in shared.content
    shown = await fake_discord.wait_for(
        lambda: (m := status_message(fake_discord, start.token)) is not None and watch_link(m) and m, 20
    )
    link = watch_link(shown)
    assert link is not None and link in shared.content and share not in shown.custom_ids()
    async with httpx.AsyncClient(timeout=10) as http:
        await joined_as_spectator(http, link)  # the fresh part is broadcast
    session = bot.runtime.engine.current(p_user_id(alice), world.guild_id)
    assert session is not None and session.state == "streaming"  # seamless: it streamed on

    await driver.command(alice, "tryon stop").reply()
    await wait_status(fake_discord, start.token, "Done after", within=40)


async def test_a_private_try_on_cannot_be_shared(
    driver: BotDriver, world: p.GuildWorld, as_member: Ctx, fake_discord: FakeDiscord
) -> None:
    alice = as_member("alice")
    refused = await driver.command(
        alice, "tryon start", photo=photo_option(fake_discord), outfit="a hat", private=True, watch=True
    ).reply()
    assert refused.ephemeral and "A private try-on can't be shared live" in refused.content
    start = driver.command(
        alice, "tryon start", photo=photo_option(fake_discord), outfit="a hat", private=True
    )
    status = await wait_status(fake_discord, start.token, "Streaming live")
    assert not any(custom_id.startswith("tryon:share:") for custom_id in status.custom_ids())
    await driver.command(alice, "tryon stop").reply()
    await wait_status(fake_discord, start.token, "Done after", within=40)


def p_user_id(ctx: p.InteractionContext) -> int:
    assert ctx.member is not None
    return int(ctx.member["user"]["id"])
