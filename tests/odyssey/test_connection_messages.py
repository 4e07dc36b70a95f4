"""Streamer-message handling of one connection, fed directly (cases the emulator does not produce)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest

from bot.odyssey import (
    BroadcastInfo,
    ConnectionTimeouts,
    FrameQueue,
    OdysseyStreamError,
    StreamDurationExceededError,
)
from bot.odyssey.callbacks import CallbackRunner, Callbacks
from bot.odyssey.connection import StreamConnection, remote_max_message_size


class StubSocket:
    """Stands in for the signaling websocket: records what is sent."""

    close_code = None
    close_reason = None

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, text: str) -> None:
        self.sent.append(text)


class StubChannel:
    """Stands in for the open `clientToStreamer` data channel."""

    readyState = "open"

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, text: str) -> None:
        self.sent.append(json.loads(text))


def open_connection(
    timeouts: ConnectionTimeouts | None = None, **callbacks: Any
) -> tuple[StreamConnection, StubChannel, StubSocket]:
    socket, channel = StubSocket(), StubChannel()
    connection = StreamConnection(
        session_id="s",
        websocket=socket,  # type: ignore[arg-type]
        ice_servers=[],
        callbacks=Callbacks(**callbacks),
        runner=CallbackRunner(),
        frames=FrameQueue(),
        set_status=lambda status, message: None,
        timeouts=timeouts or ConnectionTimeouts(start=2, interact=2, end=2),
    )
    connection._to_streamer = channel  # type: ignore[assignment]
    connection._ready.set_result(None)
    return connection, channel, socket


def streamer_says(connection: StreamConnection, **message: Any) -> None:
    connection._on_streamer_message(json.dumps(message))


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def until_sent(socket: StubSocket) -> None:
    """Image starts are serialised in a worker thread: wait for the send rather than a few loop turns."""
    for _ in range(200):
        if socket.sent:
            return
        await asyncio.sleep(0.01)


async def test_overlapping_interacts_get_answers_in_order() -> None:
    connection, channel, _ = open_connection()
    first = asyncio.create_task(connection.interact("a"))
    second = asyncio.create_task(connection.interact("b"))
    await settle()
    assert [m["prompt"] for m in channel.sent] == ["a", "b"]
    streamer_says(connection, type="update_acknowledged", prompt="A!")
    streamer_says(connection, type="update_acknowledged", prompt="B!")
    assert await first == "A!" and await second == "B!"
    assert connection.last_applied_prompt == "B!"


async def test_refusal_goes_to_the_start_first_then_the_oldest_interact() -> None:
    errors: list[tuple[str, str]] = []
    connection, _, socket = open_connection(on_stream_error=lambda r, m: errors.append((r, m)))
    start = asyncio.create_task(
        connection.start_stream(
            "p",
            portrait=True,
            image_data_url="data:image/jpeg;base64,AA",
            bypass_prompt_expansion=None,
            broadcast=False,
        )
    )
    await until_sent(socket)
    assert json.loads(socket.sent[0])["type"] == "interactive_stream_start"  # images always go over the WS
    streamer_says(connection, type="interactive_stream_error", reason="moderation_blocked", message="no")
    with pytest.raises(OdysseyStreamError, match="moderation_blocked: no"):
        await start
    interact = asyncio.create_task(connection.interact("x"))
    await settle()
    streamer_says(connection, type="interactive_stream_error", reason="prompt_rejected", message="")
    with pytest.raises(OdysseyStreamError, match="prompt_rejected"):
        await interact
    assert [r for r, _ in errors] == ["moderation_blocked", "prompt_rejected"]


async def test_session_timeout_rejects_every_pending_request_including_end() -> None:
    connection, _, _ = open_connection()
    streamer_says(connection, type="stream_started", stream_id="st", applied_prompt="p+")
    assert connection.stream_id == "st" and connection.last_applied_prompt == "p+"
    pending = [asyncio.create_task(connection.interact("x")), asyncio.create_task(connection.end_stream())]
    await settle()
    streamer_says(connection, type="interactive_stream_error", reason="session_timeout", message="lease")
    for task in pending:
        with pytest.raises(StreamDurationExceededError):
            await task
    assert connection.stream_id is None


async def test_unanswered_request_times_out() -> None:
    connection, _, _ = open_connection()
    connection._timeouts = ConnectionTimeouts(end=0.05)
    with pytest.raises(OdysseyStreamError, match=r"Timed out after 0\.05s waiting for stream_ended"):
        await connection.end_stream()


async def test_text_start_over_the_channel_unless_too_big() -> None:
    connection, channel, socket = open_connection()
    small = asyncio.create_task(
        connection.start_stream(
            "p", portrait=False, image_data_url=None, bypass_prompt_expansion=True, broadcast=True
        )
    )
    await settle()
    assert channel.sent[0] == {
        "type": "interactive_stream_start",
        "prompt": "p",
        "portrait": False,
        "input_image_base64": None,
        "broadcast": True,
        "bypass_vlm_expansion": True,
    }
    streamer_says(connection, type="stream_started", stream_id="1")
    assert await small == "1"
    connection._max_message_size = 100
    big = asyncio.create_task(
        connection.start_stream(
            "p" * 200, portrait=True, image_data_url=None, bypass_prompt_expansion=None, broadcast=False
        )
    )
    await settle()
    assert len(channel.sent) == 1 and len(socket.sent) == 1
    streamer_says(connection, type="stream_started", stream_id="2")
    assert await big == "2"


async def test_broadcast_ready_and_incomplete_broadcast() -> None:
    ready: list[BroadcastInfo] = []
    errors: list[tuple[str, str]] = []
    connection, _, _ = open_connection(
        on_broadcast_ready=ready.append, on_stream_error=lambda r, m: errors.append((r, m))
    )
    streamer_says(
        connection, type="broadcast_ready", webrtc_url="http://w", spectator_token="t", broadcast_url=None
    )
    streamer_says(connection, type="broadcast_ready", webrtc_url="http://w")
    streamer_says(connection, type="something_new")  # ignored
    connection._on_streamer_message(b"\x00not json")  # ignored
    assert ready == [BroadcastInfo("http://w", "t", None)]
    assert errors == [("broadcast_error", "Broadcast setup incomplete: missing playback URL or token")]


def test_remote_max_message_size() -> None:
    assert remote_max_message_size("v=0\r\na=max-message-size:262144\r\n") == 262144
    assert remote_max_message_size("v=0\r\n") == 65536


async def test_malformed_remote_candidate_is_ignored() -> None:
    from aiortc import RTCPeerConnection

    connection, _, _ = open_connection()
    connection._pc = RTCPeerConnection()
    try:
        for text in ("candidate:garbage", "1 1 udp", "candidate:1 1 udp notanumber 127.0.0.1 9 typ host"):
            await connection._on_signaling({"type": "ice_candidate", "candidate": text, "sdpMLineIndex": 0})
        assert not connection._closing  # one bad line from the server must not drop the connection
    finally:
        await connection._pc.close()


class StuckSocket(StubSocket):
    """A socket whose sends never complete (the peer stopped reading)."""

    async def send(self, text: str) -> None:
        await asyncio.Event().wait()

    async def close(self, code: int, reason: str) -> None:
        return None


async def test_stuck_keepalive_fails_the_connection() -> None:
    statuses: list[tuple[object, object]] = []
    errors: list[BaseException] = []
    failed = asyncio.Event()

    def on_error(error: BaseException, fatal: bool) -> None:
        errors.append(error)
        failed.set()

    connection = StreamConnection(
        session_id="s",
        websocket=StuckSocket(),  # type: ignore[arg-type]
        ice_servers=[],
        callbacks=Callbacks(on_error=on_error),
        runner=CallbackRunner(),
        frames=FrameQueue(),
        set_status=lambda status, message: statuses.append((status, message)),
        timeouts=ConnectionTimeouts(keepalive_interval=0.01, send=0.05, close=0.05),
    )
    connection._ready.set_result(None)
    connection._spawn(connection._send_keepalives(), "keepalive")
    async with asyncio.timeout(5):
        await failed.wait()
        await connection.wait_closed()
    assert [str(e) for e in errors] == ["Signaling connection lost: keepalive could not be sent"]
    assert statuses and statuses[0][0] == "failed"


async def test_image_start_is_serialised_off_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    offloaded: list[object] = []
    original = asyncio.to_thread

    async def spy(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        offloaded.append(func)
        return await original(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", spy)
    connection, _, socket = open_connection()
    image = "data:image/jpeg;base64," + "A" * 100_000  # up to ~33 MB for a 25 MiB photo sent as is
    start = asyncio.create_task(
        connection.start_stream(
            "p", portrait=True, image_data_url=image, bypass_prompt_expansion=None, broadcast=False
        )
    )
    await until_sent(socket)
    assert json.loads(socket.sent[0])["input_image_base64"] == image
    assert json.dumps in offloaded
    streamer_says(connection, type="stream_started", stream_id="1")
    assert await start == "1"


async def test_connection_lost_just_as_it_became_ready_is_not_connected() -> None:
    from bot.odyssey import OdysseyConnectionError

    disconnects: list[str] = []
    connection, _, _ = open_connection(on_disconnected=lambda: disconnects.append("x"))
    connection._lost(OdysseyConnectionError("Streamer has disconnected."))  # same loop turn as readiness
    with pytest.raises(OdysseyConnectionError, match="Streamer has disconnected"):
        await connection.wait_ready()
    await connection.wait_closed()
    assert disconnects == []  # it never counted as connected


async def test_a_task_that_missed_its_cancellation_does_not_hold_up_the_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    connection, _, _ = open_connection(ConnectionTimeouts(close=0.2))
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):  # as if a cancellation was lost
                await release.wait()

    connection._spawn(stubborn(), "stubborn")
    await settle()
    try:
        async with asyncio.timeout(3):
            await connection.close()
        assert "odyssey-stubborn did not stop when cancelled" in caplog.text
    finally:
        release.set()
        await settle()
