"""Odyssey faults through the real bot: the member is told, the slot frees, usage settles once, nothing leaks.

Each case drives `/tryon start` through the fake Discord against the emulator (real WebRTC on loopback, real
SQLite), injects one platform fault with `emulator.faults` (or the emulator's configuration), and then checks
the same things: a plain sentence reached the member within 5 s of the fault taking effect, the slot is free
(the next member streams), the ledger holds exactly one charge or refund, the recording of what streamed is
offered, and no session, task or peer connection is left behind.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCPeerConnection

from bot.app import TryOnBot
from bot.config import BotConfig
from bot.emulator import DEV_API_KEY, Emulator, Faults
from bot.odyssey import Odyssey
from tests.conftest import EmulatorFactory
from tests.fakediscord import BotDriver, FakeDiscord, FakeMessage, RecordedRequest
from tests.fakediscord import payloads as p
from tests.helpers import (
    fast_engine,
    make_bot_config,
    photo_option,
    session_id_of,
    start_streaming,
    until,
    wait_status,
)
from tests.reliability.conftest import assert_nothing_running, assert_settled_once

pytestmark = pytest.mark.timeout(60)

Ctx = Callable[..., p.InteractionContext]

TOLD_WITHIN = 5.0  # the limit: the member hears about a fault within 5 s of it taking effect
QUEUE_TIMEOUT = 2.0  # the client's wait for a free streamer in these tests (30 s by default)
RECORDING_POLL_LIMIT = 4.0  # how long the engine waits for a recording in these tests


@pytest.fixture
async def emulator(emulator_factory: EmulatorFactory, request: pytest.FixtureRequest) -> Emulator:
    """The test emulator, with the case's configuration overrides (indirect parametrisation)."""
    overrides: dict[str, Any] = getattr(request, "param", {})
    return await emulator_factory(**overrides)


@pytest.fixture
def bot_config(tmp_path: Path, emulator: Emulator) -> BotConfig:
    """One slot, so "the slot is free" means the next member can stream; short recording waits."""
    engine = fast_engine(slots=1, recording_poll_limit_seconds=RECORDING_POLL_LIMIT)
    return make_bot_config(tmp_path, emulator.url, engine=engine)


@pytest.fixture(autouse=True)
def short_platform_queue(bot: TryOnBot, emulator: Emulator) -> None:
    """Clients that give up waiting for a streamer after QUEUE_TIMEOUT (configuration of the edge)."""
    services = bot.runtime.engine.services
    services.client_factory = functools.partial(
        Odyssey, DEV_API_KEY, emulator.url, queue_timeout=QUEUE_TIMEOUT
    )


# ----- helpers -------------------------------------------------------------------------------------------


def first_request_saying(fake: FakeDiscord, token: str, *phrases: str) -> RecordedRequest | None:
    """The first message create/edit of this interaction whose body contains any of `phrases`."""
    for request in fake.requests:
        if token not in request.path or request.method not in ("POST", "PATCH"):
            continue
        body = json.dumps(request.json)
        if any(phrase in body for phrase in phrases):
            return request
    return None


async def told(fake: FakeDiscord, token: str, *phrases: str, within: float = 15.0) -> RecordedRequest:
    """Wait until the member was shown one of `phrases`; the request that showed it."""
    found: RecordedRequest = await fake.wait_for(lambda: first_request_saying(fake, token, *phrases), within)
    return found


async def final_message(fake: FakeDiscord, token: str) -> FakeMessage:
    """The session's last message: the recording embed."""
    found: FakeMessage = await fake.wait_for(
        lambda: next(
            (
                m
                for m in fake.messages_for(token)
                if m.embeds and m.embeds[0].get("title", "").startswith("Your try-on recording")
            ),
            None,
        ),
        30,
    )
    return found


async def settled(bot: TryOnBot) -> None:
    """Wait until the engine holds no session (the run's `finally` has freed the slot)."""
    manager = bot.runtime.engine.manager
    await until(lambda: not manager.running_count and not manager.sessions(), 15)


def open_connections() -> list[RTCPeerConnection | Odyssey]:
    """Every aiortc peer connection in this process (bot and emulator) that is not closed, and every Odyssey
    client still connected or holding its HTTP connection pool open."""
    gc.collect()
    return [
        o
        for o in gc.get_objects()
        if (isinstance(o, RTCPeerConnection) and o.connectionState != "closed")
        or (isinstance(o, Odyssey) and (o.is_connected or not o._http.is_closed))
    ]


@pytest.fixture(autouse=True)
def open_before() -> weakref.WeakSet[object]:
    """What was open before the case (left by other modules in the same run): not this case's leak."""
    return weakref.WeakSet(open_connections())


