"""`python -m bot emulator`: run the emulator until SIGINT/SIGTERM, printing its URL first."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from bot.emulator.config import DEV_API_KEY, ApiKey, EmulatorConfig
from bot.emulator.server import Emulator


async def serve(config: EmulatorConfig) -> None:
    """Start the emulator, announce `ODYSSEY_API_URL=…` on stdout and serve until a stop signal."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with Emulator(config) as emulator:
            print(f"ODYSSEY_API_URL={emulator.url}", flush=True)
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def main(args: argparse.Namespace) -> int:
    """Entry point used by `bot.__main__` (args: host, port, api_key)."""
    api_key = args.api_key or DEV_API_KEY
    config = EmulatorConfig(host=args.host, port=args.port, api_keys={api_key: ApiKey()})
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config))
    sys.stdout.flush()
    return 0
