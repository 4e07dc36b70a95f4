"""Client receive cost: CPU of this process, delivered fps and dropped frames for N concurrent streams.

`python -m bench.bench_receive [--streams 1 4 8] [--seconds 10] [--write]` prints a markdown block
(`--write` also replaces the "Client receive cost" section of docs/benchmarks.md).

The emulator runs in subprocesses (`python -m bot emulator`, 1280x704 landscape at 24 fps) so its CPU is not
counted; it allows 5 sessions per key, so 8 streams use two emulator processes. Each stream is a real
`bot.odyssey.Odyssey` client on 127.0.0.1 whose consumer takes every frame from `client.frames` (the engine's
cheap path: decoded yuv420p, no RGB); the `rgb-callback` rows use the SDK-shaped `on_video_frame` path
(RGB conversion in a worker thread, frames skipped when behind). CPU share = process CPU seconds (all
threads, including aiortc's decoder threads) / wall seconds over the window, after a warm-up.
Baseline, same run: the VP8 frames the first stream received (captured from aiortc's decoder input) decoded
again with PyAV's libvpx directly, giving the CPU one stream costs for decoding alone at the delivered rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
from aiortc.codecs import vpx

from bot.emulator import DEV_API_KEY
from bot.odyssey import Odyssey, VideoFrame

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "examples" / "astronaut.jpg"
DOC = REPO / "docs" / "benchmarks.md"
HEADING = "## Client receive cost"
STREAMS_PER_EMULATOR = 4
WARMUP_SECONDS = 3.0
CAPTURE_FRAMES = 24 * 12

captured: list[tuple[bytes, int]] = []
_original_decode = vpx.Vp8Decoder.decode
_capturing: list[Any] = []


def _capture_decode(self: Any, encoded_frame: Any) -> Any:
    # Record what the first decoder receives (from its first keyframe on), then decode as usual.
    if not _capturing:
        _capturing.append(self)
    if _capturing[0] is self and len(captured) < CAPTURE_FRAMES:
        captured.append((bytes(encoded_frame.data), encoded_frame.timestamp))
    return _original_decode(self, encoded_frame)


@dataclass
class Row:
    streams: int
    path: str
    seconds: float
    cpu_share: float
    fps_per_stream: float
    dropped: int
    frame_size: str


class EmulatorProcess:
    """`python -m bot emulator` in a subprocess; its URL comes from the first line it prints."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> EmulatorProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "emulator", "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("ODYSSEY_API_URL="):
            raise RuntimeError(f"emulator did not start: {line!r}")
        self.url = line.split("=", 1)[1]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


async def consume(client: Odyssey, counts: list[int], index: int, sizes: set[str]) -> None:
    async for frame in client.frames:
        counts[index] += 1
        sizes.add(f"{frame.frame.width}x{frame.frame.height}")


async def measure(urls: list[str], streams: int, seconds: float, path: str) -> Row:
    clients = [Odyssey(api_key=DEV_API_KEY, api_url=urls[i % len(urls)]) for i in range(streams)]
    counts = [0] * streams
    sizes: set[str] = set()
    callback_counts = [0] * streams
    consumers: list[asyncio.Task[None]] = []
    try:
        for index, client in enumerate(clients):
            on_frame = None
            if path == "rgb-callback":

                def on_frame(frame: VideoFrame, index: int = index) -> None:
                    callback_counts[index] += 1
                    sizes.add(f"{frame.width}x{frame.height}")

            await client.connect(on_video_frame=on_frame)
            await client.start_stream("a red and white striped cotton shirt", portrait=False, image=PHOTO)
            if path == "frames":
                consumers.append(asyncio.create_task(consume(client, counts, index, sizes)))
        await asyncio.sleep(WARMUP_SECONDS)
        received = counts if path == "frames" else callback_counts
        start_counts = list(received)
        start_dropped = [dropped_of(c, path) for c in clients]
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        delivered = sum(received) - sum(start_counts)
        dropped = sum(dropped_of(c, path) for c in clients) - sum(start_dropped)
        for client in clients:
            await client.end_stream()
    finally:
        for task in consumers:
            task.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
        for client in clients:
            await client.aclose()
    return Row(streams, path, wall, cpu / wall, delivered / streams / wall, dropped, ",".join(sorted(sizes)))


