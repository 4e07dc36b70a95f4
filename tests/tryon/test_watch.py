"""Watch live through the engine: a shared session's link, its broadcast parts, viewers and the end, against
the emulator and the real viewer server (real WebRTC spectators, real SQLite)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from bot.emulator import DEV_API_KEY, Emulator
from bot.odyssey import Odyssey
from bot.store import Store
from bot.tryon.console import ConsolePresenter
from bot.tryon.engine import Engine, build_engine, client_factory
from bot.tryon.errors import NoSuchSession, NotAllowed
from bot.tryon.models import SessionRequest, SessionState
from bot.tryon.session import TryOnSession
from bot.web import ViewerServer, Watch, WebSettings
from tests.helpers import PHOTO, fast_engine, until
from tests.web.sse import events

GUILD = 111

pytestmark = pytest.mark.timeout(120)

EngineMaker = Callable[..., Awaitable[Engine[TryOnSession]]]


@pytest.fixture
async def viewer() -> AsyncIterator[ViewerServer]:
    server = ViewerServer(WebSettings(port=0))
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()


@pytest.fixture
async def make_engine(tmp_path: Path) -> AsyncIterator[EngineMaker]:
    opened: list[tuple[Engine[TryOnSession], Store]] = []

    async def make(
        emulator: Emulator, viewer: ViewerServer | None, **settings: object
    ) -> Engine[TryOnSession]:
        store = await Store.open(tmp_path / f"tryon-{len(opened)}.sqlite3")
        engine = build_engine(
            store,
            client_factory(DEV_API_KEY, emulator.url),
            fast_engine(**settings),
            watch_board=None if viewer is None else viewer.registry,
        )
        opened.append((engine, store))
        return engine

    try:
        yield make
    finally:
        for engine, store in reversed(opened):
            await engine.aclose(grace_seconds=20)
            await store.close()


def request(user_id: int, *, watch: bool = False, outfit: str = "red summer dress") -> SessionRequest:
    return SessionRequest(
        guild_id=GUILD, user_id=user_id, channel_id=None, photo=PHOTO, outfit=outfit, watch=watch
    )


def watch_of(viewer: ViewerServer, url: str) -> Watch:
    watch = viewer.registry.find(url.rpartition("/")[2])
    assert watch is not None
    return watch


async def test_a_session_shared_from_the_start_feeds_its_link_until_it_ends(
    emulator_factory: Callable[..., Awaitable[Emulator]],
    make_engine: EngineMaker,
    viewer: ViewerServer,
    tmp_path: Path,
) -> None:
    emulator = await emulator_factory()
    engine = await make_engine(emulator, viewer, stream_cap_seconds=5.0, rollover_margin_seconds=0.5)
    presenter = ConsolePresenter(tmp_path, echo=lambda line: None)
    session = await engine.manager.admit(request(1, watch=True), presenter)
    link = presenter.statuses[0].watch_url  # on the status from the very first one
    assert link is not None and link.startswith(f"{viewer.registry.base_url}/watch/")
    watch = watch_of(viewer, link)

    # The first stream part is broadcast (its broadcast_ready comes before the runner records the part).
    await until(lambda: watch.state.part == 1 and bool(session.stream_ids), 20)
    assert session.stream_ids and presenter.broadcasts[0].stream_id == session.stream_ids[0]
    assert watch.state.outfit == "red summer dress"
    state = watch.state
    assert state.webrtc_url is not None and state.spectator_token is not None
    async with await Odyssey.connect_to_stream(state.webrtc_url, state.spectator_token) as spectator:
        await asyncio.wait_for(spectator.frames.get(), 10)

    await engine.manager.steer(session, "a blue denim jacket")
    assert watch.state.outfit == "a blue denim jacket"

    async with httpx.AsyncClient(timeout=10) as http, http.stream("GET", f"{link}/events") as page:
        stream = events(page)
        assert (await anext(stream)).data["part"] == 1
        # The open page is counted, and the status shows it.
        await until(lambda: presenter.statuses[-1].viewers == 1, 10)
        assert presenter.statuses[-1].watch_url == link

        await until(lambda: session.rollovers >= 1, 20)  # the cap: a new part, a new URL and token
        await until(lambda: watch.state.part == 2, 10)
        assert watch.state.webrtc_url != state.webrtc_url

        engine.manager.stop(session.id, user_id=1)
        async with asyncio.timeout(20):
            while not (await anext(stream)).data.get("ended"):
                pass
    await until(lambda: session.finished.is_set(), 40)
    assert viewer.registry.find(watch.id) is None  # the link died with the try-on
    assert session.state is SessionState.DONE
    ending = [s for s in presenter.statuses if s.state is not SessionState.STREAMING]
    assert all(s.watch_url is None for s in ending[-3:])  # ending, finalising, done: no dead link shown


async def test_share_live_switches_the_next_part_to_broadcast_at_once(
    emulator_factory: Callable[..., Awaitable[Emulator]],
    make_engine: EngineMaker,
    viewer: ViewerServer,
    tmp_path: Path,
) -> None:
    emulator = await emulator_factory()
    engine = await make_engine(emulator, viewer)  # the stream cap is far away
    presenter = ConsolePresenter(tmp_path, echo=lambda line: None)
    session = await engine.manager.admit(request(1), presenter)
    await until(lambda: session.state is SessionState.STREAMING, 20)
    assert all(status.watch_url is None for status in presenter.statuses) and not presenter.broadcasts

    with pytest.raises(NotAllowed, match="Only the member who started"):
        await engine.share_live(session.id, guild_id=GUILD, user_id=2)
    link = await engine.share_live(session.id, guild_id=GUILD, user_id=1)
    await until(lambda: presenter.statuses[-1].watch_url == link, 10)  # shown at once, before the part
    watch = watch_of(viewer, link)
    # Its broadcast_ready comes before the runner counts the roll-over and records the part.
    await until(lambda: watch.state.part == 1 and len(session.stream_ids) == 2, 20)
    assert session.rollovers == 1 and len(session.stream_ids) == 2  # a fresh part, seamlessly
    assert presenter.broadcasts[-1].stream_id == session.stream_ids[1]
    streams = await engine.services.store.streams.for_session(session.id)
    assert streams[0].end_reason == "rollover"

    # Pressed again: the same link, no new part (viewers are not made to reconnect).
    assert await engine.share_live(session.id, guild_id=GUILD, user_id=1) == link
    await asyncio.sleep(0.5)
    assert (watch.state.part, session.rollovers) == (1, 1)
    engine.manager.stop(session.id, user_id=1)
    await until(lambda: session.finished.is_set(), 40)
    with pytest.raises(NoSuchSession):
        await engine.share_live(session.id, guild_id=GUILD, user_id=1)


async def test_without_a_viewer_nothing_can_be_shared(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    emulator = await emulator_factory()
    engine = await make_engine(emulator, None)
    presenter = ConsolePresenter(tmp_path, echo=lambda line: None)
    assert not engine.watch_available
    with pytest.raises(NotAllowed, match="Watch live isn't set up"):
        await engine.manager.admit(request(1, watch=True), presenter)
    assert await engine.services.store.sessions.history(GUILD, 1) == []  # refused before anything was made
    session = await engine.manager.admit(dataclasses.replace(request(1), watch=False), presenter)
    with pytest.raises(NotAllowed, match="Watch live isn't set up"):
        await engine.share_live(session.id, guild_id=GUILD, user_id=1)
    engine.manager.stop(session.id, user_id=1)
