"""`python -m bot run --local-workers N`: a NATS server and N worker processes as the bot's children.

The one-machine middle between one process and a cluster: media leaves the bot's event loop and uses every
core, with one command. The children run in their own process sessions, so Ctrl-C in the terminal reaches
only the bot, which ends its sessions, drains the workers (SIGTERM) and stops NATS last; the workers ignore
SIGINT besides (`--exit-with-parent`), should one reach them all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import signal
import sys
from pathlib import Path

from bot.deadline import wait_within
from bot.workers.bus import connect
from bot.workers.nats_server import LocalNatsServer, free_port
from bot.workers.presence import PresenceBoard
from bot.workers.settings import WorkerSettings

log = logging.getLogger(__name__)

LOCAL_WORKER_NICENESS = 5
READY_SECONDS = 60.0
DRAIN_SECONDS = 90.0


@dataclasses.dataclass
class LocalWorkers:
    """The NATS server and the worker processes the bot started; `stop()` drains and ends them."""

    settings: WorkerSettings
    server: LocalNatsServer
    processes: list[asyncio.subprocess.Process]

    async def stop(self) -> None:
        """SIGTERM every worker (each drains), wait, kill stragglers, then stop NATS."""
        for process in self.processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                await wait_within(process.wait(), DRAIN_SECONDS)
            except TimeoutError:
                log.warning("worker pid %d did not drain in time; killed", process.pid)
                process.kill()
                await process.wait()
        await self.server.stop()


async def start_local_workers(
    settings: WorkerSettings,
    count: int,
    data_dir: Path,
    *,
    odyssey_url: str,
    odyssey_key: str,
    config_path: Path | None = None,
) -> LocalWorkers:
    """Start NATS (JetStream under `data_dir`) and `count` workers; returns once every worker announced.

    Workers read the bot's `config_path` (same subject prefix and presence TTL); their settings point at
    the local server with a fresh token.
    """
    token = secrets.token_urlsafe(24)
    server = LocalNatsServer(data_dir, free_port(), token)
    await server.start()
    local = dataclasses.replace(settings, nats_url=server.url, token=token, user=None, password=None)
    started = LocalWorkers(local, server, [])
    try:
        for index in range(count):
            started.processes.append(await _spawn_worker(local, index, odyssey_url, odyssey_key, config_path))
        await _until_announced(local, count, started.processes)
    except BaseException:
        await started.stop()
        raise
    log.info("local workers: NATS at %s, %d workers of %d sessions", server.url, count, local.capacity)
    return started


async def _spawn_worker(
    settings: WorkerSettings, index: int, odyssey_url: str, odyssey_key: str, config_path: Path | None
) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "NATS_TOKEN": settings.token or "",
        "ODYSSEY_API_KEY": odyssey_key,
        "ODYSSEY_API_URL": odyssey_url,
    }
    for never in ("DISCORD_TOKEN", "NATS_USER", "NATS_PASSWORD"):  # a worker never gets the Discord token
        env.pop(never, None)
    config = ["--config", str(config_path)] if config_path is not None else []
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "worker",
        *config,
        "--nats",
        settings.nats_url or "",
        "--capacity",
        str(settings.capacity),
        "--id",
        f"local-{index + 1}",
        "--exit-with-parent",
        # On the bot's own machine the front end must win the CPU: a member's command is acknowledged within
        # Discord's 3 s only if media work waits for it, not the other way round.
        "--nice",
        str(LOCAL_WORKER_NICENESS),
        env=env,
        start_new_session=True,
    )


async def _until_announced(
    settings: WorkerSettings, count: int, processes: list[asyncio.subprocess.Process]
) -> None:
    client = await connect(settings, "tryon-local-workers")
    try:
        board = PresenceBoard(client, settings)
        async with asyncio.timeout(READY_SECONDS):
            while len(await board.workers()) < count:
                exited = [p.pid for p in processes if p.returncode is not None]
                if exited:
                    raise RuntimeError(f"local worker(s) {exited} exited at start; see the log above")
                await asyncio.sleep(0.2)
    finally:
        with contextlib.suppress(Exception):
            await client.close()
