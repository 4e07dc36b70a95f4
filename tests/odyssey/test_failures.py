"""Every error path of the client against the emulator; each test also ends leak-free (see conftest)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.emulator import DEV_API_KEY
from bot.emulator.config import ApiKey
from bot.odyssey import (
    AccountSuspendedError,
    ClientCredentials,
    ConcurrentLimitReachedError,
    ConnectionStatus,
    ConnectionTimeouts,
    MonthlyLimitReachedError,
    OdysseyAuthError,
    OdysseyConnectionError,
    OdysseyError,
    OdysseyStreamError,
    OdysseyUsageError,
    RateLimitError,
    StreamDurationExceededError,
)
from tests.helpers import until
from tests.odyssey.conftest import ClientHarness


class Recorder:
    """Collects callback invocations."""

    def __init__(self) -> None:
        self.errors: list[tuple[Exception, bool]] = []
        self.stream_errors: list[tuple[str, str]] = []
        self.statuses: list[ConnectionStatus] = []
        self.disconnected = asyncio.Event()
        self.disconnects = 0

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_error": lambda error, fatal: self.errors.append((error, fatal)),
            "on_stream_error": lambda reason, message: self.stream_errors.append((reason, message)),
            "on_status_change": lambda status, _: self.statuses.append(status),
            "on_disconnected": self._on_disconnected,
        }

    def _on_disconnected(self) -> None:
        self.disconnects += 1
        self.disconnected.set()

    async def wait_disconnected(self) -> None:
        async with asyncio.timeout(10):
            await self.disconnected.wait()


async def test_unknown_key_is_an_auth_error(harness: ClientHarness) -> None:
    emu = await harness.emulator()
    client = harness.client(emu, api_key="ody_wrong")
    seen = Recorder()
    with pytest.raises(OdysseyAuthError, match="Invalid API key"):
        await client.connect(**seen.callbacks())
    assert client.current_status is ConnectionStatus.FAILED
    assert [fatal for _, fatal in seen.errors] == [True] and seen.disconnects == 0
    with pytest.raises(OdysseyAuthError):
        await client.get_recording("anything")


async def test_disabled_key_is_an_auth_error(harness: ClientHarness) -> None:
    emu = await harness.emulator(api_keys={DEV_API_KEY: ApiKey(), "ody_off": ApiKey(disabled=True)})
    with pytest.raises(OdysseyAuthError):
        await harness.client(emu, api_key="ody_off").connect()


async def test_missing_key_is_a_format_error(harness: ClientHarness) -> None:
    emu = await harness.emulator()  # e.g. a bot started without its key in the environment
    with pytest.raises(OdysseyAuthError, match="Invalid API key format"):
        await harness.client(emu, api_key=None).connect()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("MONTHLY_LIMIT_REACHED", MonthlyLimitReachedError),
        ("CONCURRENT_LIMIT_REACHED", ConcurrentLimitReachedError),
        ("STREAM_DURATION_EXCEEDED", StreamDurationExceededError),
        ("ACCOUNT_SUSPENDED", AccountSuspendedError),
        ("RATE_LIMITED", RateLimitError),
        ("BRAND_NEW_CODE", OdysseyUsageError),
    ],
)
async def test_429_usage_errors_are_typed(harness: ClientHarness, code: str, cls: type) -> None:
    emu = await harness.emulator()
    emu.faults.force_429_code = code
    with pytest.raises(OdysseyUsageError) as caught:
        await harness.client(emu).connect()
    assert type(caught.value) is cls and caught.value.code == code and caught.value.action
    assert emu.observed.session_requests == 1  # usage errors are not retried


async def test_real_concurrency_limit(harness: ClientHarness) -> None:
    emu = await harness.emulator(concurrency_limit=1)
    first = harness.client(emu)
    await first.connect()
    with pytest.raises(ConcurrentLimitReachedError) as caught:
        await harness.client(emu).connect()
    assert caught.value.limit == 1
    await first.disconnect()


async def test_503_queues_then_connects(harness: ClientHarness) -> None:
    emu = await harness.emulator()
    emu.faults.fail_503_times = 2
    waited: list[float] = []
    client = harness.client(emu, queue_timeout=10)
    await client.connect(on_queue=waited.append)
    assert len(waited) == 2 and waited[0] < waited[1]
    assert emu.observed.session_requests == 3
    await client.disconnect()


async def test_queue_until_another_client_frees_the_streamer(harness: ClientHarness) -> None:
    emu = await harness.emulator(streamer_slots=1)
    holder = harness.client(emu)
    await holder.connect()
    waiter = harness.client(emu, queue_timeout=10)
    queued = asyncio.Event()
    connecting = asyncio.create_task(waiter.connect(on_queue=lambda _: queued.set()))
    async with asyncio.timeout(10):
        await queued.wait()
    await holder.disconnect()
    await connecting
    assert waiter.is_connected
    await waiter.disconnect()


async def test_503_queue_timeout(harness: ClientHarness) -> None:
    emu = await harness.emulator()
    emu.faults.fail_503_times = 100
    with pytest.raises(OdysseyConnectionError, match="Timed out waiting for a streamer"):
        await harness.client(emu, queue_timeout=1.5).connect()
    with pytest.raises(OdysseyConnectionError, match="No streamers available"):
        await harness.client(emu, queue_timeout=0).connect()


async def test_signaling_error_fails_connect_and_cleans_up(harness: ClientHarness) -> None:
    emu = await harness.emulator()
    emu.faults.signaling_error_reason = "streamer_not_available"
    client = harness.client(emu)
    seen = Recorder()
    with pytest.raises(OdysseyConnectionError, match="Streamer not available"):
        await client.connect(**seen.callbacks())
    assert client.current_status is ConnectionStatus.FAILED
    assert isinstance(seen.errors[0][0], OdysseyConnectionError) and seen.errors[0][1] is True
    assert seen.disconnects == 0  # never reached CONNECTED


@pytest.mark.parametrize("code", [1000, 1011])
async def test_socket_closed_before_ready_fails_fast(harness: ClientHarness, code: int) -> None:
    emu = await harness.emulator()
    emu.faults.ws_close_code_on_connect = code  # even a normal close: connect() did not get what it asked for
    client = harness.client(emu, timeouts=ConnectionTimeouts(ready=30))
    async with asyncio.timeout(10):  # not the 30 s readiness timeout
        with pytest.raises(OdysseyConnectionError):
            await client.connect()
    assert client.current_status is ConnectionStatus.FAILED


async def test_abnormal_close_rejects_pending_waits_and_notifies(harness: ClientHarness) -> None:
    emu = await harness.emulator()
    client = harness.client(emu)
    seen = Recorder()
    await client.connect(**seen.callbacks())
    emu.faults.stream_start_delay_seconds = 30
    pending = asyncio.create_task(client.start_stream("a coat"))
    await asyncio.sleep(0.2)
    await emu.drop_connections(code=1011)
    with pytest.raises(OdysseyConnectionError):
        await asyncio.wait_for(pending, 5)
    await seen.wait_disconnected()
    assert client.current_status is ConnectionStatus.FAILED
    # The emulator closes its peer connection first, so either the channel or the socket reports it.
    assert [fatal for e, fatal in seen.errors if isinstance(e, OdysseyConnectionError)] == [True]
    async with asyncio.timeout(5):
        leftover = [f async for f in client.frames]  # iteration ends once closed
    assert len(leftover) <= client.frames.maxsize
    with pytest.raises(OdysseyStreamError, match="Not connected"):
        await client.interact("anything")
    await client.disconnect()
    assert seen.disconnects == 1


@pytest.mark.parametrize("code", [1000, 1001])
async def test_normal_server_close_is_a_clean_disconnect(harness: ClientHarness, code: int) -> None:
    emu = await harness.emulator()
    client = harness.client(emu)
    seen = Recorder()
    await client.connect(**seen.callbacks())
    await emu.drop_connections(code=code)
    await seen.wait_disconnected()
    assert client.current_status is ConnectionStatus.DISCONNECTED and not seen.errors
    await client.connect()  # a fresh session after the server let go
    assert client.is_connected
    await client.disconnect()


async def test_dropped_peer_connection_mid_stream(harness: ClientHarness) -> None:
    emu = await harness.emulator()
    client = harness.client(emu)
    seen = Recorder()
    await client.connect(**seen.callbacks())
    await client.start_stream("a coat")
    await emu.drop_peer_connections()
    await seen.wait_disconnected()
    assert client.current_status is ConnectionStatus.FAILED and seen.errors[0][1] is True
    with pytest.raises(OdysseyStreamError):
        await client.interact("a hat")
    assert seen.disconnects == 1


@pytest.mark.parametrize(
    ("reason", "cls"),
    [
        ("moderation_blocked", OdysseyStreamError),
        ("quota_exceeded", MonthlyLimitReachedError),
        ("concurrent_limit_exceeded", ConcurrentLimitReachedError),
        ("session_timeout", StreamDurationExceededError),
        ("lease_denied", OdysseyStreamError),
    ],
)
async def test_stream_errors_at_start_map_to_exceptions(
    harness: ClientHarness, reason: str, cls: type
) -> None:
    emu = await harness.emulator()
    client = harness.client(emu)
    seen = Recorder()
    await client.connect(**seen.callbacks())
    emu.faults.stream_error_reason = reason
    with pytest.raises(cls) as caught:
        await client.start_stream("a coat")
    assert type(caught.value) is cls
    assert seen.stream_errors[0][0] == reason
    emu.faults.stream_error_reason = None
    assert await client.start_stream("a coat")  # the connection is still usable
    await client.end_stream()
    await client.disconnect()


async def test_stream_error_while_streaming_fails_the_next_interact(harness: ClientHarness) -> None:
    emu = await harness.emulator()
    client = harness.client(emu)
    seen = Recorder()
    await client.connect(**seen.callbacks())
    await client.start_stream("a coat")
    emu.fail_streams("moderation_blocked", "not allowed")
    with pytest.raises(OdysseyError):
        await client.interact("a hat")  # the stream is gone
    assert ("moderation_blocked", "not allowed") in seen.stream_errors
    await client.disconnect()


async def test_session_timeout_ends_stream_and_connection(harness: ClientHarness) -> None:
    emu = await harness.emulator(stream_cap_seconds=1.0)
    client = harness.client(emu)
    seen = Recorder()
    await client.connect(**seen.callbacks())
    await client.start_stream("a coat")
    await seen.wait_disconnected()
    assert seen.stream_errors and seen.stream_errors[0][0] == "session_timeout"
    # The server closes the peer connection first, then the socket with 1000: a clean end, not a failure.
    assert client.current_status is ConnectionStatus.DISCONNECTED and not seen.errors
    with pytest.raises(OdysseyStreamError, match="Not connected"):
        await client.interact("a hat")
    await client.connect()  # reconnecting gives a fresh session for the next stream
    assert await client.start_stream("a hat")
    await client.disconnect()


async def test_readiness_timeout(harness: ClientHarness) -> None:
    emu = await harness.emulator()
    client = harness.client(emu, timeouts=ConnectionTimeouts(ready=0.001))
    with pytest.raises(OdysseyConnectionError, match="timed out waiting for"):
        await client.connect()
    assert client.current_status is ConnectionStatus.FAILED


async def test_reply_timeout_leaves_the_connection_usable(harness: ClientHarness) -> None:
    emu = await harness.emulator()
    client = harness.client(emu, timeouts=ConnectionTimeouts(start=0.3))
    await client.connect()
    emu.faults.stream_start_delay_seconds = 1.0
    with pytest.raises(OdysseyStreamError, match="Timed out"):
        await client.start_stream("a coat")
    emu.faults.stream_start_delay_seconds = None
    await until(lambda: client.current_stream_id is not None, 5)  # the late stream_started still arrives
    await client.end_stream()
    await client.disconnect()


async def test_signaling_retries_then_fails_without_leaking_the_token(
    harness: ClientHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.odyssey.client as client_module

    attempts: list[str] = []
    configs: list[str] = []
    from bot.odyssey.signaling import fetch_ice_servers, open_signaling

    async def counting_open(*args: Any, **kwargs: Any) -> Any:
        attempts.append("ws")
        return await open_signaling(*args, **kwargs)

    async def counting_config(*args: Any) -> Any:
        configs.append("config")
        return await fetch_ice_servers(*args)

    monkeypatch.setattr(client_module, "open_signaling", counting_open)
    monkeypatch.setattr(client_module, "fetch_ice_servers", counting_config)
    emu = await harness.emulator()
    credentials = await harness.client(emu).create_client_credentials()
    header, _, signature = credentials.session_token.split(".")
    forged_token = credentials.session_token[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")
    forged = ClientCredentials(signaling_url=credentials.signaling_url, session_token=forged_token)
    client = harness.client(emu, api_key="")
    with pytest.raises(OdysseyConnectionError) as caught:
        await client.connect_with_credentials(forged)
    assert forged_token not in str(caught.value)
    assert header
    assert len(attempts) == len(configs) == 3  # FAST_RETRY: 2 retries, /config fetched before each try


async def test_usage_mistakes(harness: ClientHarness) -> None:
    emu = await harness.emulator()
    client = harness.client(emu)
    with pytest.raises(OdysseyStreamError, match="Not connected"):
        await client.start_stream("a coat")
    await client.connect()
    with pytest.raises(OdysseyConnectionError, match="Already connected"):
        await client.connect()
    with pytest.raises(OdysseyStreamError, match="not found"):
        await client.start_stream("a coat", image="/nonexistent/photo.jpg")
    await client.disconnect()
    await client.disconnect()  # idempotent


async def test_cancelled_connect_leaves_a_usable_client(harness: ClientHarness) -> None:
    emu = await harness.emulator()
    emu.faults.fail_503_times = 100
    client = harness.client(emu, queue_timeout=30)
    queued = asyncio.Event()
    connecting = asyncio.create_task(client.connect(on_queue=lambda _: queued.set()))
    async with asyncio.timeout(10):
        await queued.wait()
    connecting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await connecting
    assert client.current_status is ConnectionStatus.FAILED
    emu.faults.fail_503_times = 0
    await client.connect()
    assert client.is_connected
    await client.disconnect()


async def test_disconnect_while_queueing_stops_the_connect(harness: ClientHarness) -> None:
    emu = await harness.emulator()
    emu.faults.fail_503_times = 100
    client = harness.client(emu, queue_timeout=30)
    seen = Recorder()
    queued = asyncio.Event()
    connecting = asyncio.create_task(client.connect(on_queue=lambda _: queued.set(), **seen.callbacks()))
    async with asyncio.timeout(10):
        await queued.wait()
    emu.faults.fail_503_times = 0  # a streamer frees up: the abandoned connect must still not take it
    await client.disconnect()
    with pytest.raises(OdysseyConnectionError, match="Disconnected while connecting"):
        await asyncio.wait_for(connecting, 5)
    assert client.current_status is ConnectionStatus.DISCONNECTED
    assert ConnectionStatus.FAILED not in seen.statuses and not seen.errors
    assert not emu.active_sessions()
    await client.connect()
    assert client.is_connected
    await client.disconnect()


async def test_connect_right_after_the_server_let_go(
    harness: ClientHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.odyssey.connection import StreamConnection

    close_peer = StreamConnection._close_peer

    async def slow_close_peer(self: StreamConnection) -> None:
        await asyncio.sleep(0.5)  # a teardown still running when the caller reacts to the stream error
        await close_peer(self)

    monkeypatch.setattr(StreamConnection, "_close_peer", slow_close_peer)
    emu = await harness.emulator(stream_cap_seconds=0.5)
    client = harness.client(emu)
    capped = asyncio.Event()
    await client.connect(on_stream_error=lambda reason, _: capped.set())
    await client.start_stream("a coat")
    async with asyncio.timeout(10):
        await capped.wait()
    for _ in range(500):  # the server closes the socket right after the error; our teardown then runs
        if client._connection is None or client._connection.is_closing:
            break
        await asyncio.sleep(0.01)
    usable_while_closing = client.is_connected  # going away: no request can succeed on it any more
    assert client.current_status is ConnectionStatus.CONNECTED and not usable_while_closing
    await client.connect()  # waits for the old teardown instead of "Already connected"
    assert client.is_connected
    assert await client.start_stream("a hat")
    await client.disconnect()


async def test_disconnect_while_waiting_for_readiness(
    harness: ClientHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.odyssey.connection import StreamConnection

    monkeypatch.setattr(StreamConnection, "_check_ready", lambda self: None)  # readiness never comes
    emu = await harness.emulator()
    client = harness.client(emu)
    seen = Recorder()
    connecting = asyncio.create_task(client.connect(**seen.callbacks()))
    for _ in range(500):
        if client._connection is not None:
            break
        await asyncio.sleep(0.01)
    status_before = client.current_status
    assert status_before is ConnectionStatus.CONNECTING
    await client.disconnect()
    with pytest.raises(OdysseyConnectionError, match="Disconnected while connecting"):
        await asyncio.wait_for(connecting, 5)
    assert client.current_status is ConnectionStatus.DISCONNECTED
    assert not seen.errors and seen.disconnects == 0 and ConnectionStatus.FAILED not in seen.statuses
