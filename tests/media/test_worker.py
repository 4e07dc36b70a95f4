"""Snippet pool workers never outlive the bot, even one killed while they were still starting."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT

# A worker whose parent (the pid the pool passed) is already gone when its initializer runs: the bot was
# killed while the worker started, so its own parent is init from the start.
ORPHANED_AT_START = """
import os, time
from bot.media.worker import init_worker
init_worker(os.getppid() + 1_000_000)  # not this process's parent: it died before we looked
time.sleep(30)
"""


def test_a_worker_orphaned_before_its_start_up_exits_at_once() -> None:
    worker = subprocess.run(
        [sys.executable, "-c", ORPHANED_AT_START], cwd=ROOT, timeout=10, capture_output=True
    )
    assert worker.returncode == 1, worker.stderr.decode(errors="replace")
