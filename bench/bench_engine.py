"""Engine benchmark: event-loop lag while sessions stream and snippets encode, and sessions per process.

    python -m bench.bench_engine [--fps 24] [--scale 0.5] [--seconds 10] [--max-sessions 12]

The emulator runs in a child process (so its work does not land on the measured event loop); the engine,
its Odyssey clients (WebRTC receive and VP8 decode), frame buffers and the snippet process pool run here.
Prints a markdown block for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.emulator_process import start_emulator
from bot.emulator import DEV_API_KEY
from bot.loopback_ice import restrict_ice_to_loopback
from bot.store import Store
from bot.tryon.engine import Engine, build_engine, client_factory
from bot.tryon.errors import TryOnError
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
OUTFITS = ["red summer dress", "blue denim jacket", "green wool coat", "black tuxedo", "yellow raincoat"]


class CountingPresenter:
    """Counts what a front end would receive, without doing any front-end work."""

    def __init__(self) -> None:
        self.upload_budget_bytes: int | None = None
        self.snippets = 0
        self.snippet_bytes = 0
        self.errors: list[str] = []

    async def status_changed(self, event: StatusChanged) -> None:
        return None

    async def snippet_ready(self, event: SnippetReady) -> None:
        self.snippets += 1
        self.snippet_bytes += len(event.data)

    async def snapshot_ready(self, event: SnapshotReady) -> None:
        return None

    async def broadcast_ready(self, event: BroadcastReady) -> None:
        return None

    async def recording_ready(self, event: RecordingReady) -> None:
        return None

    async def error(self, event: ErrorReported) -> None:
        self.errors.append(event.message)


@dataclass
class Lag:
    """Event-loop lag percentiles in milliseconds."""

    p50: float
    p99: float
    max: float
    samples: int


async def measure_lag(seconds: float, interval: float = 0.005) -> Lag:
    """How late a short sleep wakes up, sampled for `seconds`: the loop's responsiveness."""
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    end = loop.time() + seconds
    while loop.time() < end:
        before = loop.time()
        await asyncio.sleep(interval)
        lags.append(max(0.0, loop.time() - before - interval) * 1000)
    lags.sort()
    return Lag(
        p50=statistics.median(lags),
        p99=lags[min(len(lags) - 1, int(len(lags) * 0.99))],
        max=lags[-1],
        samples=len(lags),
    )


@dataclass
class Run:
    """One batch of concurrent sessions."""

    sessions: int
    seconds: float
    delivered_fps: float  # per session, mean
    worst_fps: float
    snippets: int
    snippet_kib: float
    lag: Lag | None
    engine_cpu: float  # share of one core used by this process during the run
    emulator_cpu: float  # the same for the emulator's process


async def start_sessions(
    engine: Engine[TryOnSession], count: int, presenter: CountingPresenter
) -> list[TryOnSession]:
    sessions = []
    for index in range(count):
        request = SessionRequest(
            guild_id=1000 + index % 3, user_id=index + 1, channel_id=None, photo=PHOTO, outfit=OUTFITS[0]
        )
        sessions.append(await engine.manager.admit(request, presenter))
    async with asyncio.timeout(120):
        while not all(session.state is SessionState.STREAMING for session in sessions):
            failed = [s for s in sessions if s.is_finished]
            if failed:
                raise RuntimeError(f"a session ended before streaming: {presenter.errors}")
            await asyncio.sleep(0.1)
    return sessions


async def steer(
    engine: Engine[TryOnSession], session: TryOnSession, stop: asyncio.Event, offset: float
) -> None:
    """A new outfit every ~2.5 s (each makes a GIF snippet), staggered across sessions."""
    await asyncio.sleep(offset)
    index = 1
    while not stop.is_set():
        try:
            await engine.manager.steer(session, OUTFITS[index % len(OUTFITS)])
        except TryOnError as exc:
            print(f"  steering refused: {exc.message}", flush=True)
        index += 1
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            continue


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_batch(
    engine: Engine[TryOnSession], count: int, seconds: float, *, with_snippets: bool, emulator_pid: int
) -> Run:
    presenter = CountingPresenter()
    sessions = await start_sessions(engine, count, presenter)
    await asyncio.sleep(1.0)  # let decoders and buffers settle
    before = [session.frames_received for session in sessions]
    started = time.monotonic()
    own_cpu, emulator_cpu = time.process_time(), process_cpu_seconds(emulator_pid)
    stop = asyncio.Event()
    steering = (
        [asyncio.create_task(steer(engine, s, stop, i * 0.6)) for i, s in enumerate(sessions)]
        if with_snippets
        else []
    )
    lag = await measure_lag(seconds)
    elapsed = time.monotonic() - started
    delivered = [(s.frames_received - b) / elapsed for s, b in zip(sessions, before, strict=True)]
    own_cpu = (time.process_time() - own_cpu) / elapsed
    emulator_cpu = (process_cpu_seconds(emulator_pid) - emulator_cpu) / elapsed
    stop.set()
    await asyncio.gather(*steering, return_exceptions=True)
    for session in sessions:
        engine.manager.stop(session.id, reason=EndReason.SHUTDOWN)
    async with asyncio.timeout(120):
        await asyncio.gather(*(session.finished.wait() for session in sessions))
    return Run(
        sessions=count,
        seconds=elapsed,
        delivered_fps=statistics.mean(delivered),
        worst_fps=min(delivered),
        snippets=presenter.snippets,
        snippet_kib=presenter.snippet_bytes / 1024 / max(1, presenter.snippets),
        lag=lag,
        engine_cpu=own_cpu,
        emulator_cpu=emulator_cpu,
    )


