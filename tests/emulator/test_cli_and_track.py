"""The `python -m bot emulator` command and the packet-replaying track's keyframe handling."""

from __future__ import annotations

import asyncio
import signal
import sys
from types import SimpleNamespace

import httpx
import pytest
from aiortc import RTCPeerConnection
from aiortc.rtp import RTCP_PSFB_FIR, RTCP_PSFB_PLI, RtcpPsfbPacket

from bot.__main__ import build_parser
from bot.emulator.cli import config_from_args
from bot.emulator.config import EmulatorConfig
from bot.emulator.loops import EncodedClip
from bot.emulator.track import LoopTrack
from tests.helpers import bearer


async def test_cli_prints_url_first_and_stops_on_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "emulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--api-key",
        "KEY",
        "--concurrency-limit",
        "1",
        "--scale",
        "0.25",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()
        assert line.startswith("ODYSSEY_API_URL=http://127.0.0.1:")
        url = line.split("=", 1)[1]
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.post("/auth/token", json={"api_key": "KEY"})).status_code == 200
            assert (
                await http.post("/auth/token", json={"api_key": "ody_emulator_dev_key"})
            ).status_code == 401
            token = (await http.post("/auth/token", json={"api_key": "KEY"})).json()["access_token"]
            headers = bearer(token)
            assert (await http.post("/sessions/request", json={}, headers=headers)).status_code == 200
            refused = await http.post("/sessions/request", json={}, headers=headers)
            assert refused.status_code == 429
            assert refused.json()["detail"]["details"] == {"active_count": 1, "limit": 1}
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def parse_emulator_config(*options: str) -> EmulatorConfig:
    return config_from_args(build_parser().parse_args(["emulator", *options]))


def test_cli_limit_options_reach_the_config_and_unset_ones_keep_the_defaults() -> None:
    config = parse_emulator_config(
        "--concurrency-limit=2",
        "--streamer-slots=3",
        "--stream-cap=20",
        "--idle-timeout=7.5",
        "--fps=12",
        "--scale=0.5",
        "--max-spectators=30",
    )
    assert (config.concurrency_limit, config.streamer_slots, config.stream_cap_seconds) == (2, 3, 20.0)
    assert config.max_spectators_per_stream == 30
    assert (config.idle_timeout_seconds, config.fps, config.frame_size(True)) == (7.5, 12, (352, 640))
    assert parse_emulator_config("--idle-timeout=0").idle_timeout_seconds is None
    defaults, plain = EmulatorConfig(), parse_emulator_config()
    assert (plain.concurrency_limit, plain.idle_timeout_seconds, plain.fps) == (
        defaults.concurrency_limit,
        defaults.idle_timeout_seconds,
        defaults.fps,
    )


@pytest.mark.parametrize(
    "option", ["--fps=0", "--concurrency-limit=-1", "--idle-timeout=-2", "--scale=0", "--max-spectators=0"]
)
def test_cli_refuses_limits_that_cannot_work(option: str) -> None:
    with pytest.raises(SystemExit, match="emulator: "):
        parse_emulator_config(option)


def clip(tag: bytes, count: int) -> EncodedClip:
    return EncodedClip(packets=tuple(tag + bytes([i]) for i in range(count)), width=16, height=16)


async def test_track_paces_loops_intros_and_restarts_at_keyframe_on_request() -> None:
    track = LoopTrack(fps=100, loop=clip(b"idle", 2))
    got = [bytes(await track.recv()) for _ in range(3)]
    assert got == [b"idle\x00", b"idle\x01", b"idle\x00"]
    track.show(clip(b"loop", 3), intro=clip(b"fade", 2))
    got = [bytes(await track.recv()) for _ in range(4)]
    assert got == [b"fade\x00", b"fade\x01", b"loop\x00", b"loop\x01"]
    track.request_keyframe()
    packet = await track.recv()
    assert bytes(packet) == b"loop\x00" and track.keyframe_restarts == 1
    assert (track.frames_sent, track.bytes_sent) == (8, 8 * 5)  # every payload here is 5 bytes
    assert packet.pts == 7 * 90_000 // 100 and packet.time_base.denominator == 90_000
    track.stop()


async def test_track_starts_a_transition_where_the_old_loop_reaches_its_start() -> None:
    track = LoopTrack(fps=200, loop=clip(b"old", 8))
    assert [bytes(await track.recv()) for _ in range(2)] == [b"old\x00", b"old\x01"]
    track.show_from(4, clip(b"new", 3), clip(b"fade", 1))
    got = [bytes(await track.recv()) for _ in range(4)]
    assert got == [b"old\x02", b"old\x03", b"fade\x00", b"new\x00"]
    track.show_from(0, clip(b"next", 2), clip(b"cut", 1))  # just passed: switch at once
    assert bytes(await track.recv()) == b"cut\x00"
    track.stop()


async def test_aiortc_pli_and_fir_from_the_receiver_restart_the_loop_at_its_keyframe() -> None:
    # Pins the private aiortc hook the track relies on: if aiortc changes it, this test fails.
    pc = RTCPeerConnection()
    track = LoopTrack(fps=200, loop=clip(b"loop", 4))
    try:
        sender = pc.addTrack(track)
        assert track.attach_sender(sender)
        for fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            assert [bytes(await track.recv()) for _ in range(2)][-1] != b"loop\x00"
            await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=fmt, ssrc=1, media_ssrc=sender._ssrc))
            assert bytes(await track.recv()) == b"loop\x00"
        assert track.keyframe_restarts == 2
    finally:
        track.stop()
        await pc.close()


def test_a_sender_without_the_keyframe_hook_degrades_to_loop_keyframes() -> None:
    track = LoopTrack(fps=10, loop=clip(b"loop", 2))
    assert not track.attach_sender(SimpleNamespace())  # type: ignore[arg-type]
    track.stop()


async def test_a_mirror_follows_switches_including_one_pending_when_it_joins() -> None:
    track = LoopTrack(fps=200, loop=clip(b"old", 8))
    track.show_from(4, clip(b"new", 3), clip(b"fade", 1))  # waits for the old loop to reach frame 4
    mirror = track.mirror()
    got = [bytes(await mirror.recv()) for _ in range(6)]
    assert got == [b"old\x00", b"old\x01", b"old\x02", b"old\x03", b"fade\x00", b"new\x00"]
    track.show(clip(b"next", 2))
    assert bytes(await mirror.recv()) == b"next\x00"
    mirror.stop()
    track.stop()
