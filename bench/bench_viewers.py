"""Watch live: how many viewers one emulator stream sustains through the viewer page path.

    python -m bench.bench_viewers [--viewers 1 8 16 32 64] [--seconds 10] [--processes 2]
                                  [--scale 1.0] [--fps 24] [--min-fps 23]

One shared try-on runs in this process exactly as in the bot: the engine (in-process session, real SQLite
in a temporary folder) with the Watch live viewer (`bot.web.ViewerServer`) as its watch board; the
emulator runs in a child process (`python -m bot emulator`, spectator limit lifted so the limit found is
the machine's, stream cap an hour so no roll-over lands in a window). Each viewer does what the page does:
GET `/watch/<id>`, open its event stream and keep it (it counts as a viewer), read the WHEP URL and
spectator token, and join over WHEP (`Odyssey.connect_to_stream`). Viewers live in `--processes` child
processes (`--spectate`), whose RTP receivers count frames (RTP packets with the marker bit) and never
decode, as in bench_emulator: the load generator stays cheap, so what is measured is the emulator's
fan-out and the bot's viewer path, not VP8 decoding in Python.

Per row: every viewer joins, 2 s settle, then all measure together for `--seconds` (the parent says
"go" to every child at once); fps per viewer = frames / window. CPU over the window from /proc: the
emulator, this process (the session receiving and decoding its own stream, the viewer server), and the
viewer processes. Rows go up until the worst viewer falls below `--min-fps` or a viewer could not join.
Prints a markdown block for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from bench.bench_engine import PHOTO, CountingPresenter, process_cpu_seconds
from bench.emulator_process import start_emulator
from bot.emulator import DEV_API_KEY
from bot.loopback_ice import restrict_ice_to_loopback
from bot.odyssey import Odyssey, SpectatorConnection
from bot.store import QuotaLimits, Store
from bot.tryon.engine import build_engine, client_factory
from bot.tryon.models import SessionRequest, SessionState
from bot.tryon.settings import EngineSettings
from bot.web import ViewerServer, WebSettings

TIMEOUT = 60.0
SETTLE_SECONDS = 2.0
LONG_SECONDS = 3600.0


# ----- the viewers (a child process) -----------------------------------------------------------------------

frames_by_receiver: defaultdict[int, int] = defaultdict(int)


async def _count_only(self: RTCRtpReceiver, packet: RtpPacket, arrival_time_ms: int) -> None:
    # Replaces aiortc's depacketise-and-decode path: the load generator counts frames, it does not decode.
    if packet.marker:
        frames_by_receiver[id(self)] += 1


@dataclass
class Viewer:
    """One simulated page: its open event stream and its WHEP spectator."""

    # The page's event stream, held open: a dropped line reader would close the connection.
    lines: AsyncIterator[str]
    spectator: SpectatorConnection
    join_seconds: float


async def open_page(http: httpx.AsyncClient, link: str, exits: contextlib.AsyncExitStack) -> Viewer:
    """What the page does on load: fetch itself, follow the event stream, join the current part."""
    began = time.monotonic()
    page = await http.get(link)
    page.raise_for_status()
    events = await exits.enter_async_context(http.stream("GET", f"{link}/events"))
    lines = events.aiter_lines()
    state = await first_playable_state(lines)
    spectator = await Odyssey.connect_to_stream(state["webrtc_url"], state["spectator_token"])
    exits.push_async_callback(spectator.disconnect)
    return Viewer(lines, spectator, time.monotonic() - began)


async def first_playable_state(lines: AsyncIterator[str]) -> dict[str, Any]:
    """The first `state` event carrying a WHEP URL (the event stream stays open)."""
    data = ""
    async for line in lines:
        if line.startswith("data:"):
            data = line.partition(":")[2].strip()
        elif line == "" and data:
            state: dict[str, Any] = json.loads(data)
            if state.get("webrtc_url"):
                return state
            data = ""
    raise RuntimeError("the event stream ended before the broadcast started")


async def spectate(link: str, count: int, seconds: float) -> dict[str, Any]:
    """Open `count` pages, say "joined", wait for "go" on stdin, count frames for `seconds`, report."""
    restrict_ice_to_loopback()
    RTCRtpReceiver._handle_rtp_packet = _count_only  # type: ignore[method-assign]
    limits = httpx.Limits(max_connections=count * 2 + 4)
    async with (
        httpx.AsyncClient(timeout=TIMEOUT, limits=limits) as http,
        contextlib.AsyncExitStack() as exits,
    ):
        joined = await asyncio.gather(
            *(open_page(http, link, exits) for _ in range(count)), return_exceptions=True
        )
        viewers = [v for v in joined if isinstance(v, Viewer)]
        failures = [f"{type(e).__name__}: {e}" for e in joined if not isinstance(e, Viewer)]
        print(json.dumps({"joined": len(viewers)}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
        before = dict(frames_by_receiver)
        began = time.monotonic()
        await asyncio.sleep(seconds)
        wall = time.monotonic() - began
        counted = [frames_by_receiver[key] - before.get(key, 0) for key in frames_by_receiver]
        rates = sorted(frames / wall for frames in counted if frames > 0)
        rates = [0.0] * (len(viewers) - len(rates)) + rates  # a viewer that got nothing counts as 0 fps
    return {"rates": rates, "joins": [v.join_seconds for v in viewers], "failures": failures}


# ----- the shared try-on (this process) --------------------------------------------------------------------


@dataclass(frozen=True)
class SharedTryOn:
    """The shared session the viewers watch."""

    link: str
    viewer: ViewerServer
    session_id: str


@contextlib.asynccontextmanager
async def shared_try_on(url: str, folder: Path) -> AsyncIterator[SharedTryOn]:
    """One session shared live through the engine and the viewer, once its first part is broadcast."""
    viewer = ViewerServer(WebSettings(port=0, max_viewers_per_link=10_000))
    await viewer.start()
    store = await Store.open(folder / "tryon.sqlite3")
    settings = EngineSettings(
        slots=1,
        stream_cap_seconds=LONG_SECONDS,
        max_session_seconds=LONG_SECONDS,
        idle_seconds=LONG_SECONDS,
    )
    unlimited = QuotaLimits(daily_seconds=None, monthly_seconds=None)
    engine = build_engine(
        store,
        client_factory(DEV_API_KEY, url),
        settings,
        quota_defaults=unlimited,
        watch_board=viewer.registry,
    )
    try:
        request = SessionRequest(
            guild_id=1, user_id=1, channel_id=None, photo=PHOTO, outfit="a red wool coat", watch=True
        )
        presenter = CountingPresenter()
        session = await engine.manager.admit(request, presenter)
        link = await engine.share_live(session.id, guild_id=1, user_id=1)  # its link (shared at the start)
        watch = viewer.registry.find(link.rpartition("/")[2])
        assert watch is not None
        async with asyncio.timeout(TIMEOUT):
            while watch.state.part < 1:
                if session.state not in (
                    SessionState.QUEUED,
                    SessionState.CONNECTING,
                    SessionState.STREAMING,
                ):
                    raise RuntimeError(f"the session ended before it was broadcast: {presenter.errors}")
                await asyncio.sleep(0.1)
        yield SharedTryOn(link, viewer, session.id)
    finally:
        await engine.aclose(grace_seconds=20)
        await store.close()
        await viewer.aclose()


@dataclass
class Row:
    """One viewer count's measurements."""

    viewers: int
    joined: int
    counted_by_viewer: int
    failures: list[str]
    rates: list[float]
    joins: list[float]
    cpu: dict[str, float]


