"""Fixtures for the reliability suite: the real bot on the fake Discord and the emulator, and checks after.

Every fault test ends with the same questions: was the member told, is the slot free, was usage charged
exactly once, is nothing left running. The helpers here answer them so each test states only its fault.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.app import TryOnBot
from bot.config import BotConfig
from bot.emulator import Emulator
from bot.store import Store
from tests.fakediscord import payloads as p
from tests.helpers import make_bot_config

Ctx = Callable[..., p.InteractionContext]


@pytest.fixture
def bot_config(tmp_path: Path, emulator: Emulator) -> BotConfig:
    """The bot on the test emulator with quick engine settings (override in a module to change them)."""
    return make_bot_config(tmp_path, emulator.url)


async def assert_settled_once(store: Store, session_id: str) -> float:
    """One session row and exactly one charge or refund in the ledger; returns the seconds charged."""
    entries = await store.usage.for_session(session_id)
    kinds = [entry.kind for entry in entries if entry.kind != "adjust"]
    assert kinds.count("session") == 1, entries
    settlements = [entry for entry in entries if entry.kind in ("charge", "refund")]
    assert len(settlements) == 1, entries
    return sum(entry.seconds for entry in settlements if entry.kind == "charge")


def assert_nothing_running(bot: TryOnBot) -> None:
    """No live or queued session is left in the engine."""
    manager = bot.runtime.engine.manager
    assert manager.running_count == 0, manager.sessions()
    assert manager.sessions() == [], manager.sessions()


@dataclass
class LoopLag:
    """The longest event-loop stall seen while the probe ran (milliseconds), and how many ticks it took."""

    worst_ms: float = 0.0
    ticks: int = 0
    samples: list[float] = field(default_factory=list)


@contextlib.asynccontextmanager
async def loop_lag_probe(interval: float = 0.005) -> AsyncIterator[LoopLag]:
    """Measure how late a short sleep wakes up, for as long as the block runs."""
    lag = LoopLag()
    loop = asyncio.get_running_loop()

    async def probe() -> None:
        while True:
            before = loop.time()
            await asyncio.sleep(interval)
            late_ms = max(0.0, loop.time() - before - interval) * 1000
            lag.samples.append(late_ms)
            lag.worst_ms = max(lag.worst_ms, late_ms)
            lag.ticks += 1

    task = asyncio.create_task(probe())
    try:
        yield lag
    finally:
        # A block answered in under one interval (an instant refusal) still gets its one sample.
        while not lag.ticks and not task.done():  # noqa: ASYNC110 (the probe itself is a sleep loop)
            await asyncio.sleep(interval)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
