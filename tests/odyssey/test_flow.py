"""The full client flow over real WebRTC on loopback against the emulator."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from bot.emulator import DEV_API_KEY
from bot.odyssey import ConnectionStatus, ConnectionTimeouts, Odyssey, StreamFrame, VideoFrame
from bot.odyssey.connection import StreamConnection
from tests.odyssey.conftest import ClientHarness

SAMPLE = Path(__file__).parents[2] / "examples" / "astronaut.jpg"


@pytest.fixture
def channel_spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Records which transport each client message used (the messages are still really sent)."""
    sent: list[tuple[str, str]] = []
    on_channel, on_socket = StreamConnection._send_on_channel, StreamConnection._send_on_socket

    def via_channel(self: StreamConnection, text: str) -> None:
        sent.append(("dc", text))
        on_channel(self, text)

    async def via_socket(self: StreamConnection, text: str) -> None:
        sent.append(("ws", text))
        await on_socket(self, text)

    monkeypatch.setattr(StreamConnection, "_send_on_channel", via_channel)
    monkeypatch.setattr(StreamConnection, "_send_on_socket", via_socket)
    return sent


def transport_of(sent: list[tuple[str, str]], message_type: str) -> list[str]:
    return [via for via, text in sent if f'"type": "{message_type}"' in text]


async def frames_of(client: Odyssey, stream_id: str, count: int) -> list[StreamFrame]:
    frames: list[StreamFrame] = []
    async with asyncio.timeout(10):
        async for frame in client.frames:
            if frame.stream_id == stream_id:
                frames.append(frame)
                if len(frames) == count:
                    return frames
    raise AssertionError("frames ended early")


async def test_full_flow_text_then_image_stream_recordings_and_pages(
    harness: ClientHarness, channel_spy: list[tuple[str, str]]
) -> None:
    emu = await harness.emulator()
    client = harness.client(emu)
    events: list[Any] = []
    await client.connect(
        on_connected=lambda: events.append("on_connected"),
        on_stream_started=lambda sid: events.append(("started", sid)),
        on_interact_acknowledged=lambda prompt: events.append(("ack", prompt)),
        on_stream_ended=lambda: events.append("ended"),
        on_status_change=lambda status, _: events.append(status),
        on_disconnected=lambda: events.append("on_disconnected"),
    )
    assert client.is_connected and client.current_session_id
    assert client._connection is not None and client._connection._pc is not None
    configuration = getattr(client._connection._pc, "_RTCPeerConnection__configuration")  # noqa: B009
    assert configuration.iceServers == []  # explicit: the emulator's /config lists none, no public STUN

    text_stream = await client.start_stream("a red wool coat", portrait=True)
    assert transport_of(channel_spy, "interactive_stream_start") == ["dc"]
    acks = await asyncio.gather(client.interact("a blue denim jacket"), client.interact("a green parka"))
    assert list(acks) == ["a blue denim jacket", "a green parka"]  # each overlapping call got its own answer
    frames = await frames_of(client, text_stream, 3)
    seconds = [f.stream_seconds for f in frames]
    assert seconds == sorted(seconds) and seconds[-1] > 0
    assert frames[0].frame.format.name == "yuv420p"  # native format, no RGB conversion on this path
    await client.end_stream()

    image_stream = await client.start_stream("a yellow raincoat", portrait=False, image=SAMPLE)
    assert transport_of(channel_spy, "interactive_stream_start") == ["dc", "ws"]
    assert await client.interact("a black tuxedo") == "a black tuxedo"
    # Frames already in flight at `stream_started` still show the old scene; the new size follows.
    assert any(f.frame.width > f.frame.height for f in await frames_of(client, image_stream, 6))
    await client.end_stream()
    assert set(transport_of(channel_spy, "update")) == {"dc"}
    await client.disconnect()

    assert events[:3] == [
        ConnectionStatus.AUTHENTICATING,
        ConnectionStatus.CONNECTING,
        ConnectionStatus.CONNECTED,
    ]
    assert events.count("on_connected") == 1 and events.count("on_disconnected") == 1
    assert ("started", text_stream) in events and ("started", image_stream) in events
    assert ("ack", "a black tuxedo") in events and events.count("ended") == 2
    assert client.current_status is ConnectionStatus.DISCONNECTED

    recording = await client.get_recording(image_stream)
    assert recording.stream_id == image_stream and recording.video_url and recording.thumbnail_url
    async with httpx.AsyncClient() as http:
        video = await http.get(recording.video_url)
        thumbnail = await http.get(recording.thumbnail_url)
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    assert Image.open(io.BytesIO(thumbnail.content)).format == "JPEG"

    first = await client.list_stream_recordings(limit=1)
    second = await client.list_stream_recordings(limit=1, offset=1)
    assert first.total == second.total == 2 and (first.limit, second.offset) == (1, 1)
    assert [first.recordings[0].stream_id, second.recordings[0].stream_id] == [image_stream, text_stream]
    assert first.recordings[0].width > first.recordings[0].height
    assert emu.observed.telemetry_events == 0
    assert emu.observed.token_requests == 1  # one session-token fetch per connect
    assert emu.observed.region_latencies and "local" in emu.observed.region_latencies[0]