async def measure(shared: SharedTryOn, emulator_pid: int, count: int, args: argparse.Namespace) -> Row:
    """`count` viewers over `args.processes` children; CPU of every part over the common window."""
    shares = [
        count // args.processes + (1 if i < count % args.processes else 0) for i in range(args.processes)
    ]
    children = [await spawn_spectators(shared.link, share, args.seconds) for share in shares if share]
    try:
        joined = [json.loads(await read_line(child))["joined"] for child in children]
        await asyncio.sleep(SETTLE_SECONDS)
        pids = {"emulator": emulator_pid, "bot": os.getpid()}
        before = cpu_snapshot(pids, children)
        began = time.monotonic()
        counted = shared.viewer.registry.viewers(shared.session_id)
        for child in children:
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            await child.stdin.drain()
        results = [json.loads(await read_line(child, args.seconds + TIMEOUT)) for child in children]
        wall = time.monotonic() - began
        after = cpu_snapshot(pids, children)
    finally:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                await asyncio.wait_for(child.wait(), TIMEOUT)
    cpu = {name: (after[name] - before[name]) / wall for name in before}
    return Row(
        viewers=count,
        joined=sum(joined),
        counted_by_viewer=counted,
        failures=[f for r in results for f in r["failures"]],
        rates=sorted(rate for r in results for rate in r["rates"]),
        joins=sorted(j for r in results for j in r["joins"]),
        cpu=cpu,
    )