def dropped_of(client: Odyssey, path: str) -> int:
    return client.frames.dropped if path == "frames" else client.dropped_callback_frames


def decode_baseline() -> tuple[float, int]:
    """CPU seconds per frame to decode the captured VP8 frames with PyAV directly."""
    codec = av.CodecContext.create("libvpx", "r")
    decoded = 0
    started = time.process_time()
    for data, timestamp in captured:
        packet = av.Packet(data)
        packet.pts = timestamp
        with contextlib.suppress(av.error.InvalidDataError):
            decoded += len(codec.decode(packet))
    elapsed = time.process_time() - started
    return elapsed / max(decoded, 1), decoded


async def run(streams: list[int], seconds: float, callback_streams: list[int]) -> str:
    vpx.Vp8Decoder.decode = _capture_decode  # type: ignore[method-assign]
    needed = max(1, -(-max(streams + callback_streams) // STREAMS_PER_EMULATOR))
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(EmulatorProcess()).url for _ in range(needed)]
        rows = [await measure(urls, n, seconds, "frames") for n in streams]
        rows += [await measure(urls, n, seconds, "rgb-callback") for n in callback_streams]
    vpx.Vp8Decoder.decode = _original_decode  # type: ignore[method-assign]
    per_frame, decoded = decode_baseline()
    return report(rows, per_frame, decoded, seconds, needed)


def report(rows: list[Row], per_frame: float, decoded: int, seconds: float, emulators: int) -> str:
    lines = [
        HEADING,
        "",
        f"Command: `python -m bench.bench_receive --seconds {seconds:g}` (run on a shared 2-core machine,",
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; other agents were busy, so read the ratios).",
        f"Emulator: {emulators} subprocess(es) `python -m bot emulator`, 1280x704 at 24 fps, not counted.",
        f"Baseline: {decoded} captured VP8 frames of stream 1 decoded with PyAV libvpx directly: "
        f"{per_frame * 1000:.2f} ms CPU per frame.",
        "",
        "| streams | path | CPU share of one core (all streams) | CPU per stream | delivered fps per stream "
        "| dropped frames | decode-only baseline per stream | client / baseline |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        per_stream = row.cpu_share / row.streams
        baseline = per_frame * row.fps_per_stream
        ratio = per_stream / baseline if baseline > 0 else float("nan")
        lines.append(
            f"| {row.streams} | {row.path} | {row.cpu_share:.0%} | {per_stream:.1%} "
            f"| {row.fps_per_stream:.1f} | {row.dropped} | {baseline:.1%} | {ratio:.2f}x |"
        )
    lines += [
        "",
        "CPU per stream covers everything the client does in this process: ICE/DTLS/SRTP, RTP",
        "depacketising and the jitter buffer, VP8 decoding (aiortc's decoder thread), and handing frames",
        "over. The baseline is decoding alone, so the ratio is the overhead of receiving on top of decoding.",
        "`dropped` counts frames the bounded queue (or the callback worker) discarded when the consumer",
        "was behind.",
        f"Window: {seconds:g} s per row after {WARMUP_SECONDS:g} s warm-up.",
    ]
    return "\n".join(lines) + "\n"


def write_section(section: str) -> None:
    """Replace (or append) this benchmark's section of docs/benchmarks.md, leaving the others alone."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--callback-streams", type=int, nargs="*", default=[1, 4])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    section = asyncio.run(run(args.streams, args.seconds, args.callback_streams))
    print(section)
    if args.write:
        write_section(section)


if __name__ == "__main__":
    main()
