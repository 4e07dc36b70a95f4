"""Memory held by one live session's FrameBuffer: a 704x1280, 24 fps stream with a roll-over, 30 MB goal.

`python -m bench.bench_session_memory [--seconds 20]` prints a markdown block. Decoded frames are yuv420p
like the client's; a handful of distinct frames is reused so that the feed itself holds no memory that
grows. Three views of the same run: the buffer's own byte count, tracemalloc (numpy buffers are traced),
and the process RSS (which also sees PyAV's allocations and the allocator's slack).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tracemalloc
from pathlib import Path

import av
import numpy as np

from bot.media.framebuffer import FrameBuffer
from bot.odyssey import StreamFrame

WIDTH, HEIGHT, FPS = 704, 1280, 24
GOAL_BYTES = 30 * 1024 * 1024
MB = 1024 * 1024


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def decoded_frames(count: int = 8) -> list[av.VideoFrame]:
    rng = np.random.default_rng(3)
    frames = []
    for _ in range(count):
        rgb = rng.integers(0, 256, (HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
        frames.append(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p"))
    return frames


async def feed(buffers: list[FrameBuffer], sources: list[av.VideoFrame], seconds: float) -> int:
    """Interleaved sessions, each rolling over to a new stream 2 s before the end; frames per session."""
    total = int(seconds * FPS)
    roll_over = total - 2 * FPS
    for index in range(total):
        stream_id, stream_index = ("first", index) if index < roll_over else ("second", index - roll_over)
        frame = sources[index % len(sources)]
        for buffer in buffers:
            await buffer.add(StreamFrame(frame, stream_index / FPS, stream_id))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="stream seconds to feed")
    parser.add_argument("--sessions", type=int, default=4, help="sessions for the marginal RSS cost")
    args = parser.parse_args()
    sources = decoded_frames()

    # RSS: the first session pays one-off costs (worker threads, scaler contexts, allocator arenas), so
    # the per-session figure is the marginal growth when more sessions run side by side.
    gc.collect()
    rss_start = rss_bytes()
    first = [FrameBuffer()]
    asyncio.run(feed(first, sources, args.seconds))
    rss_one = rss_bytes()
    others = [FrameBuffer() for _ in range(args.sessions - 1)]
    asyncio.run(feed(others, sources, args.seconds))
    rss_all = rss_bytes()
    marginal_rss = (rss_all - rss_one) / max(1, len(others))

    traced_buffer = FrameBuffer()  # the engine's defaults
    gc.collect()
    tracemalloc.start()
    offered = asyncio.run(feed([traced_buffer], sources, args.seconds))
    gc.collect()
    traced, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    buffer = traced_buffer
    kept = buffer.window(buffer.window_seconds)
    full_rgb_window = len(kept) * WIDTH * HEIGHT * 3
    print(f"### Memory per live session (FrameBuffer, {args.seconds:g} s of {WIDTH}x{HEIGHT} at {FPS} fps)\n")
    print(
        f"Settings: sample {buffer.sample_fps:g} fps, window {buffer.window_seconds:g} s, "
        f"max width {buffer.max_width} px, frames kept as yuv420p {kept[0].width}x{kept[0].height}; "
        f"a roll-over 2 s before the end. Offered {offered} frames, kept {len(kept)} "
        f"(bound {buffer.max_frames}), spanning streams {sorted({k.stream_id or '' for k in kept})}.\n"
    )
    print("| measure (one session unless said) | MB | vs 30 MB goal |")
    print("|---|---:|---:|")
    rows = [
        ("buffer.nbytes (kept frames + latest full-size frame for snapshots)", buffer.nbytes),
        ("tracemalloc, held after the feed", traced),
        ("tracemalloc, peak during the feed", traced_peak),
        (f"RSS growth per extra session ({args.sessions - 1} more beside the first)", marginal_rss),
        ("RSS growth for the first session (includes one-off thread/allocator costs)", rss_one - rss_start),
        ("for scale: the same window kept as full-size RGB (computed)", full_rgb_window),
    ]
    for name, value in rows:
        print(f"| {name} | {value / MB:.1f} | {value / GOAL_BYTES:.2f}x |")
    met = max(buffer.nbytes, traced, traced_peak, marginal_rss) <= GOAL_BYTES
    print(f"\nGoal (held, peak traced and marginal RSS under 30 MB): **{'met' if met else 'NOT met'}**.")
    if not met:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
