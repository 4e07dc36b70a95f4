"""Platform limits (stream cap, idle timeout, images, bypass) and runtime fault injection."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time

import httpx
import pytest
import websockets

from bot.emulator import ApiKey, Emulator
from tests.emulator.peer import (
    connect_peer,
    connected_peer,
    get_token,
    photo_data_url,
    request_session,
    start_message,
)
from tests.helpers import bearer, until


async def wait_closed(peer, within: float = 10.0):
    assert peer.reader is not None
    await asyncio.wait_for(asyncio.shield(peer.reader), within)
    return peer.ws.close_code


async def test_stream_cap_sends_session_timeout_then_drops(emulator_factory) -> None:
    emu = await emulator_factory(stream_cap_seconds=0.8)
    async with connected_peer(emu.url) as peer:
        peer.send(start_message("red shirt"))
        await peer.expect("stream_started")
        error = await peer.expect("interactive_stream_error", wait=5)
        assert error == {
            "type": "interactive_stream_error",
            "reason": "session_timeout",
            "message": "Stream ended: credit lease expired",
        }
        assert await wait_closed(peer) == 1000
    assert emu.recordings.list("ody_emulator_dev_key")


async def test_idle_connection_times_out_without_a_stream(emulator_factory) -> None:
    emu = await emulator_factory(idle_timeout_seconds=0.6)
    async with connected_peer(emu.url) as peer:
        assert peer.reader is not None
        async with asyncio.timeout(5):
            while not peer.reader.done():  # keepalives do not count as activity by default
                with contextlib.suppress(websockets.ConnectionClosed):
                    await peer.send_ws({"type": "keepalive"})
                await asyncio.sleep(0.2)
        assert await wait_closed(peer) == 1000
    assert not emu.active_sessions()


async def test_keepalives_hold_an_idle_connection_open_when_configured(emulator_factory) -> None:
    emu = await emulator_factory(idle_timeout_seconds=0.6, keepalive_resets_idle=True)
    async with connected_peer(emu.url) as peer:
        for _ in range(6):  # 1.2 s of keepalives, twice the idle timeout
            await peer.send_ws({"type": "keepalive"})
            await asyncio.sleep(0.2)
        assert peer.reader is not None and not peer.reader.done()
        assert await wait_closed(peer) == 1000  # silence: closed again
    assert not emu.active_sessions()


async def test_connection_max_duration(emulator_factory) -> None:
    emu = await emulator_factory(connection_max_seconds=0.5)
    async with connected_peer(emu.url) as peer:
        await wait_closed(peer)
        assert {"type": "error", "reason": "duration_limit_reached"} in peer.ws_messages


async def test_image_start_over_the_websocket_shows_the_photo(emulator: Emulator) -> None:
    async with connected_peer(emulator.url) as peer:
        await peer.send_ws(start_message("red shirt", photo_data_url((20, 200, 30))))
        await peer.expect("stream_started")
        async with asyncio.timeout(10):
            while True:  # frames already in flight may still be the dark idle picture
                frame = await peer.frame()
                pixels = frame.to_ndarray(format="rgb24")
                height, width = pixels.shape[:2]
                head = (
                    pixels[height // 4 : height // 2, width // 3 : 2 * width // 3].reshape(-1, 3).mean(axis=0)
                )
                if head[1] > head[0] + 60 and head[1] > head[2] + 60:  # the green photo, cover-cropped
                    break
        assert (width, height) == emulator.config.frame_size(True)


async def test_landscape_stream_has_landscape_frames(emulator: Emulator) -> None:
    async with connected_peer(emulator.url) as peer:
        peer.send(start_message("blue shirt", portrait=False))
        await peer.expect("stream_started")
        landscape = emulator.config.frame_size(False)
        async with asyncio.timeout(10):
            while (await peer.frame()).width != landscape[0]:
                pass
        frame = await peer.frame()
        assert (frame.width, frame.height) == landscape


async def test_stream_refusals(emulator_factory) -> None:
    emu = await emulator_factory(
        max_image_bytes=2000, api_keys={"plain": ApiKey(), "vip": ApiKey(privileged=True)}
    )
    async with connected_peer(emu.url, "plain") as peer:
        peer.send({"type": "update", "prompt": "x"})
        assert (await peer.expect("interactive_stream_error"))["reason"] == "no_active_stream"
        await peer.send_ws(start_message("x", photo_data_url((1, 2, 3), (800, 800))))
        too_big = await peer.expect("interactive_stream_error")
        assert too_big["reason"] == "invalid_image" and "exceeds" in too_big["message"]
        await peer.send_ws(start_message("x", "data:image/jpeg;base64,@@@@"))
        assert (await peer.expect("interactive_stream_error"))["reason"] == "invalid_image"
        await peer.send_ws(start_message("x", "data:image/jpeg;base64,aGVsbG8="))
        assert (await peer.expect("interactive_stream_error"))["reason"] == "invalid_image"
        peer.send({**start_message("x"), "bypass_vlm_expansion": True})
        assert (await peer.expect("interactive_stream_error"))["reason"] == "bypass_not_allowed"
        no_image_key = {k: v for k, v in start_message("red").items() if k != "input_image_base64"}
        peer.send(no_image_key)
        await peer.expect("stream_started")
        peer.send(start_message("blue"))
        assert (await peer.expect("interactive_stream_error"))["reason"] == "stream_already_active"
    async with connected_peer(emu.url, "vip") as peer:
        peer.send({**start_message("x"), "bypass_vlm_expansion": True})
        await peer.expect("stream_started")


async def test_injected_stream_errors(emulator: Emulator) -> None:
    emulator.faults.stream_error_reason = "lease_denied"
    async with connected_peer(emulator.url) as peer:
        peer.send(start_message("red shirt"))
        assert (await peer.expect("interactive_stream_error"))["reason"] == "lease_denied"
        emulator.faults.stream_error_reason = None
        peer.send(start_message("red shirt"))
        await peer.expect("stream_started")
        emulator.fail_streams("moderation_flagged", "Prompt flagged")
        error = await peer.expect("interactive_stream_error")
        assert error["reason"] == "moderation_flagged" and error["message"] == "Prompt flagged"
        peer.send(start_message("blue shirt"))  # the connection survives a stream error
        await peer.expect("stream_started")


async def test_stream_start_delay(emulator: Emulator) -> None:
    emulator.faults.stream_start_delay_seconds = 0.7
    async with connected_peer(emulator.url) as peer:
        began = time.monotonic()
        peer.send(start_message("red shirt"))
        await peer.expect("stream_started")
        assert time.monotonic() - began >= 0.7


async def test_signaling_error_and_abnormal_close(emulator: Emulator) -> None:
    async with httpx.AsyncClient(base_url=emulator.url) as http:
        token = await get_token(http)
        first = await request_session(http, token)
        second = await request_session(http, token)
        third = await request_session(http, token)
    emulator.faults.signaling_error_reason = "streamer_not_available"
    session_id, url, session_token = first
    async with websockets.connect(f"{url}/client/{session_id}?token={session_token}") as ws:
        assert (
            await asyncio.wait_for(ws.recv(), 10) == '{"type": "error", "reason": "streamer_not_available"}'
        )
        await asyncio.wait_for(ws.wait_closed(), 10)
    emulator.faults.signaling_error_reason = None
    emulator.faults.ws_close_code_on_connect = 1011
    session_id, url, session_token = second
    async with websockets.connect(f"{url}/client/{session_id}?token={session_token}") as ws:
        await asyncio.wait_for(ws.wait_closed(), 10)
        assert ws.close_code == 1011
    emulator.faults.ws_close_code_on_connect = None
    peer = await connect_peer(third[1], third[0], third[2])
    try:
        await peer.wait_ready()
        await emulator.drop_connections(code=1011)
        assert await wait_closed(peer) == 1011
    finally:
        await peer.close()
    assert not emulator.active_sessions()


async def test_dropped_peer_connection_mid_stream(emulator: Emulator) -> None:
    emulator.faults.drop_peer_after_seconds = 0.3
    async with connected_peer(emulator.url) as peer:
        closed = asyncio.Event()
        peer.pc.on(
            "connectionstatechange",
            lambda: closed.set() if peer.pc.connectionState in ("closed", "failed") else None,
        )
        peer.send(start_message("red shirt"))
        await peer.expect("stream_started")
        await asyncio.wait_for(closed.wait(), 30)
        assert not peer.ws_messages or peer.ws_messages[-1]["type"] != "error"


async def test_stop_leaves_no_tasks_behind(emulator_factory) -> None:
    emu = await emulator_factory()
    before = set(asyncio.all_tasks())
    async with connected_peer(emu.url) as peer:
        peer.send(start_message("red shirt"))
        await peer.expect("stream_started")
        await emu.stop()
        await wait_closed(peer)
    await asyncio.sleep(0.2)
    leftover = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert leftover == [], leftover


async def test_websocket_accepts_a_start_carrying_more_than_25_mib(emulator_factory) -> None:
    emu = await emulator_factory(max_image_bytes=25 * 1024 * 1024)
    oversized = "data:image/jpeg;base64," + base64.b64encode(bytes(26 * 1024 * 1024)).decode()
    async with connected_peer(emu.url) as peer:
        await peer.send_ws(start_message("x", oversized))
        refused = await peer.expect("interactive_stream_error")
        assert refused["reason"] == "invalid_image" and "25MB" in refused["message"]
        peer.send(start_message("still connected"))
        await peer.expect("stream_started")


async def test_slots_free_on_clean_disconnect_and_unclaimed_sessions_expire(emulator_factory) -> None:
    emu = await emulator_factory(concurrency_limit=1, unclaimed_session_seconds=0.5)
    async with connected_peer(emu.url):
        assert len(emu.active_sessions()) == 1
    # The disconnect is processed by the emulator's handler shortly after.
    await until(lambda: not emu.active_sessions(), 10)
    async with httpx.AsyncClient(base_url=emu.url) as http:
        token = await get_token(http)
        headers = bearer(token)
        assert (await http.post("/sessions/request", json={}, headers=headers)).status_code == 200
        assert (await http.post("/sessions/request", json={}, headers=headers)).status_code == 429
        await asyncio.sleep(0.6)  # nobody connected to the first session
        assert (await http.post("/sessions/request", json={}, headers=headers)).status_code == 200


async def test_a_flood_of_requests_is_refused_beyond_the_pending_limit(emulator_factory) -> None:
    emu = await emulator_factory(stream_start_delay_seconds=1.0)  # holds the queue while the flood arrives
    async with connected_peer(emu.url) as peer:
        peer.send(start_message("red shirt"))
        for number in range(80):
            peer.send({"type": "update", "prompt": f"shirt number {number}"})
        refused = [await peer.expect("interactive_stream_error", wait=5) for _ in range(80 - 64)]
        assert {error["reason"] for error in refused} == {"too_many_requests"}
        await peer.expect("stream_started")


async def test_a_client_hanging_up_before_the_offer_is_routine(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    async with httpx.AsyncClient(base_url=emulator.url) as http:
        token = await get_token(http)
        sessions = [await request_session(http, token) for _ in range(3)]
    for session_id, url, session_token in sessions:
        # Closed by dropping the TCP connection, before the emulator has built and sent its offer.
        ws = await websockets.connect(f"{url}/client/{session_id}?token={session_token}")
        ws.transport.abort()
    await until(lambda: not emulator.active_sessions(), 10)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
