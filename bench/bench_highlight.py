"""Highlight benchmark: what the final post's highlight MP4 costs, beside the same session's GIF snippets.

    python -m bench.bench_highlight [--seconds 10] [--outfits 3] [--fps 24] [--scale 1.0]

One real session through the engine with its defaults (GIF snippets 360 px, 12 fps, 2 s; highlight 360 px,
6 fps) against the emulator in a child process (704x1280 at 24 fps by default): an outfit at the start and
more spread over `--seconds` of streaming, then the end, where the highlight is encoded in the snippet
pool. Measured: the pool worker's CPU for every encoding (as the worker counts it), the reel's CPU while
streaming (JPEG-compressing the sampled frames, thread CPU), sizes, and the reel's peak memory. Prints a
markdown block for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.emulator_process import start_emulator
from bot.emulator import DEV_API_KEY
from bot.loopback_ice import restrict_ice_to_loopback
from bot.media.snippets import DISCORD_UPLOAD_LIMIT, ClipFrames, Snippet, SnippetEncoder
from bot.store import Store
from bot.tryon.engine import Engine, build_engine, client_factory
from bot.tryon.models import EndReason, SessionRequest, SessionState
from bot.tryon.presenter import (
    BroadcastReady,
    ErrorReported,
    RecordingReady,
    SnapshotReady,
    SnippetReady,
    StatusChanged,
)
from bot.tryon.session import TryOnSession
from bot.tryon.settings import EngineSettings

PHOTO = (Path(__file__).parents[1] / "examples" / "astronaut.jpg").read_bytes()
OUTFITS = ["a red wool coat", "a blue denim jacket", "a green silk evening dress", "a black tuxedo"]
MIB = 1024 * 1024


class MeasuredEncoder(SnippetEncoder):
    """The engine's encoder, keeping every clip it made (with the worker CPU it cost)."""

    def __init__(self) -> None:
        super().__init__()
        self.clips: list[Snippet] = []

    async def encode_gif(
        self, frames: ClipFrames, fps: float, budget_bytes: int = DISCORD_UPLOAD_LIMIT, max_width: int = 360
    ) -> Snippet:
        clip = await super().encode_gif(frames, fps, budget_bytes, max_width)
        self.clips.append(clip)
        return clip

    async def encode_mp4(
        self,
        frames: ClipFrames,
        fps: float,
        budget_bytes: int = DISCORD_UPLOAD_LIMIT,
        max_width: int = 360,
        crf: int = 23,
    ) -> Snippet:
        clip = await super().encode_mp4(frames, fps, budget_bytes, max_width, crf)
        self.clips.append(clip)
        return clip


@dataclass
class Keeper:
    """A presenter that keeps the snippets and the results, and nothing else."""

    upload_budget_bytes: int | None = DISCORD_UPLOAD_LIMIT
    snippets: list[SnippetReady] = field(default_factory=list)
    results: list[RecordingReady] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def status_changed(self, event: StatusChanged) -> None:
        return None

    async def snippet_ready(self, event: SnippetReady) -> None:
        self.snippets.append(event)

    async def snapshot_ready(self, event: SnapshotReady) -> None:
        return None

    async def broadcast_ready(self, event: BroadcastReady) -> None:
        return None

    async def recording_ready(self, event: RecordingReady) -> None:
        self.results.append(event)

    async def error(self, event: ErrorReported) -> None:
        self.errors.append(event.message)


@dataclass
class Measured:
    """One session's clips and the reel's cost."""

    streamed_seconds: float
    gifs: list[Snippet]
    highlight: Snippet
    outfits_shown: int
    reel_cpu_seconds: float
    reel_frames: int
    reel_peak_bytes: int


async def run_session(
    engine: Engine[TryOnSession], encoder: MeasuredEncoder, args: argparse.Namespace
) -> Measured:
    presenter = Keeper()
    request = SessionRequest(guild_id=1, user_id=1, channel_id=None, photo=PHOTO, outfit=OUTFITS[0])
    session = await engine.manager.admit(request, presenter)
    async with asyncio.timeout(120):
        while session.state is not SessionState.STREAMING:
            if session.is_finished:
                raise RuntimeError(f"the session ended before streaming: {presenter.errors}")
            await asyncio.sleep(0.05)
    peak = 0

    async def watch_reel() -> None:
        nonlocal peak
        while not session.finished.is_set():
            peak = max(peak, session.reel.nbytes)
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch_reel())
    # Outfits at their times, not waiting for each snippet (encoding one can outlast the next outfit's time).
    step = args.seconds / args.outfits
    steering = []
    for index in range(1, args.outfits):
        await until_streamed(session, index * step)
        outfit = OUTFITS[index % len(OUTFITS)]
        steering.append(asyncio.create_task(engine.manager.steer(session, outfit)))
    await until_streamed(session, args.seconds)
    streamed = session.streamed_seconds
    reel_frames = len(session.reel)
    session.stop(EndReason.MEMBER)
    async with asyncio.timeout(180):
        await session.finished.wait()
    await watcher
    await asyncio.gather(*steering, return_exceptions=True)  # one still waiting at the end is not applied
    [result] = presenter.results
    if result.highlight is None:
        raise RuntimeError("the session made no highlight")
    gifs = [clip for clip in encoder.clips if clip.kind == "gif"]
    [highlight] = [clip for clip in encoder.clips if clip.kind == "mp4"]
    assert highlight.data == result.highlight.data
    return Measured(
        streamed_seconds=streamed,
        gifs=gifs,
        highlight=highlight,
        outfits_shown=result.highlight.outfits,
        reel_cpu_seconds=session.reel.cpu_seconds,
        reel_frames=reel_frames,
        reel_peak_bytes=peak,
    )


