"""Sessions on local worker processes vs in the bot's own process (issue 10, docs/workers.md "Left" 5).

    python -m bench.bench_workers [--sessions 4 8 12 16] [--seconds 15] [--workers 2] [--scale 1.0] [--fps 24]
                                  [--steers 28] [--steer-sessions 4] [--ack-burst 200] [--ack-sessions 8]
                                  [--no-ack] [--no-settle]

Three measurements, each in-process (the baseline, `build_engine` with its default launcher) and with
`--workers` local workers (`bot.workers.local.start_local_workers`: nats-server and `python -m bot worker`
processes; this process keeps the engine, SQLite and the `RemoteLauncher`), in the same run:

(a) Sessions per machine: N concurrent sessions at full size for `--seconds`; per session fps = decoded
    frames / streamed seconds over the window, both as the session counts them (in-process read live; on
    workers as of the session's last heartbeat, which carries the worker's frame count). Counts go up until
    the worst session falls below `--min-fps` (23.5 at 24 fps), per mode.
(b) Outfit -> platform: `engine.steer` called -> the `update` message (the Odyssey wire's prompt change)
    received by the emulator, which runs as a child of this benchmark with its data-channel handler wrapped
    to print each update's arrival time (CLOCK_MONOTONIC, shared by the processes of one machine). The
    steer's own round trip (it returns once the platform acknowledged and the snippet was made) is shown
    beside it. `--steer-sessions` sessions steer at once, each waiting for its previous outfit.
(c) Acknowledgement burst: `bench.bench_ack` (its own process, the real bot against the fake Discord),
    once in-process and once with `--local-workers`, `--ack-sessions` sessions streaming.

The emulator of (a) and (b) runs in a child process; CPU columns are read from /proc over the window. The
child also reports its own counters on SIGUSR1 (frames and bytes sent per stream, keyframe restarts, RTCP
feedback, the look each stream shows, render-thread jobs and their CPU), shown per window of (a). The
emulator writes a stream's recording after it ends (an H.264 encode per outfit change, on its render
threads), so (b)'s steering leaves minutes of work behind; before each batch of (a) and before (b) the
bench waits until that work is done (`--no-settle` skips the wait, as the first runs did).
Prints a markdown block for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import platform
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiortc import RTCRtpSender
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
)

from bench.bench_engine import PHOTO, CountingPresenter, process_cpu_seconds
from bot.emulator import DEV_API_KEY
from bot.loopback_ice import restrict_ice_to_loopback
from bot.store import Store
from bot.tryon.engine import Engine, build_engine, client_factory
from bot.tryon.errors import TryOnError
from bot.tryon.models import EndReason, SessionRequest, SessionState
from bot.tryon.settings import EngineSettings
from bot.workers.local import LocalWorkers, start_local_workers
from bot.workers.remote import RemoteLauncher
from bot.workers.settings import WorkerSettings

IN_PROCESS = "in-process"
# Two outfits per steering session, all distinct, so each update can be told apart at the emulator (whose
# scene cache holds 12: after the first round every update reuses a rendered scene).
STEER_OUTFITS = [
    "red summer dress",
    "blue denim jacket",
    "green wool coat",
    "black tuxedo",
    "yellow raincoat",
    "white linen shirt",
    "purple velvet blazer",
    "orange puffer jacket",
    "grey flannel suit",
    "pink silk blouse",
    "brown leather jacket",
    "navy striped sweater",
]


# ----- the emulator, in a child process that reports when each prompt update arrives ----------------------


def serve_emulator(fps: int, scale: float, capacity: int) -> None:
    """The child: the emulator, printing `UPDATE <monotonic seconds> <prompt as JSON>` as updates arrive and
    `STATS <JSON>` (see `emulator_stats`) on SIGUSR1."""
    from bot.emulator.config import EmulatorConfig
    from bot.emulator.streamer import StreamerConnection

    original = StreamerConnection._on_dc_message

    def timed(self: StreamerConnection, data: str | bytes) -> None:
        received = time.monotonic()
        with contextlib.suppress(ValueError, AttributeError):
            message = json.loads(data)
            if message.get("type") == "update":
                print(f"UPDATE {received:.6f} {json.dumps(message.get('prompt'))}", flush=True)
        original(self, data)

    StreamerConnection._on_dc_message = timed  # type: ignore[method-assign]
    feedback: Counter[str] = Counter()
    handle_rtcp = RTCRtpSender._handle_rtcp_packet

    async def counted(self: RTCRtpSender, packet: Any) -> None:
        # What the receivers ask of the sender: NACKed packets are resent, PLI/FIR restart the loop, REMB
        # would only retarget an encoder (the emulator has none per stream: its packets are pre-encoded).
        feedback.update(rtcp_kinds(packet))
        await handle_rtcp(self, packet)

    RTCRtpSender._handle_rtcp_packet = counted  # type: ignore[method-assign]
    config = EmulatorConfig(
        fps=fps, scale=scale, idle_timeout_seconds=None, concurrency_limit=capacity, streamer_slots=capacity
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_probed(config, feedback))


def rtcp_kinds(packet: Any) -> dict[str, int]:
    """An RTCP packet reaching a sender, by kind (NACK counts the packets asked for again)."""
    if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
        return {"nack_packets": len(packet.lost)}
    if isinstance(packet, RtcpPsfbPacket):
        kind = {RTCP_PSFB_PLI: "pli", RTCP_PSFB_FIR: "fir", RTCP_PSFB_APP: "remb"}.get(packet.fmt, "psfb")
        return {kind: 1}
    return {"rr" if isinstance(packet, RtcpRrPacket) else type(packet).__name__: 1}


async def serve_probed(config: Any, feedback: Counter[str]) -> None:
    """Serve until SIGTERM/SIGINT, answering SIGUSR1 with a `STATS` line."""
    from bot.emulator.server import Emulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Emulator(config) as emulator:

        def report() -> None:
            print(f"STATS {json.dumps(emulator_stats(emulator, feedback))}", flush=True)

        loop.add_signal_handler(signal.SIGUSR1, report)
        print(f"ODYSSEY_API_URL={emulator.url}", flush=True)
        await stop.wait()


def emulator_stats(emulator: Any, feedback: Counter[str]) -> dict[str, Any]:
    """What the emulator has sent per live stream, its render threads' work and the RTCP it received."""
    return {
        "t": time.monotonic(),
        "streams": [dataclasses.asdict(s) for s in emulator.stream_stats()],
        "work": emulator.library.work.snapshot(),
        "rtcp": dict(feedback),
    }


