"""Recording fault injection: recordings that appear late, and recordings the platform lost."""

from __future__ import annotations

import asyncio
import time

import httpx

from bot.emulator import Emulator
from tests.emulator.peer import connected_peer, get_token
from tests.emulator.test_recordings import run_stream
from tests.helpers import bearer


async def recording_status(http: httpx.AsyncClient, token: str, stream_id: str) -> int:
    return (await http.get(f"/recordings/{stream_id}", headers=bearer(token))).status_code


async def listed(http: httpx.AsyncClient, token: str) -> list[str]:
    body = (await http.get("/stream-recordings", headers=bearer(token))).json()
    return [item["stream_id"] for item in body["recordings"]]


async def test_a_slow_recording_is_missing_until_its_delay_passed(emulator: Emulator) -> None:
    emulator.faults.recording_delay_seconds = 1.5
    async with connected_peer(emulator.url) as peer:
        stream_id = await run_stream(peer, "red shirt", 0.3)
    ended = time.monotonic()
    async with httpx.AsyncClient(base_url=emulator.url, timeout=30) as http:
        token = await get_token(http)
        assert await recording_status(http, token, stream_id) == 404
        assert await listed(http, token) == []
        await asyncio.sleep(max(0.0, ended + 1.6 - time.monotonic()))
        response = await http.get(f"/recordings/{stream_id}", headers=bearer(token))
        assert response.status_code == 200 and response.json()["video_url"]
        assert await listed(http, token) == [stream_id]


async def test_missing_recordings_answer_404_until_the_fault_is_cleared(emulator: Emulator) -> None:
    emulator.faults.recordings_missing = True
    async with connected_peer(emulator.url) as peer:
        stream_id = await run_stream(peer, "blue coat", 0.3)
    async with httpx.AsyncClient(base_url=emulator.url, timeout=30) as http:
        token = await get_token(http)
        response = await http.get(f"/recordings/{stream_id}", headers=bearer(token))
        assert response.status_code == 404 and response.json() == {"detail": "Recording not found"}
        assert await listed(http, token) == []
        emulator.faults.recordings_missing = False  # only hidden: the emulator behaves as before again
        assert await recording_status(http, token, stream_id) == 200
        assert await listed(http, token) == [stream_id]
