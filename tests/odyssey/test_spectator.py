"""`Odyssey.connect_to_stream`: a spectator of a broadcast over WHEP, against the emulator (real WebRTC)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.emulator import Emulator
from bot.emulator.scene import garment_box
from bot.odyssey import (
    BroadcastInfo,
    Odyssey,
    OdysseyAuthError,
    OdysseyStreamError,
    SpectatorConnection,
    TooManySpectatorsError,
    VideoFrame,
)
from bot.odyssey.frames import StreamFrame
from tests.helpers import until
from tests.odyssey.conftest import ClientHarness


async def broadcasting(
    harness: ClientHarness, emulator: Emulator, outfit: str
) -> tuple[Odyssey, BroadcastInfo]:
    """A client streaming `outfit` in broadcast mode, and what it was told in `broadcast_ready`."""
    client = harness.client(emulator)
    ready: asyncio.Future[BroadcastInfo] = asyncio.get_running_loop().create_future()
    await client.connect(on_broadcast_ready=ready.set_result)
    await client.start_stream(outfit, portrait=True, broadcast=True)
    return client, await asyncio.wait_for(ready, 10)


def dominant_channel(frame: StreamFrame) -> int | None:
    """0, 1 or 2 when red, green or blue clearly dominates the garment region, else None."""
    pixels = frame.frame.to_ndarray(format="rgb24")
    left, top, right, bottom = garment_box(frame.frame.width, frame.frame.height)
    mean = pixels[top:bottom, left:right].reshape(-1, 3).mean(axis=0)
    best = int(mean.argmax())
    return best if mean[best] > max(mean[i] for i in range(3) if i != best) + 40 else None


async def garment_turns(spectator: SpectatorConnection, channel: int) -> None:
    async with asyncio.timeout(10):
        async for frame in spectator.frames:
            if dominant_channel(frame) == channel:
                return
    raise AssertionError("the spectator's frames ended first")


async def test_a_spectator_sees_the_broadcast_follow_the_prompt_and_leaves_with_delete(
    harness: ClientHarness,
) -> None:
    emulator = await harness.emulator()
    client, ready = await broadcasting(harness, emulator, "a red shirt")
    assert ready.webrtc_url.startswith(f"{emulator.url}/broadcast/") and ready.broadcast_url is None
    shown: list[VideoFrame] = []
    spectator = await Odyssey.connect_to_stream(
        ready.webrtc_url, ready.spectator_token, on_video_frame=shown.append
    )
    async with spectator:
        await garment_turns(spectator, 0)
        await client.interact("a blue shirt")
        await garment_turns(spectator, 2)  # the spectator follows the member's steering
        assert spectator.is_connected and spectator.connection_state == "connected"
        assert emulator.broadcasts.spectator_count(client.current_stream_id or "") == 1
        await until(lambda: shown, 10)
        width, height = emulator.config.frame_size(portrait=True)
        assert (shown[0].width, shown[0].height, shown[0].data.shape) == (width, height, (height, width, 3))
    # Leaving sent the WHEP DELETE: the slot is free at once, not after the server notices.
    assert (emulator.broadcasts.spectators_joined, emulator.broadcasts.spectators_left) == (1, 1)
    assert emulator.broadcasts.spectator_count(client.current_stream_id or "") == 0
    assert spectator.frames.closed and not spectator.is_connected


async def test_the_spectator_limit_is_a_clear_error_and_a_freed_slot_can_be_taken(
    harness: ClientHarness,
) -> None:
    emulator = await harness.emulator(max_spectators_per_stream=1)
    _, ready = await broadcasting(harness, emulator, "a green shirt")
    first = await Odyssey.connect_to_stream(ready.webrtc_url, ready.spectator_token)
    try:
        with pytest.raises(TooManySpectatorsError, match="Too many spectators"):
            await Odyssey.connect_to_stream(ready.webrtc_url, ready.spectator_token)
    finally:
        await first.disconnect()
    second = await Odyssey.connect_to_stream(ready.webrtc_url, ready.spectator_token)
    await second.disconnect()
    assert emulator.broadcasts.spectators_joined == 2


async def test_bad_tokens_and_ended_broadcasts_are_refused_plainly(harness: ClientHarness) -> None:
    emulator = await harness.emulator()
    client, ready = await broadcasting(harness, emulator, "a yellow shirt")
    with pytest.raises(OdysseyAuthError, match="Invalid spectator token"):
        await Odyssey.connect_to_stream(ready.webrtc_url, "forged")
    await client.end_stream()
    with pytest.raises(OdysseyStreamError, match="Stream not found") as refused:
        await Odyssey.connect_to_stream(ready.webrtc_url, ready.spectator_token)
    assert refused.value.reason == "stream_not_found"


async def test_the_end_of_the_broadcast_ends_the_spectator(harness: ClientHarness) -> None:
    emulator = await harness.emulator()
    client, ready = await broadcasting(harness, emulator, "a white shirt")
    told: list[Any] = []
    spectator = await Odyssey.connect_to_stream(
        ready.webrtc_url, ready.spectator_token, on_disconnected=lambda: told.append("gone")
    )
    await spectator.frames.get()
    await client.end_stream()  # the member's stream ends (a roll-over or the end of the try-on)
    async with asyncio.timeout(10):
        async for _ in spectator.frames:  # drains, then stops: no frame comes after the end
            pass
    await until(lambda: told == ["gone"], 10)
    await spectator.close()
    assert not spectator.is_connected
