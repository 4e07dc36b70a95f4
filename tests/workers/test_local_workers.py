"""Workers started by `run --local-workers` ignore Ctrl-C, go with the bot (even when it is SIGKILLed) and
yield the CPU to it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from bot.emulator import DEV_API_KEY
from bot.workers.bus import connect
from bot.workers.local import LOCAL_WORKER_NICENESS, start_local_workers
from bot.workers.presence import PresenceBoard
from bot.workers.settings import WorkerSettings
from tests.helpers import ROOT, until
from tests.workers.processes import worker_config

pytestmark = pytest.mark.timeout(60)

# A stand-in for the bot: starts one worker as `--local-workers` does, prints its pid, then waits.
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-m", "bot", "worker", *sys.argv[1:]], start_new_session=True)
print(child.pid, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_local_worker_ignores_sigint_and_drains_when_the_bot_is_killed(
    worker_settings: WorkerSettings, tmp_path: Path
) -> None:
    config = worker_config(tmp_path / "worker.toml", worker_settings)
    env = {**os.environ, "NATS_TOKEN": worker_settings.token or "", "ODYSSEY_API_KEY": DEV_API_KEY}
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PARENT, "--config", str(config), "--nats", worker_settings.nats_url or "",
        "--id", "local-1", "--exit-with-parent",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert parent.stdout is not None
    worker_pid = int(await parent.stdout.readline())
    client = await connect(worker_settings, "test")
    try:
        board = PresenceBoard(client, worker_settings)
        for _ in range(300):
            if [w.worker_id for w in await board.workers()] == ["local-1"]:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the worker never announced itself")
        # SIGINT is the bot's to handle (it drains its workers): the worker goes on serving.
        os.kill(worker_pid, signal.SIGINT)
        await asyncio.sleep(2.0)  # a worker that took it would have drained and withdrawn by now
        assert alive(worker_pid) and [w.worker_id for w in await board.workers()] == ["local-1"]
        parent.send_signal(signal.SIGKILL)
        await parent.wait()
        await until(lambda: not alive(worker_pid), 15)
        assert await board.workers() == []  # it withdrew on its way out, not by expiry
    finally:
        if alive(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)
        await client.close()


def niceness(pid: int) -> int:
    """A process's nice value (field 19 of /proc/<pid>/stat, after the command name in parentheses)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[16])


async def test_local_workers_yield_the_cpu_to_the_bot(tmp_path: Path) -> None:
    started = await start_local_workers(
        WorkerSettings(), 1, tmp_path / "nats", odyssey_url="http://127.0.0.1:9", odyssey_key=DEV_API_KEY
    )
    try:
        [worker] = started.processes
        assert niceness(worker.pid) == niceness(os.getpid()) + LOCAL_WORKER_NICENESS
    finally:
        await started.stop()
    assert worker.returncode == 0  # drained