class ProbedEmulator:
    """The parent's side: starts the child, reads its URL, then collects the update arrivals in a thread."""

    def __init__(self, fps: int, scale: float, capacity: int) -> None:
        command = [sys.executable, "-m", "bench.bench_workers", "--serve-emulator"]
        command += ["--fps", str(fps), "--scale", str(scale), "--capacity", str(capacity)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        first = self.process.stdout.readline().strip()
        if not first.startswith("ODYSSEY_API_URL="):
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"the emulator did not start: {first!r}")
        self.url = first.partition("=")[2]
        self.updates: list[tuple[float, str]] = []  # (arrival, prompt), appended by the reader thread
        self._stats: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="emulator-updates", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("UPDATE "):
                _, arrived, prompt = line.rstrip("\n").split(" ", 2)
                self.updates.append((float(arrived), json.loads(prompt)))
            elif line.startswith("STATS "):
                self._stats.put(json.loads(line[len("STATS ") :]))

    async def stats(self) -> dict[str, Any]:
        """A fresh `emulator_stats` snapshot from the child."""
        while not self._stats.empty():
            self._stats.get_nowait()
        os.kill(self.process.pid, signal.SIGUSR1)
        return await asyncio.to_thread(self._stats.get, True, 30.0)

    async def settle(self, limit: float = 180.0) -> float:
        """Wait until the render threads have nothing queued (recordings of ended streams written); seconds
        waited."""
        began = time.monotonic()
        while time.monotonic() - began < limit:
            if not (await self.stats())["work"]["pending"]:
                break
            await asyncio.sleep(0.5)
        return time.monotonic() - began

    def arrival(self, prompt: str, after: float) -> float | None:
        """When the first update to `prompt` sent at or after `after` reached the emulator."""
        return min((t for t, p in list(self.updates) if p == prompt and t >= after), default=None)

    def stop(self) -> None:
        """End the child."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)


# ----- what is measured -------------------------------------------------------------------------------------


@dataclass
class EmulatorWindow:
    """(a) What the emulator did over one window, from its own counters (snapshots at both ends)."""

    streams: int  # live streams showing a scene at both ends
    fps: list[float]  # frames sent per second, per stream
    bytes_per_second: list[float]  # VP8 payload sent per second, per stream
    keyframe_restarts: int  # loop restarts for PLI/FIR
    rtcp: dict[str, int]  # feedback received over the window, by kind
    scenes: int  # distinct scene cache keys among the streams (1: every stream replays one encoded loop)
    looks: list[str]  # distinct (size, photo bytes, prompt) among the streams
    render_jobs: dict[str, int]  # render-thread jobs finished over the window, by kind
    render_cpu: float  # their CPU, share of one core over the window
    backlog: int  # render jobs queued or running when the window began
    settled_seconds: float  # waited for the render threads to finish earlier work before the batch


def look(stream: dict[str, Any]) -> str:
    """What a stream shows, as the emulator received it: size, photo size and prompt."""
    width, height = stream["size"]
    return f"{width}x{height}, photo {stream['image_bytes']} B, {stream['prompt']!r}"


def emulator_window(before: dict[str, Any], after: dict[str, Any], settled: float) -> EmulatorWindow:
    """The difference of two `emulator_stats` snapshots."""
    elapsed = after["t"] - before["t"]
    start = {s["session_id"]: s for s in before["streams"] if s["scene_key"]}
    streams = [(start[s["session_id"]], s) for s in after["streams"] if s["session_id"] in start]
    jobs = Counter(after["work"]["jobs"])
    jobs.subtract(before["work"]["jobs"])
    cpu = sum(after["work"]["cpu_seconds"].values()) - sum(before["work"]["cpu_seconds"].values())
    rtcp = Counter(after["rtcp"])
    rtcp.subtract(before["rtcp"])
    return EmulatorWindow(
        streams=len(streams),
        fps=[(b["frames_sent"] - a["frames_sent"]) / elapsed for a, b in streams],
        bytes_per_second=[(b["bytes_sent"] - a["bytes_sent"]) / elapsed for a, b in streams],
        keyframe_restarts=sum(b["keyframe_restarts"] - a["keyframe_restarts"] for a, b in streams),
        rtcp={kind: n for kind, n in sorted(rtcp.items()) if n},
        scenes=len({b["scene_key"] for _, b in streams}),
        looks=sorted({look(b) for _, b in streams}),
        render_jobs={kind: n for kind, n in sorted(jobs.items()) if n},
        render_cpu=cpu / elapsed,
        backlog=before["work"]["pending"],
        settled_seconds=settled,
    )


@dataclass
class CapacityRun:
    """(a) One batch of concurrent sessions."""

    mode: str
    sessions: int
    seconds: float
    fps: list[float]  # per session
    front_end_cpu: float  # share of one core, this process (all threads)
    workers_cpu: float | None  # the worker processes together
    nats_cpu: float | None
    emulator_cpu: float
    placement: dict[str, int] = field(default_factory=dict)  # worker id -> sessions
    error: str | None = None  # the sessions did not all start
    emulator: EmulatorWindow | None = None

    @property
    def worst(self) -> float:
        """The slowest session's fps (0 if they did not all start)."""
        return min(self.fps, default=0.0)

    @property
    def median(self) -> float:
        """The median session's fps."""
        return statistics.median(self.fps) if self.fps else 0.0

    @property
    def all_cpu(self) -> float:
        """Every measured process together: the machine's CPU for these sessions."""
        return self.front_end_cpu + (self.workers_cpu or 0.0) + (self.nats_cpu or 0.0) + self.emulator_cpu