async def assert_nothing_left(
    bot: TryOnBot, emulator: Emulator, session_id: str, open_before: weakref.WeakSet[object]
) -> None:
    """No session in the engine, no streamer held on the platform, no frame pump, no open peer connection."""
    await settled(bot)
    assert_nothing_running(bot)
    # The emulator notices the websocket close a moment later.
    await until(lambda: not emulator.active_sessions() and not emulator.connections, 10)
    leftover = [t for t in asyncio.all_tasks() if session_id in t.get_name() and not t.done()]
    assert leftover == []
    assert [leak for leak in open_connections() if leak not in open_before] == []


async def next_member_streams(driver: BotDriver, fake: FakeDiscord, as_member: Ctx, bot: TryOnBot) -> None:
    """The freed slot works: another member streams, stops, and is settled too."""
    member = as_member("next")
    start, status = await start_streaming(driver, member, "plain grey t-shirt", within=30)
    await driver.command(member, "tryon stop").reply()
    await wait_status(fake, start.token, "Done after", within=30)
    await assert_settled_once(bot.runtime.store, session_id_of(status))


# ----- faults before anything streamed: told, refunded ---------------------------------------------------


USAGE_CODES = [
    ("MONTHLY_LIMIT_REACHED", "used all of its video time for this month"),
    ("CONCURRENT_LIMIT_REACHED", "as many try-ons as its plan allows"),
    ("STREAM_DURATION_EXCEEDED", "time limit for one stream. Please try again in a minute."),
    ("ACCOUNT_SUSPENDED", "account is suspended"),
    ("RATE_LIMITED", "asked us to slow down. Please try again in about 1 second."),
    ("SOMETHING_NEW", "refused to start a try-on right now"),  # a code this bot does not know yet
]


@pytest.mark.parametrize(("code", "sentence"), USAGE_CODES, ids=[code for code, _ in USAGE_CODES])
async def test_usage_error_at_start_is_explained_and_refunded(
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    emulator: Emulator,
    open_before: weakref.WeakSet[object],
    code: str,
    sentence: str,
) -> None:
    emulator.faults.force_429_code = code
    start = driver.command(
        as_member("alice"), "tryon start", photo=photo_option(fake_discord), outfit="red coat"
    )
    message = await told(fake_discord, start.token, sentence)
    assert message.received_at - start.delivered_at < TOLD_WITHIN  # the 429 is the very first answer
    status = await wait_status(fake_discord, start.token, "Stopped")
    session_id = session_id_of(status)
    assert await assert_settled_once(bot.runtime.store, session_id) == 0.0
    assert "refund" in [e.kind for e in await bot.runtime.store.usage.for_session(session_id)]
    await assert_nothing_left(bot, emulator, session_id, open_before)
    emulator.faults = Faults()
    if code == "MONTHLY_LIMIT_REACHED":  # one case proves the slot works again (the others are alike)
        await next_member_streams(driver, fake_discord, as_member, bot)


TRY_LATER = "could not start your try-on right now. Please try again in a minute."
CONNECT_FAULTS = [
    pytest.param(
        "fail_503_times", 10_000, QUEUE_TIMEOUT, TRY_LATER, id="503-storm-longer-than-the-queue-timeout"
    ),
    pytest.param("signaling_error_reason", "invalid_session", 0.0, TRY_LATER, id="signaling-error"),
    pytest.param("ws_close_code_on_connect", 1011, 0.0, TRY_LATER, id="abnormal-websocket-close-on-connect"),
    pytest.param("ws_close_code_on_connect", 1000, 0.0, TRY_LATER, id="normal-websocket-close-on-connect"),
    # Stream errors answering the start (spec §10.4): transient, usage limits, and the photo itself.
    pytest.param("stream_error_reason", "lease_denied", 0.0, TRY_LATER, id="start-lease-denied"),
    pytest.param(
        "stream_error_reason", "quota_exceeded", 0.0, "video time for this month", id="start-quota-exceeded"
    ),
    pytest.param(
        "stream_error_reason",
        "concurrent_limit_exceeded",
        0.0,
        "as many try-ons as its plan allows",
        id="start-concurrent-limit-exceeded",
    ),
    pytest.param(
        "stream_error_reason", "invalid_image", 0.0, "could not use your photo", id="start-photo-refused"
    ),
]


@pytest.mark.parametrize(("fault", "value", "takes_effect_after", "sentence"), CONNECT_FAULTS)
async def test_connect_fault_is_explained_and_refunded(
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    emulator: Emulator,
    open_before: weakref.WeakSet[object],
    fault: str,
    value: object,
    takes_effect_after: float,
    sentence: str,
) -> None:
    setattr(emulator.faults, fault, value)
    start = driver.command(
        as_member("alice"), "tryon start", photo=photo_option(fake_discord), outfit="red coat"
    )
    message = await told(fake_discord, start.token, sentence)
    assert message.received_at - start.delivered_at < takes_effect_after + TOLD_WITHIN
    status = await wait_status(fake_discord, start.token, "Stopped")
    session_id = session_id_of(status)
    assert await assert_settled_once(bot.runtime.store, session_id) == 0.0
    await assert_nothing_left(bot, emulator, session_id, open_before)
    emulator.faults = Faults()
    if fault == "fail_503_times":
        await next_member_streams(driver, fake_discord, as_member, bot)


