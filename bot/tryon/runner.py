"""The stream lifecycle of one try-on: connect, stream, roll over before the cap or after a drop, close.

A `StreamRunner` knows Odyssey and nothing of members, quotas or the store: it asks its `StreamHost` (the
session) which outfit a new stream starts with and tells it every stream that starts, runs and ends. This
is the unit a session worker in another process runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from bot.deadline import wait_within
from bot.media.framebuffer import FrameBuffer
from bot.media.highlight import HighlightReel
from bot.odyssey import BroadcastInfo, Odyssey, OdysseyError
from bot.odyssey.errors import STREAM_ENDING_REASONS
from bot.tryon.errors import NoSuchSession
from bot.tryon.settings import EngineSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

ClientFactory = Callable[[], Odyssey]


class StreamStopped(Exception):
    """The runner was stopped while waiting on something."""


@dataclasses.dataclass
class LiveStream:
    """One stream of the try-on (a new one per roll-over)."""

    client: Odyssey
    index: int
    stream_id: str
    started: float
    # The outfit on screen.
    prompt: str
    loss: StreamLoss
    pump: asyncio.Task[None] | None = None
    # Its streamed seconds, once they stopped counting (None while it runs).
    seconds: float | None = None
    # True once the platform confirmed its end (a roll-over on the same connection).
    ended: bool = False


class StreamLoss:
    """Set by the client's callbacks when the platform ends the stream or drops the connection."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.reason: str | None = None

    def report(self, reason: str) -> None:
        """Remember the first reason and wake the watcher."""
        if self.reason is None:
            self.reason = reason
        self.event.set()


class StreamHost(Protocol):
    """What a runner asks of, and tells, the session it streams for."""

    def outfit_for_start(self) -> str:
        """The outfit a stream about to start carries (read just before the start is sent)."""

    def broadcast_for_start(self) -> bool:
        """Whether a stream about to start is broadcast (spectators may watch it over WHEP)."""

    async def broadcast_ready(self, stream_id: str | None, info: BroadcastInfo) -> None:
        """A broadcast stream can be watched: its WHEP URL and spectator token."""

    async def stream_started(self, stream: LiveStream) -> None:
        """Record a stream the platform started, before it becomes current; raising abandons it."""

    async def stream_running(self, stream: LiveStream) -> None:
        """The stream is current: the first one, or the next after a roll-over."""

    async def stream_ended(self, stream: LiveStream, seconds: float, reason: str | None) -> None:
        """A stream stopped counting: "rollover", the platform's reason for losing it, or None (stopped)."""

    async def waiting_for_platform(self, waited_seconds: float) -> None:
        """The platform queues the connection (HTTP 503) and has for this long."""

    def stream_dropped(self) -> None:
        """The video froze unplanned; a fresh connection follows (may take a while)."""

    async def could_not_continue(self, error: OdysseyError | TimeoutError) -> None:
        """No stream could follow a roll-over; the runner stops after this."""