async def until_streamed(session: TryOnSession, seconds: float) -> None:
    """Wait until the session has streamed `seconds` (it has no event for that: a short poll)."""
    while session.streamed_seconds < seconds and not session.is_finished:  # noqa: ASYNC110
        await asyncio.sleep(0.02)


async def bench(args: argparse.Namespace) -> str:
    restrict_ice_to_loopback()
    process, url = start_emulator(args.fps, args.scale, 2)
    load_before = os.getloadavg()
    try:
        with tempfile.TemporaryDirectory() as folder:
            store = await Store.open(Path(folder) / "bench.sqlite3")
            encoder = MeasuredEncoder()
            await warm_up(encoder)
            settings = EngineSettings(idle_seconds=120.0)
            engine = build_engine(store, client_factory(DEV_API_KEY, url), settings, encoder=encoder)
            try:
                measured = await run_session(engine, encoder, args)
            finally:
                await engine.aclose()
                await store.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    return report(args, settings, measured, (load_before, os.getloadavg()))


async def warm_up(encoder: MeasuredEncoder) -> None:
    """Start the pool's worker and load both encoders, so no clip of the session pays for that."""
    frames = [np.full((64, 64, 3), shade, np.uint8) for shade in (40, 200)]
    await encoder.encode_gif(frames, fps=2)
    await encoder.encode_mp4(frames, fps=2)
    encoder.clips.clear()


def report(
    args: argparse.Namespace,
    settings: EngineSettings,
    m: Measured,
    loads: tuple[Sequence[float], Sequence[float]],
) -> str:
    gif_bytes = sum(len(clip.data) for clip in m.gifs)
    gif_cpu = sum(clip.cpu_seconds for clip in m.gifs)
    gif_seconds = sum(clip.duration_seconds for clip in m.gifs)
    h = m.highlight
    highlight_cpu = h.cpu_seconds + m.reel_cpu_seconds
    width, height = round(704 * args.scale / 16) * 16, round(1280 * args.scale / 16) * 16
    rows = [
        (
            f"{len(m.gifs)} GIF snippets (baseline)",
            f"{m.gifs[0].width}x{m.gifs[0].height}, {m.gifs[0].fps:g} fps",
            gif_seconds,
            gif_bytes,
            gif_cpu,
            "-",
        ),
        (
            "highlight MP4: encode at the end",
            f"{h.width}x{h.height}, {h.fps:g} fps",
            h.duration_seconds,
            len(h.data),
            h.cpu_seconds,
            f"{h.cpu_seconds / gif_cpu:.2f}x CPU, {len(h.data) / gif_bytes:.2f}x size",
        ),
        (
            "highlight: + sampling while streaming (JPEG frames)",
            "",
            None,
            None,
            highlight_cpu,
            f"{highlight_cpu / gif_cpu:.2f}x CPU",
        ),
    ]
    lines = [
        f"Command: `python -m bench.bench_highlight --seconds {args.seconds:g} --outfits {args.outfits} "
        f"--fps {args.fps} --scale {args.scale:g}`",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()}; load average {fmt_load(loads[0])} before, {fmt_load(loads[1])} "
        "after (shared with other work: compare the ratios).",
        f"Session: {m.streamed_seconds:.1f} s streamed of {width}x{height} VP8 at {args.fps} fps from the "
        f"emulator (child process), {args.outfits} outfits (the first at the start, then every "
        f"{args.seconds / args.outfits:.1f} s), engine defaults (snippets {settings.snippet_width} px, "
        f"{settings.snippet_fps} fps, {settings.snippet_seconds:g} s; highlight "
        f"{settings.highlight_width} px, "
        f"{settings.highlight_fps} fps, CRF {settings.highlight_crf}). CPU of an encoding: the pool worker's "
        "own process CPU for it.",
        "",
        "| clip | size | length s | KiB | CPU s | vs the GIF snippets |",
        "|---|---|---:|---:|---:|---|",
    ]
    for name, size, seconds, data, cpu, ratio in rows:
        length = "" if seconds is None else f"{seconds:.1f}"
        kib = "" if data is None else f"{data / 1024:.0f}"
        lines.append(f"| {name} | {size} | {length} | {kib} | {cpu:.3f} | {ratio} |")
    lines += [
        "",
        f"The highlight shows {m.outfits_shown} outfits in {h.frame_count} frames ({h.attempts} encoding "
        f"attempt(s) within the {DISCORD_UPLOAD_LIMIT // MIB} MiB budget). The reel held {m.reel_frames} "
        f"JPEG frames at the end of streaming, {m.reel_peak_bytes / 1024:.0f} KiB at its peak (bound "
        f"{settings.highlight_memory_bytes // MIB} MiB); compressing them cost {m.reel_cpu_seconds:.3f} s of "
        f"CPU over {m.streamed_seconds:.1f} s ({m.reel_cpu_seconds / m.streamed_seconds:.1%} of one core).",
    ]
    return "\n".join(lines)


def fmt_load(load: Sequence[float]) -> str:
    return "/".join(f"{value:.1f}" for value in load)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="streamed seconds of the session")
    parser.add_argument("--outfits", type=int, default=3, help="outfits in the session (snippets made)")
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--scale", type=float, default=1.0, help="of 704x1280 (1.0: the platform's size)")
    args = parser.parse_args()
    started = time.monotonic()
    print(asyncio.run(bench(args)))
    print(f"\n(run took {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
