"""A worker's side of a session's events: its ledger writes and presenter events, published in order.

Each event goes into the JetStream stream `<prefix>_events` and is only acknowledged once stored there; a
publish that fails while NATS restarts is retried (with the same `Nats-Msg-Id`, so it is stored once) for
up to `PUBLISH_SECONDS` before the session gives up on it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from bot.deadline import wait_within
from bot.tryon.models import SessionState
from bot.tryon.presenter import (
    BroadcastReady,
    ErrorReported,
    RecordingReady,
    SnapshotReady,
    SnippetReady,
    StatusChanged,
)
from bot.workers import protocol
from bot.workers.protocol import Message
from bot.workers.settings import WorkerSettings

log = logging.getLogger(__name__)

# One publish attempt, and how long a session keeps retrying one (a NATS restart takes a few seconds).
ATTEMPT_SECONDS = 5.0
PUBLISH_SECONDS = 60.0
# Events the bot has not acknowledged are kept this long (a bot down longer loses its sessions' events).
KEEP_SECONDS = 24 * 3600.0


async def ensure_events_stream(client: Client, settings: WorkerSettings) -> None:
    """Create the deployment's events stream unless it exists (both the bot and the workers call this)."""
    js = client.jetstream(timeout=ATTEMPT_SECONDS)
    name = protocol.events_stream(settings)
    try:
        await wait_within(js.stream_info(name), ATTEMPT_SECONDS)
    except NotFoundError:
        config = StreamConfig(
            name=name,
            subjects=[settings.subject("events", ">")],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=KEEP_SECONDS,
            duplicate_window=120.0,
        )
        await wait_within(js.add_stream(config), ATTEMPT_SECONDS)


class EventPublisher:
    """Publishes one session's events in the order they are made, each stored exactly once."""

    def __init__(self, client: Client, settings: WorkerSettings, session_id: str) -> None:
        self._js = client.jetstream(timeout=ATTEMPT_SECONDS)
        self._subject = protocol.events_subject(settings, session_id)
        self._session_id = session_id
        self._sequence = 0
        self._order = asyncio.Lock()

    async def publish(self, message: Message) -> None:
        """Store `message` in the events stream; raises after `PUBLISH_SECONDS` of failed attempts."""
        async with self._order:
            self._sequence += 1
            event_id = protocol.event_id(self._session_id, self._sequence)
            headers = message.headers() | {protocol.EVENT_ID: event_id}
            give_up = time.monotonic() + PUBLISH_SECONDS
            while True:
                try:
                    await wait_within(
                        self._js.publish(self._subject, message.data, headers=headers), ATTEMPT_SECONDS
                    )
                    return
                except (NatsError, TimeoutError) as error:
                    if time.monotonic() >= give_up:
                        raise
                    log.warning("session %s: event not stored yet (%r), retrying", self._session_id, error)
                    await asyncio.sleep(0.5)


class BusLedger:
    """A session's ledger writes, sent to the bot as events (the bot writes them to its SQLite store)."""

    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher
        # The session's count of decoded frames, sent with each heartbeat (for monitoring and the benchmarks).
        self.count_frames: Callable[[], int] | None = None

    async def state_changed(
        self,
        session_id: str,
        state: SessionState,
        *,
        error: str | None = None,
        error_reason: str | None = None,
    ) -> None:
        """Send the new state."""
        fields = {"state": str(state), "error": error, "error_reason": error_reason}
        await self._publisher.publish(Message("state", fields))

    async def heartbeat(self, session_id: str, streamed_seconds: float, stream_seconds: float | None) -> None:
        """Send the streamed seconds (and the frames received so far, if counted)."""
        frames = self.count_frames() if self.count_frames is not None else None
        fields = {
            "streamed_seconds": streamed_seconds,
            "stream_seconds": stream_seconds,
            "frames_received": frames,
        }
        await self._publisher.publish(Message("heartbeat", fields))

    async def stream_started(self, session_id: str, stream_id: str, prompt: str) -> None:
        """Send the new stream's id."""
        await self._publisher.publish(Message("stream_started", {"stream_id": stream_id, "prompt": prompt}))

    async def stream_ended(self, session_id: str, stream_id: str, seconds: float, reason: str) -> None:
        """Send the stream's end."""
        fields = {"stream_id": stream_id, "seconds": seconds, "reason": reason}
        await self._publisher.publish(Message("stream_ended", fields))

    async def prompt_status(self, prompt_id: int, status: str, refusal_reason: str | None = None) -> None:
        """Send whether a prompt was applied."""
        fields = {"prompt_id": prompt_id, "status": status, "refusal_reason": refusal_reason}
        await self._publisher.publish(Message("prompt", fields))

    async def settle(self, session_id: str, streamed_seconds: float) -> None:
        """Send the final seconds to charge."""
        await self._publisher.publish(Message("settle", {"streamed_seconds": streamed_seconds}))


class BusPresenter:
    """A session's presenter events, sent to the bot, which shows them to the member."""

    def __init__(self, publisher: EventPublisher, upload_budget_bytes: int | None) -> None:
        self._publisher = publisher
        self._upload_budget_bytes = upload_budget_bytes

    @property
    def upload_budget_bytes(self) -> int | None:
        """The budget the bot's presenter announced at the start."""
        return self._upload_budget_bytes

    async def status_changed(self, event: StatusChanged) -> None:
        """Send the status."""
        await self._publisher.publish(protocol.status_message(event))

    async def snippet_ready(self, event: SnippetReady) -> None:
        """Send the snippet's bytes."""
        await self._publisher.publish(protocol.snippet_message(event))

    async def snapshot_ready(self, event: SnapshotReady) -> None:
        """Send the still's bytes."""
        await self._publisher.publish(protocol.snapshot_message(event))

    async def broadcast_ready(self, event: BroadcastReady) -> None:
        """Send where spectators join the stream part (the bot's viewer hands it to the pages)."""
        await self._publisher.publish(protocol.broadcast_message(event))

    async def recording_ready(self, event: RecordingReady) -> None:
        """Send the recording links."""
        await self._publisher.publish(protocol.recording_message(event))

    async def error(self, event: ErrorReported) -> None:
        """Send the error report."""
        await self._publisher.publish(protocol.error_message(event))
