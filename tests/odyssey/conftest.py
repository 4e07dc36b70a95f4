"""Fixtures for client tests against the emulator, each test ending with a check for leaked resources."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import RTCPeerConnection

from bot.emulator import DEV_API_KEY, Emulator
from bot.odyssey import ConnectionTimeouts, Odyssey, RetryPolicy

FAST_RETRY = RetryPolicy(max_retries=2, initial_delay=0.01, max_delay=0.02)
FAST_TIMEOUTS = ConnectionTimeouts(ready=10.0, start=10.0, interact=10.0, end=10.0, close=3.0)
LEAK_GRACE_SECONDS = 5.0


def open_socket_count() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


def open_peer_connections() -> list[RTCPeerConnection]:
    return [o for o in gc.get_objects() if type(o) is RTCPeerConnection and o.connectionState != "closed"]


@dataclass
class ClientHarness:
    """Starts emulators and clients for one test; remembers the process's resources before any client."""

    start_emulator: Callable[..., Awaitable[Emulator]]
    clients: list[Odyssey] = field(default_factory=list)
    baseline_tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    baseline_sockets: int = 0

    async def emulator(self, **overrides: Any) -> Emulator:
        emu = await self.start_emulator(**overrides)
        self.mark()
        return emu

    def mark(self) -> None:
        self.baseline_tasks = set(asyncio.all_tasks())
        self.baseline_sockets = open_socket_count()

    def client(self, emu: Emulator, api_key: str = DEV_API_KEY, **options: Any) -> Odyssey:
        options.setdefault("retry", FAST_RETRY)
        options.setdefault("timeouts", FAST_TIMEOUTS)
        client = Odyssey(api_key=api_key, api_url=emu.url, **options)
        self.clients.append(client)
        return client

    async def check_no_leaks(self) -> None:
        for client in self.clients:
            await client.aclose()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LEAK_GRACE_SECONDS
        while True:
            tasks = [t for t in asyncio.all_tasks() - self.baseline_tasks if t is not asyncio.current_task()]
            sockets = open_socket_count()
            peers = open_peer_connections()
            if not tasks and sockets <= self.baseline_sockets and not peers:
                return
            if loop.time() > deadline:
                raise AssertionError(
                    f"leaked: tasks={[t.get_name() for t in tasks]} "
                    f"sockets={sockets} (before: {self.baseline_sockets}) peer connections={len(peers)}"
                )
            await asyncio.sleep(0.1)


@pytest.fixture
async def harness(emulator_factory: Callable[..., Awaitable[Emulator]]) -> AsyncIterator[ClientHarness]:
    """`await harness.emulator(**overrides)` then `harness.client(emu)`; checks for leaks at the end."""
    harness = ClientHarness(emulator_factory)
    harness.mark()
    try:
        yield harness
    finally:
        await harness.check_no_leaks()
