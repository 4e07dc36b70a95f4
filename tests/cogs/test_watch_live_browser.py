"""The whole path in headless Chromium: `/tryon start watch:true` through discord.py and the fake Discord,
the link from the status message opened in a browser, the video playing through the engine's roll-over,
the status counting the viewer, and the page saying the try-on ended when the member stops it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.app import TryOnBot
from bot.config import BotConfig
from bot.emulator import Emulator
from bot.web import WebSettings
from tests.fakediscord import BotDriver, FakeDiscord
from tests.fakediscord import payloads as p
from tests.helpers import fast_engine, make_bot_config, photo_option, wait_status, watch_link
from tests.web.browser import Chromium, chromium, require_browser

Ctx = Callable[..., p.InteractionContext]

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]

FRAMES = 8


@pytest.fixture
async def browser() -> AsyncIterator[Chromium]:
    require_browser()
    async for running in chromium():
        yield running


@pytest.fixture
def bot_config(tmp_path: Path, emulator: Emulator) -> BotConfig:
    config = make_bot_config(tmp_path, emulator.url, web=WebSettings(port=0))
    # Streams roll over after 5 s, so the page sees a second part within the test.
    engine = fast_engine(stream_cap_seconds=6.0, rollover_margin_seconds=1.0)
    return dataclasses.replace(config, engine=engine)


async def test_a_member_shares_a_try_on_and_a_browser_watches_it_to_the_end(
    browser: Chromium,
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
) -> None:
    alice = as_member("alice")
    start = driver.command(
        alice, "tryon start", photo=photo_option(fake_discord), outfit="a red wool coat", watch=True
    )
    status = await wait_status(fake_discord, start.token, "Streaming live")
    link = watch_link(status)
    assert link is not None

    page = (await browser.open(link))["page"]
    playing = await browser.wait(page, f"viewer.phase === 'playing' && viewer.framesShown >= {FRAMES}")
    assert playing["outfit"] == "a red wool coat"
    first_part = playing["viewer"]["part"]
    await wait_status(fake_discord, start.token, "1 watching")

    # The member steers: the page shows the new outfit; then the engine rolls over and the page follows.
    applied = await driver.command(alice, "tryon outfit", prompt="a blue denim jacket").reply(within=40)
    assert applied.content == "New outfit applied."
    await browser.wait(page, "state.outfit === 'a blue denim jacket'")
    rolled = await browser.wait(
        page, f"viewer.part > {first_part} && viewer.partFrames >= {FRAMES}", seconds=30
    )
    assert rolled["viewer"]["phase"] == "playing"

    await driver.command(alice, "tryon stop").reply()
    ended = await browser.wait(page, "viewer.phase === 'ended'", seconds=30)
    assert ended["notice"].startswith("This try-on has ended.")
    assert ended["diagnostics"] == {"console": [], "pageErrors": []}
    done = await wait_status(fake_discord, start.token, "Done after", within=40)
    assert watch_link(done) is None
    expired = await browser.open(link)  # the link died with the try-on
    assert expired["status"] == 404 and "This watch link doesn't exist" in expired["text"]
