"""Recordings in a configured folder survive a restart, and a stream cut by SIGKILL is still recorded."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from bot.emulator import Emulator, EmulatorConfig
from tests.emulator.peer import connect_peer, connected_peer, get_token, request_session, start_message
from tests.emulator.process import emulator_process
from tests.emulator.test_recordings import garment_level, run_stream
from tests.helpers import bearer

pytestmark = pytest.mark.timeout(90)


async def recording_of(url: str, stream_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        response = await http.get(f"/recordings/{stream_id}", headers=bearer(await get_token(http)))
        assert response.status_code == 200, response.text
        recording: dict[str, Any] = response.json()
        return recording


async def download(url: str) -> bytes:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(url)
        assert response.status_code == 200, response.text
        return response.content


async def test_a_stream_cut_by_sigkill_is_recorded_by_the_restarted_emulator(tmp_path: Path) -> None:
    async with emulator_process(tmp_path / "recordings") as emulator:
        async with connected_peer(emulator.url) as peer:
            finished = await run_stream(peer, "red wool coat", 0.5)

        async with httpx.AsyncClient(base_url=emulator.url, timeout=30) as http:
            session_id, signalling_url, session_token = await request_session(http, await get_token(http))
        peer = await connect_peer(signalling_url, session_id, session_token)
        try:
            await peer.wait_ready()
            peer.send(start_message("green linen shirt"))
            cut = (await peer.expect("stream_started"))["stream_id"]
            began = time.monotonic()
            await asyncio.sleep(0.8)
            peer.send({"type": "update", "prompt": "black leather jacket"})
            await peer.expect("update_acknowledged")
            # Past the crossfade with room to spare: on a loaded machine the transition starts late.
            await asyncio.sleep(1.5)
            streamed = time.monotonic() - began
            await emulator.kill()
        finally:
            with contextlib.suppress(Exception):
                await peer.close()

        port = emulator.port
        await emulator.start()
        assert emulator.port == port and emulator.starts == 2

        recording = await recording_of(emulator.url, cut)
        # The last progress mark is at most half a second old when the kill comes.
        assert streamed - 0.8 <= recording["duration_seconds"] <= streamed + 0.2, (recording, streamed)
        assert recording["video_url"], recording
        with av.open(io.BytesIO(await download(recording["video_url"])), "r") as container:
            frames = list(container.decode(video=0))
        assert len(frames) == recording["frame_count"]
        levels = [garment_level(frame) for frame in frames]
        # Green linen, then (crossfading into) black leather: the outfit change is in the recording.
        assert levels[0] - levels[-1] > 25
        events_text = (await download(recording["events_url"])).decode()
        events = [json.loads(line) for line in events_text.splitlines()]
        assert [e["type"] for e in events] == ["stream_started", "update", "stream_ended"]
        assert events[-1]["reason"] == "streamer_restarted"

        earlier = await recording_of(emulator.url, finished)
        assert earlier["video_url"] and 0.3 <= earlier["duration_seconds"] <= 1.2
        async with httpx.AsyncClient(base_url=emulator.url, timeout=30) as http:
            listed = (await http.get("/stream-recordings", headers=bearer(await get_token(http)))).json()
        assert {r["stream_id"] for r in listed["recordings"]} == {finished, cut}


async def test_finished_recordings_are_served_again_without_rendering(tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    first = Emulator(EmulatorConfig.small(recordings_dir=str(folder)))
    await first.start()
    try:
        async with connected_peer(first.url) as peer:
            stream_id = await run_stream(peer, "blue denim jacket", 0.5)
        await asyncio.wait_for(first.recordings._recordings[stream_id].ready.wait(), 30)
        before = await recording_of(first.url, stream_id)
    finally:
        await first.stop()
    assert (folder / stream_id / "video.mp4").is_file()  # a configured folder is kept

    second = Emulator(EmulatorConfig.small(recordings_dir=str(folder)))
    await second.start()
    try:
        again = await recording_of(second.url, stream_id)
        assert again["duration_seconds"] == before["duration_seconds"]
        assert again["frame_count"] == before["frame_count"]
        assert len(await download(again["video_url"])) == (folder / stream_id / "video.mp4").stat().st_size
        assert second.library.encoded_scene_count == 0  # nothing was rendered again
    finally:
        await second.stop()


async def test_a_stream_running_at_a_stop_is_recorded_and_served_after_the_next_start(tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    first = Emulator(EmulatorConfig.small(recordings_dir=str(folder)))
    await first.start()
    peer_context = connected_peer(first.url)
    peer = await peer_context.__aenter__()
    try:
        peer.send(start_message("yellow raincoat"))
        stream_id = (await peer.expect("stream_started"))["stream_id"]
        await asyncio.sleep(0.5)
    finally:
        await first.stop()  # ends the stream; its writer may be cancelled before it finishes
        with contextlib.suppress(Exception):
            await peer_context.__aexit__(None, None, None)
    second = Emulator(EmulatorConfig.small(recordings_dir=str(folder)))
    await second.start()
    try:
        recording = await recording_of(second.url, stream_id)
        assert recording["video_url"] and 0.4 <= recording["duration_seconds"] <= 1.5
        events_text = (await download(recording["events_url"])).decode()
        assert [json.loads(line)["type"] for line in events_text.splitlines()] == [
            "stream_started",
            "stream_ended",
        ]
    finally:
        await second.stop()


async def test_without_a_configured_folder_nothing_is_journaled(emulator: Emulator) -> None:
    async with connected_peer(emulator.url) as peer:
        stream_id = await run_stream(peer, "white tee", 0.2)
    await asyncio.wait_for(emulator.recordings._recordings[stream_id].ready.wait(), 30)
    assert not (emulator.recordings.root / stream_id / "journal.jsonl").exists()
