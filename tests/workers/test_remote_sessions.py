"""Sessions on worker processes: real NATS, real `python -m bot worker` processes, real WebRTC against the
emulator, the engine's decisions and a real SQLite file in the test's process."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from nats.js.errors import KeyNotFoundError

from bot.emulator import DEV_API_KEY, Emulator
from bot.store import Store
from bot.tryon.console import ConsolePresenter
from bot.tryon.engine import Engine, build_engine, client_factory
from bot.tryon.errors import NotAllowed
from bot.tryon.ledger import StoreLedger
from bot.tryon.models import EndReason, SessionRequest, SessionState
from bot.tryon.presenter import SnippetReady
from bot.workers import protocol
from bot.workers.bus import connect
from bot.workers.claims import claims_bucket
from bot.workers.nats_server import LocalNatsServer, free_port
from bot.workers.presence import PresenceBoard
from bot.workers.remote import START_REPLY_SECONDS, RemoteLauncher, RemoteSession
from bot.workers.settings import WorkerSettings
from tests.helpers import PHOTO, fast_engine, until
from tests.workers.processes import WorkerPool, worker_pool

pytestmark = pytest.mark.timeout(150)

GUILD = 7
RemoteEngine = Engine[RemoteSession]


def request(user_id: int, outfit: str = "red summer dress") -> SessionRequest:
    return SessionRequest(guild_id=GUILD, user_id=user_id, channel_id=None, photo=PHOTO, outfit=outfit)


def quiet_presenter(out: Path) -> ConsolePresenter:
    return ConsolePresenter(out, echo=lambda line: None)


@pytest.fixture
async def make_engine(
    worker_settings: WorkerSettings, emulator: Emulator, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[RemoteEngine]]]:
    """Engines placing sessions on workers (the bot's side), on SQLite under tmp_path."""
    opened: list[tuple[RemoteEngine, Store]] = []

    async def make(workers: WorkerSettings | None = None, **settings: Any) -> RemoteEngine:
        store = await Store.open(tmp_path / "tryon.sqlite3")
        launcher = RemoteLauncher(workers or worker_settings)
        await launcher.open()
        clients = client_factory(DEV_API_KEY, emulator.url)
        engine = build_engine(store, clients, fast_engine(**settings), launcher=launcher)
        opened.append((engine, store))
        return engine

    try:
        yield make
    finally:
        for engine, store in reversed(opened):
            await engine.aclose(grace_seconds=20)
            await store.close()


async def board_for(engine: RemoteEngine) -> PresenceBoard:
    launcher = engine.manager.launcher
    assert isinstance(launcher, RemoteLauncher) and launcher.watch is not None
    return launcher.watch.board


async def finished(session: RemoteSession, seconds: float = 40.0) -> None:
    async with asyncio.timeout(seconds):
        await session.finished.wait()


async def usage_kinds(engine: RemoteEngine, session_id: str) -> list[str]:
    return [entry.kind for entry in await engine.services.store.usage.for_session(session_id)]


def streams_started(emulator: Emulator) -> int:
    """Streams the platform started, whoever asked (a ghost one included)."""
    return len(emulator.recordings.list(DEV_API_KEY))


async def claim_of(engine: RemoteEngine, session_id: str) -> str | None:
    """Which worker the claims bucket names for the session (None once released)."""
    launcher = engine.manager.launcher
    assert isinstance(launcher, RemoteLauncher) and launcher.client is not None
    bucket = await claims_bucket(launcher.client, launcher.settings)
    try:
        entry = await bucket.get(session_id)
    except KeyNotFoundError:
        return None
    return (entry.value or b"").decode()


async def test_sessions_spread_over_workers_stream_steer_roll_over_and_settle_once(
    make_engine: Callable[..., Awaitable[RemoteEngine]], workers: WorkerPool, tmp_path: Path
) -> None:
    engine = await make_engine(stream_cap_seconds=3.0, rollover_margin_seconds=0.5)
    board = await board_for(engine)
    await workers.start("w1", 2, board)
    await workers.start("w2", 2, board)
    presenters = [quiet_presenter(tmp_path / f"out{i}") for i in range(2)]
    sessions = [await engine.manager.admit(request(i + 1), presenters[i]) for i in range(2)]
    await until(lambda: all(s.state is SessionState.STREAMING for s in sessions), 40)
    assert {s.worker_id for s in sessions} == {"w1", "w2"}  # spread, one each

    first, presenter = sessions[0], presenters[0]
    await engine.steer(first.id, guild_id=GUILD, user_id=1, text="blue   wool suit")
    await until(lambda: any(f.path.read_bytes().startswith(b"GIF8") for f in presenter.snippets), 20)
    assert engine.current(1) is not None and engine.current(1).outfit == "blue wool suit"  # type: ignore[union-attr]
    assert await engine.snapshot(first.id, guild_id=GUILD)
    assert presenter.snapshots and presenter.snapshots[-1].path.read_bytes().startswith(b"\x89PNG")
    await until(lambda: len(first.stream_ids) >= 2, 20)  # rolled over on the worker
    assert all(s.frames_received > 0 for s in sessions)  # the workers' heartbeats carry their frame counts

    for session in sessions:
        engine.end(session.id, guild_id=GUILD, user_id=session.request.user_id, moderator=False)
    for session in sessions:
        await finished(session)
    assert [s.state for s in sessions] == [SessionState.DONE, SessionState.DONE]
    assert presenter.recordings and len(presenter.recordings[-1].recordings) >= 2
    store = engine.services.store
    record = await store.sessions.get(first.id)
    streams = await store.streams.for_session(first.id)
    assert [s.odyssey_stream_id for s in streams] == first.stream_ids
    assert all(s.ended_at is not None for s in streams)
    assert record is not None and record.state == "done" and record.streamed_seconds > 2.0
    assert record.streamed_seconds == pytest.approx(sum(s.seconds for s in streams), abs=0.2)
    prompts = await store.prompts.for_session(first.id)
    assert {p.text: p.status for p in prompts} == {"red summer dress": "applied", "blue wool suit": "applied"}
    assert await usage_kinds(engine, first.id) == ["session", "charge"]
    assert engine.manager.running_count == 0 and engine.manager.sessions() == []


async def test_with_no_worker_the_member_is_told_plainly_and_nothing_is_charged(
    make_engine: Callable[..., Awaitable[RemoteEngine]], tmp_path: Path
) -> None:
    engine = await make_engine()
    with pytest.raises(NotAllowed, match="No try-on worker") as refused:
        await engine.check_start(GUILD, 1, None, (), "red summer dress")
    assert refused.value.reason == "no_workers"
    with pytest.raises(NotAllowed, match="No try-on worker"):
        await engine.start(request(1), quiet_presenter(tmp_path / "out"))
    assert await engine.services.store.sessions.history(GUILD, 1) == []


async def test_a_worker_that_refuses_or_is_full_is_skipped(
    make_engine: Callable[..., Awaitable[RemoteEngine]], workers: WorkerPool, tmp_path: Path
) -> None:
    engine = await make_engine()
    board = await board_for(engine)
    await workers.start("w1", 1, board)
    presenter = quiet_presenter(tmp_path / "out")
    one = await engine.manager.admit(request(1), presenter)
    await until(lambda: one.state is SessionState.STREAMING, 40)
    # w1 is full; its announcement may lag, so the board may still offer it: w1 refuses, none is left.
    two = await engine.manager.admit(request(2), quiet_presenter(tmp_path / "out2"))
    await finished(two)
    assert two.state is SessionState.FAILED and two.worker_id is None
    assert await usage_kinds(engine, two.id) == ["session", "refund"]
    engine.manager.stop(one.id, user_id=1)
    await finished(one)


async def test_a_killed_worker_is_noticed_settled_once_and_its_recordings_offered(
    make_engine: Callable[..., Awaitable[RemoteEngine]],
    workers: WorkerPool,
    worker_settings: WorkerSettings,
    tmp_path: Path,
) -> None:
    engine = await make_engine()
    board = await board_for(engine)
    worker = await workers.start("w1", 2, board)
    presenter = quiet_presenter(tmp_path / "out")
    session = await engine.manager.admit(request(1), presenter)
    await until(lambda: session.state is SessionState.STREAMING and session.streamed_seconds > 1.0, 40)

    worker.kill()
    killed = time.monotonic()
    await until(lambda: any("stopped" in e.message for e in presenter.errors), 20)
    told = time.monotonic() - killed
    # Presence expires within its TTL of the last heartbeat; the member hears within 5 s of that.
    assert told <= worker_settings.presence_ttl_seconds + 5.0, told
    await finished(session)
    assert session.state is SessionState.INTERRUPTED
    assert presenter.recordings and presenter.recordings[-1].recordings  # what streamed was recorded
    store = engine.services.store
    record = await store.sessions.get(session.id)
    assert record is not None and record.state == "interrupted" and record.streamed_seconds > 1.0
    usage = await store.usage.for_session(session.id)
    assert [e.kind for e in usage] == ["session", "charge"]
    assert engine.manager.running_count == 0 and engine.manager.sessions() == []
    # The slot is free: the next member starts once a worker is back.
    await workers.start("w2", 1, board)
    again = await engine.manager.admit(request(1), quiet_presenter(tmp_path / "again"))
    await until(lambda: again.state is SessionState.STREAMING, 40)
    engine.manager.stop(again.id, user_id=1)
    await finished(again)


async def test_a_drained_worker_ends_its_sessions_cleanly_before_it_exits(
    make_engine: Callable[..., Awaitable[RemoteEngine]], workers: WorkerPool, tmp_path: Path
) -> None:
    engine = await make_engine()
    board = await board_for(engine)
    worker = await workers.start("w1", 2, board)
    presenter = quiet_presenter(tmp_path / "out")
    session = await engine.manager.admit(request(1), presenter)
    await until(lambda: session.state is SessionState.STREAMING and session.streamed_seconds > 1.0, 40)

    assert await worker.terminate() == 0
    await finished(session, 10)
    assert session.state is SessionState.DONE and session.end_reason is EndReason.SHUTDOWN
    assert presenter.statuses[-1].end_reason == str(EndReason.SHUTDOWN)
    assert presenter.recordings and presenter.recordings[-1].recordings
    assert await usage_kinds(engine, session.id) == ["session", "charge"]
    assert "draining 1 sessions" in worker.log()


async def test_nats_unreachable_at_start_refuses_try_ons_plainly(
    worker_settings: WorkerSettings, tmp_path: Path
) -> None:
    nowhere = WorkerSettings(nats_url=f"nats://127.0.0.1:{free_port()}", connect_timeout_seconds=1.0)
    launcher = RemoteLauncher(nowhere)
    await launcher.open()  # does not raise: the bot answers commands all the same
    try:
        with pytest.raises(NotAllowed, match="unreachable") as refused:
            await launcher.check_available()
        assert refused.value.reason == "workers_unreachable"
    finally:
        await launcher.aclose()


async def crash(engine: RemoteEngine) -> None:
    """Leave the bot's side as SIGKILL would: connection dropped, nothing settled, nobody told."""
    launcher = engine.manager.launcher
    assert isinstance(launcher, RemoteLauncher) and launcher.client is not None
    await launcher.client.close()
    if launcher.watch is not None:
        await launcher.watch.aclose()
    runs = list(engine.manager._running.values())
    for run in runs:
        run.cancel()
    await asyncio.gather(*runs, return_exceptions=True)


async def test_the_bot_killed_and_restarted_takes_back_the_live_sessions(
    make_engine: Callable[..., Awaitable[RemoteEngine]], workers: WorkerPool, tmp_path: Path
) -> None:
    engine = await make_engine()
    await workers.start("w1", 2, await board_for(engine))
    session = await engine.manager.admit(request(1), quiet_presenter(tmp_path / "before"))
    await until(lambda: session.state is SessionState.STREAMING and session.streamed_seconds > 1.0, 40)
    await crash(engine)
    await asyncio.sleep(1.5)  # the worker streams on; its events wait in JetStream

    restarted = await make_engine()  # the same SQLite file
    after = quiet_presenter(tmp_path / "after")
    assert await restarted.reattach(lambda record: after) == 1
    assert await restarted.interrupt_crashed() == []
    taken = restarted.manager.get(session.id)
    assert taken.summary().state is SessionState.STREAMING and taken.worker_id == "w1"
    with pytest.raises(Exception, match="already"):
        await restarted.start(request(1), after)  # still the member's one session

    await restarted.steer(session.id, guild_id=GUILD, user_id=1, text="green rain coat")
    await until(lambda: any("green rain coat" in f.caption for f in after.snippets), 20)
    restarted.end(session.id, guild_id=GUILD, user_id=1, moderator=False)
    await finished(taken)
    assert taken.state is SessionState.DONE
    assert after.recordings and not after.errors  # nothing broke, as far as the member can tell
    store = restarted.services.store
    record = await store.sessions.get(session.id)
    assert record is not None and record.state == "done" and record.streamed_seconds > 2.5
    assert await usage_kinds(restarted, session.id) == ["session", "charge"]
    [charge] = [e for e in await store.usage.for_session(session.id) if e.kind == "charge"]
    assert charge.seconds == pytest.approx(record.streamed_seconds, abs=0.01)


class WatchedLedger(StoreLedger):
    """The bot's real ledger, also noting the writes it is asked for: one applied twice is noted twice."""

    def __init__(self, engine: RemoteEngine, writes: list[tuple[object, ...]]) -> None:
        super().__init__(engine.services.store, engine.services.quota)
        self.writes = writes

    async def heartbeat(self, session_id: str, streamed_seconds: float, stream_seconds: float | None) -> None:
        self.writes.append(("heartbeat", session_id, streamed_seconds, stream_seconds))
        await super().heartbeat(session_id, streamed_seconds, stream_seconds)

    async def stream_started(self, session_id: str, stream_id: str, prompt: str) -> None:
        self.writes.append(("stream_started", session_id, stream_id, prompt))
        await super().stream_started(session_id, stream_id, prompt)

    async def prompt_status(self, prompt_id: int, status: str, refusal_reason: str | None = None) -> None:
        self.writes.append(("prompt", prompt_id, status, refusal_reason))
        await super().prompt_status(prompt_id, status, refusal_reason)


def watch_ledger(engine: RemoteEngine) -> list[tuple[object, ...]]:
    """The writes the engine's ledger is asked for from now on."""
    writes: list[tuple[object, ...]] = []
    engine.services.ledger = WatchedLedger(engine, writes)
    return writes


class DiesAfterTheFirstSnippet(ConsolePresenter):
    """Shows the first snippet, then the bot dies on the spot: nothing after it reaches NATS or runs."""

    def __init__(self, out: Path, launcher: RemoteLauncher) -> None:
        super().__init__(out, echo=lambda line: None)
        self.launcher = launcher
        self.died = asyncio.Event()

    async def snippet_ready(self, event: SnippetReady) -> None:
        await super().snippet_ready(event)
        assert self.launcher.client is not None
        await self.launcher.client.close()  # the snippet's acknowledgement never leaves
        self.died.set()
        await asyncio.Event().wait()  # until `crash` cancels the session's run


async def lose_consumer(settings: WorkerSettings, session_id: str) -> None:
    """Delete the session's durable consumer, its acknowledgements with it (as if it had expired)."""
    client = await connect(settings, "operator")
    try:
        js = client.jetstream(timeout=5.0)
        await js.delete_consumer(protocol.events_stream(settings), f"bot-{session_id}")
    finally:
        await client.close()


@pytest.mark.parametrize("consumer_lost", [False, True], ids=["snippet-unacknowledged", "consumer-lost"])
async def test_events_that_come_again_after_a_crash_are_not_applied_twice(
    make_engine: Callable[..., Awaitable[RemoteEngine]],
    workers: WorkerPool,
    worker_settings: WorkerSettings,
    tmp_path: Path,
    consumer_lost: bool,
) -> None:
    engine = await make_engine()
    writes_before = watch_ledger(engine)
    launcher = engine.manager.launcher
    assert isinstance(launcher, RemoteLauncher)
    await workers.start("w1", 2, await board_for(engine))
    before = DiesAfterTheFirstSnippet(tmp_path / "before", launcher)
    session = await engine.manager.admit(request(1), before)
    async with asyncio.timeout(40):
        await before.died.wait()
    await crash(engine)
    [shown] = before.snippets
    record = await engine.services.store.sessions.get(session.id)
    assert record is not None and record.events_applied > 0  # the snippet's, recorded before it was shown
    if consumer_lost:
        await lose_consumer(worker_settings, session.id)  # every event of the session comes again

    restarted = await make_engine()  # the same SQLite file
    writes_after = watch_ledger(restarted)
    after = quiet_presenter(tmp_path / "after")
    assert await restarted.reattach(lambda record: after) == 1
    taken = restarted.manager.get(session.id)
    came_again = record.events_applied if consumer_lost else 1
    await until(lambda: taken.events_dropped >= came_again, 20)
    await restarted.steer(session.id, guild_id=GUILD, user_id=1, text="green rain coat")
    await until(lambda: bool(after.snippets), 20)
    restarted.end(session.id, guild_id=GUILD, user_id=1, moderator=False)
    await finished(taken)

    assert taken.state is SessionState.DONE and after.recordings
    captions = [f.caption for f in after.snippets]
    assert captions and shown.caption not in captions  # the one shown before the crash is not shown again
    if consumer_lost:
        assert taken.events_dropped == record.events_applied  # exactly those the crashed bot had applied
    assert writes_before and writes_after and not set(writes_before) & set(writes_after)
    assert await usage_kinds(restarted, session.id) == ["session", "charge"]


async def test_a_nats_restart_mid_session_loses_nothing(
    make_engine: Callable[..., Awaitable[RemoteEngine]],
    workers: WorkerPool,
    nats_server: LocalNatsServer,
    tmp_path: Path,
) -> None:
    engine = await make_engine()
    await workers.start("w1", 2, await board_for(engine))
    presenter = quiet_presenter(tmp_path / "out")
    session = await engine.manager.admit(request(1), presenter)
    await until(lambda: session.state is SessionState.STREAMING and session.streamed_seconds > 1.0, 40)

    await nats_server.stop()
    await asyncio.sleep(1.0)
    await nats_server.start()  # same port, same JetStream data

    before = session.streamed_seconds
    await until(lambda: session.streamed_seconds > before + 1.0, 20)  # heartbeats flow again
    assert session.summary().state is SessionState.STREAMING and not presenter.errors
    await engine.steer(session.id, guild_id=GUILD, user_id=1, text="green rain coat")
    engine.end(session.id, guild_id=GUILD, user_id=1, moderator=False)
    await finished(session)
    assert session.state is SessionState.DONE and presenter.recordings
    record = await engine.services.store.sessions.get(session.id)
    assert record is not None and record.streamed_seconds > 2.0
    assert await usage_kinds(engine, session.id) == ["session", "charge"]


async def test_a_lost_start_reply_leaves_the_session_on_that_worker_streaming_once(
    make_engine: Callable[..., Awaitable[RemoteEngine]],
    workers: WorkerPool,
    emulator: Emulator,
    tmp_path: Path,
) -> None:
    engine = await make_engine()
    board = await board_for(engine)
    late = str(START_REPLY_SECONDS + 3.0)
    slow = await workers.start("w1", 2, board, "--start-reply-delay", late)  # the roomier: offered first
    other = await workers.start("w2", 1, board)
    presenter = quiet_presenter(tmp_path / "out")
    session = await engine.manager.admit(request(1), presenter)
    await until(lambda: session.state is SessionState.STREAMING and session.streamed_seconds > 1.0, 40)

    # The bot gave up waiting for w1's reply, found w1's claim, and follows the session there.
    assert session.worker_id == "w1" and await claim_of(engine, session.id) == "w1"
    engine.end(session.id, guild_id=GUILD, user_id=1, moderator=False)
    await finished(session)
    assert session.state is SessionState.DONE and presenter.recordings
    assert streams_started(emulator) == 1 and emulator.observed.session_requests == 1
    assert f"session {session.id} started" in slow.log()
    assert f"session {session.id} started" not in other.log()
    assert await usage_kinds(engine, session.id) == ["session", "charge"]
    assert await claim_of(engine, session.id) is None  # released once settled


async def test_a_start_that_reaches_a_frozen_worker_late_is_refused_there(
    make_engine: Callable[..., Awaitable[RemoteEngine]],
    worker_settings: WorkerSettings,
    emulator: Emulator,
    tmp_path: Path,
) -> None:
    # A presence that outlives the bot's wait for the start, so the frozen worker is offered the session.
    patient = dataclasses.replace(worker_settings, presence_ttl_seconds=START_REPLY_SECONDS * 2)
    engine = await make_engine(patient)
    board = await board_for(engine)
    async with worker_pool(patient, emulator.url, tmp_path / "workers") as pool:
        frozen = await pool.start("w1", 2, board)  # the roomier: offered first
        await pool.start("w2", 1, board)
        frozen.pause()
        session = await engine.manager.admit(request(1), quiet_presenter(tmp_path / "out"))
        await until(lambda: session.state is SessionState.STREAMING, 40)
        assert session.worker_id == "w2" and await claim_of(engine, session.id) == "w2"

        frozen.resume()  # the start it never answered is in its socket: taken up now, and refused
        await until(lambda: f"session {session.id} was given up on" in frozen.log(), 20)
        engine.manager.stop(session.id, user_id=1)
        await finished(session)
        assert f"session {session.id} started" not in frozen.log()
    assert session.state is SessionState.DONE
    assert streams_started(emulator) == 1 and emulator.observed.session_requests == 1
    assert await usage_kinds(engine, session.id) == ["session", "charge"]
    assert await claim_of(engine, session.id) is None