@dataclass
class LatencyRun:
    """(b) Outfit -> update at the platform, and the steer's round trip, in milliseconds."""

    mode: str
    sessions: int
    to_platform: list[float]
    round_trip: list[float]
    refused: int
    unmatched: int


@dataclass
class ModeResults:
    """Everything measured in one mode."""

    mode: str
    capacity: list[CapacityRun] = field(default_factory=list)
    latency: LatencyRun | None = None
    ack: dict[str, dict[str, float]] | None = None
    ack_error: str | None = None


def quantile(values: list[float], q: float) -> float:
    """The q-quantile by nearest rank (as bench_ack)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# ----- engines ----------------------------------------------------------------------------------------------


@dataclass
class Setup:
    """An engine in one mode, and the processes whose CPU is counted beside this one."""

    mode: str
    engine: Engine[Any]
    emulator: ProbedEmulator
    workers: LocalWorkers | None

    def worker_pids(self) -> list[int]:
        """The worker processes."""
        return [] if self.workers is None else [p.pid for p in self.workers.processes]

    def nats_pid(self) -> int | None:
        """The NATS server's process."""
        process = None if self.workers is None else self.workers.server.process
        return None if process is None else process.pid


@contextlib.asynccontextmanager
async def engine_for(
    mode: str, args: argparse.Namespace, emulator: ProbedEmulator, folder: Path
) -> AsyncIterator[Setup]:
    """An engine on a fresh SQLite file: sessions in this process, or on `args.workers` local workers."""
    slots = max(*args.sessions, args.steer_sessions)
    settings = EngineSettings(slots=slots, queue_cap_per_guild=slots, idle_seconds=600.0)
    clients = client_factory(DEV_API_KEY, emulator.url)
    store = await Store.open(folder / f"{mode}.sqlite3")
    workers: LocalWorkers | None = None
    try:
        if mode == IN_PROCESS:
            engine: Engine[Any] = build_engine(store, clients, settings)
        else:
            workers = await start_local_workers(
                WorkerSettings(capacity=slots),
                args.workers,
                folder / "nats",
                odyssey_url=emulator.url,
                odyssey_key=DEV_API_KEY,
            )
            launcher = RemoteLauncher(workers.settings)
            await launcher.open()
            engine = build_engine(store, clients, settings, launcher=launcher)
        try:
            yield Setup(mode, engine, emulator, workers)
        finally:
            await engine.aclose()  # closes the launcher too
    finally:
        if workers is not None:
            await workers.stop()
        await store.close()


