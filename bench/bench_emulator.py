"""Emulator capacity: CPU of the emulator process and the frame rate it sends to N concurrent streams.

`python -m bench.bench_emulator [--streams 1 4 10 16] [--seconds 10]` prints a markdown block.
The emulator runs in a subprocess (full size 704x1280, 24 fps, `python -m bench.bench_emulator --serve`).
The receivers live in this process: real aiortc peers on 127.0.0.1 whose RTP receivers only count packets
(frames = RTP packets with the marker bit) and never decode, so the numbers are the emulator's cost alone.
Emulator CPU comes from /proc/<pid>/stat over the measuring window, after a warm-up.
Baseline, in the same run: the CPU one stream would cost if every frame were encoded per stream, measured
by encoding the same 704x1280 frames with aiortc's own VP8 encoder (what a `VideoStreamTrack` returning
frames would do).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import httpx
import websockets
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from bot.emulator.cli import serve
from bot.emulator.config import DEV_API_KEY, ApiKey, EmulatorConfig
from bot.emulator.scene import SceneArt
from bot.loopback_ice import restrict_ice_to_loopback

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "examples" / "astronaut.jpg"
FPS = 24
TIMEOUT = 60.0
PROMPT = "red and white striped cotton shirt"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

frames_by_receiver: defaultdict[int, int] = defaultdict(int)


async def _count_only(self: RTCRtpReceiver, packet: RtpPacket, arrival_time_ms: int) -> None:
    # Replaces aiortc's depacketise-and-decode path: the benchmark measures the sender, not decoding.
    if packet.marker:
        frames_by_receiver[id(self)] += 1


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class Receiver:
    """One benchmark client: websocket, answering peer connection and its RTP receiver."""

    ws: Any
    pc: RTCPeerConnection
    channel: Any = None
    started: asyncio.Event = field(default_factory=asyncio.Event)

    def on_message(self, text: str) -> None:
        """Note `stream_started`."""
        if json.loads(text).get("type") == "stream_started":
            self.started.set()

    @property
    def frames(self) -> int:
        receivers = [t.receiver for t in self.pc.getTransceivers()]
        return sum(frames_by_receiver[id(r)] for r in receivers)


async def connect(http: httpx.AsyncClient, token: str) -> Receiver:
    """REST handshake, signaling and an answer; returns once the data channel is open."""
    headers = {"Authorization": f"Bearer {token}"}
    session = (await http.post("/sessions/request", json={}, headers=headers)).json()
    minted = await http.post("/sessions/token", json={"session_id": session["session_id"]}, headers=headers)
    url = f"{session['signalling_url']}/client/{session['session_id']}?token={minted.json()['session_token']}"
    ws = await websockets.connect(url, max_size=64 * 2**20)
    offer = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver = Receiver(ws=ws, pc=pc)
    opened = asyncio.Event()

    @pc.on("datachannel")
    def on_channel(channel: Any) -> None:
        if channel.label == "streamerToClient":
            channel.on("message", receiver.on_message)
        if channel.label == "clientToStreamer":
            receiver.channel = channel
            channel.on("open", opened.set)
            if channel.readyState == "open":
                opened.set()

    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    await ws.send(json.dumps({"type": "answer", "sdp": pc.localDescription.sdp}))
    await asyncio.wait_for(opened.wait(), TIMEOUT)
    return receiver


async def measure(url: str, pid: int, streams: int, seconds: float, image_url: str) -> dict[str, float]:
    """Start `streams` streams, warm up, then measure emulator CPU and received frame rates."""
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as http:
        token = (await http.post("/auth/token", json={"api_key": DEV_API_KEY})).json()["access_token"]
        receivers = [await connect(http, token) for _ in range(streams)]
    try:
        start = {
            "type": "interactive_stream_start",
            "prompt": f"{PROMPT} ({streams} streams)",  # a fresh scene for every row
            "portrait": True,
            "input_image_base64": image_url,
            "broadcast": False,
        }
        began = time.monotonic()
        for receiver in receivers:
            await receiver.ws.send(json.dumps(start))
        await asyncio.wait_for(asyncio.gather(*(r.started.wait() for r in receivers)), TIMEOUT)
        all_started = time.monotonic() - began
        await asyncio.sleep(2.0)  # settle
        frames_before = [r.frames for r in receivers]
        cpu_before, wall_before = process_cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(seconds)
        cpu, wall = process_cpu_seconds(pid) - cpu_before, time.monotonic() - wall_before
        rates = [(r.frames - before) / wall for r, before in zip(receivers, frames_before, strict=True)]
        for receiver in receivers:
            receiver.channel.send(json.dumps({"type": "interactive_stream_end"}))
        await asyncio.sleep(0.5)
    finally:
        for receiver in receivers:
            with contextlib.suppress(Exception):
                await receiver.ws.send(json.dumps({"type": "client_disconnecting"}))
            await receiver.pc.close()
            await receiver.ws.close()
    return {
        "streams": streams,
        "cpu_share": cpu / wall,
        "cpu_per_stream": cpu / wall / streams,
        "min_fps": min(rates),
        "mean_fps": sum(rates) / len(rates),
        "total_fps": sum(rates),
        "all_started_seconds": all_started,
    }


def per_stream_encoding_baseline(frames: int = 48) -> float:
    """CPU seconds per second of video for one stream if each frame were VP8-encoded (aiortc's encoder)."""
    art = SceneArt.build((704, 1280), PROMPT, PHOTO.read_bytes())
    video = [av.VideoFrame.from_ndarray(art.frame(i / frames), format="rgb24") for i in range(frames)]
    encoder = Vp8Encoder()
    began = time.process_time()
    for index, frame in enumerate(video):
        frame.pts = index * 90_000 // FPS
        frame.time_base = Fraction(1, 90_000)
        encoder.encode(frame)
    return (time.process_time() - began) / (frames / FPS)


async def run(stream_counts: list[int], seconds: float) -> str:
    """Run the emulator in a subprocess, measure each stream count, and format the results."""
    restrict_ice_to_loopback()
    RTCRtpReceiver._handle_rtp_packet = _count_only  # type: ignore[method-assign]
    image_url = "data:image/jpeg;base64," + base64.b64encode(PHOTO.read_bytes()).decode()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.bench_emulator", "--serve", stdout=asyncio.subprocess.PIPE, cwd=REPO
    )
    results = []
    try:
        assert process.stdout is not None
        url = (await asyncio.wait_for(process.stdout.readline(), TIMEOUT)).decode().strip().split("=", 1)[1]
        for count in stream_counts:
            results.append(await measure(url, process.pid, count, seconds, image_url))
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), TIMEOUT)
    baseline = await asyncio.to_thread(per_stream_encoding_baseline)
    return report(results, baseline, seconds)