class StreamRunner:
    """Runs the streams of one try-on until stopped: `run()` once, `apply()` outfits, `stop()` any time."""

    def __init__(
        self,
        host: StreamHost,
        clients: ClientFactory,
        settings: EngineSettings,
        *,
        photo: bytes,
        portrait: bool,
        buffer: FrameBuffer,
        stopped: asyncio.Event,
        label: str,
        clock: Callable[[], float] = time.monotonic,
        reel: HighlightReel | None = None,
    ) -> None:
        self._host = host
        self._clients = clients
        self._settings = settings
        self._photo = photo
        self._portrait = portrait
        self._buffer = buffer
        # Samples the frames the buffer keeps for the session's highlight.
        self._reel = reel
        self._stopped = stopped
        self._label = label  # for logs: the session id
        self._clock = clock
        self.stream_ids: list[str] = []
        self.rollovers = 0
        # Decoded frames taken from the client (for monitoring and the benchmarks).
        self.frames_received = 0
        self._closed_seconds = 0.0
        self._live: LiveStream | None = None
        self._ready = asyncio.Event()
        # Set to replace the current stream by a fresh one now (on the same connection, as at the cap).
        self._roll_over_now = asyncio.Event()

    # ----- reading -------------------------------------------------------------------------------------

    @property
    def streamed_seconds(self) -> float:
        """Seconds actually streamed so far, over every stream."""
        live = self._live
        running = self._clock() - live.started if live is not None else 0.0
        return self._closed_seconds + running

    @property
    def live(self) -> LiveStream | None:
        """The current stream (None before the first, in a roll-over gap, and after the end)."""
        return self._live

    # ----- steering --------------------------------------------------------------------------------------

    async def apply(self, outfit: str) -> None:
        """Show `outfit` on the live stream, waiting through a roll-over gap; returns once acknowledged.

        NoSuchSession if the runner stops meanwhile; OdysseyError or TimeoutError if the platform did not
        apply it.
        """
        try:
            await wait_within(self._until_stopped(self._ready.wait()), self._settings.connect_timeout_seconds)
        except StreamStopped:
            raise NoSuchSession() from None
        live = self._live
        if live is None:
            raise NoSuchSession()
        # A stream started during a roll-over gap already carries the newest outfit.
        if live.prompt != outfit:
            await wait_within(live.client.interact(outfit), self._settings.ack_timeout_seconds)
            live.prompt = outfit

    async def _until_stopped(self, work: Awaitable[T]) -> T:
        """Await `work`, abandoning it (and raising StreamStopped) if the runner is stopped first."""
        task = asyncio.ensure_future(work)
        stopper = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({task, stopper}, return_when="FIRST_COMPLETED")
        finally:
            stopper.cancel()
            # Also when this wait itself is cancelled: left running, `work` could connect a stream nobody
            # would ever close.
            abandoned = not task.done()
            if abandoned:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if abandoned:
            raise StreamStopped()
        return task.result()

    def roll_over_now(self) -> None:
        """Replace the current stream by a fresh one at once, seamlessly as before the cap (the next stream
        reads the host's outfit and broadcast mode again). Nothing happens in a roll-over gap or before the
        first stream: the stream starting next reads them anyway."""
        if self._live is not None:
            self._roll_over_now.set()

    # ----- the run -----------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Open the first stream, then watch and roll over until stopped; every stream is closed on return.

        Raises StreamStopped if stopped before the first stream ran, and the platform's error if the first
        stream could not start.
        """
        index = 0
        live: LiveStream | None = await self._until_stopped(self._open(index))
        while live is not None:
            following: LiveStream | None = None
            try:
                if index > 0:
                    self.rollovers += 1
                await self._host.stream_running(live)
                rolling_over = await self._watch(live)
                if rolling_over and live.loss.reason is None:
                    following = await self._next_on_same_connection(live, index + 1)
                elif rolling_over:
                    self._host.stream_dropped()
            except BaseException:
                await self._close(live)
                raise
            index += 1
            if following is None:
                await self._close(live)
                if not rolling_over:
                    return
                following = await self._roll_over(index)
            live = following

    async def _watch(self, live: LiveStream) -> bool:
        """Wait until the stream must end; True when it should roll over to a fresh stream."""
        cap_at = live.started + self._settings.rollover_after_seconds
        while True:
            if self._stopped.is_set():
                return False
            if live.loss.event.is_set():
                log.info(
                    "session %s: stream %d lost (%s), rolling over", self._label, live.index, live.loss.reason
                )
                return True
            now = self._clock()
            if now >= cap_at:
                return True
            if self._roll_over_now.is_set():
                self._roll_over_now.clear()
                log.info("session %s: rolling over now, as asked", self._label)
                return True
            waiters = [
                asyncio.ensure_future(self._stopped.wait()),
                asyncio.ensure_future(live.loss.event.wait()),
                asyncio.ensure_future(self._roll_over_now.wait()),
            ]
            try:
                await asyncio.wait(waiters, timeout=cap_at - now + 0.01, return_when="FIRST_COMPLETED")
            finally:
                for waiter in waiters:
                    waiter.cancel()

    async def _next_on_same_connection(self, live: LiveStream, index: int) -> LiveStream | None:
        """Roll over before the cap without reconnecting: end the stream, start the next on the connection.

        The platform allows several streams, one after another, per connection; this keeps the gap to an
        end and a start. None (the caller then reconnects) when either fails.
        """
        seconds = self._stop_counting(live)
        await self._host.stream_ended(live, seconds, "rollover")
        try:
            await wait_within(live.client.end_stream(), self._settings.end_timeout_seconds)
            live.ended = True
            prompt = self._host.outfit_for_start()
            stream_id = await wait_within(
                self._start(live.client, prompt), self._settings.start_timeout_seconds
            )
        except (OdysseyError, TimeoutError) as exc:
            log.info("session %s: no next stream on the same connection (%r), reconnecting", self._label, exc)
            return None
        following = LiveStream(live.client, index, stream_id, self._clock(), prompt, live.loss, live.pump)
        await self._host.stream_started(following)
        return self._make_current(following)

    async def _roll_over(self, index: int) -> LiveStream | None:
        """Open the next stream after the cap or a drop; None (and the runner stops) if that is impossible."""
        try:
            return await self._until_stopped(self._open(index))
        except StreamStopped:
            return None
        except (OdysseyError, TimeoutError) as exc:
            log.warning("session %s: roll-over to stream %d failed: %r", self._label, index, exc)
            await self._host.could_not_continue(exc)
            return None

    async def _open(self, index: int) -> LiveStream:
        """Connect a fresh client and start a stream with the photo and the host's outfit."""
        client = self._clients()
        loss = StreamLoss()

        def on_stream_error(reason: str, message: str) -> None:
            # The cap, a lost lease, a usage limit: the platform ended the stream. Others (e.g. a refused
            # update) leave it playing.
            if reason in STREAM_ENDING_REASONS:
                loss.report(reason)
            else:
                log.info("session %s: stream error %s: %s", self._label, reason, message)

        def on_disconnected() -> None:
            loss.report("disconnected")

        async def on_broadcast_ready(info: BroadcastInfo) -> None:
            # Sent right after `stream_started`: the client's current stream is the one broadcast.
            await self._host.broadcast_ready(client.current_stream_id, info)

        try:
            await wait_within(
                client.connect(
                    on_stream_error=on_stream_error,
                    on_disconnected=on_disconnected,
                    on_queue=self._host.waiting_for_platform,
                    on_broadcast_ready=on_broadcast_ready,
                ),
                self._settings.connect_timeout_seconds,
            )
            prompt = self._host.outfit_for_start()
            stream_id = await wait_within(self._start(client, prompt), self._settings.start_timeout_seconds)
            live = LiveStream(client, index, stream_id, self._clock(), prompt, loss)
            await self._host.stream_started(live)
        except BaseException:
            await close_client(client, self._settings.end_timeout_seconds)
            raise
        # No await from here on: a cancellation cannot leave a connected client behind.
        live.pump = asyncio.create_task(self._pump_frames(client), name=f"frames-{self._label}-{index}")
        return self._make_current(live)

    async def _start(self, client: Odyssey, prompt: str) -> str:
        """Start a stream with the photo, in broadcast mode when the host wants it; returns its id."""
        broadcast = self._host.broadcast_for_start()
        return await client.start_stream(
            prompt, portrait=self._portrait, image=self._photo, broadcast=broadcast
        )

    def _make_current(self, live: LiveStream) -> LiveStream:
        """Make `live` the current stream (synchronous: nothing can interrupt it halfway)."""
        self.stream_ids.append(live.stream_id)
        self._live = live
        self._ready.set()
        return live

    async def _pump_frames(self, client: Odyssey) -> None:
        async for stream_frame in client.frames:
            self.frames_received += 1
            kept = await self._buffer.add(stream_frame)
            if kept is not None and self._reel is not None:
                await self._reel.add(kept)

    def _stop_counting(self, live: LiveStream) -> float:
        """Stop counting `live`'s seconds (once) and return them; it is no longer the current stream."""
        if live.seconds is None:
            live.seconds = self._clock() - live.started
            self._closed_seconds += live.seconds
        if self._live is live:
            self._live = None
            self._ready.clear()
        return live.seconds

    async def _close(self, live: LiveStream) -> None:
        """End the stream (unless the platform already did), disconnect, and report the stream's seconds."""
        seconds = self._stop_counting(live)
        # Read before disconnecting: our own disconnect fires `on_disconnected` too.
        lost_reason = live.loss.reason
        try:
            # Reported now, when its seconds stop counting: a roll-over gap includes ending and disconnecting.
            await self._host.stream_ended(live, seconds, lost_reason)
        finally:
            if lost_reason is None and not live.ended:
                with contextlib.suppress(OdysseyError, TimeoutError):
                    await wait_within(live.client.end_stream(), self._settings.end_timeout_seconds)
            await close_client(live.client, self._settings.end_timeout_seconds)
            if live.pump is not None:
                live.pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await live.pump


async def close_client(client: Odyssey, limit_seconds: float) -> None:
    """Disconnect and release a client, whatever state it is in."""
    with contextlib.suppress(Exception):
        await wait_within(client.disconnect(), limit_seconds)
    with contextlib.suppress(Exception):
        await wait_within(client.aclose(), limit_seconds)
