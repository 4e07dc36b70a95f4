"""Fixtures for the worker tests: a real NATS server with JetStream, and settings pointing at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.emulator import Emulator
from bot.workers.nats_server import LocalNatsServer, running_nats
from bot.workers.settings import WorkerSettings
from tests.workers.processes import WorkerPool, worker_pool

TOKEN = "test-nats-token-s3cr3t"


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[LocalNatsServer]:
    """A NATS server on a free loopback port, JetStream data under tmp_path, requiring TOKEN."""
    async with running_nats(tmp_path / "jetstream", token=TOKEN) as server:
        yield server


@pytest.fixture
async def workers(
    worker_settings: WorkerSettings, emulator: Emulator, tmp_path: Path
) -> AsyncIterator[WorkerPool]:
    """Worker processes for this server and emulator, all killed after the test."""
    async with worker_pool(worker_settings, emulator.url, tmp_path / "workers") as pool:
        yield pool


@pytest.fixture
def worker_settings(nats_server: LocalNatsServer) -> WorkerSettings:
    """Settings for this server with a short presence TTL."""
    return WorkerSettings(nats_url=nats_server.url, token=TOKEN, presence_ttl_seconds=1.5)
