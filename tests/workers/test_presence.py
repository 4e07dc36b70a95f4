"""Worker presence on a real NATS server: announcements, expiry after a silent death, placement, the bus."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from nats.aio.client import Client

from bot.workers.bus import BusUnavailable, connect, server_address
from bot.workers.nats_server import LocalNatsServer, free_port
from bot.workers.presence import Presence, PresenceBoard, WorkerInfo
from bot.workers.settings import WorkerSettings
from tests.helpers import until

pytestmark = pytest.mark.timeout(60)

Connect = Callable[[str], Awaitable[Client]]


@pytest.fixture
async def bus(worker_settings: WorkerSettings) -> AsyncIterator[Connect]:
    """Open named NATS clients; all closed at teardown."""
    opened: list[Client] = []

    async def open_client(name: str) -> Client:
        client = await connect(worker_settings, name)
        opened.append(client)
        return client

    try:
        yield open_client
    finally:
        for client in opened:
            await client.close()


async def test_workers_announce_and_a_clean_exit_withdraws_at_once(
    bus: Connect, worker_settings: WorkerSettings
) -> None:
    board = PresenceBoard(await bus("front"), worker_settings)
    assert await board.workers() == []
    running = {"w1": 1, "w2": 0}
    first = Presence(await bus("w1"), worker_settings, "w1", 4, lambda: running["w1"])
    second = Presence(await bus("w2"), worker_settings, "w2", 2, lambda: running["w2"])
    await first.announce()
    await second.announce()

    workers = {w.worker_id: w for w in await board.workers()}
    assert set(workers) == {"w1", "w2"}
    assert (workers["w1"].capacity, workers["w1"].running, workers["w1"].free) == (4, 1, 3)
    assert workers["w2"].free == 2

    running["w1"] = 3  # heartbeats carry the change
    await until(lambda: first.info.running == 3, within=5)
    await second.withdraw()
    assert [w.worker_id for w in await board.workers()] == ["w1"]
    await first.withdraw()


async def test_a_worker_that_stops_heartbeating_expires_within_its_ttl(
    bus: Connect, worker_settings: WorkerSettings
) -> None:
    board = PresenceBoard(await bus("front"), worker_settings)
    client = await bus("doomed")
    doomed = Presence(client, worker_settings, "doomed", 2, lambda: 0)
    await doomed.announce()
    await client.close()  # as a SIGKILL would: no withdrawal, no more heartbeats
    gone_at = time.monotonic()
    assert [w.worker_id for w in await board.workers()] == ["doomed"]
    found: list[WorkerInfo] = [WorkerInfo("x", 1, 0, "h", 1)]
    while found:
        found = await board.workers()
    # Expired after the TTL (1.5 s), counted from the last heartbeat, which came at most then.
    assert time.monotonic() - gone_at <= worker_settings.presence_ttl_seconds + 1.0


async def test_a_live_worker_outlasts_its_ttl(bus: Connect, worker_settings: WorkerSettings) -> None:
    board = PresenceBoard(await bus("front"), worker_settings)
    alive = Presence(await bus("alive"), worker_settings, "alive", 2, lambda: 0)
    await alive.announce()
    deadline = time.monotonic() + worker_settings.presence_ttl_seconds * 3
    while time.monotonic() < deadline:
        assert [w.worker_id for w in await board.workers()] == ["alive"]
    await alive.withdraw()


async def test_placement_spreads_sessions_and_skips_full_draining_and_excluded_workers(
    bus: Connect, worker_settings: WorkerSettings
) -> None:
    board = PresenceBoard(await bus("front"), worker_settings)
    a = Presence(await bus("a"), worker_settings, "a", 2, lambda: 0)
    b = Presence(await bus("b"), worker_settings, "b", 2, lambda: 0)
    await a.announce()
    await b.announce()

    placed = [await board.place() for _ in range(4)]
    assert sorted(w.worker_id for w in placed if w) == ["a", "a", "b", "b"]
    assert placed[0] and placed[1] and placed[0].worker_id != placed[1].worker_id  # spread, not piled
    assert await board.place() is None  # every slot taken, counting the placements not yet announced

    fresh = PresenceBoard(await bus("front-2"), worker_settings)
    chosen = await fresh.place(exclude=frozenset({"a"}))
    assert chosen is not None and chosen.worker_id == "b"  # e.g. "a" refused the start
    await b.drain()
    assert (await fresh.place(exclude=frozenset({"a"}))) is None
    await a.withdraw()
    await b.withdraw()


def test_announcements_round_trip_and_garbage_is_refused() -> None:
    info = WorkerInfo("w", 4, 1, "host", 123, draining=False)
    assert WorkerInfo.from_bytes(info.to_bytes()) == info
    assert dataclasses.replace(info, draining=True).free == 0
    with pytest.raises(ValueError):
        WorkerInfo.from_bytes(b"{not json")
    with pytest.raises(ValueError):
        WorkerInfo.from_bytes(b'{"worker_id": "w"}')


async def test_the_bus_needs_the_right_token_and_never_logs_it(
    nats_server: LocalNatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = WorkerSettings(nats_url=nats_server.url, token="not-the-token", connect_timeout_seconds=2)
    with caplog.at_level(logging.DEBUG), pytest.raises(BusUnavailable) as refused:
        await connect(wrong, "intruder")
    assert "not-the-token" not in str(refused.value) and "not-the-token" not in caplog.text


async def test_an_unreachable_bus_is_said_plainly_and_quickly() -> None:
    closed = WorkerSettings(
        nats_url=f"nats://someone:pa55word@127.0.0.1:{free_port()}", connect_timeout_seconds=1
    )
    started = time.monotonic()
    with pytest.raises(BusUnavailable) as refused:
        await connect(closed, "front")
    assert time.monotonic() - started < 5
    assert "pa55word" not in str(refused.value) and "127.0.0.1" in str(refused.value)
    assert server_address("nats://u:p@host:4222") == "nats://host:4222"
