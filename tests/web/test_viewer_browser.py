"""The viewer page in headless Chromium against the emulator: it plays a broadcast (decoded frames advance),
shows the outfit as it changes, follows a roll-over without a reload, and says when the try-on ended; a bad
link is a plain page; a viewer over the platform's spectator limit is told so plainly.

Here the test itself broadcasts with our client and feeds the link, as the engine does in a session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.emulator import DEV_API_KEY, Emulator
from bot.odyssey import BroadcastInfo, Odyssey
from bot.web import ViewerServer, WebSettings
from tests.conftest import EmulatorFactory
from tests.helpers import until
from tests.web.browser import Chromium, chromium, require_browser

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]

SESSION = "s1"
FRAMES = 8


@pytest.fixture
async def browser() -> AsyncIterator[Chromium]:
    require_browser()
    async for running in chromium():
        yield running


@pytest.fixture
async def viewer() -> AsyncIterator[ViewerServer]:
    server = ViewerServer(WebSettings(port=0))
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()


class Broadcaster:
    """A member's stream in broadcast mode; every part it starts is handed to the watch link."""

    def __init__(self, emulator: Emulator, viewer: ViewerServer) -> None:
        self.client = Odyssey(DEV_API_KEY, emulator.url)
        self.emulator = emulator
        self.viewer = viewer

    def on_ready(self, info: BroadcastInfo) -> None:
        self.viewer.registry.broadcast(SESSION, info.webrtc_url, info.spectator_token)

    async def start(self, outfit: str) -> None:
        if not self.client.is_connected:
            await self.client.connect(on_broadcast_ready=self.on_ready)
        await self.client.start_stream(outfit, portrait=True, broadcast=True)
        self.viewer.registry.outfit(SESSION, outfit)

    async def steer(self, outfit: str) -> None:
        await self.client.interact(outfit)
        self.viewer.registry.outfit(SESSION, outfit)

    async def roll_over(self, outfit: str) -> None:
        await self.client.end_stream()
        await self.start(outfit)


@pytest.fixture
async def broadcaster(emulator_factory: EmulatorFactory, viewer: ViewerServer) -> AsyncIterator[Broadcaster]:
    emulator = await emulator_factory(max_spectators_per_stream=1)
    member = Broadcaster(emulator, viewer)
    try:
        yield member
    finally:
        await member.client.aclose()


def clean(state: dict[str, object]) -> None:
    diagnostics = state["diagnostics"]
    assert diagnostics == {"console": [], "pageErrors": []}, diagnostics


async def test_the_page_plays_follows_steering_and_a_roll_over_and_says_when_it_ended(
    browser: Chromium, viewer: ViewerServer, broadcaster: Broadcaster
) -> None:
    counts: list[int] = []
    link = viewer.registry.open(SESSION, counts.append)
    opened = await browser.open(link)
    assert opened["status"] == 200
    waiting = await browser.wait(opened["page"], "viewer.phase === 'waiting'")
    assert waiting["notice"] == "Waiting for the live video to start…"
    assert counts == [1]  # the open page counts as a viewer

    await broadcaster.start("a red wool coat")
    page = opened["page"]
    playing = await browser.wait(page, f"viewer.phase === 'playing' && viewer.framesShown >= {FRAMES}")
    assert playing["viewer"]["part"] == 1 and playing["outfit"] == "a red wool coat"
    assert playing["noticeHidden"]
    shown = playing["viewer"]["framesShown"]
    later = await browser.wait(page, f"viewer.framesShown >= {shown + FRAMES}")  # decoded frames advance
    assert later["viewer"]["part"] == 1

    await broadcaster.steer("a blue denim jacket")
    await browser.wait(page, "state.outfit === 'a blue denim jacket'")

    await broadcaster.roll_over("a blue denim jacket")  # the next part: a new WHEP URL and token
    rolled = await browser.wait(page, f"viewer.part === 2 && viewer.partFrames >= {FRAMES}")
    assert rolled["viewer"]["phase"] == "playing"  # followed without a reload

    await broadcaster.client.end_stream()
    viewer.registry.end(SESSION)
    over = await browser.wait(page, "viewer.phase === 'ended'")
    assert over["notice"].startswith("This try-on has ended.")
    await until(lambda: counts[-1] == 0, 10)  # the page let go of its event stream
    clean(over)


async def test_a_bad_link_is_a_plain_page_and_one_viewer_too_many_is_told_so(
    browser: Chromium, viewer: ViewerServer, broadcaster: Broadcaster
) -> None:
    bad = await browser.open(f"{viewer.registry.base_url}/watch/{'Z' * 24}")
    assert bad["status"] == 404 and "This watch link doesn't exist" in bad["text"]

    link = viewer.registry.open(SESSION, lambda count: None)
    await broadcaster.start("a green parka")
    first = (await browser.open(link))["page"]
    await browser.wait(first, f"viewer.phase === 'playing' && viewer.framesShown >= {FRAMES}")
    second = (await browser.open(link))["page"]  # the emulator allows one spectator per stream here
    full = await browser.wait(second, "viewer.phase === 'full'")
    assert full["notice"].startswith("Too many people are watching this try-on right now.")
    await until(lambda: viewer.registry.viewers(SESSION) == 1, 10)  # the refused page is not counted
    clean(await browser.read(first))
    # The first viewer leaves: closing the tab sends the WHEP DELETE, so the slot frees at once.
    await browser.close(first)
    await until(lambda: broadcaster.emulator.broadcasts.spectators_left == 1, 10)
    await until(lambda: viewer.registry.viewers(SESSION) == 0, 10)
    retried = (await browser.open(link))["page"]
    await browser.wait(retried, "viewer.phase === 'playing'")
