"""A full stream over real WebRTC on loopback against the emulator, with a raw aiortc answerer."""

from __future__ import annotations

import asyncio
import re

from bot.emulator import Emulator, garment_box
from tests.emulator.peer import connected_peer, start_message


def garment_mean(frame):
    pixels = frame.to_ndarray(format="rgb24")
    left, top, right, bottom = garment_box(frame.width, frame.height)
    return pixels[top:bottom, left:right].reshape(-1, 3).mean(axis=0)


async def garment_becomes(peer, channel: int, within: float = 10.0):
    """Read frames until the garment region is dominated by one colour channel; returns its mean."""
    async with asyncio.timeout(within):
        while True:
            mean = garment_mean(await peer.frame())
            others = [mean[i] for i in range(3) if i != channel]
            if mean[channel] > max(others) + 40:
                return mean


async def test_offer_has_loopback_candidates_two_channels_and_msid(emulator: Emulator) -> None:
    async with connected_peer(emulator.url) as peer:
        candidates = re.findall(r"a=candidate:\S+ \d \S+ \d+ (\S+) \d+ typ (\S+)", peer.offer_sdp)
        assert candidates and all(ip == "127.0.0.1" and kind == "host" for ip, kind in candidates)
        assert "a=msid:" in peer.offer_sdp
        assert "m=application" in peer.offer_sdp and "VP8" in peer.offer_sdp
        await peer.wait_ready()
        assert set(peer.channels) == {"clientToStreamer", "streamerToClient"}


async def test_full_stream_changes_frames_with_the_prompt(emulator: Emulator) -> None:
    async with connected_peer(emulator.url) as peer:
        idle = await peer.frame()
        assert idle.to_ndarray(format="rgb24").mean() < 30
        peer.send(
            {
                "type": "interactive_stream_start",
                "prompt": "a red shirt",
                "portrait": True,
                "input_image_base64": None,
                "broadcast": False,
            }
        )
        started = await peer.expect("stream_started")
        assert started["applied_prompt"] == "a red shirt" and started["stream_id"]
        await garment_becomes(peer, 0)  # red
        peer.send({"type": "update", "prompt": "a blue shirt"})
        ack = await peer.expect("update_acknowledged")
        assert ack["prompt"] == "a blue shirt"
        await garment_becomes(peer, 2)  # blue
        assert garment_mean(await peer.frame())[2] > 100  # and stays blue
        [stats] = emulator.stream_stats()
        assert (stats.prompt, stats.size, stats.image_bytes) == ("a blue shirt", (176, 320), None)
        assert stats.scene_key and stats.frames_sent > 0 and stats.bytes_sent > stats.frames_sent
        peer.send({"type": "interactive_stream_end"})
        await peer.expect("stream_ended")
        async with asyncio.timeout(10):
            while (await peer.frame()).to_ndarray(format="rgb24").mean() > 30:
                pass  # back to the dark idle picture


async def test_messages_are_answered_in_arrival_order(emulator: Emulator) -> None:
    async with connected_peer(emulator.url) as peer:
        peer.send(start_message("green shirt"))
        peer.send({"type": "update", "prompt": "yellow shirt"})  # before stream_started arrives
        peer.send({"type": "update", "prompt": "purple shirt"})
        peer.send({"type": "interactive_stream_end"})
        await peer.expect("stream_started")
        assert (await peer.expect("update_acknowledged"))["prompt"] == "yellow shirt"
        assert (await peer.expect("update_acknowledged"))["prompt"] == "purple shirt"
        await peer.expect("stream_ended")