def request(batch: int, index: int, outfit: str) -> SessionRequest:
    """A member of its own per batch (no one-session-per-member refusals between batches)."""
    return SessionRequest(
        guild_id=1000 + index % 4,
        user_id=batch * 1000 + index + 1,
        channel_id=None,
        photo=PHOTO,
        outfit=outfit,
    )


async def start_sessions(engine: Engine[Any], requests: list[SessionRequest], sessions: list[Any]) -> None:
    """Admit every request into `sessions`; wait until each streams and has counted frames (on workers: a
    heartbeat). RuntimeError if one ended first, TimeoutError after 3 minutes."""
    presenter = CountingPresenter()
    for each in requests:
        sessions.append(await engine.manager.admit(each, presenter))
    async with asyncio.timeout(180):
        while not all(
            s.state is SessionState.STREAMING and s.frames_received > 0 and s.streamed_seconds > 0
            for s in sessions
        ):
            if any(s.is_finished for s in sessions):
                raise RuntimeError(f"a session ended before streaming: {presenter.errors}")
            await asyncio.sleep(0.1)


async def stop_sessions(engine: Engine[Any], sessions: list[Any]) -> None:
    """Stop them all and wait until each has finished (recordings included)."""
    for session in sessions:
        if not session.is_finished:
            engine.manager.stop(session.id, reason=EndReason.SHUTDOWN)
    async with asyncio.timeout(180):
        await asyncio.gather(*(session.finished.wait() for session in sessions))


def cpu_of(pids: list[int]) -> float:
    """CPU seconds of these processes together (0 for one that is gone)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += process_cpu_seconds(pid)
    return total


async def capacity_run(setup: Setup, count: int, seconds: float, batch: int, settle: bool) -> CapacityRun:
    """(a) `count` sessions streaming for `seconds`: per session fps and each process's CPU."""
    sessions: list[Any] = []
    # Earlier streams' recordings (an H.264 encode per outfit change) would otherwise land in the window;
    # waited for before the sessions start, so a long backlog does not bring them near the platform's cap.
    settled = await setup.emulator.settle() if settle else 0.0
    try:
        requests = [request(batch, i, "red summer dress") for i in range(count)]
        await start_sessions(setup.engine, requests, sessions)
        await asyncio.sleep(1.0)  # decoders, buffers and the first heartbeats settle
        return await measure_sessions(setup, sessions, seconds, settled)
    except (TryOnError, RuntimeError, TimeoutError) as error:
        message = getattr(error, "message", None) or str(error) or type(error).__name__
        return CapacityRun(setup.mode, count, 0.0, [], 0.0, None, None, 0.0, error=message)
    finally:
        await stop_sessions(setup.engine, sessions)


async def measure_sessions(setup: Setup, sessions: list[Any], seconds: float, settled: float) -> CapacityRun:
    """Per session fps, each process's CPU and the emulator's counters over `seconds`."""
    workers, nats_pid = setup.worker_pids(), setup.nats_pid()
    nats = [nats_pid] if nats_pid is not None else []
    emulator_pid = setup.emulator.process.pid
    emulator_before = await setup.emulator.stats()
    before = [(s.frames_received, s.streamed_seconds) for s in sessions]
    started = time.monotonic()
    own, workers_cpu, nats_cpu = time.process_time(), cpu_of(workers), cpu_of(nats)
    emulator_cpu = process_cpu_seconds(emulator_pid)
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - started
    after = [(s.frames_received, s.streamed_seconds) for s in sessions]
    own = (time.process_time() - own) / elapsed
    workers_cpu = (cpu_of(workers) - workers_cpu) / elapsed
    nats_cpu = (cpu_of(nats) - nats_cpu) / elapsed
    emulator_cpu = (process_cpu_seconds(emulator_pid) - emulator_cpu) / elapsed
    emulator_after = await setup.emulator.stats()
    # A session on a worker whose heartbeats stalled for the whole window counts as 0 fps.
    fps = [
        (f1 - f0) / (s1 - s0) if s1 > s0 else 0.0 for (f0, s0), (f1, s1) in zip(before, after, strict=True)
    ]
    placement = Counter(str(getattr(s, "worker_id", None) or "-") for s in sessions)
    remote = setup.workers is not None
    return CapacityRun(
        mode=setup.mode,
        sessions=len(sessions),
        seconds=elapsed,
        fps=fps,
        front_end_cpu=own,
        workers_cpu=workers_cpu if remote else None,
        nats_cpu=nats_cpu if remote else None,
        emulator_cpu=emulator_cpu,
        placement=dict(sorted(placement.items())) if remote else {},
        emulator=emulator_window(emulator_before, emulator_after, settled),
    )


