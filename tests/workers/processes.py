"""Real `python -m bot worker` processes for the tests: started, waited for, killed or drained."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from bot.emulator import DEV_API_KEY
from bot.workers.presence import PresenceBoard
from bot.workers.settings import WorkerSettings
from tests.helpers import ROOT

READY_SECONDS = 30.0


def worker_config(path: Path, settings: WorkerSettings) -> Path:
    """A config file giving workers the same `[workers]` settings as the test's bot (token aside)."""
    path.write_text(
        "[workers]\n"
        f'subject_prefix = "{settings.subject_prefix}"\n'
        f"presence_ttl_seconds = {settings.presence_ttl_seconds}\n",
        encoding="utf-8",
    )
    return path


@dataclasses.dataclass
class WorkerProcess:
    """One worker process and its log file."""

    worker_id: str
    process: asyncio.subprocess.Process
    log_path: Path

    def log(self) -> str:
        """Everything the worker logged so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        """SIGKILL: no goodbye, no drain."""
        if self.process.returncode is None:
            self.process.kill()

    def pause(self) -> None:
        """SIGSTOP: frozen, as a swapping or overloaded host; what NATS sends it waits in its socket."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT: it goes on with whatever arrived meanwhile."""
        self.process.send_signal(signal.SIGCONT)

    async def terminate(self, within: float = 60.0) -> int:
        """SIGTERM, then wait for the drain to finish; the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(within):
            return await self.process.wait()


class WorkerPool:
    """Starts workers against one NATS server and emulator; every one is killed at the end."""

    def __init__(self, settings: WorkerSettings, emulator_url: str, folder: Path) -> None:
        self.settings = settings
        self.emulator_url = emulator_url
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.started: list[WorkerProcess] = []

    async def start(
        self, worker_id: str, capacity: int, board: PresenceBoard, *options: str
    ) -> WorkerProcess:
        """A worker with this id, capacity and extra command line `options`, once it shows on `board`."""
        config = worker_config(self.folder / f"{worker_id}.toml", self.settings)
        log_path = self.folder / f"{worker_id}.log"
        env = {
            **os.environ,
            "NATS_TOKEN": self.settings.token or "",
            "ODYSSEY_API_KEY": DEV_API_KEY,
            "ODYSSEY_API_URL": self.emulator_url,
            "TRYON_LOG_LEVEL": "INFO",
        }
        with log_path.open("wb") as log_file:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "worker",
                "--config",
                str(config),
                "--nats",
                self.settings.nats_url or "",
                "--capacity",
                str(capacity),
                "--id",
                worker_id,
                *options,
                cwd=ROOT,
                env=env,
                stdout=log_file,
                stderr=log_file,
            )
        worker = WorkerProcess(worker_id, process, log_path)
        self.started.append(worker)
        async with asyncio.timeout(READY_SECONDS):
            while worker_id not in {w.worker_id for w in await board.workers()}:
                if process.returncode is not None:
                    raise RuntimeError(f"worker {worker_id} exited:\n{worker.log()}")
                await asyncio.sleep(0.1)
        return worker

    async def stop_all(self) -> None:
        """Kill whatever still runs."""
        for worker in self.started:
            worker.kill()
            with contextlib.suppress(ProcessLookupError):
                await worker.process.wait()


@contextlib.asynccontextmanager
async def worker_pool(settings: WorkerSettings, emulator_url: str, folder: Path) -> AsyncIterator[WorkerPool]:
    """A pool whose workers are all gone after the block."""
    pool = WorkerPool(settings, emulator_url, folder)
    try:
        yield pool
    finally:
        await pool.stop_all()