async def test_video_frame_callback_gets_rgb_frames_and_async_callbacks_run(harness: ClientHarness) -> None:
    emu = await harness.emulator()
    client = harness.client(emu)
    received: list[VideoFrame] = []
    started: list[str] = []
    got_frames = asyncio.Event()

    async def on_video_frame(frame: VideoFrame) -> None:
        received.append(frame)
        if len(received) >= 3:
            got_frames.set()

    async def on_stream_started(stream_id: str) -> None:
        await asyncio.sleep(0)
        started.append(stream_id)

    await client.connect(on_video_frame=on_video_frame, on_stream_started=on_stream_started)
    stream_id = await client.start_stream("a red coat", image=SAMPLE)
    async with asyncio.timeout(10):
        await got_frames.wait()
    frame = received[-1]
    assert frame.data.shape == (frame.height, frame.width, 3) and frame.data.dtype.name == "uint8"
    assert frame.height > frame.width
    await client.end_stream()
    assert started == [stream_id]
    await client.disconnect()


async def test_client_credentials_let_another_client_connect(harness: ClientHarness) -> None:
    emu = await harness.emulator()
    server_side = harness.client(emu)
    credentials = await server_side.create_client_credentials()
    assert credentials.to_dict()["session_id"] == credentials.session_id
    browser_side = harness.client(emu, api_key="")
    await browser_side.connect_with_credentials(credentials)
    assert browser_side.current_session_id == credentials.session_id
    assert await browser_side.start_stream("a scarf")
    await browser_side.end_stream()
    await browser_side.disconnect()


async def test_reconnect_after_disconnect_uses_a_new_session(harness: ClientHarness) -> None:
    emu = await harness.emulator()
    client = harness.client(emu)
    await client.connect()
    first = client.current_session_id
    await client.disconnect()
    await client.connect()
    assert client.current_session_id not in (None, first)
    await client.disconnect()
    for _ in range(50):  # the emulator frees the slot once it has closed its side
        if not emu.active_sessions():
            break
        await asyncio.sleep(0.1)
    assert not emu.active_sessions()


async def test_simulation_jobs(harness: ClientHarness) -> None:
    emu = await harness.emulator(simulation_step_seconds=0.05)
    client = harness.client(emu)
    script = [
        {"timestamp_ms": 0, "start": {"prompt": "a red coat", "image": SAMPLE.read_bytes()}},
        {"timestamp_ms": 500, "interact": {"prompt": "a blue coat"}},
        {"timestamp_ms": 1000, "end": {}},
    ]
    job = await client.simulate(script=script)
    with pytest.raises(ValueError, match="Exactly one"):
        await client.simulate(script=script, script_url="http://x")
    for _ in range(300):
        detail = await client.get_simulate_status(job.job_id)
        if detail.status.value in ("completed", "failed"):
            break
        await asyncio.sleep(0.1)
    assert detail.status.value == "completed" and detail.streams and detail.streams[0].video_url
    listed = await client.list_simulations(limit=10)
    assert job.job_id in [j.job_id for j in listed.jobs]
    pending = await client.simulate(script=script)
    cancelled = await client.cancel_simulation(pending.job_id)
    assert cancelled.status.value == "cancelled"


async def test_keepalives_are_sent(harness: ClientHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.emulator.streamer import StreamerConnection

    received: list[str] = []
    original = StreamerConnection._on_ws_text

    async def observe(self: StreamerConnection, text: str) -> None:
        received.append(text)
        await original(self, text)

    monkeypatch.setattr(StreamerConnection, "_on_ws_text", observe)
    emu = await harness.emulator()
    client = harness.client(emu, timeouts=ConnectionTimeouts(keepalive_interval=0.05))
    await client.connect()
    await asyncio.sleep(0.3)
    await client.disconnect()
    keepalives = [t for t in received if '"keepalive"' in t]
    assert len(keepalives) >= 3
    assert received[-1] == '{"type": "client_disconnecting"}'


async def test_no_secret_is_logged(harness: ClientHarness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    emu = await harness.emulator()
    client = harness.client(emu)
    credentials = await client.create_client_credentials()
    await client.connect()
    await client.start_stream("a coat", image=SAMPLE)
    await client.end_stream()
    await client.disconnect()
    access_token = await client._tokens.token()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert logged  # something was logged at DEBUG
    for secret in (DEV_API_KEY, access_token, credentials.session_token):
        assert secret not in logged
    assert "token=" not in logged


async def test_rejected_access_token_is_exchanged_again(harness: ClientHarness) -> None:
    emu = await harness.emulator()
    client = harness.client(emu)
    assert (await client.list_stream_recordings()).total == 0
    client._tokens._token = "revoked-by-the-server"
    assert (await client.list_stream_recordings()).total == 0
