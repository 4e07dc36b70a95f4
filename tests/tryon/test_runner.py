"""The stream runner on its own: real WebRTC against the emulator, a host that writes down what it hears."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bot.emulator import DEV_API_KEY, Emulator
from bot.media.framebuffer import FrameBuffer
from bot.odyssey import BroadcastInfo, Odyssey, OdysseyError
from bot.tryon.engine import client_factory
from bot.tryon.errors import NoSuchSession
from bot.tryon.runner import LiveStream, StreamRunner, StreamStopped
from tests.helpers import PHOTO, fast_engine, until

pytestmark = pytest.mark.timeout(90)


class RecordingHost:
    """A StreamHost that records every call, in order, and stops the runner when it cannot continue."""

    def __init__(self, outfit: str = "red wool coat") -> None:
        self.outfit = outfit
        self.broadcast = False
        self.heard: list[tuple[Any, ...]] = []
        self.broadcasts: list[BroadcastInfo] = []
        self.stopped = asyncio.Event()

    def outfit_for_start(self) -> str:
        return self.outfit

    def broadcast_for_start(self) -> bool:
        return self.broadcast

    async def broadcast_ready(self, stream_id: str | None, info: BroadcastInfo) -> None:
        self.heard.append(("broadcast", stream_id))
        self.broadcasts.append(info)

    async def stream_started(self, stream: LiveStream) -> None:
        self.heard.append(("started", stream.index, stream.prompt))

    async def stream_running(self, stream: LiveStream) -> None:
        self.heard.append(("running", stream.index))

    async def stream_ended(self, stream: LiveStream, seconds: float, reason: str | None) -> None:
        self.heard.append(("ended", stream.index, reason, seconds))

    async def waiting_for_platform(self, waited_seconds: float) -> None:
        self.heard.append(("waiting",))

    def stream_dropped(self) -> None:
        self.heard.append(("dropped",))

    async def could_not_continue(self, error: OdysseyError | TimeoutError) -> None:
        self.heard.append(("could_not_continue", type(error).__name__))
        self.stopped.set()

    def kinds(self) -> list[str]:
        return [str(entry[0]) for entry in self.heard]


def current(runner: StreamRunner) -> LiveStream | None:
    """The runner's live stream, read afresh (type checkers keep no narrowing across calls)."""
    return runner.live


Run = Callable[..., Awaitable[tuple[StreamRunner, RecordingHost, "asyncio.Task[None]"]]]


@pytest.fixture
async def run_streams(emulator_factory: Callable[..., Awaitable[Emulator]]) -> AsyncIterator[Run]:
    """Start a runner against a fresh emulator (emulator and engine settings as keyword overrides)."""
    tasks: list[tuple[RecordingHost, asyncio.Task[None]]] = []

    async def start(
        emulator: Emulator, host: RecordingHost | None = None, **settings: Any
    ) -> tuple[StreamRunner, RecordingHost, asyncio.Task[None]]:
        host = host or RecordingHost()
        engine = fast_engine(**settings)
        runner = StreamRunner(
            host,
            client_factory(DEV_API_KEY, emulator.url),
            engine,
            photo=PHOTO,
            portrait=True,
            buffer=FrameBuffer(sample_fps=4, window_seconds=3.0, max_width=96),
            stopped=host.stopped,
            label="test",
        )
        task = asyncio.create_task(runner.run())
        tasks.append((host, task))
        return runner, host, task

    try:
        yield start
    finally:
        for host, task in tasks:
            host.stopped.set()
            await asyncio.gather(task, return_exceptions=True)


async def test_streams_roll_over_on_the_same_connection_and_close_on_stop(
    emulator_factory: Callable[..., Awaitable[Emulator]], run_streams: Run
) -> None:
    emulator = await emulator_factory()
    runner, host, task = await run_streams(emulator, stream_cap_seconds=2.5, rollover_margin_seconds=0.5)
    await until(lambda: runner.live is not None, within=20)
    first = current(runner)
    host.outfit = "blue denim jacket"  # the next stream starts with the host's newest outfit
    await until(lambda: runner.rollovers >= 1, within=20)
    second = current(runner)
    assert first is not None and second is not None and second.client is first.client  # no reconnect
    host.stopped.set()
    await asyncio.wait_for(task, 20)

    assert host.kinds() == ["started", "running", "ended", "started", "running", "ended"]
    assert host.heard[2][2] == "rollover" and host.heard[5][2] is None
    assert host.heard[3][2] == "blue denim jacket"
    assert len(set(runner.stream_ids)) == 2 and current(runner) is None
    counted = host.heard[2][3] + host.heard[5][3]
    assert runner.streamed_seconds == pytest.approx(counted)
    assert runner.frames_received > 0


