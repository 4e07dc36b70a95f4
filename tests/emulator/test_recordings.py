"""Recordings written at stream end: playable MP4 of the right length, thumbnail, preview, events, URLs."""

from __future__ import annotations

import asyncio
import io
import json
import time

import av
import httpx
from PIL import Image

from bot.emulator import ApiKey, Emulator, garment_box
from tests.emulator.peer import connected_peer, get_token, start_message
from tests.helpers import bearer


def garment_level(frame: av.VideoFrame) -> float:
    left, top, right, bottom = garment_box(frame.width, frame.height)
    return float(frame.to_ndarray(format="rgb24")[top:bottom, left:right].mean())


async def run_stream(peer, prompt: str, seconds: float, update: str | None = None) -> str:
    peer.send(start_message(prompt))
    stream_id = (await peer.expect("stream_started"))["stream_id"]
    if update is not None:
        await asyncio.sleep(seconds / 2)
        peer.send({"type": "update", "prompt": update})
        await peer.expect("update_acknowledged")
        await asyncio.sleep(seconds / 2)
    else:
        await asyncio.sleep(seconds)
    peer.send({"type": "interactive_stream_end"})
    await peer.expect("stream_ended")
    return str(stream_id)


async def test_recording_files_are_real_and_match_the_stream(emulator: Emulator) -> None:
    async with connected_peer(emulator.url) as peer:
        stream_id = await run_stream(peer, "green linen shirt", 2.0, update="black leather jacket")
    async with httpx.AsyncClient(base_url=emulator.url, timeout=30) as http:
        token = await get_token(http)
        response = await http.get(f"/recordings/{stream_id}", headers=bearer(token))
        assert response.status_code == 200
        recording = response.json()
        assert 1.8 <= recording["duration_seconds"] <= 2.8
        assert recording["frame_count"] == round(recording["duration_seconds"] * emulator.config.fps)
        video = (await http.get(recording["video_url"])).content
        with av.open(io.BytesIO(video), "r") as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            frames = list(container.decode(stream))
            assert container.duration is not None
            duration = container.duration / 1_000_000
        assert len(frames) == recording["frame_count"]
        assert abs(duration - recording["duration_seconds"]) < 0.2
        levels = [garment_level(frame) for frame in frames]
        assert levels[0] - levels[-1] > 40  # green linen, then black leather
        low, high = levels[-1] + (levels[0] - levels[-1]) / 4, levels[0] - (levels[0] - levels[-1]) / 4
        assert any(low < level < high for level in levels)  # the crossfade is recorded too
        preview = (await http.get(recording["preview_url"])).content
        with av.open(io.BytesIO(preview), "r") as container:
            assert 0 < len(list(container.decode(video=0))) <= emulator.config.preview_seconds * 8 + 1
        thumbnail = Image.open(io.BytesIO((await http.get(recording["thumbnail_url"])).content))
        assert thumbnail.format == "JPEG" and thumbnail.size == (frames[0].width, frames[0].height)
        events = [json.loads(line) for line in (await http.get(recording["events_url"])).text.splitlines()]
        assert [e["type"] for e in events] == ["stream_started", "update", "stream_ended"]
    # What the render threads did, by kind: the idle picture for the offer, both loops and the crossfade for
    # the stream (VP8), the crossfade and the loops shown in the recording (H.264; the second loop only if
    # it played after the crossfade), then the files.
    work = emulator.library.work
    jobs = dict(work.jobs)
    assert 1 <= jobs.pop("h264_loop") <= 2
    assert jobs == {"idle": 1, "scene": 2, "transition": 1, "h264_transition": 1, "recording": 1}
    assert work.pending == 0 and all(seconds > 0 for seconds in work.cpu_seconds.values())


async def test_listing_is_paginated_recent_first_and_per_key(emulator_factory) -> None:
    emu = await emulator_factory(api_keys={"a": ApiKey(), "b": ApiKey()})
    async with connected_peer(emu.url, "a") as peer:
        ids = [await run_stream(peer, f"shirt {n}", 0.2) for n in range(3)]
    async with httpx.AsyncClient(base_url=emu.url, timeout=30) as http:
        token_a, token_b = await get_token(http, "a"), await get_token(http, "b")
        first = (await http.get("/stream-recordings", params={"limit": 2}, headers=bearer(token_a))).json()
        assert first["total"] == 3 and first["limit"] == 2 and first["offset"] == 0
        assert [r["stream_id"] for r in first["recordings"]] == [ids[2], ids[1]]
        second = (await http.get("/stream-recordings?limit=2&offset=2", headers=bearer(token_a))).json()
        assert [r["stream_id"] for r in second["recordings"]] == [ids[0]]
        item = second["recordings"][0]
        assert (item["width"], item["height"]) == emu.config.frame_size(True)
        assert item["started_at"].endswith("Z") and item["duration_seconds"] > 0
        theirs = (await http.get("/stream-recordings", headers=bearer(token_b))).json()
        assert theirs["total"] == 0 and theirs["recordings"] == []
        assert (await http.get(f"/recordings/{ids[0]}", headers=bearer(token_b))).status_code == 404
        assert (await http.get("/stream-recordings")).status_code == 401
        assert (await http.get("/recordings/unknown", headers=bearer(token_a))).status_code == 404


async def test_signed_urls_expire_and_resist_tampering(emulator_factory) -> None:
    emu = await emulator_factory(signed_url_ttl_seconds=2)
    async with connected_peer(emu.url) as peer:
        stream_id = await run_stream(peer, "red shirt", 0.2)
    async with httpx.AsyncClient(base_url=emu.url, timeout=30) as http:
        token = await get_token(http)
        recording = (await http.get(f"/recordings/{stream_id}", headers=bearer(token))).json()
        assert (await http.get(recording["thumbnail_url"])).status_code == 200
        tampered = recording["thumbnail_url"].replace("thumbnail.jpg", "video.mp4")
        assert (await http.get(tampered)).status_code == 403
        await asyncio.sleep(3.1)  # expiry is rounded up to whole seconds
        assert (await http.get(recording["thumbnail_url"])).status_code == 403


async def test_stop_removes_temporary_files(emulator_factory) -> None:
    emu = await emulator_factory()
    async with connected_peer(emu.url) as peer:
        await run_stream(peer, "red shirt", 0.2)
    root = emu.recordings.root
    await asyncio.sleep(0.5)
    assert any(root.iterdir())
    await emu.stop()
    assert not root.exists()


async def test_a_recording_still_being_written_is_listed_without_links(
    emulator: Emulator, monkeypatch
) -> None:
    import bot.emulator.recordings as recordings_module

    def slow_write(*args, **kwargs):
        time.sleep(1.0)
        return real_write(*args, **kwargs)

    real_write = recordings_module.write_files
    monkeypatch.setattr(recordings_module, "write_files", slow_write)
    monkeypatch.setattr(recordings_module, "WRITE_TIMEOUT_SECONDS", 0.1)
    async with connected_peer(emulator.url) as peer:
        stream_id = await run_stream(peer, "grey wool coat", 0.3)
    async with httpx.AsyncClient(base_url=emulator.url, timeout=30) as http:
        token = await get_token(http)
        pending = await http.get(f"/recordings/{stream_id}", headers=bearer(token))
        assert pending.status_code == 200, pending.text
        assert pending.json()["video_url"] is None and pending.json()["duration_seconds"] > 0
        await asyncio.sleep(1.5)
        done = (await http.get(f"/recordings/{stream_id}", headers=bearer(token))).json()
        assert done["video_url"] is not None