def report(results: list[dict[str, float]], baseline: float, seconds: float) -> str:
    """The markdown block for docs/benchmarks.md."""
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"shared with other work (noisy). Frames 704x1280 VP8, target {FPS} fps, window {seconds:.0f} s.",
        "",
        "| streams | emulator CPU (cores) | CPU per stream | min fps | mean fps | total frames/s "
        "| per-stream cost vs encoding baseline | all started after (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results:
        lines.append(
            f"| {row['streams']:.0f} | {row['cpu_share']:.3f} | {row['cpu_per_stream']:.4f} "
            f"| {row['min_fps']:.1f} | {row['mean_fps']:.1f} | {row['total_fps']:.0f} "
            f"| {row['cpu_per_stream'] / baseline:.3f}x | {row['all_started_seconds']:.2f} |"
        )
    lines += [
        "",
        f"Baseline (same run): encoding every frame per stream with aiortc's VP8 encoder costs "
        f"{baseline:.3f} CPU-seconds per stream-second, i.e. {2 / baseline:.1f} streams would saturate "
        "2 cores.",
    ]
    return "\n".join(lines)


def main() -> int:
    """Command line: measure, or (`--serve`) run the emulator the measurement talks to."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 10, 16])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        limits = {"concurrency_limit": 64, "streamer_slots": 64, "idle_timeout_seconds": None}
        config = EmulatorConfig(fps=FPS, api_keys={DEV_API_KEY: ApiKey()}, **limits)  # type: ignore[arg-type]
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(config))
        return 0
    print(asyncio.run(run(args.streams, args.seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