async def latency_run(setup: Setup, args: argparse.Namespace, batch: int) -> LatencyRun:
    """(b) Sessions steering at once, each to its two outfits in turn; the first steer of each is warm-up."""
    count = max(1, min(args.steer_sessions, len(STEER_OUTFITS) // 2))
    pairs = [(STEER_OUTFITS[2 * i], STEER_OUTFITS[2 * i + 1]) for i in range(count)]
    sessions: list[Any] = []
    if args.settle:
        await setup.emulator.settle()  # transitions are encoded on the render threads recordings use
    try:
        await start_sessions(setup.engine, [request(batch, i, pairs[i][0]) for i in range(count)], sessions)
        sent = await steer_all(setup, sessions, pairs, math.ceil(args.steers / count) + 1)
        await asyncio.sleep(0.5)  # the reader thread has seen the last updates
    finally:
        await stop_sessions(setup.engine, sessions)
    to_platform, round_trip, refused, unmatched = [], [], 0, 0
    for outfit, called, returned in sent:
        if returned is None:
            refused += 1
            continue
        round_trip.append((returned - called) * 1000)
        arrived = setup.emulator.arrival(outfit, called)
        if arrived is None or arrived > returned:
            unmatched += 1
        else:
            to_platform.append((arrived - called) * 1000)
    return LatencyRun(setup.mode, count, to_platform, round_trip, refused, unmatched)


async def steer_all(
    setup: Setup, sessions: list[Any], pairs: list[tuple[str, str]], per_session: int
) -> list[tuple[str, float, float | None]]:
    """Each session steers `per_session` times; (outfit, called at, returned at or None if refused) of all
    but each session's first."""
    count = len(sessions)
    sent: list[tuple[str, float, float | None]] = []

    async def steer(index: int) -> None:
        session = sessions[index]
        await asyncio.sleep(index * 2.5 / count)  # spread over one steer's length
        for turn in range(per_session):
            outfit = pairs[index][(turn + 1) % 2]
            called = time.monotonic()
            try:
                await setup.engine.steer(
                    session.id,
                    guild_id=session.request.guild_id,
                    user_id=session.request.user_id,
                    text=outfit,
                )
                returned: float | None = time.monotonic()
            except TryOnError as error:
                print(f"  steer refused: {error.message}", file=sys.stderr, flush=True)
                returned = None
            if turn > 0:
                sent.append((outfit, called, returned))
            await asyncio.sleep(0.3)

    await asyncio.gather(*(steer(i) for i in range(count)))
    return sent


async def ack_run(args: argparse.Namespace, local_workers: int) -> dict[str, dict[str, float]]:
    """(c) bench_ack in its own process; its numbers."""
    command = [sys.executable, "-m", "bench.bench_ack", "--json", "--burst", str(args.ack_burst)]
    command += ["--repeats", str(args.ack_repeats), "--sessions", str(args.ack_sessions)]
    command += ["--fps", str(args.fps), "--scale", str(args.scale), "--local-workers", str(local_workers)]
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"bench_ack exited with {process.returncode}")
    numbers: dict[str, dict[str, float]] = json.loads(lines[-1])
    return numbers


# ----- the run ----------------------------------------------------------------------------------------------


async def measure_mode(setup: Setup, args: argparse.Namespace, results: ModeResults) -> None:
    """(a) then (b) in one mode."""
    batch = 0
    for count in sorted(args.sessions):
        batch += 1
        run = await capacity_run(setup, count, args.seconds, batch, args.settle)
        results.capacity.append(run)
        print(
            f"  {setup.mode}, {count} sessions: worst {run.worst:.1f} fps, median {run.median:.1f}, "
            f"front end CPU {run.front_end_cpu:.0%}",
            file=sys.stderr,
            flush=True,
        )
        if not run.worst >= args.min_fps and not args.all_counts:
            break
    if args.steers > 0:
        results.latency = await latency_run(setup, args, batch + 1)


async def bench(args: argparse.Namespace) -> str:
    """Every measurement in both modes; returns the markdown block."""
    restrict_ice_to_loopback()
    began, load = time.monotonic(), os.getloadavg()
    capacity = max(*args.sessions, args.steer_sessions) + 2
    emulator = ProbedEmulator(args.fps, args.scale, capacity)
    modes = [ModeResults(IN_PROCESS), ModeResults(f"{args.workers} workers")]
    try:
        with tempfile.TemporaryDirectory() as folder:
            for results in modes:
                async with engine_for(results.mode, args, emulator, Path(folder)) as setup:
                    await measure_mode(setup, args, results)
    finally:
        emulator.stop()
    if args.ack:
        for results, local_workers in zip(modes, (0, args.workers), strict=True):
            try:
                results.ack = await ack_run(args, local_workers)
            except Exception as error:  # reported in the table; the other parts stand
                results.ack_error = str(error)
    return report(args, modes, time.monotonic() - began, load)


# ----- the report -------------------------------------------------------------------------------------------


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run."""
    parts = ["python -m bench.bench_workers", "--sessions", *map(str, sorted(args.sessions))]
    parts += ["--seconds", f"{args.seconds:g}", "--workers", str(args.workers)]
    parts += ["--scale", f"{args.scale:g}", "--fps", str(args.fps), "--min-fps", f"{args.min_fps:g}"]
    parts += ["--steers", str(args.steers), "--steer-sessions", str(args.steer_sessions)]
    if args.ack:
        parts += ["--ack-burst", str(args.ack_burst), "--ack-repeats", str(args.ack_repeats)]
        parts += ["--ack-sessions", str(args.ack_sessions)]
    else:
        parts.append("--no-ack")
    if args.all_counts:
        parts.append("--all-counts")
    if not args.settle:
        parts.append("--no-settle")
    return " ".join(parts)


def ratio(value: float | None, baseline: float | None) -> str:
    """value / baseline as `1.23x`, or `-`."""
    if value is None or baseline is None or baseline == 0 or math.isnan(value) or math.isnan(baseline):
        return "-"
    return f"{value / baseline:.2f}x"


def plural(count: int, noun: str) -> str:
    """`1 session`, `4 sessions`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def share(value: float | None) -> str:
    """A share of one core as a percentage, or `-`."""
    return "-" if value is None else f"{value:.0%}"


def most_sustained(runs: list[CapacityRun], min_fps: float) -> int | None:
    """The most sessions whose worst session held `min_fps`, or None."""
    return max((run.sessions for run in runs if run.worst >= min_fps), default=None)


def report(args: argparse.Namespace, modes: list[ModeResults], wall: float, load: tuple[float, ...]) -> str:
    """The markdown block."""
    base, other = modes
    width, height = round(704 * args.scale / 16) * 16, round(1280 * args.scale / 16) * 16
    nproc = len(os.sched_getaffinity(0))
    lines = [
        f"Command: `{command_line(args)}` ({time.strftime('%Y-%m-%d')}, {wall / 60:.1f} min wall)",
        f"Machine: nproc {nproc}, {platform.machine()}, Python {platform.python_version()}, load average "
        f"{load[0]:.2f} before the run (shared: read the ratios).",
        f"Stream: {width}x{height} VP8 at {args.fps} fps from the emulator (a child process). "
        f"{base.mode}: engine and sessions (WebRTC receive, VP8 decode, frame buffers) in the measuring "
        f"process. {other.mode}: `start_local_workers` (nats-server and {args.workers} "
        "`python -m bot worker` processes); the measuring process keeps the engine, SQLite and the "
        "`RemoteLauncher` (the front end).",
        "",
        f"### (a) Sessions per machine ({args.seconds:g} s per row)",
        "",
        "fps per session = decoded frames / streamed seconds over the window, as the session counts them "
        "(in-process read live; on workers as of each session's last heartbeat, every "
        f"{EngineSettings().heartbeat_seconds:g} s, which carries the worker's frame count). CPU: share of "
        "one core over the window, from /proc (the machine has "
        f"{nproc * 100}%). Counts stop at the first whose worst session is below {args.min_fps:g} fps.",
        "",
        "| sessions | mode | worst fps | median fps | front-end CPU | workers CPU | NATS CPU | emulator CPU "
        "| all CPU | placement | worst / in-process | front-end CPU / in-process | all CPU / in-process |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    baseline = {run.sessions: run for run in base.capacity}
    counts = sorted({run.sessions for m in modes for run in m.capacity})
    for count in counts:
        for results in modes:
            run = next((r for r in results.capacity if r.sessions == count), None)
            if run is None or run.error is not None:
                why = "not run (a smaller count fell short)" if run is None else f"did not start: {run.error}"
                lines.append("| " + " | ".join([str(count), results.mode, why, *["-"] * 10]) + " |")
                continue
            ref = baseline.get(count)
            placement = ", ".join(f"{w}: {n}" for w, n in run.placement.items()) or "-"
            cells = [
                str(count),
                results.mode,
                f"{run.worst:.1f}",
                f"{run.median:.1f}",
                share(run.front_end_cpu),
                share(run.workers_cpu),
                share(run.nats_cpu),
                share(run.emulator_cpu),
                share(run.all_cpu),
                placement,
                ratio(run.worst, ref.worst if ref else None),
                ratio(run.front_end_cpu, ref.front_end_cpu if ref else None),
                ratio(run.all_cpu, ref.all_cpu if ref else None),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    held = [most_sustained(m.capacity, args.min_fps) for m in modes]
    shown = [str(h) if h is not None else f"fewer than {min(args.sessions)}" for h in held]
    lines += [
        "",
        f"Most sessions with every session >= {args.min_fps:g} fps: {base.mode} **{shown[0]}**, "
        f"{other.mode} **{shown[1]}** (ratio {ratio(held[1], held[0])}; only the counts listed were tried).",
    ]
    lines += emulator_section(args, modes)
    lines += latency_section(args, modes)
    lines += ack_section(args, modes)
    return "\n".join(lines)


def emulator_section(args: argparse.Namespace, modes: list[ModeResults]) -> list[str]:
    """(a)'s windows as the emulator counted them."""
    settling = (
        "Before each batch (and before (b)) the bench waited until the emulator's render threads had nothing "
        "queued: the recordings of earlier streams, one H.264 encode per outfit change, are written after "
        "they end, on the threads that also encode transitions."
        if args.settle
        else "`--no-settle`: a window may include the emulator writing earlier streams' recordings."
    )
    lines = [
        "",
        "What the emulator did in each window of (a), from its own counters (snapshots at both ends): "
        "frames and VP8 bytes its tracks sent per stream, loop restarts for keyframe requests, the RTCP "
        "feedback its senders received, distinct scene cache keys among the streams (1: all replay one "
        "encoded loop), and the jobs its render threads finished (scene and transition encodes, "
        f"recordings) with their CPU. {settling}",
        "",
        "| sessions | mode | streams | sent fps min / median | kB/s per stream | keyframe restarts | PLI+FIR "
        "| NACKed packets | REMB | scene keys | render jobs | render CPU | backlog at start | waited s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    looks: dict[str, set[str]] = {}
    for results in modes:
        for run in results.capacity:
            window = run.emulator
            if window is None:
                continue
            looks.setdefault(results.mode, set()).update(window.looks)
            jobs = ", ".join(f"{kind} {n}" for kind, n in window.render_jobs.items()) or "none"
            fps = f"{min(window.fps, default=0):.1f} / {statistics.median(window.fps or [0]):.1f}"
            rate = statistics.median(window.bytes_per_second or [0]) / 1000
            cells = [
                str(run.sessions),
                results.mode,
                str(window.streams),
                fps,
                f"{rate:.0f}",
                str(window.keyframe_restarts),
                str(window.rtcp.get("pli", 0) + window.rtcp.get("fir", 0)),
                str(window.rtcp.get("nack_packets", 0)),
                str(window.rtcp.get("remb", 0)),
                str(window.scenes),
                jobs,
                share(window.render_cpu),
                str(window.backlog),
                f"{window.settled_seconds:.1f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    for mode, seen in looks.items():
        lines.append(f"\nWhat the emulator received ({mode}): " + "; ".join(sorted(seen)) + ".")
    return lines


def latency_section(args: argparse.Namespace, modes: list[ModeResults]) -> list[str]:
    """(b)'s table."""
    runs = [m.latency for m in modes]
    if any(run is None or not run.to_platform for run in runs):
        return [
            "",
            "### (b) Outfit -> platform update",
            "",
            "Not measured (`--steers 0`, or no update matched).",
        ]
    base = runs[0]
    assert base is not None
    lines = [
        "",
        "### (b) Outfit -> platform update",
        "",
        f"{plural(base.sessions, 'session')} steering at once (each waits for its previous outfit, then "
        "0.3 s), the first steer of each not counted. To platform: `engine.steer` called -> the "
        "`update` message (the wire's prompt change) read by the emulator's data channel handler, both "
        "on CLOCK_MONOTONIC. Round trip: `engine.steer` called -> returned (the platform acknowledged "
        f"the update, then the {EngineSettings().snippet_seconds:g} s snippet was cut and encoded). "
        "Percentiles by nearest rank: with ~30 samples p99 is the largest.",
        "",
        "| mode | samples | to platform p50 ms | p90 ms | p99 ms | p50 / in-process | p99 / in-process "
        "| round trip p50 ms | round trip p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for results, run in zip(modes, runs, strict=True):
        assert run is not None
        values, trips = run.to_platform, run.round_trip
        p50, p99 = quantile(values, 0.5), quantile(values, 0.99)
        cells = [
            results.mode,
            str(len(values)),
            f"{p50:.1f}",
            f"{quantile(values, 0.9):.1f}",
            f"{p99:.1f}",
            ratio(p50, quantile(base.to_platform, 0.5)),
            ratio(p99, quantile(base.to_platform, 0.99)),
            f"{quantile(trips, 0.5):.0f}" if trips else "-",
            f"{quantile(trips, 0.99):.0f}" if trips else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    troubles = [
        f"{m.mode}: {r.refused} refused, {r.unmatched} unmatched"
        for m, r in zip(modes, runs, strict=True)
        if r
    ]
    if any(r is not None and (r.refused or r.unmatched) for r in runs):
        lines += ["", "Left out: " + "; ".join(troubles) + "."]
    return lines


def ack_section(args: argparse.Namespace, modes: list[ModeResults]) -> list[str]:
    """(c)'s table."""
    lines = ["", "### (c) Acknowledgement burst", ""]
    if not args.ack:
        return [*lines, "Not measured (`--no-ack`)."]
    lines += [
        f"`python -m bench.bench_ack --burst {args.ack_burst} --repeats {args.ack_repeats} --sessions "
        f"{args.ack_sessions} --fps {args.fps} --scale {args.scale:g}` in its own process, then the same "
        f"with `--local-workers {args.workers}`: a burst of `/tryon start` interactions delivered back to "
        "back; latency = dispatch handed to the bot -> the defer request received by the fake Discord; "
        f"idle first, then while {plural(args.ack_sessions, 'session')} stream (a new outfit each just "
        "before each loaded burst).",
        "",
        "| mode | idle p50 ms | idle p99 ms | loaded p50 ms | loaded p99 ms | loaded max ms "
        "| loop lag p99 / max ms | loaded p99 / in-process |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = modes[0].ack
    for results in modes:
        ack = results.ack
        if ack is None:
            lines.append("| " + " | ".join([results.mode, f"failed: {results.ack_error}", *["-"] * 6]) + " |")
            continue
        idle, loaded, lag = ack["idle"], ack["loaded"], ack["loaded_lag"]
        lines.append(
            f"| {results.mode} | {idle['p50']:.1f} | {idle['p99']:.1f} | {loaded['p50']:.1f} | "
            f"{loaded['p99']:.1f} | {loaded['max']:.1f} | {lag['p99']:.0f} / {lag['max']:.0f} | "
            f"{ratio(loaded['p99'], base['loaded']['p99'] if base else None)} |"
        )
    return lines


def main() -> None:
    """Parse arguments and run (or serve the emulator, in the child process)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, nargs="+", default=[4, 8, 12, 16], help="counts for (a)")
    parser.add_argument("--seconds", type=float, default=15.0, help="measurement window per count")
    parser.add_argument("--workers", type=int, default=2, help="local worker processes")
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--scale", type=float, default=1.0, help="of 704x1280")
    parser.add_argument("--min-fps", type=float, default=None, help="what holds (default: fps - 0.5)")
    parser.add_argument("--all-counts", action="store_true", help="run every count even after one fell short")
    parser.add_argument(
        "--settle",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wait for the emulator's render threads to go idle before each batch of (a) and before (b)",
    )
    parser.add_argument("--steers", type=int, default=28, help="(b) steers counted per mode (0: skip)")
    parser.add_argument("--steer-sessions", type=int, default=4, help="(b) sessions steering at once")
    parser.add_argument(
        "--ack", action=argparse.BooleanOptionalAction, default=True, help="(c) the acknowledgement burst"
    )
    parser.add_argument("--ack-burst", type=int, default=200)
    parser.add_argument("--ack-repeats", type=int, default=1)
    parser.add_argument("--ack-sessions", type=int, default=8)
    parser.add_argument("--serve-emulator", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--capacity", type=int, default=18, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_emulator:
        serve_emulator(args.fps, args.scale, args.capacity)
        return
    if args.min_fps is None:
        args.min_fps = args.fps - 0.5
    if min(args.sessions) < 1 or args.workers < 1 or args.steer_sessions < 1:
        parser.error("--sessions, --workers and --steer-sessions must be at least 1")
    print(asyncio.run(bench(args)))


if __name__ == "__main__":
    main()