# ----- faults while streaming: told, charged once, every part's recording offered -----------------------


async def stream_ended_on_the_platform(emulator: Emulator, count: int = 1) -> float:
    """Wait until the emulator has ended `count` streams (their recordings exist); when it saw that."""
    # A fine poll: the moment it returns is when the fault took effect, and the member is timed from it.
    await until(lambda: len(emulator.recordings.list(DEV_API_KEY)) >= count, 20, every=0.01)
    return time.perf_counter()


async def abnormal_close(emulator: Emulator) -> None:
    await emulator.drop_connections(1011)


async def peer_dropped(emulator: Emulator) -> None:
    emulator.faults.drop_peer_after_seconds = 0.0  # the watchdog drops the running stream's peer at once
    await stream_ended_on_the_platform(emulator)
    emulator.faults.drop_peer_after_seconds = None  # the fresh stream keeps its peer


async def lease_denied(emulator: Emulator) -> None:
    emulator.fail_streams("lease_denied", "Stream request denied")  # the platform ends the stream


async def nothing_to_do(emulator: Emulator) -> None:
    """The emulator's configuration brings the fault on its own (a short cap or connection limit)."""


MID_STREAM_FAULTS = [
    pytest.param({}, abnormal_close, id="abnormal-websocket-close"),
    pytest.param({}, peer_dropped, id="peer-connection-dropped"),
    pytest.param({"stream_cap_seconds": 2.5}, nothing_to_do, id="session-timeout-at-the-stream-cap"),
    pytest.param({}, lease_denied, id="stream-ended-lease-denied"),
    pytest.param({"connection_max_seconds": 3.0}, nothing_to_do, id="signaling-error-duration-limit"),
]


@pytest.mark.parametrize(("emulator", "inject"), MID_STREAM_FAULTS, indirect=["emulator"])
async def test_mid_stream_fault_continues_on_a_fresh_stream(
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    emulator: Emulator,
    open_before: weakref.WeakSet[object],
    inject: Callable[[Emulator], Any],
) -> None:
    alice = as_member("alice")
    start, status = await start_streaming(driver, alice, "red wool coat", within=30)
    session_id = session_id_of(status)
    await inject(emulator)
    fault_at = await stream_ended_on_the_platform(emulator)
    notice = await told(fake_discord, start.token, "reconnecting")
    assert notice.received_at - fault_at < TOLD_WITHIN
    await told(fake_discord, start.token, "Continuing on a fresh stream")
    stop = driver.command(alice, "tryon stop")
    await wait_status(fake_discord, start.token, "Done after", within=30)
    final = await final_message(fake_discord, start.token)
    streams = await bot.runtime.store.streams.for_session(session_id)
    assert len(streams) >= 2 and final.text.count("[video](") == len(streams), final.text
    charged = await assert_settled_once(bot.runtime.store, session_id)
    assert 0 < charged < stop.delivered_at - start.delivered_at + 1.0  # the gap and the parts once each
    await assert_nothing_left(bot, emulator, session_id, open_before)


async def monthly_quota_ends_the_stream(emulator: Emulator) -> None:
    emulator.fail_streams("quota_exceeded", "Monthly usage limit reached")


NO_WAY_BACK = [
    pytest.param(
        abnormal_close,
        "force_429_code",
        "CONCURRENT_LIMIT_REACHED",
        0.0,
        "could not continue",
        id="abnormal-close-fresh-connection-refused-429",
    ),
    pytest.param(
        abnormal_close,
        "fail_503_times",
        10_000,
        QUEUE_TIMEOUT,
        "could not continue",
        id="abnormal-close-503-storm-longer-than-the-queue-timeout",
    ),
    pytest.param(
        monthly_quota_ends_the_stream,
        "force_429_code",
        "MONTHLY_LIMIT_REACHED",
        0.0,
        "used all of its video time for this month",
        id="stream-ended-quota-exceeded",
    ),
]


