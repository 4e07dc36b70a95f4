"""The session ledger on one front end's SQLite store: heartbeat writes per second, and latency at N sessions.

    python -m bench.bench_ledger [--sessions 8 32 128 512] [--raw-seconds 2] [--paced-seconds 6]

For each session count N, on a fresh store file (`Store.open`, as the bot opens it: WAL, synchronous=NORMAL,
one aiosqlite connection behind one lock), N simulated live sessions write what a live session writes, through
the same calls as the engine (the manager's `sessions.create`, `QuotaPolicy.reserve`, `prompts.add`; then the
session's `StoreLedger`: state changes, stream start, prompt applied, heartbeats, stream end, settle):

- start: every session's start writes, all N at once (the manager and quota locks serialise what they do in
  the bot too); reported as session starts per second;
- raw: N tasks heartbeat (`sessions.heartbeat` with the open stream's seconds) back to back for
  `--raw-seconds`: the most heartbeat writes per second this store sustains, and the CPU each costs;
- paced: N tasks heartbeat every `EngineSettings().heartbeat_seconds`, each at its own phase, for
  `--paced-seconds`: the latency of one heartbeat write as a session sees it (lock wait + the write);
- end: every session's end writes (stream end, ending, settle, finalising, done), all N at once.

Baseline in the same run, on the same file: the two statements of `Sessions.heartbeat` through the standard
library's sqlite3 in one thread without asyncio (same pragmas), one transaction per heartbeat as the store
does, and all N sessions' heartbeats in one transaction (what a ledger batching heartbeats could do).

Only the store runs here: no Discord, WebRTC or snippets share the event loop, so latencies are the store's
own, not what a busy bot's loop would add. Prints a markdown block for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
from dataclasses import dataclass
from itertools import cycle
from pathlib import Path

from bot.config import QuotaSettings
from bot.store import Store
from bot.tryon.ledger import StoreLedger
from bot.tryon.models import SessionState
from bot.tryon.quota import QuotaPolicy
from bot.tryon.settings import EngineSettings

GUILD_ID = 1
OUTFIT = "a red wool coat"
# The store's connection settings and `Sessions.heartbeat`'s statements, for the sqlite3 baseline.
PRAGMAS = (
    "busy_timeout = 10000",
    "journal_mode = WAL",
    "synchronous = NORMAL",
    "foreign_keys = ON",
    "secure_delete = ON",
)
SESSION_SQL = "UPDATE sessions SET streamed_seconds = MAX(streamed_seconds, ?), heartbeat_at = ? WHERE id = ?"
STREAM_SQL = "UPDATE streams SET seconds = MAX(seconds, ?) WHERE session_id = ? AND ended_at IS NULL"


@dataclass
class LiveSession:
    """One simulated session: its ids and when its stream started (perf_counter seconds)."""

    id: str
    stream_id: str
    started: float


@dataclass
class Row:
    """Everything measured at one session count."""

    sessions: int
    start_seconds: float
    raw_writes: int
    raw_seconds: float
    raw_cpu_seconds: float
    raw_latencies: list[float]
    paced_seconds: float
    paced_cpu_seconds: float
    paced_latencies: list[float]
    end_seconds: float
    baseline_single: float
    baseline_batched: float

    @property
    def capacity(self) -> float:
        """Heartbeat writes per second sustained back to back."""
        return self.raw_writes / self.raw_seconds

    @property
    def cpu_ms_per_write(self) -> float:
        """Process CPU (event loop and aiosqlite's thread) per heartbeat write, back to back."""
        return self.raw_cpu_seconds / self.raw_writes * 1000


def sqlite_baseline(path: Path, session_ids: list[str], seconds: float, per_transaction: int) -> float:
    """Heartbeat writes per second through plain sqlite3, `per_transaction` heartbeats per transaction."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    try:
        for pragma in PRAGMAS:
            conn.execute(f"PRAGMA {pragma}")
        ids = cycle(session_ids)
        writes, began = 0, time.perf_counter()
        while (now := time.perf_counter()) < began + seconds:
            conn.execute("BEGIN IMMEDIATE")
            for _ in range(per_transaction):
                session_id, streamed = next(ids), now - began + 1000.0
                conn.execute(SESSION_SQL, (streamed, time.time(), session_id))
                conn.execute(STREAM_SQL, (streamed, session_id))
            conn.execute("COMMIT")
            writes += per_transaction
        return writes / (time.perf_counter() - began)
    finally:
        conn.close()


def quantile(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def start_session(store: Store, quota: QuotaPolicy, ledger: StoreLedger, index: int) -> LiveSession:
    """What the manager and then the session write from admission until the first stream runs."""
    user_id = 10_000 + index
    record = await store.sessions.create(
        guild_id=GUILD_ID,
        channel_id=2,
        user_id=user_id,
        photo_sha256=f"{index:064x}",
        orientation="portrait",
        front_end={"interaction_token": f"token-{index}", "status_message_id": 900_000 + index},
    )
    await quota.reserve(record.id, GUILD_ID, user_id, (3,))
    prompt = await store.prompts.add(record.id, OUTFIT)
    await ledger.state_changed(record.id, SessionState.CONNECTING)
    stream_id = f"stream-{record.id}-0"
    await ledger.stream_started(record.id, stream_id, OUTFIT)
    await ledger.prompt_status(prompt.id, "applied")
    await ledger.state_changed(record.id, SessionState.STREAMING)
    return LiveSession(record.id, stream_id, time.perf_counter())


async def end_session(ledger: StoreLedger, session: LiveSession) -> None:
    """What the session writes from the end of its stream until it is done."""
    seconds = time.perf_counter() - session.started
    await ledger.stream_ended(session.id, session.stream_id, seconds, "user")
    await ledger.state_changed(session.id, SessionState.ENDING)
    await ledger.settle(session.id, seconds)
    await ledger.state_changed(session.id, SessionState.FINALISING)
    await ledger.state_changed(session.id, SessionState.DONE)


async def heartbeat(ledger: StoreLedger, session: LiveSession, latencies: list[float]) -> None:
    """One heartbeat as the session's watchdog writes it; its latency appended in milliseconds."""
    before = time.perf_counter()
    seconds = before - session.started
    await ledger.heartbeat(session.id, seconds, seconds)
    latencies.append((time.perf_counter() - before) * 1000)


async def back_to_back(
    ledger: StoreLedger, session: LiveSession, until: float, latencies: list[float]
) -> None:
    """Heartbeat as fast as the store answers until `until`."""
    while time.perf_counter() < until:
        await heartbeat(ledger, session, latencies)


async def paced(
    ledger: StoreLedger,
    session: LiveSession,
    first: float,
    until: float,
    every: float,
    latencies: list[float],
) -> None:
    """Heartbeat every `every` seconds from `first` (perf_counter) until `until`, without drifting."""
    due = first
    while due < until:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        await heartbeat(ledger, session, latencies)
        due += every


async def measure(count: int, args: argparse.Namespace, every: float, rng: random.Random) -> Row:
    """Start `count` sessions on a fresh store, heartbeat back to back, then paced, then end them."""
    with tempfile.TemporaryDirectory() as folder:
        async with await Store.open(Path(folder) / "tryon.db") as store:
            quota = QuotaPolicy(
                store, QuotaSettings().limits, min_start_seconds=EngineSettings().min_start_seconds
            )
            ledger = StoreLedger(store, quota)

            began = time.perf_counter()
            sessions = await asyncio.gather(*(start_session(store, quota, ledger, i) for i in range(count)))
            start_seconds = time.perf_counter() - began

            raw: list[float] = []
            cpu, began = time.process_time(), time.perf_counter()
            until = began + args.raw_seconds
            await asyncio.gather(*(back_to_back(ledger, s, until, raw) for s in sessions))
            raw_seconds, raw_cpu = time.perf_counter() - began, time.process_time() - cpu

            # The store's connection is idle meanwhile (nothing else runs on the loop).
            ids = [s.id for s in sessions]
            single = sqlite_baseline(store.path, ids, args.baseline_seconds, 1)
            batched = sqlite_baseline(store.path, ids, args.baseline_seconds, count)

            timed: list[float] = []
            cpu, began = time.process_time(), time.perf_counter()
            until = began + args.paced_seconds
            await asyncio.gather(
                *(paced(ledger, s, began + rng.uniform(0, every), until, every, timed) for s in sessions)
            )
            paced_seconds, paced_cpu = time.perf_counter() - began, time.process_time() - cpu

            began = time.perf_counter()
            await asyncio.gather(*(end_session(ledger, s) for s in sessions))
            end_seconds = time.perf_counter() - began

            done = await store.db.fetch_one("SELECT COUNT(*) AS n FROM sessions WHERE state = 'done'")
            charged = await store.db.fetch_one("SELECT COUNT(*) AS n FROM usage_ledger WHERE kind = 'charge'")
            if done is None or charged is None or (done["n"], charged["n"]) != (count, count):
                raise RuntimeError(f"expected {count} sessions done and charged, found {done} / {charged}")
    return Row(
        count,
        start_seconds,
        len(raw),
        raw_seconds,
        raw_cpu,
        raw,
        paced_seconds,
        paced_cpu,
        timed,
        end_seconds,
        single,
        batched,
    )


def report(args: argparse.Namespace, every: float, rows: list[Row]) -> str:
    """The markdown block."""
    machine = f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} CPUs"
    command = (
        f"python -m bench.bench_ledger --sessions {' '.join(map(str, args.sessions))} "
        f"--raw-seconds {args.raw_seconds:g} --paced-seconds {args.paced_seconds:g} "
        f"--baseline-seconds {args.baseline_seconds:g}"
    )
    lines = [
        f"Command: `{command}` ({time.strftime('%Y-%m-%d')}, shared 2-core machine, {machine}).",
        f"Heartbeat interval: {every:g} s (`EngineSettings().heartbeat_seconds`). One heartbeat write = one "
        "`BEGIN IMMEDIATE` transaction updating the session row and its open stream row.",
        "",
        "Back to back (N tasks heartbeating as fast as the store answers; latency includes the wait for the "
        "store's lock, so it grows with N):",
        "",
        "| sessions | store: heartbeat writes/s | CPU ms per write | p50 ms | p99 ms | sqlite3 baseline: "
        "1 per tx, writes/s | store vs baseline | sqlite3: N per tx, writes/s | starts/s | ends/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.sessions} | {row.capacity:.0f} | {row.cpu_ms_per_write:.3f} | "
            f"{statistics.median(row.raw_latencies):.2f} | {quantile(row.raw_latencies, 0.99):.2f} | "
            f"{row.baseline_single:.0f} | {row.capacity / row.baseline_single:.3f}x | "
            f"{row.baseline_batched:.0f} | {row.sessions / row.start_seconds:.0f} | "
            f"{row.sessions / row.end_seconds:.0f} |"
        )
    lines += [
        "",
        f"At the real rate (every session heartbeats every {every:g} s, phases spread at random):",
        "",
        "| sessions | writes/s offered | share of capacity | samples | p50 ms | p99 ms | max ms "
        "| process CPU |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        offered = row.sessions / every
        lines.append(
            f"| {row.sessions} | {offered:.0f} | {offered / row.capacity:.1%} | {len(row.paced_latencies)} | "
            f"{statistics.median(row.paced_latencies):.2f} | {quantile(row.paced_latencies, 0.99):.2f} | "
            f"{max(row.paced_latencies):.2f} | {row.paced_cpu_seconds / row.paced_seconds:.1%} |"
        )
    lowest = min(rows, key=lambda row: row.capacity)
    lines += [
        "",
        "Heartbeats alone would saturate this store at about "
        f"**{lowest.capacity * every:.0f} live sessions** (the lowest back-to-back rate, "
        f"{lowest.capacity:.0f} writes/s at {lowest.sessions} sessions, x {every:g} s). Starts/s and ends/s: "
        "all N sessions' start (or end) writes issued at once, N divided by the time until the last "
        "finished. "
        "Process CPU: this process's CPU time (all threads) over the paced window, as a share of one core.",
    ]
    return "\n".join(lines)


async def bench(args: argparse.Namespace) -> str:
    """Every session count in turn; returns the markdown block."""
    every = EngineSettings().heartbeat_seconds
    rng = random.Random(7)
    rows = [await measure(count, args, every, rng) for count in args.sessions]
    return report(args, every, rows)


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, nargs="+", default=[8, 32, 128, 512])
    parser.add_argument("--raw-seconds", type=float, default=2.0, help="back-to-back heartbeats per count")
    parser.add_argument("--paced-seconds", type=float, default=6.0, help="real-rate heartbeats per count")
    parser.add_argument("--baseline-seconds", type=float, default=0.5, help="each sqlite3 baseline per count")
    args = parser.parse_args()
    print(asyncio.run(bench(args)))


if __name__ == "__main__":
    main()
