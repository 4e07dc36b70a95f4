"""`python -m bot emulator`: run the emulator until SIGINT/SIGTERM, printing its URL first."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

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
    """Entry point used by `bot.__main__` (the `emulator` sub-command's arguments)."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config_from_args(args)))
    sys.stdout.flush()
    return 0


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The emulator settings the command line asks for (unset options keep `EmulatorConfig`'s defaults)."""
    chosen = {
        "concurrency_limit": args.concurrency_limit,
        "streamer_slots": args.streamer_slots,
        "stream_cap_seconds": args.stream_cap,
        "max_spectators_per_stream": args.max_spectators,
        "fps": args.fps,
        "scale": args.scale,
    }
    for name, value in chosen.items():
        if value is not None and value <= 0:
            raise SystemExit(f"emulator: {name} must be greater than 0 (got {value})")
    overrides: dict[str, Any] = {name: value for name, value in chosen.items() if value is not None}
    if args.idle_timeout is not None:
        if args.idle_timeout < 0:
            raise SystemExit(f"emulator: --idle-timeout must be 0 (never) or more (got {args.idle_timeout})")
        overrides["idle_timeout_seconds"] = args.idle_timeout or None
    if args.recordings_dir:
        overrides["recordings_dir"] = args.recordings_dir
    api_key = args.api_key or DEV_API_KEY
    return EmulatorConfig(host=args.host, port=args.port, api_keys={api_key: ApiKey()}, **overrides)