async def bench(args: argparse.Namespace) -> str:
    restrict_ice_to_loopback()
    args.max_sessions = max(args.max_sessions, 4)  # the lag run needs 4 slots
    process, url = start_emulator(args.fps, args.scale, args.max_sessions + 2)
    try:
        with tempfile.TemporaryDirectory() as folder:
            store = await Store.open(Path(folder) / "bench.sqlite3")
            settings = EngineSettings(
                slots=args.max_sessions, queue_cap_per_guild=args.max_sessions, idle_seconds=600.0
            )
            engine = build_engine(store, client_factory(DEV_API_KEY, url), settings)
            try:
                return await measure_all(engine, args, process.pid)
            finally:
                await engine.aclose()
                await store.close()
    finally:
        process.terminate()
        process.wait(timeout=30)


async def measure_all(engine: Engine[TryOnSession], args: argparse.Namespace, emulator_pid: int) -> str:
    idle = await measure_lag(args.seconds)
    busy = await run_batch(engine, 4, args.seconds, with_snippets=True, emulator_pid=emulator_pid)
    capacity: list[Run] = []
    for count in [1, 2, 4, 6, 8, 10, 12, 16, 20, 24, 32]:
        if count > args.max_sessions:
            break
        run = await run_batch(engine, count, args.seconds, with_snippets=False, emulator_pid=emulator_pid)
        capacity.append(run)
        print(f"  {count} sessions: {run.delivered_fps:.1f} fps mean, {run.worst_fps:.1f} worst", flush=True)
        if run.worst_fps < 0.95 * args.fps:
            break
    return report(args, idle, busy, capacity)


def report(args: argparse.Namespace, idle: Lag, busy: Run, capacity: list[Run]) -> str:
    assert busy.lag is not None
    sustained = [run.sessions for run in capacity if run.worst_fps >= 0.95 * args.fps]
    width, height = round(704 * args.scale / 16) * 16, round(1280 * args.scale / 16) * 16
    lines = [
        f"Command: `python -m bench.bench_engine --fps {args.fps} --scale {args.scale} "
        f"--seconds {args.seconds} --max-sessions {args.max_sessions}`",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        "shared with other agents' work (noisy; compare the ratios).",
        f"Stream: {width}x{height} VP8 at {args.fps} fps from the emulator (child process); engine, WebRTC "
        "receive/decode, frame buffers and the snippet pool in the measured process.",
        "",
        "Event-loop lag (5 ms sleeps; how late they wake):",
        "",
        "| Loop | p50 ms | p99 ms | max ms | ratio p99 to idle |",
        "|---|---|---|---|---|",
        f"| idle (baseline, same run) | {idle.p50:.2f} | {idle.p99:.2f} | {idle.max:.2f} | 1.0 |",
        f"| 4 sessions streaming + a GIF snippet per session every ~2.5 s | {busy.lag.p50:.2f} | "
        f"{busy.lag.p99:.2f} | {busy.lag.max:.2f} | {busy.lag.p99 / max(idle.p99, 0.01):.1f} |",
        "",
        f"During the busy run: {busy.snippets} snippets ({busy.snippet_kib:.0f} KiB each on average), "
        f"delivered {busy.delivered_fps:.1f} fps per session (worst {busy.worst_fps:.1f}); engine process "
        f"CPU {busy.engine_cpu:.0%} of one core, emulator {busy.emulator_cpu:.0%}.",
        "",
        "Sessions per process at full frame rate (delivered = frames the engine took from the client):",
        "",
        "| Sessions | delivered fps (mean) | worst session | share of source fps | loop lag p99 ms "
        "| engine CPU | emulator CPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in capacity:
        p99 = f"{run.lag.p99:.1f}" if run.lag else "-"
        lines.append(
            f"| {run.sessions} | {run.delivered_fps:.1f} | {run.worst_fps:.1f} | "
            f"{run.worst_fps / args.fps:.0%} | {p99} | {run.engine_cpu:.0%} | {run.emulator_cpu:.0%} |"
        )
    lines += ["", f"Most sessions sustained at >= 95% of {args.fps} fps: {max(sustained, default=0)}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--scale", type=float, default=0.5, help="of 704x1280 (0.5: 352x640)")
    parser.add_argument("--seconds", type=float, default=8.0, help="measurement time per run")
    parser.add_argument("--max-sessions", type=int, default=24)
    args = parser.parse_args()
    print(asyncio.run(bench(args)))


if __name__ == "__main__":
    main()