async def spawn_spectators(link: str, count: int, seconds: float) -> asyncio.subprocess.Process:
    command = [
        "-m",
        "bench.bench_viewers",
        "--spectate",
        link,
        "--count",
        str(count),
        "--seconds",
        str(seconds),
    ]
    return await asyncio.create_subprocess_exec(
        sys.executable, *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )


async def read_line(child: asyncio.subprocess.Process, within: float = TIMEOUT * 2) -> str:
    assert child.stdout is not None
    line = await asyncio.wait_for(child.stdout.readline(), within)
    if not line:
        raise RuntimeError(f"a viewer process exited early (code {await child.wait()})")
    return line.decode()


def cpu_snapshot(pids: dict[str, int], children: list[asyncio.subprocess.Process]) -> dict[str, float]:
    snapshot = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
    snapshot["viewer processes"] = sum(process_cpu_seconds(child.pid) for child in children)
    return snapshot


# ----- running and reporting -------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> str:
    extra = ("--stream-cap", str(LONG_SECONDS), "--max-spectators", "100000")
    process, url = start_emulator(args.fps, args.scale, 4, extra)
    rows: list[Row] = []
    began = time.monotonic()
    load = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory() as folder:
            async with shared_try_on(url, Path(folder)) as shared:
                for count in args.viewers:
                    row = await measure(shared, process.pid, count, args)
                    rows.append(row)
                    print(f"{count} viewers: worst {min(row.rates, default=0):.1f} fps", file=sys.stderr)
                    if row.failures or not row.rates or min(row.rates) < args.min_fps:
                        break
    finally:
        process.terminate()
        process.wait(30)
    return report(rows, args, time.monotonic() - began, load)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return values[max(0, min(len(values) - 1, round(share * len(values)) - 1))] if values else 0.0


def report(rows: list[Row], args: argparse.Namespace, wall: float, load: float) -> str:
    viewers = " ".join(str(v) for v in args.viewers)
    lines = [
        f"Command: `python -m bench.bench_viewers --viewers {viewers} --seconds {args.seconds:g} "
        f"--processes {args.processes} --scale {args.scale:g} --fps {args.fps} --min-fps {args.min_fps:g}` "
        f"({wall / 60:.1f} min wall)",
        f"Machine: nproc {os.cpu_count()}, {platform.machine()}, Python {platform.python_version()}, "
        f"load average {load:.2f} before the run (shared with other work).",
        "",
        "| viewers | joined | counted by the viewer | worst fps | median fps | join p50 s | join p95 s "
        "| emulator CPU | bot CPU (session + viewer) | viewer processes CPU |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        cpu = row.cpu
        lines.append(
            f"| {row.viewers} | {row.joined} | {row.counted_by_viewer} | {min(row.rates, default=0):.1f} "
            f"| {statistics.median(row.rates) if row.rates else 0:.1f} | {percentile(row.joins, 0.5):.2f} "
            f"| {percentile(row.joins, 0.95):.2f} | {cpu['emulator']:.0%} | {cpu['bot']:.0%} "
            f"| {cpu['viewer processes']:.0%} |"
        )
        lines += [f"|  | failures: {'; '.join(row.failures[:3])} | | | | | | | | |"] if row.failures else []
    sustained = [
        row.viewers for row in rows if not row.failures and row.rates and min(row.rates) >= args.min_fps
    ]
    lines += ["", f"Most viewers with every viewer >= {args.min_fps:g} fps: **{max(sustained, default=0)}**."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, nargs="+", default=[1, 8, 16, 32, 64])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--min-fps", type=float, default=23.0)
    parser.add_argument("--spectate", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.spectate:
        result = asyncio.run(spectate(args.spectate, args.count, args.seconds))
        print(json.dumps(result), flush=True)
        return 0
    print(asyncio.run(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
