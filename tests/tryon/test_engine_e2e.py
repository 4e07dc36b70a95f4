"""The whole engine against the emulator: real WebRTC on loopback, a real SQLite file, small fast settings."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.emulator import DEV_API_KEY, Emulator
from bot.odyssey import Odyssey, OdysseyError
from bot.store import QuotaLimits, Store
from bot.tryon.console import ConsolePresenter
from bot.tryon.engine import Engine, build_engine, client_factory
from bot.tryon.errors import (
    AlreadyInSession,
    Blocked,
    NoSuchSession,
    NotAllowed,
    OutfitNotApplied,
    PhotoRejected,
    PromptRejected,
    QueueFull,
    QuotaExceeded,
)
from bot.tryon.models import EndReason, SessionRequest, SessionState, StreamPhoto
from bot.tryon.presenter import StatusChanged
from bot.tryon.session import TryOnSession
from tests.helpers import PHOTO, fast_engine, mp4_video, until

GUILD_A, GUILD_B = 111, 222

pytestmark = pytest.mark.timeout(120)

EngineMaker = Callable[..., Awaitable[Engine[TryOnSession]]]


@pytest.fixture
async def make_engine(tmp_path: Path) -> AsyncIterator[EngineMaker]:
    """Engines on SQLite files under tmp_path, each talking to the given emulator; all closed at teardown."""
    opened: list[tuple[Engine[TryOnSession], Store]] = []

    async def make(
        emulator: Emulator, db_name: str = "tryon.sqlite3", **settings: object
    ) -> Engine[TryOnSession]:
        store = await Store.open(tmp_path / db_name)
        engine_settings = fast_engine(**{"idle_seconds": 30.0, **settings})  # sessions idle out after 30 s
        engine = build_engine(store, client_factory(DEV_API_KEY, emulator.url), engine_settings)
        opened.append((engine, store))
        return engine

    try:
        yield make
    finally:
        for engine, store in reversed(opened):
            await engine.aclose(grace_seconds=20)
            await store.close()


def quiet_presenter(out: Path) -> ConsolePresenter:
    """The console presenter writing files under `out`, printing nothing."""
    return ConsolePresenter(out, echo=lambda line: None)


def request(user_id: int, guild_id: int = GUILD_A, outfit: str = "red summer dress") -> SessionRequest:
    return SessionRequest(guild_id=guild_id, user_id=user_id, channel_id=None, photo=PHOTO, outfit=outfit)


async def finished(session: TryOnSession, seconds: float = 40.0) -> None:
    async with asyncio.timeout(seconds):
        await session.finished.wait()


async def test_stream_steer_roll_over_end_and_settle(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    emulator = await emulator_factory()
    # The engine rolls over on its own 0.5 s before its (short) stream cap.
    engine = await make_engine(emulator, stream_cap_seconds=3.0, rollover_margin_seconds=0.5)
    presenter = quiet_presenter(tmp_path / "out")
    session = await engine.manager.admit(request(1), presenter)

    await until(lambda: session.state is SessionState.STREAMING)
    snippet = await engine.manager.steer(session, "blue wool suit")
    assert snippet is not None and snippet.data.startswith(b"GIF8")
    assert snippet.outfit == "blue wool suit"
    still = await session.snapshot()
    assert still is not None and still.data.startswith(b"\x89PNG")

    await until(lambda: session.rollovers >= 1, 15)
    after = await engine.manager.steer(session, "green   rain\u200b coat")  # cleaned before it is sent
    assert after is not None and after.outfit == "green rain coat"
    engine.manager.stop(session.id, user_id=1)
    await finished(session)

    assert session.state is SessionState.DONE and session.end_reason is EndReason.MEMBER
    assert any(status.continuing for status in presenter.statuses)
    states = [status.state for status in presenter.statuses]
    for state in ("queued", "connecting", "streaming", "ending", "finalising", "done"):
        assert state in states
    store = engine.services.store
    record = await store.sessions.get(session.id)
    assert record is not None and record.state == "done"
    streams = await store.streams.for_session(session.id)
    assert len(streams) >= 2 and all(s.odyssey_stream_id and s.ended_at for s in streams)
    assert streams[0].end_reason == "rollover"
    # Rolled over before the cap on the same connection: one session request, no reconnect.
    assert emulator.observed.session_requests == 1
    # One recording per stream, each with a working video link.
    [recordings] = presenter.recordings
    assert [links.stream_id for links in recordings.recordings] == [s.odyssey_stream_id for s in streams]
    assert all(links.video_url for links in recordings.recordings)
    assert recordings.before_after_png is not None and recordings.before_after_png.startswith(b"\x89PNG")
    assert recordings.thumbnail_jpeg is not None and recordings.thumbnail_jpeg.startswith(b"\xff\xd8")
    # The highlight covers the whole session: all three outfits, over both sides of the roll-over.
    highlight = recordings.highlight
    assert highlight is not None and highlight.outfits == 3
    codec, width, _, frames = mp4_video(highlight.data)
    assert codec == "h264" and width == highlight.width == 96
    assert frames == round(highlight.duration_seconds * 4)  # the buffer's 4 fps (fast_engine)
    assert highlight.duration_seconds >= 0.8 * session.streamed_seconds
    # Usage: charged exactly once, for the seconds streamed (not the wall time of the whole session).
    ledger = await store.usage.for_session(session.id)
    charges = [entry for entry in ledger if entry.kind == "charge"]
    assert len(charges) == 1
    assert charges[0].seconds == pytest.approx(sum(s.seconds for s in streams), abs=0.05)
    assert charges[0].seconds > 2.5
    prompts = await store.prompts.for_session(session.id)
    assert [p.status for p in prompts] == ["applied", "applied", "applied"]
    assert presenter.snippets and all(f.path.read_bytes().startswith(b"GIF8") for f in presenter.snippets)
    # Links can be re-issued later from the stored stream ids.
    fresh = await engine.manager.recording_links(session.id)
    assert [links.stream_id for links in fresh] == [s.odyssey_stream_id for s in streams]


async def test_platform_cap_rolls_over_then_idle_ends(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    # The platform ends each stream after 1.5 s (session_timeout, then drops the connection).
    emulator = await emulator_factory(stream_cap_seconds=1.5)
    engine = await make_engine(emulator, idle_seconds=3.5)
    presenter = quiet_presenter(tmp_path / "out")
    session = await engine.manager.admit(request(2), presenter)
    await finished(session)

    assert session.state is SessionState.DONE and session.end_reason is EndReason.IDLE
    streams = await engine.services.store.streams.for_session(session.id)
    assert len(streams) >= 2
    assert streams[0].end_reason in ("session_timeout", "disconnected")
    # The platform dropped each stream: the session reconnected (once more if the idle stop landed while the
    # next connection was opening, which a loaded machine makes likely).
    assert len(streams) <= emulator.observed.session_requests <= len(streams) + 1
    assert session.streamed_seconds == pytest.approx(3.5, abs=1.5)
    assert presenter.statuses[-1].end_reason == "idle"


async def test_dropped_connection_rolls_over(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    emulator = await emulator_factory()
    emulator.faults.drop_peer_after_seconds = 1.0  # every peer connection dies a second into its stream
    engine = await make_engine(emulator, idle_seconds=2.5)
    presenter = quiet_presenter(tmp_path / "out")
    session = await engine.manager.admit(request(13), presenter)
    await finished(session)

    assert session.state is SessionState.DONE and session.end_reason is EndReason.IDLE
    streams = await engine.services.store.streams.for_session(session.id)
    assert len(streams) >= 2 and streams[0].end_reason == "disconnected"
    assert any(status.continuing for status in presenter.statuses)


async def test_failed_roll_over_ends_early_with_the_recording_so_far(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    emulator = await emulator_factory(stream_cap_seconds=1.5)
    engine = await make_engine(emulator)
    presenter = quiet_presenter(tmp_path / "out")
    session = await engine.manager.admit(request(12), presenter)
    await until(lambda: session.state is SessionState.STREAMING)
    emulator.faults.force_429_code = "CONCURRENT_LIMIT_REACHED"  # the next connect is refused
    await finished(session)

    assert session.state is SessionState.DONE and session.end_reason is EndReason.CONNECTION_LOST
    assert [e.message for e in presenter.errors] == [
        "The live video dropped; reconnecting you now…",
        "The live stream could not continue, so your try-on ended early. Your recording follows. "
        "The bot is running as many try-ons as its plan allows. Please try again in a few minutes.",
    ]
    [recordings] = presenter.recordings
    assert len(recordings.recordings) == 1 and recordings.recordings[0].video_url
    [charge] = [e for e in await engine.services.store.usage.for_session(session.id) if e.kind == "charge"]
    assert charge.seconds == pytest.approx(1.5, abs=0.5)


async def test_quota_is_a_hard_stop_and_bad_input_costs_nothing(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    emulator = await emulator_factory()
    engine = await make_engine(emulator)
    store = engine.services.store
    await store.guilds.set_default_limits(GUILD_A, QuotaLimits(daily_seconds=2.5), moderator_id=None)
    presenter = quiet_presenter(tmp_path / "out")

    with pytest.raises(PromptRejected):
        await engine.manager.admit(request(3, outfit="  \u200b "), presenter)
    assert await store.sessions.history(GUILD_A, 3) == []

    session = await engine.manager.admit(request(3), presenter)
    await finished(session)
    assert session.end_reason is EndReason.QUOTA
    assert session.streamed_seconds == pytest.approx(2.5, abs=0.5)
    [charge] = [e for e in await store.usage.for_session(session.id) if e.kind == "charge"]
    assert charge.seconds == pytest.approx(session.streamed_seconds, abs=0.05)
    with pytest.raises(QuotaExceeded):
        await engine.manager.admit(request(3), presenter)


async def test_blocklist_moderator_stop_and_blocks(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    emulator = await emulator_factory()
    engine = await make_engine(emulator)
    store, manager = engine.services.store, engine.manager
    await store.guilds.add_blocked_word(GUILD_A, "leather", moderator_id=99)
    presenter = quiet_presenter(tmp_path / "out")

    with pytest.raises(PromptRejected):
        await manager.admit(request(6, outfit="black L E A T H E R jacket"), presenter)
    with pytest.raises(PhotoRejected):
        await manager.admit(dataclasses.replace(request(6), photo=b"not a photo at all"), presenter)
    assert await store.sessions.history(GUILD_A, 6) == []
    session = await manager.admit(request(6), presenter)
    await until(lambda: session.state is SessionState.STREAMING)
    with pytest.raises(PromptRejected):
        await engine.manager.steer(session, "leather trousers")
    manager.get(session.id, guild_id=GUILD_A)
    with pytest.raises(NoSuchSession):
        manager.get(session.id, guild_id=GUILD_B)
    with pytest.raises(NotAllowed):
        manager.stop(session.id, user_id=7)
    await manager.moderator_stop(session.id, guild_id=GUILD_A, moderator_id=99)
    await finished(session)

    assert session.state is SessionState.DONE and session.end_reason is EndReason.MODERATOR
    prompts = await store.prompts.for_session(session.id)
    assert [(p.text, p.status) for p in prompts][-1] == ("leather trousers", "refused")
    actions = [entry.action for entry in await store.audit.list(GUILD_A)]
    assert actions.count("prompt_refused") == 2 and "session_stopped" in actions
    await store.blocks.block(GUILD_A, 6, moderator_id=99, reason="spam")
    with pytest.raises(Blocked):
        await manager.admit(request(6), presenter)


async def test_platform_usage_error_is_plain_words_and_refunded(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    emulator = await emulator_factory()
    emulator.faults.force_429_code = "MONTHLY_LIMIT_REACHED"
    engine = await make_engine(emulator)
    presenter = quiet_presenter(tmp_path / "out")
    session = await engine.manager.admit(request(4), presenter)
    await finished(session)
    assert session.state is SessionState.FAILED
    [error] = presenter.errors
    assert "video time for this month" in error.message
    kinds = [e.kind for e in await engine.services.store.usage.for_session(session.id)]
    assert kinds == ["session", "refund"]


async def test_fair_queue_cap_and_cancel_while_queued(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    emulator = await emulator_factory()
    engine = await make_engine(emulator, slots=1, idle_seconds=1.0, queue_cap_per_guild=2)
    manager = engine.manager
    presenters: dict[int, ConsolePresenter] = {}

    async def admit(user_id: int, guild_id: int) -> TryOnSession:
        presenters[user_id] = quiet_presenter(tmp_path / str(user_id))
        return await manager.admit(request(user_id, guild_id), presenters[user_id])

    first = await admit(10, GUILD_A)
    await until(lambda: first.state is not SessionState.QUEUED)
    a2, a3 = await admit(11, GUILD_A), await admit(12, GUILD_A)
    b1 = await admit(20, GUILD_B)
    # Guild B's only member goes ahead of guild A's second waiting member.
    assert manager.queue.positions() == {a2.id: 1, b1.id: 2, a3.id: 3}
    assert presenters[20].statuses[-1].queue_position == 2
    assert presenters[20].statuses[-1].estimated_wait_seconds is not None
    with pytest.raises(QueueFull):
        await admit(13, GUILD_A)
    with pytest.raises(AlreadyInSession):
        await admit(11, GUILD_B)

    await manager.cancel(a2.id, user_id=11)
    assert a2.state is SessionState.CANCELLED
    kinds = [e.kind for e in await engine.services.store.usage.for_session(a2.id)]
    assert kinds == ["session", "refund"]
    assert manager.queue.positions() == {a3.id: 1, b1.id: 2}
    assert presenters[12].statuses[-1].queue_position == 1

    for session in (first, a3, b1):
        await finished(session)
        assert session.state is SessionState.DONE and session.end_reason is EndReason.IDLE
    assert first.started_at is not None and b1.started_at is not None and a3.started_at is not None
    assert first.started_at < a3.started_at < b1.started_at
    assert not any(status.state == "connecting" for status in presenters[11].statuses)


async def test_platform_queue_then_shutdown_settles_everything(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    emulator = await emulator_factory()
    emulator.faults.fail_503_times = 1  # no streamer free at first: the client waits in the platform's queue
    engine = await make_engine(emulator, slots=1)
    live_presenter = quiet_presenter(tmp_path / "live")
    waiting_presenter = quiet_presenter(tmp_path / "waiting")
    live = await engine.manager.admit(request(8), live_presenter)
    waiting = await engine.manager.admit(request(9, GUILD_B), waiting_presenter)
    await until(lambda: live.state is SessionState.STREAMING)
    assert any(status.platform_wait_seconds is not None for status in live_presenter.statuses)

    await engine.manager.shutdown(grace_seconds=30)
    assert live.state is SessionState.DONE and live.end_reason is EndReason.SHUTDOWN
    assert waiting.state is SessionState.CANCELLED
    usage = engine.services.store.usage
    assert [e.kind for e in await usage.for_session(live.id)] == ["session", "charge"]
    assert [e.kind for e in await usage.for_session(waiting.id)] == ["session", "refund"]
    with pytest.raises(NotAllowed):
        await engine.manager.admit(request(10), live_presenter)


async def test_a_heartbeat_that_cannot_be_written_fails_the_session_and_closes_its_streams(
    emulator_factory: Callable[..., Awaitable[Emulator]],
    make_engine: EngineMaker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emulator = await emulator_factory()
    engine = await make_engine(emulator)
    presenter = quiet_presenter(tmp_path / "out")
    session = await engine.manager.admit(request(29), presenter)
    await until(lambda: session.state is SessionState.STREAMING)

    heartbeat = engine.services.store.sessions.heartbeat
    failures = [sqlite3.OperationalError("database is locked")]

    async def locked_once(*args: Any, **kwargs: Any) -> None:
        if failures:
            raise failures.pop()
        await heartbeat(*args, **kwargs)

    # Without its heartbeat the session would stream on with no idle or quota stop: it fails instead.
    monkeypatch.setattr(engine.services.store.sessions, "heartbeat", locked_once)
    await finished(session, seconds=15)
    assert session.state is SessionState.FAILED and session.streams.live is None
    assert presenter.errors and "error id" in presenter.errors[-1].message


async def test_crash_recovery_settles_from_the_last_heartbeat(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    emulator = await emulator_factory()
    engine = await make_engine(emulator)
    presenter = quiet_presenter(tmp_path / "out")
    session = await engine.manager.admit(request(5), presenter)
    await until(lambda: session.state is SessionState.STREAMING)
    await asyncio.sleep(1.0)  # a few heartbeats

    # What a crash leaves on disk is exactly the database at that moment: take a consistent copy.
    crashed = tmp_path / "crashed.sqlite3"
    await asyncio.to_thread(_copy_database, tmp_path / "tryon.sqlite3", crashed)
    engine.manager.stop(session.id)
    await finished(session)

    restarted = await make_engine(emulator, db_name="crashed.sqlite3")
    offered: dict[str, ConsolePresenter] = {}

    def presenter_for(record: object) -> ConsolePresenter:
        return offered.setdefault("p", quiet_presenter(tmp_path / "recovered"))

    [record] = await restarted.manager.recover(presenter_for)
    assert record.id == session.id and record.state == "interrupted"
    assert record.streamed_seconds > 0.5
    [charge] = [e for e in await restarted.services.store.usage.for_session(session.id) if e.kind == "charge"]
    assert charge.seconds == pytest.approx(record.streamed_seconds)
    [recovered] = offered["p"].recordings
    assert recovered.recovered and recovered.recordings[0].video_url
    assert await restarted.manager.recover(presenter_for) == []


async def test_a_crash_between_marking_and_settling_is_settled_on_the_next_start(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    emulator = await emulator_factory()
    store = await Store.open(tmp_path / "crashed-twice.sqlite3")
    try:
        streamed_id = await _reserved_session(store, 41)
        queued_id = await _reserved_session(store, 42)
        await store.sessions.heartbeat(streamed_id, 12.5)
        # The first restart marked both interrupted, then died before settling either.
        assert len(await store.sessions.interrupt_unfinished()) == 2
        assert await store.usage.unsettled_session_ids() == [streamed_id, queued_id]
    finally:
        await store.close()

    restarted = await make_engine(emulator, db_name="crashed-twice.sqlite3")
    assert await restarted.manager.recover() == []  # nothing new to mark, nothing to offer twice
    usage = restarted.services.store.usage
    assert [(e.kind, e.seconds) for e in await usage.for_session(streamed_id)] == [
        ("session", 0.0),
        ("charge", 12.5),
    ]
    assert [e.kind for e in await usage.for_session(queued_id)] == ["session", "refund"]
    assert await usage.unsettled_session_ids() == []


async def _reserved_session(store: Store, user_id: int) -> str:
    """A session row with its start in the ledger, as admission leaves it."""
    record = await store.sessions.create(guild_id=GUILD_A, channel_id=None, user_id=user_id)
    await store.usage.open_session(guild_id=GUILD_A, user_id=user_id, session_id=record.id)
    return record.id


def _copy_database(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


class HeldStarts:
    """Real clients whose `start_stream` waits for `release`, recording every prompt they send."""

    def __init__(self, emulator: Emulator) -> None:
        self.make_client = client_factory(DEV_API_KEY, emulator.url)
        self.starting, self.release = asyncio.Event(), asyncio.Event()
        self.sent: list[str] = []
        self.clients: list[Odyssey] = []

    def __call__(self) -> Odyssey:
        client = self.make_client()
        start_stream, interact = client.start_stream, client.interact

        async def held_start(prompt: str, **options: Any) -> str:
            self.sent.append(prompt)
            self.starting.set()
            await self.release.wait()
            return await start_stream(prompt, **options)

        async def recorded_interact(prompt: str) -> str:
            self.sent.append(prompt)
            return await interact(prompt)

        setattr(client, "start_stream", held_start)  # noqa: B010
        setattr(client, "interact", recorded_interact)  # noqa: B010
        self.clients.append(client)
        return client


async def test_an_outfit_sent_while_the_stream_starts_is_applied_once_it_runs(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    emulator = await emulator_factory()
    engine = await make_engine(emulator)
    engine.services.client_factory = held = HeldStarts(emulator)
    presenter = quiet_presenter(tmp_path / "out")
    session = await engine.manager.admit(request(14), presenter)
    await asyncio.wait_for(held.starting.wait(), 20)
    assert await engine.manager.steer(session, "blue wool suit") is None  # kept until the stream runs
    held.release.set()
    await until(lambda: any(f.caption == "blue wool suit" for f in presenter.snippets), 20)

    assert held.sent == ["red summer dress", "blue wool suit"]
    prompts = await engine.services.store.prompts.for_session(session.id)
    assert [(p.text, p.status) for p in prompts] == [
        ("red summer dress", "applied"),
        ("blue wool suit", "applied"),
    ]
    engine.manager.stop(session.id)
    await finished(session)
    assert session.state is SessionState.DONE


async def test_a_session_cancelled_while_its_stream_starts_leaves_no_connection(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    emulator = await emulator_factory()
    engine = await make_engine(emulator)
    engine.services.client_factory = held = HeldStarts(emulator)
    presenter = quiet_presenter(tmp_path / "out")
    session = await engine.manager.admit(request(20), presenter)
    await asyncio.wait_for(held.starting.wait(), 20)
    # What a shutdown does to a session still running after its grace period.
    engine.manager._running[session.id].cancel()
    await finished(session)
    held.release.set()
    await asyncio.sleep(0.5)  # a start left running would connect its stream meanwhile

    assert session.state is SessionState.FAILED
    assert not any(client.is_connected for client in held.clients)
    assert emulator.connections == set()
    assert engine.manager.running_count == 0


async def test_a_request_admitted_during_shutdown_is_refused_and_spends_nothing(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    emulator = await emulator_factory()
    engine = await make_engine(emulator)
    services = engine.services
    checking, release = asyncio.Event(), asyncio.Event()
    check_photo = services.check_photo

    async def slow_check(photo: bytes) -> StreamPhoto:
        checking.set()
        await release.wait()
        return await check_photo(photo)

    services.check_photo = slow_check
    presenter = quiet_presenter(tmp_path / "out")
    admission = asyncio.create_task(engine.manager.admit(request(15), presenter))
    await asyncio.wait_for(checking.wait(), 10)
    shutdown = asyncio.create_task(engine.manager.shutdown(grace_seconds=10))
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(NotAllowed):
        await admission
    await shutdown
    assert engine.manager.sessions() == []
    assert await services.store.sessions.history(GUILD_A, 15) == []


async def test_concurrent_admits_of_one_member_start_one_session(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    emulator = await emulator_factory()
    engine = await make_engine(emulator)
    presenter = quiet_presenter(tmp_path / "out")
    results = await asyncio.gather(
        *(engine.manager.admit(request(16, guild), presenter) for guild in (GUILD_A, GUILD_B, GUILD_A)),
        return_exceptions=True,
    )
    sessions = [r for r in results if isinstance(r, TryOnSession)]
    assert len(sessions) == 1
    assert all(isinstance(r, AlreadyInSession) for r in results if r not in sessions)
    assert len(await engine.services.store.usage.for_session(sessions[0].id)) == 1  # one reservation
    engine.manager.stop(sessions[0].id)
    await finished(sessions[0])


async def test_slots_come_back_after_a_failed_connect_and_a_cancel_while_connecting(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    emulator = await emulator_factory()
    engine = await make_engine(emulator, slots=1)
    manager, usage = engine.manager, engine.services.store.usage
    presenter = quiet_presenter(tmp_path / "out")

    emulator.faults.force_429_code = "CONCURRENT_LIMIT_REACHED"
    failing = await manager.admit(request(17), presenter)
    waiting = await manager.admit(request(18, GUILD_B), presenter)
    await finished(failing)
    emulator.faults.force_429_code = None
    assert failing.state is SessionState.FAILED

    # The freed slot goes to the next member; the platform keeps it waiting (503s) while connecting.
    emulator.faults.fail_503_times = 10_000
    await until(lambda: waiting.state is SessionState.CONNECTING)
    queued = await manager.admit(request(19), presenter)
    assert queued.state is SessionState.QUEUED
    await manager.cancel(waiting.id, user_id=18)
    await finished(waiting)
    assert waiting.state is SessionState.CANCELLED
    emulator.faults.fail_503_times = 0

    await until(lambda: queued.state is SessionState.STREAMING)
    assert manager.running_count == 1
    assert [e.kind for e in await usage.for_session(failing.id)] == ["session", "refund"]
    assert [e.kind for e in await usage.for_session(waiting.id)] == ["session", "refund"]
    manager.stop(queued.id)
    await finished(queued)
    assert manager.running_count == 0


class StoreCheckingPresenter(ConsolePresenter):
    """Records, for every status it receives, the state the store held at that moment."""

    def __init__(self, out: Path, store: Store) -> None:
        super().__init__(out, echo=lambda line: None)
        self.store = store
        self.stored: list[tuple[str, str | None]] = []

    async def status_changed(self, event: StatusChanged) -> None:
        record = await self.store.sessions.get(event.session_id)
        self.stored.append((str(event.state), record.state if record is not None else None))
        await super().status_changed(event)


async def test_every_transition_is_stored_before_it_is_reported(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    emulator = await emulator_factory()
    engine = await make_engine(emulator, slots=1)
    store = engine.services.store
    live_presenter = StoreCheckingPresenter(tmp_path / "live", store)
    queued_presenter = StoreCheckingPresenter(tmp_path / "queued", store)
    live = await engine.manager.admit(request(21), live_presenter)
    queued = await engine.manager.admit(request(22, GUILD_B), queued_presenter)
    await until(lambda: live.state is SessionState.STREAMING)
    await engine.manager.cancel(queued.id, user_id=22)
    engine.manager.stop(live.id)
    await finished(live)

    for presenter in (live_presenter, queued_presenter):
        assert all(reported == stored for reported, stored in presenter.stored), presenter.stored
    reported = [state for state, _ in live_presenter.stored]
    assert [s for i, s in enumerate(reported) if i == 0 or s != reported[i - 1]] == [
        "queued",
        "connecting",
        "streaming",
        "ending",
        "finalising",
        "done",
    ]
    assert [state for state, _ in queued_presenter.stored][-1] == "cancelled"


async def test_a_queued_session_stopped_by_a_moderator_just_before_shutdown_is_refunded(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    emulator = await emulator_factory()
    engine = await make_engine(emulator, slots=1)
    presenter = quiet_presenter(tmp_path / "out")
    live = await engine.manager.admit(request(23), presenter)
    queued = await engine.manager.admit(request(24, GUILD_B), presenter)
    await until(lambda: live.state is SessionState.STREAMING)
    engine.manager.stop(queued.id, reason=EndReason.MODERATOR)  # as /tryonadmin does, while it waits
    for _ in range(3):
        await asyncio.sleep(0)  # its cancel is under way, waiting on the store
    await engine.manager.shutdown(grace_seconds=20)

    assert queued.state is SessionState.CANCELLED and queued.end_reason is EndReason.MODERATOR
    record = await engine.services.store.sessions.get(queued.id)
    assert record is not None and record.state == "cancelled"
    assert [e.kind for e in await engine.services.store.usage.for_session(queued.id)] == ["session", "refund"]


async def test_recovery_after_an_admission_refuses_to_mark_live_sessions(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    emulator = await emulator_factory()
    engine = await make_engine(emulator)
    presenter = quiet_presenter(tmp_path / "out")
    session = await engine.manager.admit(request(25), presenter)
    await until(lambda: session.state is SessionState.STREAMING)
    with pytest.raises(RuntimeError, match="recover before admitting"):
        await engine.manager.recover()
    record = await engine.services.store.sessions.get(session.id)
    assert record is not None and record.state != "interrupted"
    engine.manager.stop(session.id)
    await finished(session)
    assert session.state is SessionState.DONE


async def test_shutdown_cuts_short_a_recording_wait_that_began_before_it(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    emulator = await emulator_factory()
    engine = await make_engine(
        emulator, recording_poll_limit_seconds=60.0, shutdown_recording_poll_seconds=0.3
    )
    make_client = client_factory(DEV_API_KEY, emulator.url)

    def clients() -> Odyssey:
        client = make_client()

        async def never_ready(stream_id: str) -> Any:
            raise OdysseyError("404 Recording not found")

        setattr(client, "get_recording", never_ready)  # noqa: B010
        return client

    engine.services.client_factory = clients
    presenter = quiet_presenter(tmp_path / "out")
    session = await engine.manager.admit(request(26), presenter)
    await until(lambda: session.state is SessionState.STREAMING)
    engine.manager.stop(session.id)  # ends for the member's reason, then waits for its recording
    await until(lambda: session.state is SessionState.FINALISING)
    await engine.manager.shutdown(grace_seconds=5)

    assert session.state is SessionState.DONE and session.end_reason is EndReason.MEMBER
    assert presenter.errors == []
    [ready] = presenter.recordings
    assert ready.recordings == ()  # links can be re-issued later from the stored stream ids


async def test_a_refused_start_on_the_same_connection_falls_back_to_a_fresh_one(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    emulator = await emulator_factory()
    engine = await make_engine(emulator, stream_cap_seconds=2.0, rollover_margin_seconds=0.5)
    make_client = client_factory(DEV_API_KEY, emulator.url)
    made: list[Odyssey] = []

    def clients() -> Odyssey:
        client = make_client()
        made.append(client)
        if len(made) == 1:  # the first connection refuses its second stream
            start_stream = client.start_stream
            starts: list[str] = []

            async def start_once(prompt: str, **options: Any) -> str:
                starts.append(prompt)
                if len(starts) > 1:
                    raise OdysseyError("refused")
                return await start_stream(prompt, **options)

            setattr(client, "start_stream", start_once)  # noqa: B010
        return client

    engine.services.client_factory = clients
    presenter = quiet_presenter(tmp_path / "out")
    session = await engine.manager.admit(request(27), presenter)
    await until(lambda: session.rollovers >= 1, 15)
    engine.manager.stop(session.id)
    await finished(session)

    assert session.state is SessionState.DONE and session.end_reason is EndReason.MEMBER
    assert not presenter.errors
    streams = await engine.services.store.streams.for_session(session.id)
    assert len(streams) >= 2 and streams[0].end_reason == "rollover"
    assert emulator.observed.session_requests >= 2 and not made[0].is_connected
    [charge] = [e for e in await engine.services.store.usage.for_session(session.id) if e.kind == "charge"]
    assert charge.seconds == pytest.approx(sum(s.seconds for s in streams), abs=0.05)


async def test_an_outfit_the_platform_did_not_apply_is_not_shown_or_carried_over(
    emulator_factory: Callable[..., Awaitable[Emulator]], make_engine: EngineMaker, tmp_path: Path
) -> None:
    emulator = await emulator_factory()
    engine = await make_engine(emulator, stream_cap_seconds=2.5, rollover_margin_seconds=0.5)
    make_client = client_factory(DEV_API_KEY, emulator.url)
    started_with: list[str] = []

    def clients() -> Odyssey:
        client = make_client()
        start_stream = client.start_stream

        async def refused(prompt: str) -> str:
            raise OdysseyError("update refused")

        async def recorded_start(prompt: str, **options: Any) -> str:
            started_with.append(prompt)
            return await start_stream(prompt, **options)

        setattr(client, "interact", refused)  # noqa: B010
        setattr(client, "start_stream", recorded_start)  # noqa: B010
        return client

    engine.services.client_factory = clients
    presenter = quiet_presenter(tmp_path / "out")
    session = await engine.manager.admit(request(28), presenter)
    await until(lambda: session.state is SessionState.STREAMING)
    with pytest.raises(OutfitNotApplied, match="could not be applied"):
        await engine.manager.steer(session, "blue wool suit")
    # The platform's failure, not the member's doing: nothing for the moderators.
    assert await engine.services.store.audit.list(GUILD_A, action="prompt_refused") == []
    assert session.latest_outfit == "red summer dress"
    assert presenter.statuses[-1].outfit == "red summer dress"
    await until(lambda: session.rollovers >= 1, 15)
    engine.manager.stop(session.id)
    await finished(session)
    assert started_with == ["red summer dress", "red summer dress"]