@pytest.mark.parametrize(("inject", "refusal", "value", "gives_up_after", "sentence"), NO_WAY_BACK)
async def test_abnormal_close_with_no_way_back_ends_with_the_recording(
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    emulator: Emulator,
    open_before: weakref.WeakSet[object],
    inject: Callable[[Emulator], Any],
    refusal: str,
    value: object,
    gives_up_after: float,
    sentence: str,
) -> None:
    start, status = await start_streaming(driver, as_member("alice"), "red wool coat", within=30)
    session_id = session_id_of(status)
    setattr(emulator.faults, refusal, value)  # the fresh connection is refused
    fault_at = time.perf_counter()
    await inject(emulator)
    dropped = await told(fake_discord, start.token, "reconnecting")
    assert dropped.received_at - fault_at < TOLD_WITHIN
    ended = await told(fake_discord, start.token, sentence)
    assert ended.received_at - fault_at < gives_up_after + TOLD_WITHIN
    final = await final_message(fake_discord, start.token)
    assert final.text.count("[video](") == 1, final.text
    await wait_status(fake_discord, start.token, "connection to the video service was lost")
    assert await assert_settled_once(bot.runtime.store, session_id) > 0
    await assert_nothing_left(bot, emulator, session_id, open_before)
    emulator.faults = Faults()
    if inject is abnormal_close and refusal == "force_429_code":  # once: the slot works again
        await next_member_streams(driver, fake_discord, as_member, bot)


async def test_a_slow_reconnect_after_a_drop_is_announced_at_once(
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    emulator: Emulator,
    open_before: weakref.WeakSet[object],
) -> None:
    alice = as_member("alice")
    start, status = await start_streaming(driver, alice, "red wool coat", within=30)
    session_id = session_id_of(status)
    emulator.faults.stream_start_delay_seconds = TOLD_WITHIN + 5  # the fresh stream is slow to come
    fault_at = time.perf_counter()
    await emulator.drop_connections(1011)
    notice = await told(fake_discord, start.token, "reconnecting", within=TOLD_WITHIN + 10)
    assert notice.received_at - fault_at < TOLD_WITHIN
    await driver.command(alice, "tryon stop").reply()  # the member gives up waiting
    final = await final_message(fake_discord, start.token)
    assert final.text.count("[video](") == 1, final.text
    assert await assert_settled_once(bot.runtime.store, session_id) > 0
    await assert_nothing_left(bot, emulator, session_id, open_before)


# ----- recordings: slow to appear, missing -------------------------------------------------------------


async def test_slow_recording_frees_the_slot_and_still_arrives(
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    emulator: Emulator,
    open_before: weakref.WeakSet[object],
) -> None:
    emulator.faults.recording_delay_seconds = RECORDING_POLL_LIMIT - 1.5  # late, but within the wait
    alice = as_member("alice")
    start, status = await start_streaming(driver, alice, "red wool coat", within=30)
    session_id = session_id_of(status)
    stop = driver.command(alice, "tryon stop")
    notice = await told(fake_discord, start.token, "fetching your recording")
    assert notice.received_at - stop.delivered_at < TOLD_WITHIN
    # The platform's slot was given back at the stream's end: the next member need not wait for the files.
    bob = as_member("bob")
    bob_start, bob_status = await start_streaming(driver, bob, "blue denim jacket", within=30)
    assert first_request_saying(fake_discord, start.token, "[video](") is None  # alice's still pending
    final = await final_message(fake_discord, start.token)
    assert final.text.count("[video](") == 1, final.text
    assert await assert_settled_once(bot.runtime.store, session_id) > 0
    await driver.command(bob, "tryon stop").reply()
    await wait_status(fake_discord, bob_start.token, "Done after", within=30)
    await assert_settled_once(bot.runtime.store, session_id_of(bob_status))
    await assert_nothing_left(bot, emulator, session_id, open_before)


async def test_missing_recording_is_said_plainly_and_offered_once_found(
    driver: BotDriver,
    world: p.GuildWorld,
    as_member: Ctx,
    bot: TryOnBot,
    fake_discord: FakeDiscord,
    emulator: Emulator,
    open_before: weakref.WeakSet[object],
) -> None:
    emulator.faults.recordings_missing = True
    alice = as_member("alice")
    start, status = await start_streaming(driver, alice, "red wool coat", within=30)
    session_id = session_id_of(status)
    stop = driver.command(alice, "tryon stop")
    final = await final_message(fake_discord, start.token)
    assert "No recording is available" in final.text and "[video](" not in final.text
    final_request = first_request_saying(fake_discord, start.token, "No recording is available")
    assert final_request is not None
    assert final_request.received_at - stop.delivered_at < RECORDING_POLL_LIMIT + TOLD_WITHIN
    await wait_status(fake_discord, start.token, "Done after")
    assert await assert_settled_once(bot.runtime.store, session_id) > 0
    await assert_nothing_left(bot, emulator, session_id, open_before)
    shown = await driver.command(alice, "tryon show", id=session_id).reply(within=15)
    assert "No recording is available" in shown.content
    emulator.faults.recordings_missing = False  # the platform finds it after all: links on demand
    again = await driver.command(alice, "tryon show", id=session_id).reply(within=15)
    assert "[video](" in again.content
