"""The emulator in a child process for benchmarks, so its CPU is measured apart from the bot's."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence


def start_emulator(
    fps: int, scale: float, capacity: int, extra: Sequence[str] = ()
) -> tuple[subprocess.Popen[str], str]:
    """`python -m bot emulator` with room for `capacity` sessions, never idling; returns it and its URL.

    `extra`: more of its options, e.g. `("--stream-cap", "3600")`."""
    command = [sys.executable, "-m", "bot", "emulator", "--port", "0"]
    command += ["--fps", str(fps), "--scale", str(scale), "--idle-timeout", "0"]
    command += ["--concurrency-limit", str(capacity), "--streamer-slots", str(capacity), *extra]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    first = process.stdout.readline().strip()
    if not first.startswith("ODYSSEY_API_URL="):
        process.kill()
        process.wait()
        raise RuntimeError(f"the emulator did not start: {first!r}")
    return process, first.partition("=")[2]