async def test_roll_over_now_starts_a_broadcast_part_at_once_on_the_same_connection(
    emulator_factory: Callable[..., Awaitable[Emulator]], run_streams: Run
) -> None:
    emulator = await emulator_factory()
    runner, host, task = await run_streams(emulator)  # the cap is far away (150 s)
    await until(lambda: runner.live is not None, within=20)
    first = current(runner)
    assert first is not None and not host.broadcasts  # not shared yet: no broadcast
    host.broadcast = True
    runner.roll_over_now()  # what "Share live" does
    await until(lambda: host.broadcasts, within=20)
    second = current(runner)
    assert second is not None and second.client is first.client and runner.rollovers == 1
    assert host.heard[-1] == ("broadcast", second.stream_id)
    assert host.kinds()[:5] == ["started", "running", "ended", "started", "running"]
    info = host.broadcasts[0]
    async with await Odyssey.connect_to_stream(info.webrtc_url, info.spectator_token) as spectator:
        await asyncio.wait_for(spectator.frames.get(), 10)  # spectators see the new part
    host.stopped.set()
    await asyncio.wait_for(task, 20)


async def test_apply_shows_an_outfit_or_says_the_platform_refused(
    emulator_factory: Callable[..., Awaitable[Emulator]], run_streams: Run
) -> None:
    emulator = await emulator_factory()
    runner, host, task = await run_streams(emulator)
    await runner.apply("green silk dress")
    live = current(runner)
    assert live is not None and live.prompt == "green silk dress"

    emulator.faults.update_error_reason = "internal_error"
    with pytest.raises(OdysseyError):
        await runner.apply("black leather jacket")
    assert live.prompt == "green silk dress"  # not on screen, so not remembered as shown

    host.stopped.set()
    await asyncio.wait_for(task, 20)
    with pytest.raises(NoSuchSession):
        await runner.apply("anything")


async def test_a_dropped_connection_reconnects_with_a_fresh_client(
    emulator_factory: Callable[..., Awaitable[Emulator]], run_streams: Run
) -> None:
    emulator = await emulator_factory()
    emulator.faults.drop_peer_after_seconds = 1.0
    runner, host, task = await run_streams(emulator)
    await until(lambda: runner.rollovers >= 1, within=30)
    emulator.faults.drop_peer_after_seconds = None
    host.stopped.set()
    await asyncio.wait_for(task, 20)
    assert host.kinds()[:5] == ["started", "running", "dropped", "ended", "started"]
    assert host.heard[3][2] == "disconnected"


async def test_stopped_before_the_first_stream_runs(
    emulator_factory: Callable[..., Awaitable[Emulator]], run_streams: Run
) -> None:
    emulator = await emulator_factory()
    emulator.faults.stream_start_delay_seconds = 30.0
    runner, host, task = await run_streams(emulator)
    await asyncio.sleep(0.5)
    host.stopped.set()
    with pytest.raises(StreamStopped):
        await asyncio.wait_for(task, 20)
    assert host.heard == [] and runner.stream_ids == []


async def test_a_roll_over_the_platform_refuses_ends_the_run(
    emulator_factory: Callable[..., Awaitable[Emulator]], run_streams: Run
) -> None:
    emulator = await emulator_factory()
    emulator.faults.drop_peer_after_seconds = 1.0
    runner, host, task = await run_streams(emulator)
    await until(lambda: runner.live is not None, within=20)
    emulator.faults.force_429_code = "MONTHLY_LIMIT_REACHED"
    await asyncio.wait_for(task, 30)
    assert host.kinds() == ["started", "running", "dropped", "ended", "could_not_continue"]
    assert current(runner) is None and len(runner.stream_ids) == 1
