"""`python -m bot emulator` as a child process that tests can SIGKILL and restart on the same port."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from tests.helpers import ROOT

START_SECONDS = 60.0  # a cold start imports aiortc and PyAV; slow on a busy two-core machine


class EmulatorProcess:
    """One emulator command line, run (and re-run) as a process; `url` stays the same across restarts."""

    def __init__(self, recordings_dir: Path, *options: str) -> None:
        self.recordings_dir = recordings_dir
        self.options = options
        self.port = 0
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        """The API URL (known once started)."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> str:
        """Start (on the port of the previous run, if any) and return the URL it announces."""
        assert self.process is None or self.process.returncode is not None, "already running"
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "emulator",
            "--port",
            str(self.port),
            "--recordings-dir",
            str(self.recordings_dir),
            "--scale",
            "0.25",
            "--fps",
            "8",
            *self.options,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.process.stdout is not None
        line = (await asyncio.wait_for(self.process.stdout.readline(), START_SECONDS)).decode().strip()
        assert line.startswith("ODYSSEY_API_URL=http://127.0.0.1:"), line
        self.port = int(line.rsplit(":", 1)[1])
        self.starts += 1
        return self.url

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a crash or the OOM killer."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        """Make sure nothing is left running (SIGKILL if still alive)."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


@contextlib.asynccontextmanager
async def emulator_process(recordings_dir: Path, *options: str) -> AsyncIterator[EmulatorProcess]:
    """A started emulator process, killed on the way out whatever happened."""
    emulator = EmulatorProcess(recordings_dir, *options)
    try:
        await emulator.start()
        yield emulator
    finally:
        await emulator.stop()
