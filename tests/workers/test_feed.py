"""A session's event feed on a real NATS server: in order, each event once, whatever comes again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from bot.workers import protocol
from bot.workers.bus import connect
from bot.workers.events import ensure_events_stream
from bot.workers.feed import EventFeed
from bot.workers.protocol import Message
from bot.workers.settings import WorkerSettings

pytestmark = pytest.mark.timeout(60)

SESSION = "s1"


@pytest.fixture
async def client(worker_settings: WorkerSettings) -> AsyncIterator[Client]:
    opened = await connect(worker_settings, "feed-test")
    await ensure_events_stream(opened, worker_settings)
    try:
        yield opened
    finally:
        await opened.close()


async def publish(client: Client, settings: WorkerSettings, *sequences: int) -> None:
    """Store the session's events with these sequence numbers, as a worker's publisher would."""
    js = client.jetstream(timeout=5.0)
    for sequence in sequences:
        headers = Message("heartbeat", {"n": sequence}).headers()
        headers[protocol.EVENT_ID] = protocol.event_id(SESSION, sequence)
        await js.publish(protocol.events_subject(settings, SESSION), b"", headers=headers)


async def apply_all(feed: EventFeed) -> list[int | None]:
    """Take events until none come; their sequences, each marked done (applied and acknowledged)."""
    taken: list[int | None] = []
    while events := await feed.next_events():
        for event in events:
            taken.append(event.sequence)
            await feed.done(event)
    return taken


async def test_a_delivery_lost_on_the_way_is_read_again_in_order_before_newer_events(
    client: Client, worker_settings: WorkerSettings
) -> None:
    feed = EventFeed(client, worker_settings, SESSION)
    await feed.open(rewind=False)
    await publish(client, worker_settings, 1, 2)
    assert await apply_all(feed) == [1, 2]

    await publish(client, worker_settings, 3, 4, 5)
    # Event 3 is delivered to another inbox and never acknowledged: lost on its way to the bot.
    thief = await client.jetstream().pull_subscribe_bind(
        feed.consumer_name, stream=protocol.events_stream(worker_settings)
    )
    [lost] = await thief.fetch(batch=1, timeout=5.0)
    assert protocol.event_sequence(lost.headers) == 3
    assert await apply_all(feed) == [3, 4, 5]  # not 4, 5 now and 3 after ack_wait
    assert feed.dropped == 0
    await feed.close(delete=True)


async def test_a_restarted_bot_drops_what_it_applied_though_the_acknowledgements_were_lost(
    client: Client, worker_settings: WorkerSettings
) -> None:
    crashed = EventFeed(client, worker_settings, SESSION)
    await crashed.open(rewind=False)
    await publish(client, worker_settings, 1, 2, 3)
    applied = await crashed.next_events()  # applied and recorded (floor 3), never acknowledged
    assert [event.sequence for event in applied] == [1, 2, 3]
    await crashed.close(delete=False)

    await publish(client, worker_settings, 4)
    restarted = EventFeed(client, worker_settings, SESSION, applied_through=3)
    await restarted.open(rewind=True)
    assert await apply_all(restarted) == [4]
    assert restarted.dropped == 3
    await restarted.close(delete=True)


async def test_events_never_stored_are_skipped_after_one_look(
    client: Client, worker_settings: WorkerSettings
) -> None:
    feed = EventFeed(client, worker_settings, SESSION)
    await feed.open(rewind=False)
    await publish(client, worker_settings, 1, 2, 5)  # the worker gave up on 3 and 4
    assert await apply_all(feed) == [1, 2, 5]
    await publish(client, worker_settings, 6)
    assert await apply_all(feed) == [6]
    await feed.close(delete=True)


async def test_close_with_delete_removes_the_consumer_and_the_events(
    client: Client, worker_settings: WorkerSettings
) -> None:
    feed = EventFeed(client, worker_settings, SESSION)
    await feed.open(rewind=False)
    await publish(client, worker_settings, 1)
    await feed.close(delete=True)
    js: JetStreamContext = client.jetstream()
    stream = protocol.events_stream(worker_settings)
    info = await js.stream_info(stream, subjects_filter=protocol.events_subject(worker_settings, SESSION))
    assert not info.state.subjects and await js.consumers_info(stream) == []
