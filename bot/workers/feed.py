"""The bot's side of one session's events: its durable consumer, read in order, each event handed out once.

Every event carries its session's sequence number (`Nats-Msg-Id` = `<sid>:<seq>`, see `events.py`). The
feed keeps a floor, the last sequence applied, and drops an event that comes again at or below it: one
whose acknowledgement was lost, or one redelivered to a bot restarted after a crash.

A floor is only right if events are applied in order, and JetStream redelivers an unacknowledged event
after `ack_wait`, behind newer ones. So when a restarted bot takes a session back, and when the sequence
skips (an event delivered but lost on the way, e.g. in a NATS restart), the consumer is made again from its
acknowledgement floor: everything not acknowledged comes again at once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from bot.deadline import wait_within
from bot.workers import protocol
from bot.workers.events import KEEP_SECONDS
from bot.workers.settings import WorkerSettings

log = logging.getLogger(__name__)

# Each JetStream call of the feed.
CALL_SECONDS = 5.0
# An event the bot took but did not acknowledge comes again after this (unless the consumer is made again).
ACK_WAIT_SECONDS = 30.0
FETCH_BATCH = 32
FETCH_SECONDS = 0.5


@dataclasses.dataclass(frozen=True)
class Event:
    """One new event of the session: its sequence number (None from a worker that sends none) and message."""

    sequence: int | None
    msg: Msg

    @property
    def kind(self) -> str:
        """What the event is (`heartbeat`, `snippet`, ...), from its header."""
        return (self.msg.headers or {}).get(protocol.KIND, "")


class EventFeed:
    """One session's events from its durable consumer `bot-<sid>`: each new one once, in order."""

    def __init__(
        self, client: Client, settings: WorkerSettings, session_id: str, applied_through: int = 0
    ) -> None:
        self._js = client.jetstream(timeout=CALL_SECONDS)
        self._settings = settings
        self._stream = protocol.events_stream(settings)
        self.session_id = session_id
        # The floor: the sequence of the last event applied.
        self.applied_through = applied_through
        # Events that came again and were dropped.
        self.dropped = 0
        self._subscription: Any = None
        self._rewind_due = False
        # Where the consumer being made again starts (kept should making it fail half-way).
        self._rewind_after: int | None = None
        # The first sequence expected after the last rewind: if it is skipped even so, it was never stored.
        self._replayed_from: int | None = None

    @property
    def consumer_name(self) -> str:
        """The durable consumer of this session's events (a restarted bot finds it by this name)."""
        return f"bot-{self.session_id}"

    async def open(self, *, rewind: bool) -> None:
        """Make or find the consumer; `rewind`: make it again from its acknowledgement floor."""
        if rewind:
            await self._rewind()
        else:
            self._subscription = await self._subscribe(after=0)

    async def next_events(self) -> list[Event]:
        """The next new events, in order; empty when none came within `FETCH_SECONDS`."""
        while True:
            try:
                if self._rewind_due:
                    await self._rewind()
                messages = await self._subscription.fetch(batch=FETCH_BATCH, timeout=FETCH_SECONDS)
            except (NatsTimeout, TimeoutError):
                return []
            except NatsError as error:
                log.debug("session %s: events not readable now (%r)", self.session_id, error)
                await asyncio.sleep(FETCH_SECONDS)
                return []
            events = await self._new_events(messages)
            if events or not messages:
                return events

    async def done(self, event: Event) -> None:
        """The event was applied: raise the floor to it and acknowledge it."""
        if event.sequence is not None:
            self.applied_through = max(self.applied_through, event.sequence)
        await self._acknowledge(event.msg)

    async def close(self, *, delete: bool) -> None:
        """Stop reading; with `delete`, also remove the consumer and the session's stored events."""
        await self._unsubscribe()
        if not delete:
            return
        with contextlib.suppress(Exception):
            await wait_within(self._js.delete_consumer(self._stream, self.consumer_name), CALL_SECONDS)
        with contextlib.suppress(Exception):
            subject = protocol.events_subject(self._settings, self.session_id)
            await wait_within(self._js.purge_stream(self._stream, subject=subject), CALL_SECONDS)

    async def _new_events(self, messages: list[Msg]) -> list[Event]:
        """The messages after the floor, up to a skip in the sequence; those at or below it acknowledged."""
        events: list[Event] = []
        expected = self.applied_through + 1
        for msg in messages:
            sequence = protocol.event_sequence(msg.headers)
            if sequence is not None and sequence < expected:
                self.dropped += 1
                await self._acknowledge(msg)
                continue
            if sequence is not None and sequence > expected and not self._never_stored(expected, sequence):
                self._rewind_due = True
                break
            events.append(Event(sequence, msg))
            expected = expected if sequence is None else sequence + 1
        return events

    def _never_stored(self, expected: int, sequence: int) -> bool:
        """True if a rewind already read past `expected` without finding it: the worker gave up on those."""
        if self._replayed_from != expected:
            return False
        log.warning("session %s: events %d to %d were never stored", self.session_id, expected, sequence - 1)
        return True

    async def _rewind(self) -> None:
        """Make the consumer again from its acknowledgement floor: the unacknowledged events come in order."""
        if self._rewind_after is None:
            self._rewind_after = await self._acknowledged_through()
        await self._unsubscribe()
        with contextlib.suppress(NotFoundError):
            await wait_within(self._js.delete_consumer(self._stream, self.consumer_name), CALL_SECONDS)
        self._subscription = await self._subscribe(after=self._rewind_after)
        self._rewind_after = None
        self._rewind_due = False
        self._replayed_from = self.applied_through + 1
        log.info("session %s: events read again from the first unacknowledged one", self.session_id)

    async def _acknowledged_through(self) -> int:
        """The stream sequence up to which every event was acknowledged (0 without a consumer)."""
        try:
            info = await wait_within(self._js.consumer_info(self._stream, self.consumer_name), CALL_SECONDS)
        except NotFoundError:
            return 0
        return info.ack_floor.stream_seq if info.ack_floor is not None else 0

    async def _subscribe(self, *, after: int) -> Any:
        """Bind to the consumer; if missing, make it to deliver the events after stream sequence `after`."""
        subject = protocol.events_subject(self._settings, self.session_id)
        config = ConsumerConfig(
            durable_name=self.consumer_name,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if after else DeliverPolicy.ALL,
            opt_start_seq=after + 1 if after else None,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT_SECONDS,
            # A consumer nobody reads (its session ended while the bot was away) goes by itself.
            inactive_threshold=KEEP_SECONDS,
            filter_subject=subject,
        )
        subscribing = self._js.pull_subscribe(
            subject, durable=self.consumer_name, stream=self._stream, config=config
        )
        return await wait_within(subscribing, CALL_SECONDS)

    async def _unsubscribe(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with contextlib.suppress(Exception):
                await wait_within(subscription.unsubscribe(), CALL_SECONDS)

    async def _acknowledge(self, msg: Msg) -> None:
        with contextlib.suppress(Exception):
            await wait_within(msg.ack(), CALL_SECONDS)
